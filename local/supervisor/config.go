package supervisor

import (
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"optio.dev/optio/config"
)

// Config is the supervisor's configuration. Each field names the environment
// variable ReadConfig reads it from and its default.
type Config struct {
	// BinDir holds the binaries the stack runs: gateway, optio-provider,
	// optio-esstore, optio-connector, optio-relay and the functions
	// (OPTIO_BIN_DIR). Default ./bin.
	BinDir string
	// StateDir holds logs, Prometheus and esstore data, secrets and the
	// provider's files (OPTIO_STATE_DIR). Default ./.optio.
	StateDir string
	// StackFile is the OpenFaaS stack whose functions are deployed
	// (OPTIO_STACK_FILE). Default ./stack.yml.
	StackFile string
	// ServicesScript makes sure Redis and RabbitMQ run; "none" skips it
	// (OPTIO_SERVICES_SCRIPT). Default ./scripts/services.sh.
	ServicesScript string
	// ESURL is an Elasticsearch to use; when empty the local esstore is
	// started on 127.0.0.1:9200 (ES_URL). Default empty.
	ESURL string
	// PrometheusBin is the Prometheus server (OPTIO_PROMETHEUS_BIN).
	// Default /usr/bin/prometheus, or prometheus on PATH.
	PrometheusBin string
	// AlertmanagerBin is the Alertmanager (OPTIO_ALERTMANAGER_BIN). Default
	// /usr/bin/prometheus-alertmanager (Debian's name), or alertmanager or
	// prometheus-alertmanager on PATH.
	AlertmanagerBin string
	// GatewayPassword is the password of the gateway's /system API (user
	// admin), for a deployment that hands the same one to its connector,
	// such as docker-compose.yml (OPTIO_GATEWAY_PASSWORD). It replaces the
	// one kept in StateDir/gateway. Default empty: generated on first start
	// and kept there.
	GatewayPassword string
	// Alerting configures autoscaling by invocation rate: Prometheus' alert
	// rule and Alertmanager's notifications (OPTIO_SCRAPE_INTERVAL,
	// OPTIO_ALERT_*; see Alerting). Default DefaultAlerting().
	Alerting Alerting
	// Env is given to every function, the connector and the relay, over
	// stack.yml's environment, and is what ${VAR} in stack.yml looks up
	// before the process environment. ReadConfig fills it with the OPTIO_*
	// variables meant for them and REDIS_URL, AMQP_URL, ES_URL, ES_USERNAME,
	// ES_PASSWORD when set. Default empty.
	Env map[string]string
	// StartTimeout bounds the start of each component and the readiness of
	// each function (OPTIO_UP_TIMEOUT). Default 90s.
	StartTimeout time.Duration
	// LockWait is how long Start waits for another stack or test to release
	// the gateway's ports (OPTIO_LOCK_WAIT); 0 fails at once. Default 0.
	LockWait time.Duration
	// Output receives the logs of the provider, esstore, connector and relay,
	// each line prefixed with its name; all logs also go to
	// StateDir/logs/NAME.log. Nil: files only. Default nil (optio-up uses
	// standard error).
	Output io.Writer
	// Logger receives the supervisor's own logs. Default slog.Default().
	Logger *slog.Logger
}

// ownVars are the supervisor's own variables, not passed on to functions.
var ownVars = map[string]bool{
	"OPTIO_BIN_DIR": true, "OPTIO_STATE_DIR": true, "OPTIO_STACK_FILE": true,
	"OPTIO_SERVICES_SCRIPT": true, "OPTIO_PROMETHEUS_BIN": true, "OPTIO_UP_TIMEOUT": true,
	"OPTIO_LOCK_WAIT": true, "OPTIO_SECRETS_DIR": true, "OPTIO_PROVIDER_ADDR": true,
	"OPTIO_GATEWAY_PASSWORD": true,
}

// passedVars are passed on to functions, connector and relay when set.
var passedVars = []string{"REDIS_URL", "AMQP_URL", "ES_URL", "ES_USERNAME", "ES_PASSWORD"}

