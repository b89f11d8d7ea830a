package supervisor

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"optio.dev/optio/config"
)

func TestReadAlerting(t *testing.T) {
	t.Parallel()
	fast := DefaultAlerting()
	fast.ScrapeInterval, fast.RateWindow, fast.Threshold, fast.RepeatInterval = time.Second, 4*time.Second, 2.5, 3*time.Second
	tests := []struct {
		name    string
		env     map[string]string
		want    Alerting
		wantErr string // part of the error of read or validate
	}{
		{"defaults", nil, DefaultAlerting(), ""},
		{"set", map[string]string{"OPTIO_SCRAPE_INTERVAL": "1s", "OPTIO_ALERT_RATE_WINDOW": "4s",
			"OPTIO_ALERT_THRESHOLD": "2.5", "OPTIO_ALERT_REPEAT_INTERVAL": "3s"}, fast, ""},
		{"bad duration", map[string]string{"OPTIO_ALERT_FOR": "soon"}, Alerting{}, "OPTIO_ALERT_FOR"},
		{"bad threshold", map[string]string{"OPTIO_ALERT_THRESHOLD": "many"}, Alerting{}, "OPTIO_ALERT_THRESHOLD"},
		{"zero threshold", map[string]string{"OPTIO_ALERT_THRESHOLD": "0"}, Alerting{}, "OPTIO_ALERT_THRESHOLD"},
		{"window below two scrapes", map[string]string{"OPTIO_SCRAPE_INTERVAL": "5s", "OPTIO_ALERT_RATE_WINDOW": "6s"}, Alerting{}, "OPTIO_ALERT_RATE_WINDOW"},
		{"tiny interval", map[string]string{"OPTIO_ALERT_GROUP_WAIT": "1ms"}, Alerting{}, "OPTIO_ALERT_GROUP_WAIT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, err := readAlerting(config.Map(tc.env))
			if err == nil {
				err = a.validate()
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want an error naming %s, got %v", tc.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, a); diff != "" {
				t.Fatalf("alerting (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadConfigKeepsAlertingVariables(t *testing.T) {
	t.Parallel()
	c, err := ReadConfig([]string{"OPTIO_ALERT_THRESHOLD=3", "OPTIO_PREFIX=x:", "OPTIO_ALERTMANAGER_BIN=/bin/true"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Alerting.Threshold != 3 || c.AlertmanagerBin != "/bin/true" {
		t.Fatalf("config %+v", c)
	}
	if _, ok := c.Env["OPTIO_ALERT_THRESHOLD"]; ok || c.Env["OPTIO_PREFIX"] != "x:" {
		t.Fatalf("Env passed to functions = %v; want OPTIO_PREFIX only", c.Env)
	}
}

func TestPromDuration(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{5 * time.Second: "5s", 90 * time.Second: "90s", 1500 * time.Millisecond: "1500ms"} {
		if got := promDuration(d); got != want {
			t.Errorf("promDuration(%s) = %q, want %q", d, got, want)
		}
	}
}

// TestGeneratedConfigsAreValid checks the files with the tools of the OS
// packages the stack runs: promtool (prometheus) and amtool
// (prometheus-alertmanager).
func TestGeneratedConfigsAreValid(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool (package prometheus) is required: run scripts/services.sh (%v)", err)
	}
	amtool, err := exec.LookPath("amtool")
	if err != nil {
		t.Fatalf("amtool (package prometheus-alertmanager) is required: run scripts/services.sh (%v)", err)
	}
	dir := t.TempDir()
	a := DefaultAlerting()
	a.RateWindow, a.Threshold = 2500*time.Millisecond, 0.5
	a.ScrapeInterval = time.Second
	prom, err := writePrometheusConfig(dir, a)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "config", prom).CombinedOutput(); err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
	rules, _ := os.ReadFile(filepath.Join(dir, "alert.rules.yml"))
	for _, want := range []string{`rate(gateway_function_invocation_total{code="200"}[2500ms])) > 0.5`, "sum by (function_name)", "for: 5s"} {
		if !strings.Contains(string(rules), want) {
			t.Errorf("rules lack %q:\n%s", want, rules)
		}
	}

	secrets := t.TempDir()
	for name, v := range map[string]string{"basic-auth-user": "admin\n", "basic-auth-password": "s3cret\n"} {
		if err := os.WriteFile(filepath.Join(secrets, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name     string
		env      []string
		wantAuth bool
	}{
		{"no auth", []string{"basic_auth=false", "secret_mount_path=" + secrets}, false},
		{"basic auth", []string{"basic_auth=true", "secret_mount_path=" + secrets}, true},
	} {
		user, pwFile, err := gatewayAuth(tc.env, func(string) string { return "" })
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if (user == "admin") != tc.wantAuth || (pwFile != "") != tc.wantAuth {
			t.Fatalf("%s: user %q password file %q", tc.name, user, pwFile)
		}
		amDir := t.TempDir()
		am, err := writeAlertmanagerConfig(amDir, a, user, pwFile)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(amtool, "check-config", am).CombinedOutput(); err != nil {
			t.Fatalf("%s: amtool check-config: %v\n%s", tc.name, err, out)
		}
		text, _ := os.ReadFile(am)
		if strings.Contains(string(text), "basic_auth") != tc.wantAuth || !strings.Contains(string(text), GatewayURL+"/system/alert") {
			t.Fatalf("%s: alertmanager.yml:\n%s", tc.name, text)
		}
	}
	if _, _, err := gatewayAuth([]string{"basic_auth=true", "secret_mount_path=" + t.TempDir()}, func(string) string { return "" }); err == nil {
		t.Fatal("basic auth without its secret files: want an error")
	}
}
