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

func TestAPIToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "optio-api-token"), []byte("from-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A secret that is mounted but cannot be read (here a directory, which
	// fails for root too) must fail the configuration, not turn auth off.
	broken := t.TempDir()
	if err := os.Mkdir(filepath.Join(broken, "optio-api-token"), 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		env        map[string]string
		token      string
		statusAuth bool
		err        string
	}{
		{"none", map[string]string{}, "", false, ""},
		{"env", map[string]string{"OPTIO_API_TOKEN": "t1"}, "t1", false, ""},
		{"secret", map[string]string{"OPTIO_SECRETS_DIR": dir}, "from-secret", false, ""},
		{"status auth", map[string]string{"OPTIO_API_TOKEN": "t1", "OPTIO_STATUS_AUTH": "true"}, "t1", true, ""},
		{"status auth without token", map[string]string{"OPTIO_STATUS_AUTH": "true"}, "", true, "needs an API token"},
		{"unreadable secret", map[string]string{"OPTIO_SECRETS_DIR": broken}, "", false, "reading secret optio-api-token"},
		{"status auth not a bool", map[string]string{"OPTIO_STATUS_AUTH": "yes please"}, "", false, "OPTIO_STATUS_AUTH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.env["OPTIO_SECRETS_DIR"] == "" {
				tt.env["OPTIO_SECRETS_DIR"] = t.TempDir()
			}
			c, err := Read(Map(tt.env))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one naming %q", err, tt.err)
				}
				return
			}
			if err != nil || c.APIToken != tt.token || c.StatusAuth != tt.statusAuth {
				t.Fatalf("Read = token %q status auth %v, %v; want %q %v", c.APIToken, c.StatusAuth, err, tt.token, tt.statusAuth)
			}
		})
	}
}
