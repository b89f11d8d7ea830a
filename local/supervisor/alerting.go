package supervisor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"optio.dev/optio/config"
)

// AlertmanagerURL is where the local Alertmanager listens.
const AlertmanagerURL = "http://127.0.0.1:9093"

// Autoscaling by invocation rate works here as on OpenFaaS CE: Prometheus
// scrapes the gateway's gateway_function_invocation_total and fires the
// alert APIHighInvocationRate for every function whose rate of 200 answers
// is above a threshold; Alertmanager posts the alert to the gateway's
// /system/alert, and the gateway adds replicas through the provider's
// /system/scale-function on every firing notification (repeated while the
// alert fires) and sets the minimum when the alert resolves.

// Alerting holds the settings of that loop. The defaults follow the
// OpenFaaS chart's; tests shorten them to see scaling within seconds.
type Alerting struct {
	// ScrapeInterval is how often Prometheus reads the gateway's metrics
	// (OPTIO_SCRAPE_INTERVAL). Default 5s.
	ScrapeInterval time.Duration
	// EvalInterval is how often Prometheus evaluates the alert rule
	// (OPTIO_ALERT_EVAL_INTERVAL). Default 5s.
	EvalInterval time.Duration
	// RateWindow is the range of the rate() in the rule; it must hold at
	// least two scrapes (OPTIO_ALERT_RATE_WINDOW). Default 10s.
	RateWindow time.Duration
	// For is how long the rate must stay above the threshold before the
	// alert fires (OPTIO_ALERT_FOR). Default 5s.
	For time.Duration
	// Threshold is the invocation rate, in 200 answers per second of one
	// function, above which the alert fires (OPTIO_ALERT_THRESHOLD).
	// Default 5.
	Threshold float64
	// GroupWait is how long Alertmanager waits before the first
	// notification of a group (OPTIO_ALERT_GROUP_WAIT). Default 5s.
	GroupWait time.Duration
	// GroupInterval is how long Alertmanager waits before notifying changes
	// of a group, such as a resolved alert (OPTIO_ALERT_GROUP_INTERVAL).
	// Default 10s.
	GroupInterval time.Duration
	// RepeatInterval is how often Alertmanager repeats the notification of
	// an alert that keeps firing; each repeat scales up one more step
	// (OPTIO_ALERT_REPEAT_INTERVAL). Default 30s.
	RepeatInterval time.Duration
}

// alertingVars are the variables readAlerting reads; they are not passed on
// to functions.
var alertingVars = []string{
	"OPTIO_SCRAPE_INTERVAL", "OPTIO_ALERT_EVAL_INTERVAL", "OPTIO_ALERT_RATE_WINDOW", "OPTIO_ALERT_FOR",
	"OPTIO_ALERT_THRESHOLD", "OPTIO_ALERT_GROUP_WAIT", "OPTIO_ALERT_GROUP_INTERVAL", "OPTIO_ALERT_REPEAT_INTERVAL",
	"OPTIO_ALERTMANAGER_BIN",
}

// DefaultAlerting is the configuration used when none is given.
func DefaultAlerting() Alerting {
	return Alerting{
		ScrapeInterval: 5 * time.Second,
		EvalInterval:   5 * time.Second,
		RateWindow:     10 * time.Second,
		For:            5 * time.Second,
		Threshold:      5,
		GroupWait:      5 * time.Second,
		GroupInterval:  10 * time.Second,
		RepeatInterval: 30 * time.Second,
	}
}