// ReadConfig reads Config from an environment in os.Environ form.
func ReadConfig(environ []string) (Config, error) {
	vars := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	env := config.Map(vars)
	c := Config{
		BinDir:          or(env("OPTIO_BIN_DIR"), "./bin"),
		StateDir:        or(env("OPTIO_STATE_DIR"), "./.optio"),
		StackFile:       or(env("OPTIO_STACK_FILE"), "./stack.yml"),
		ServicesScript:  or(env("OPTIO_SERVICES_SCRIPT"), "./scripts/services.sh"),
		ESURL:           env("ES_URL"),
		PrometheusBin:   env("OPTIO_PROMETHEUS_BIN"),
		AlertmanagerBin: env("OPTIO_ALERTMANAGER_BIN"),
		GatewayPassword: env("OPTIO_GATEWAY_PASSWORD"),
		Env:             map[string]string{},
	}
	for k, v := range vars {
		if strings.HasPrefix(k, "OPTIO_") && !ownVars[k] && !slices.Contains(alertingVars, k) {
			c.Env[k] = v
		}
	}
	for _, k := range passedVars {
		if v, ok := vars[k]; ok && v != "" {
			c.Env[k] = v
		}
	}
	var err error
	if c.StartTimeout, err = config.Duration(env, "OPTIO_UP_TIMEOUT", 90*time.Second); err != nil {
		return c, err
	}
	if c.LockWait, err = config.Duration(env, "OPTIO_LOCK_WAIT", 0); err != nil {
		return c, err
	}
	if c.Alerting, err = readAlerting(env); err != nil {
		return c, err
	}
	return c, c.validate()
}

func or(v, def string) string {
	if v != "" {
		return v
	}
	return def
}

// validate fills defaults a library caller left empty and checks the rest.
func (c *Config) validate() error {
	c.BinDir = or(c.BinDir, "./bin")
	c.StateDir = or(c.StateDir, "./.optio")
	c.StackFile = or(c.StackFile, "./stack.yml")
	if c.StartTimeout == 0 {
		c.StartTimeout = 90 * time.Second
	}
	if c.StartTimeout < 0 || c.LockWait < 0 {
		return fmt.Errorf("OPTIO_UP_TIMEOUT and OPTIO_LOCK_WAIT must not be negative")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Env == nil {
		c.Env = map[string]string{}
	}
	if c.PrometheusBin == "" {
		c.PrometheusBin = "/usr/bin/prometheus"
		if p, err := exec.LookPath("prometheus"); err == nil {
			c.PrometheusBin = p
		}
	}
	if c.AlertmanagerBin == "" {
		c.AlertmanagerBin = "/usr/bin/prometheus-alertmanager"
		for _, name := range []string{"prometheus-alertmanager", "alertmanager"} {
			if p, err := exec.LookPath(name); err == nil {
				c.AlertmanagerBin = p
				break
			}
		}
	}
	if err := c.Alerting.validate(); err != nil {
		return err
	}
	var err error
	for _, p := range []struct {
		name string
		v    *string
	}{{"OPTIO_BIN_DIR", &c.BinDir}, {"OPTIO_STATE_DIR", &c.StateDir}, {"OPTIO_STACK_FILE", &c.StackFile}} {
		if *p.v, err = filepath.Abs(*p.v); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	if c.ServicesScript != "" && c.ServicesScript != "none" {
		if c.ServicesScript, err = filepath.Abs(c.ServicesScript); err != nil {
			return fmt.Errorf("OPTIO_SERVICES_SCRIPT: %w", err)
		}
	}
	return nil
}

// lookup is how ${VAR} in stack.yml is resolved: Env first, then getenv.
func (c *Config) lookup(getenv func(string) (string, bool)) func(string) (string, bool) {
	return func(k string) (string, bool) {
		if v, ok := c.Env[k]; ok {
			return v, true
		}
		return getenv(k)
	}
}
