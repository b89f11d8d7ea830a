package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/openfaas/faas-provider/auth"

	"optio.dev/optio/config"
)

func TestReadConfigDefaults(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	got, err := ReadConfig(config.Map(map[string]string{"OPTIO_SECRETS_DIR": dir}))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Prefetch: 10, Refresh: 5 * time.Second, RefreshTimeout: 10 * time.Second,
		InvokeTimeout: 30 * time.Second, RetryDelay: 200 * time.Millisecond,
		Backoff: 250 * time.Millisecond, BackoffMax: 15 * time.Second,
		ShutdownTimeout: 30 * time.Second, Cron: true, CronTimeout: 3 * time.Minute,
		HealthAddr: "127.0.0.1:8091",
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(Config{}, "Shared")); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	if got.Topic() != "optio.jobs" {
		t.Errorf("topic = %q, want optio.jobs", got.Topic())
	}
}

func TestReadConfigCredentials(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, v := range map[string]string{"basic-auth-user": "admin\n", "basic-auth-password": "s3cret\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		env  map[string]string
		want *auth.BasicAuthCredentials
	}{
		{"from secret files", map[string]string{"OPTIO_SECRETS_DIR": dir}, &auth.BasicAuthCredentials{User: "admin", Password: "s3cret"}},
		{"environment wins", map[string]string{"OPTIO_SECRETS_DIR": dir, "OPENFAAS_USER": "u", "OPENFAAS_PASSWORD": "p"}, &auth.BasicAuthCredentials{User: "u", Password: "p"}},
		{"none", map[string]string{"OPTIO_SECRETS_DIR": t.TempDir()}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := ReadConfig(config.Map(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, c.Credentials); diff != "" {
				t.Errorf("credentials (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadConfigErrorsNameTheVariable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key, value string
	}{
		{"CONNECTOR_PREFETCH", "0"},
		{"CONNECTOR_PREFETCH", "-3"},
		{"CONNECTOR_PREFETCH", "ten"},
		{"CONNECTOR_REFRESH", "0s"},
		{"CONNECTOR_REFRESH", "soon"},
		{"CONNECTOR_INVOKE_TIMEOUT", "-1s"},
		{"CONNECTOR_RETRY_DELAY", "-1ms"},
		{"CONNECTOR_BACKOFF_MAX", "1ms"},
		{"CONNECTOR_SHUTDOWN_TIMEOUT", "0"},
		{"CONNECTOR_CRON", "maybe"},
		{"CONNECTOR_CRON_TIMEOUT", "0s"},
		{"CONNECTOR_HEALTH_ADDR", "8091"},
		{"CONNECTOR_LOG_LEVEL", "loud"},
		{"OPENFAAS_USER", "admin"},
		{"OPTIO_DELIVERY_LIMIT", "0"},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			t.Parallel()
			_, err := ReadConfig(config.Map(map[string]string{tt.key: tt.value, "OPTIO_SECRETS_DIR": t.TempDir()}))
			if err == nil || !strings.Contains(err.Error(), tt.key) {
				t.Errorf("error = %v, want one naming %s", err, tt.key)
			}
		})
	}
}
