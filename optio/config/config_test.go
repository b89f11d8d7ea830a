package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadDefaults(t *testing.T) {
	t.Parallel()
	c, err := Read(Map(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Queue != "optio.jobs" || c.Prefix != "optio:" || c.Index != "optio_jobs" || c.DeliveryLimit != 5 ||
		c.ESURL != "http://127.0.0.1:9200" || c.GatewayURL != "http://127.0.0.1:8080" {
		t.Fatalf("defaults = %+v", c)
	}
}

func TestReadNamesTheBadVariable(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ key, value string }{
		{"REDIS_URL", "localhost"}, {"ES_URL", "::"}, {"OPTIO_DELIVERY_LIMIT", "five"},
		{"OPTIO_DELIVERY_LIMIT", "0"}, {"OPTIO_INDEX", "Upper"}, {"OPTIO_QUEUE", "a b"},
	} {
		_, err := Read(Map(map[string]string{tt.key: tt.value}))
		if err == nil || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("%s=%q: err = %v, want one naming %s", tt.key, tt.value, err, tt.key)
		}
	}
}

func TestSecretFromFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "es-password"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Read(Map(map[string]string{"OPTIO_SECRETS_DIR": dir}))
	if err != nil {
		t.Fatal(err)
	}
	if c.ESPassword != "s3cret" {
		t.Fatalf("ESPassword = %q, want the secret file's content", c.ESPassword)
	}
	c2, _ := Read(Map(map[string]string{"OPTIO_SECRETS_DIR": dir, "ES_PASSWORD": "env"}))
	if c2.ESPassword != "env" {
		t.Fatalf("the environment must win over the secret file, got %q", c2.ESPassword)
	}
}
