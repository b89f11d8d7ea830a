// Package config reads the settings every Optio process shares (where Redis,
// RabbitMQ and Elasticsearch are, and the names of keys, queues and index)
// from the environment, in one place, and checks them.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Getenv is how configuration is looked up: os.Getenv in production, a map
// in tests.
type Getenv func(key string) string

// Map turns a map into a Getenv, for tests.
func Map(m map[string]string) Getenv { return func(k string) string { return m[k] } }

// Config is what every function, the connector and the relay share.
type Config struct {
	// RedisURL locates Redis (REDIS_URL). Default redis://127.0.0.1:6379/0.
	RedisURL string
	// AMQPURL locates RabbitMQ (AMQP_URL). Default amqp://guest:guest@127.0.0.1:5672/.
	AMQPURL string
	// ESURL locates Elasticsearch or the local store (ES_URL). Default http://127.0.0.1:9200.
	ESURL string
	// ESUsername and ESPassword authenticate to Elasticsearch (ES_USERNAME,
	// ES_PASSWORD, or the secrets es-username / es-password). Default none.
	ESUsername, ESPassword string
	// Prefix starts every Redis key and the event channel (OPTIO_PREFIX). Default "optio:".
	Prefix string
	// Queue is the jobs queue (OPTIO_QUEUE). Default "optio.jobs"; its
	// dead-letter queue is the same name with ".dead".
	Queue string
	// DeliveryLimit is how often a job is delivered before it is dead-lettered
	// (OPTIO_DELIVERY_LIMIT). Default 5.
	DeliveryLimit int
	// Index is the Elasticsearch index (OPTIO_INDEX). Default "optio_jobs".
	Index string
	// GatewayURL is the OpenFaaS gateway (OPTIO_GATEWAY_URL). Default http://127.0.0.1:8080.
	GatewayURL string
	// SecretsDir is where OpenFaaS mounts secrets (OPTIO_SECRETS_DIR).
	// Default /var/openfaas/secrets.
	SecretsDir string
	// APIToken, when set, is the bearer token run and stop require
	// (OPTIO_API_TOKEN, or the secret optio-api-token). Default none: open.
	APIToken string
	// StatusAuth makes status require the token too (OPTIO_STATUS_AUTH).
	// Default false: status stays open.
	StatusAuth bool
}

// Read fills a Config from env and checks it.
func Read(env Getenv) (Config, error) {
	c := Config{
		RedisURL:   str(env, "REDIS_URL", "redis://127.0.0.1:6379/0"),
		AMQPURL:    str(env, "AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
		ESURL:      str(env, "ES_URL", "http://127.0.0.1:9200"),
		Prefix:     str(env, "OPTIO_PREFIX", "optio:"),
		Queue:      str(env, "OPTIO_QUEUE", "optio.jobs"),
		Index:      str(env, "OPTIO_INDEX", "optio_jobs"),
		GatewayURL: strings.TrimRight(str(env, "OPTIO_GATEWAY_URL", "http://127.0.0.1:8080"), "/"),
		SecretsDir: str(env, "OPTIO_SECRETS_DIR", "/var/openfaas/secrets"),
	}
	var err error
	if c.DeliveryLimit, err = Int(env, "OPTIO_DELIVERY_LIMIT", 5); err != nil {
		return c, err
	}
	c.APIToken = c.Secret(env, "OPTIO_API_TOKEN", "optio-api-token")
	if v := strings.TrimSpace(env("OPTIO_STATUS_AUTH")); v != "" {
		if c.StatusAuth, err = strconv.ParseBool(v); err != nil {
			return c, fmt.Errorf("OPTIO_STATUS_AUTH=%q must be true or false", v)
		}
	}
	c.ESUsername = c.Secret(env, "ES_USERNAME", "es-username")
	c.ESPassword = c.Secret(env, "ES_PASSWORD", "es-password")
	// Secret reads a missing file as "not set". A file that is there but
	// cannot be read is an error: an unreadable optio-api-token must not
	// turn authentication off.
	for key, name := range map[string]string{"OPTIO_API_TOKEN": "optio-api-token", "ES_USERNAME": "es-username", "ES_PASSWORD": "es-password"} {
		if env(key) != "" {
			continue
		}
		if _, err := os.ReadFile(filepath.Join(c.SecretsDir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return c, fmt.Errorf("reading secret %s: %w", name, err)
		}
	}
	return c, c.validate()
}

func (c Config) validate() error {
	for _, u := range []struct{ name, value string }{
		{"REDIS_URL", c.RedisURL}, {"AMQP_URL", c.AMQPURL}, {"ES_URL", c.ESURL}, {"OPTIO_GATEWAY_URL", c.GatewayURL},
	} {
		p, err := url.Parse(u.value)
		if err != nil || p.Scheme == "" || p.Host == "" {
			return fmt.Errorf("%s=%q is not a URL with a scheme and a host", u.name, u.value)
		}
	}
	if c.StatusAuth && c.APIToken == "" {
		return fmt.Errorf("OPTIO_STATUS_AUTH=true needs an API token (OPTIO_API_TOKEN or the secret optio-api-token)")
	}
	if c.DeliveryLimit < 1 || c.DeliveryLimit > 1000 {
		return fmt.Errorf("OPTIO_DELIVERY_LIMIT=%d must be between 1 and 1000", c.DeliveryLimit)
	}
	if strings.ContainsAny(c.Queue, " \t") || c.Queue == "" {
		return fmt.Errorf("OPTIO_QUEUE=%q must be a non-empty name without spaces", c.Queue)
	}
	if c.Index != strings.ToLower(c.Index) || c.Index == "" {
		return fmt.Errorf("OPTIO_INDEX=%q must be a non-empty lower-case name", c.Index)
	}
	return nil
}

// Secret returns the environment variable key if set, otherwise the content
// of the OpenFaaS secret file name under SecretsDir, otherwise "".
func (c Config) Secret(env Getenv, key, name string) string {
	if v := env(key); v != "" {
		return v
	}
	b, err := os.ReadFile(filepath.Join(c.SecretsDir, name))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func str(env Getenv, key, def string) string {
	if v := strings.TrimSpace(env(key)); v != "" {
		return v
	}
	return def
}

// Int reads an integer variable, naming it in the error.
func Int(env Getenv, key string, def int) (int, error) {
	v := strings.TrimSpace(env(key))
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return def, fmt.Errorf("%s=%q is not a whole number", key, v)
	}
	return n, nil
}

// Float reads a decimal variable, naming it in the error.
func Float(env Getenv, key string, def float64) (float64, error) {
	v := strings.TrimSpace(env(key))
	if v == "" {
		return def, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return def, fmt.Errorf("%s=%q is not a number", key, v)
	}
	return f, nil
}

// Timeout reads a timeout as of-watchdog does (read_timeout, exec_timeout):
// a Go duration ("30s", "2m") or a bare number of seconds ("30").
func Timeout(env Getenv, key string, def time.Duration) (time.Duration, error) {
	if secs, err := strconv.Atoi(strings.TrimSpace(env(key))); err == nil {
		return time.Duration(secs) * time.Second, nil
	}
	return Duration(env, key, def)
}

// Duration reads a Go duration ("250ms", "2m"), naming the variable in the error.
func Duration(env Getenv, key string, def time.Duration) (time.Duration, error) {
	v := strings.TrimSpace(env(key))
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return def, fmt.Errorf("%s=%q is not a duration such as 500ms or 2m", key, v)
	}
	return d, nil
}