func readAlerting(env config.Getenv) (Alerting, error) {
	a := DefaultAlerting()
	for _, d := range []struct {
		key string
		dst *time.Duration
	}{
		{"OPTIO_SCRAPE_INTERVAL", &a.ScrapeInterval},
		{"OPTIO_ALERT_EVAL_INTERVAL", &a.EvalInterval},
		{"OPTIO_ALERT_RATE_WINDOW", &a.RateWindow},
		{"OPTIO_ALERT_FOR", &a.For},
		{"OPTIO_ALERT_GROUP_WAIT", &a.GroupWait},
		{"OPTIO_ALERT_GROUP_INTERVAL", &a.GroupInterval},
		{"OPTIO_ALERT_REPEAT_INTERVAL", &a.RepeatInterval},
	} {
		v, err := config.Duration(env, d.key, *d.dst)
		if err != nil {
			return a, err
		}
		*d.dst = v
	}
	var err error
	if a.Threshold, err = config.Float(env, "OPTIO_ALERT_THRESHOLD", a.Threshold); err != nil {
		return a, err
	}
	return a, nil
}

// validate fills an all-zero Alerting with the defaults and checks the rest.
func (a *Alerting) validate() error {
	if *a == (Alerting{}) {
		*a = DefaultAlerting()
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"OPTIO_SCRAPE_INTERVAL", a.ScrapeInterval}, {"OPTIO_ALERT_EVAL_INTERVAL", a.EvalInterval},
		{"OPTIO_ALERT_RATE_WINDOW", a.RateWindow}, {"OPTIO_ALERT_GROUP_WAIT", a.GroupWait},
		{"OPTIO_ALERT_GROUP_INTERVAL", a.GroupInterval}, {"OPTIO_ALERT_REPEAT_INTERVAL", a.RepeatInterval},
	} {
		if d.v < 100*time.Millisecond {
			return fmt.Errorf("%s=%s must be at least 100ms", d.name, d.v)
		}
	}
	if a.For < 0 {
		return fmt.Errorf("OPTIO_ALERT_FOR=%s must not be negative", a.For)
	}
	if a.RateWindow < 2*a.ScrapeInterval {
		return fmt.Errorf("OPTIO_ALERT_RATE_WINDOW=%s must hold at least two scrapes (OPTIO_SCRAPE_INTERVAL=%s)", a.RateWindow, a.ScrapeInterval)
	}
	if !(a.Threshold > 0) {
		return fmt.Errorf("OPTIO_ALERT_THRESHOLD=%v must be a positive number of invocations per second", a.Threshold)
	}
	return nil
}

// promDuration writes d as Prometheus and Alertmanager read durations.
func promDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

// writePrometheusConfig writes prometheus.yml and alert.rules.yml into dir
// and returns the path of the first.
func writePrometheusConfig(dir string, a Alerting) (string, error) {
	rules := filepath.Join(dir, "alert.rules.yml")
	ruleText := fmt.Sprintf(`# Written by optio-up; changes are overwritten.
# Fires for every function whose gateway counts more than %[3]v answers 200 a
# second, averaged over %[1]s, for %[2]s (OpenFaaS CE's APIHighInvocationRate).
groups:
  - name: optio-autoscaling
    rules:
      - alert: APIHighInvocationRate
        expr: sum by (function_name) (rate(gateway_function_invocation_total{code="200"}[%[1]s])) > %[3]v
        for: %[2]s
        labels:
          service: gateway
          severity: major
        annotations:
          summary: 'invocation rate of {{ $labels.function_name }} is {{ $value | printf "%%.1f" }}/s'
`, promDuration(a.RateWindow), promDuration(a.For), a.Threshold)
	if err := os.WriteFile(rules, []byte(ruleText), 0o644); err != nil {
		return "", fmt.Errorf("writing Prometheus rules: %w", err)
	}
	path := filepath.Join(dir, "prometheus.yml")
	text := fmt.Sprintf(`# Written by optio-up; changes are overwritten.
global:
  scrape_interval: %s
  evaluation_interval: %s
rule_files:
  - %q
alerting:
  alertmanagers:
    - static_configs:
        - targets: [%q]
scrape_configs:
  - job_name: gateway
    static_configs:
      - targets: ["127.0.0.1:8082"]
  - job_name: provider
    static_configs:
      - targets: ["127.0.0.1:8081"]
`, promDuration(a.ScrapeInterval), promDuration(a.EvalInterval), rules, strings.TrimPrefix(AlertmanagerURL, "http://"))
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return "", fmt.Errorf("writing Prometheus config: %w", err)
	}
	return path, nil
}

