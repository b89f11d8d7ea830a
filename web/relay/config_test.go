package relay

import (
	"strings"
	"testing"
	"time"

	"optio.dev/optio/config"
)

func TestRead(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
		check   func(*testing.T, Config)
	}{
		{name: "defaults", env: map[string]string{}, check: func(t *testing.T, c Config) {
			if c.Addr != "127.0.0.1:8090" || c.SendInterval != 100*time.Millisecond || c.MaxBrowsers != 1000 {
				t.Errorf("defaults: %+v", c)
			}
		}},
		{name: "origins", env: map[string]string{"RELAY_ALLOWED_ORIGINS": " dash.example.com, https://*.example.org "},
			check: func(t *testing.T, c Config) {
				if len(c.AllowedOrigins) != 2 || c.AllowedOrigins[1] != "https://*.example.org" {
					t.Errorf("origins: %q", c.AllowedOrigins)
				}
			}},
		{name: "bad addr", env: map[string]string{"RELAY_ADDR": "8090"}, wantErr: "RELAY_ADDR"},
		{name: "star origin", env: map[string]string{"RELAY_ALLOWED_ORIGINS": "*"}, wantErr: "RELAY_ALLOWED_ORIGINS"},
		{name: "bad pattern", env: map[string]string{"RELAY_ALLOWED_ORIGINS": "[x"}, wantErr: "RELAY_ALLOWED_ORIGINS"},
		{name: "slow sends", env: map[string]string{"RELAY_SEND_INTERVAL": "2s"}, wantErr: "RELAY_SEND_INTERVAL"},
		{name: "not a duration", env: map[string]string{"RELAY_PING_INTERVAL": "often"}, wantErr: "RELAY_PING_INTERVAL"},
		{name: "no browsers", env: map[string]string{"RELAY_MAX_BROWSERS": "-1"}, wantErr: "RELAY_MAX_BROWSERS"},
		{name: "shared checked", env: map[string]string{"REDIS_URL": "nope"}, wantErr: "REDIS_URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Read(config.Map(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}