// gatewayAuth says how to authenticate to the gateway, from the variables
// it is started with (then the supervisor's own environment): when
// basic_auth is true, the user from secret_mount_path/basic-auth-user and
// the password file beside it, as the gateway reads them. Empty user: none.
func gatewayAuth(env []string, getenv func(string) string) (user, passwordFile string, err error) {
	lookup := func(key string) string {
		v := getenv(key)
		for _, kv := range env {
			if k, val, ok := strings.Cut(kv, "="); ok && k == key {
				v = val
			}
		}
		return v
	}
	if on, _ := strconv.ParseBool(strings.TrimSpace(lookup("basic_auth"))); !on {
		return "", "", nil
	}
	dir := lookup("secret_mount_path")
	if dir == "" {
		dir = "/run/secrets/" // the gateway's default
	}
	b, err := os.ReadFile(filepath.Join(dir, "basic-auth-user"))
	if err != nil {
		return "", "", fmt.Errorf("reading the gateway's basic auth user for Alertmanager: %w", err)
	}
	passwordFile = filepath.Join(dir, "basic-auth-password")
	if _, err := os.Stat(passwordFile); err != nil {
		return "", "", fmt.Errorf("the gateway's basic auth password for Alertmanager: %w", err)
	}
	return strings.TrimSpace(string(b)), passwordFile, nil
}

// writeAlertmanagerConfig writes alertmanager.yml into dir: every alert goes
// to the gateway's /system/alert, resolved ones too, with basic auth when
// user is set; grouped and repeated as the OpenFaaS chart does.
func writeAlertmanagerConfig(dir string, a Alerting, user, passwordFile string) (string, error) {
	auth := ""
	if user != "" {
		auth = fmt.Sprintf(`
        http_config:
          basic_auth:
            username: %q
            password_file: %q`, user, passwordFile)
	}
	text := fmt.Sprintf(`# Written by optio-up; changes are overwritten.
route:
  receiver: gateway
  group_by: [alertname, cluster, service]
  group_wait: %s
  group_interval: %s
  repeat_interval: %s
receivers:
  - name: gateway
    webhook_configs:
      - url: %q
        send_resolved: true%s
`, promDuration(a.GroupWait), promDuration(a.GroupInterval), promDuration(a.RepeatInterval), GatewayURL+"/system/alert", auth)
	path := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		return "", fmt.Errorf("writing Alertmanager config: %w", err)
	}
	return path, nil
}

// launchAlertmanager configures Alertmanager for the gateway started with
// gatewayEnv and starts it.
func (s *Stack) launchAlertmanager(ctx context.Context, gatewayEnv []string) error {
	dir := filepath.Join(s.cfg.StateDir, "alertmanager")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return fmt.Errorf("creating Alertmanager's directory: %w", err)
	}
	user, passwordFile, err := gatewayAuth(gatewayEnv, os.Getenv)
	if err != nil {
		return err
	}
	path, err := writeAlertmanagerConfig(dir, s.cfg.Alerting, user, passwordFile)
	if err != nil {
		return err
	}
	return s.launch(ctx, childSpec{
		name: "alertmanager",
		path: s.cfg.AlertmanagerBin,
		args: []string{
			"--config.file=" + path,
			"--storage.path=" + filepath.Join(dir, "data"),
			"--web.listen-address=" + strings.TrimPrefix(AlertmanagerURL, "http://"),
			"--cluster.listen-address=", // a single instance: no gossip port
			"--log.level=warn",
		},
		health: AlertmanagerURL + "/-/ready",
		quiet:  true,
	})
}
