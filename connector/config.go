package main

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/openfaas/faas-provider/auth"

	"optio.dev/optio/config"
)

// Config is everything the connector reads from its environment. Read fills
// it in one place; validate checks it and names the variable at fault.
type Config struct {
	// Shared holds the settings every Optio process reads (config.Read):
	// AMQP_URL, OPTIO_QUEUE (the queue consumed, and the topic its functions
	// subscribe to, default "optio.jobs"), OPTIO_DELIVERY_LIMIT (default 5),
	// OPTIO_GATEWAY_URL (default http://127.0.0.1:8080), OPTIO_SECRETS_DIR.
	Shared config.Config

	// Credentials authenticate to the gateway's /system API (OPENFAAS_USER and
	// OPENFAAS_PASSWORD, or the secrets basic-auth-user and
	// basic-auth-password under OPTIO_SECRETS_DIR). Default nil: no auth.
	Credentials *auth.BasicAuthCredentials

	// Prefetch is the channel QoS and the number of invocations in flight
	// (CONNECTOR_PREFETCH). Default 10; 0 is refused because AMQP reads it
	// as "unlimited".
	Prefetch int

	// Refresh is how often the topic map is rebuilt from the function
	// annotations (CONNECTOR_REFRESH). Default 5s.
	Refresh time.Duration

	// RefreshTimeout bounds one topic-map rebuild, that is one round of
	// gateway /system calls (CONNECTOR_REFRESH_TIMEOUT). Default 10s.
	RefreshTimeout time.Duration

	// InvokeTimeout bounds the invocations of one message, all subscribed
	// functions together (CONNECTOR_INVOKE_TIMEOUT). Default 30s.
	InvokeTimeout time.Duration

	// RetryDelay is the pause before a failed message is handed back to the
	// queue, doubled for every earlier delivery and capped at 30 times its
	// value, so that a delivery limit is not spent in a few milliseconds
	// (CONNECTOR_RETRY_DELAY). Default 200ms; 0 hands it back at once.
	RetryDelay time.Duration

	// Backoff is the first wait before reconnecting to RabbitMQ or retrying
	// an unreachable gateway; it doubles up to BackoffMax, with jitter
	// (CONNECTOR_BACKOFF). Default 250ms.
	Backoff time.Duration

	// BackoffMax caps those waits (CONNECTOR_BACKOFF_MAX). Default 15s.
	BackoffMax time.Duration

	// ShutdownTimeout bounds a graceful shutdown: in-flight invocations that
	// have not finished by then are cancelled and their messages requeued
	// (CONNECTOR_SHUTDOWN_TIMEOUT). Default 30s.
	ShutdownTimeout time.Duration

	// Cron turns on the cron trigger for functions annotated
	// "topic: cron-function" with a "schedule" (CONNECTOR_CRON). Default
	// true; turn it off where OpenFaaS's cron-connector is installed.
	Cron bool

	// CronTimeout bounds one cron invocation (CONNECTOR_CRON_TIMEOUT).
	// Default 3m.
	CronTimeout time.Duration

	// HealthAddr serves /healthz and /metrics (CONNECTOR_HEALTH_ADDR).
	// Default 127.0.0.1:8091; "off" disables it.
	HealthAddr string

	// LogLevel is debug, info, warn or error (CONNECTOR_LOG_LEVEL). Default info.
	LogLevel slog.Level
}

// Topic is what functions subscribe to: the queue's name.
func (c Config) Topic() string { return c.Shared.Queue }

// ReadConfig fills a Config from env and checks it.
func ReadConfig(env config.Getenv) (Config, error) {
	shared, err := config.Read(env)
	if err != nil {
		return Config{}, err
	}
	c := Config{Shared: shared, HealthAddr: "127.0.0.1:8091"}
	if v := strings.TrimSpace(env("CONNECTOR_HEALTH_ADDR")); v != "" {
		c.HealthAddr = v
	}
	user := shared.Secret(env, "OPENFAAS_USER", "basic-auth-user")
	password := shared.Secret(env, "OPENFAAS_PASSWORD", "basic-auth-password")
	switch {
	case user != "" && password != "":
		c.Credentials = &auth.BasicAuthCredentials{User: user, Password: password}
	case user != "" || password != "":
		return c, fmt.Errorf("OPENFAAS_USER and OPENFAAS_PASSWORD (or the secrets basic-auth-user and basic-auth-password) must be set together")
	}
	if c.Prefetch, err = config.Int(env, "CONNECTOR_PREFETCH", 10); err != nil {
		return c, err
	}
	durations := []struct {
		key string
		def time.Duration
		dst *time.Duration
	}{
		{"CONNECTOR_REFRESH", 5 * time.Second, &c.Refresh},
		{"CONNECTOR_REFRESH_TIMEOUT", 10 * time.Second, &c.RefreshTimeout},
		{"CONNECTOR_INVOKE_TIMEOUT", 30 * time.Second, &c.InvokeTimeout},
		{"CONNECTOR_RETRY_DELAY", 200 * time.Millisecond, &c.RetryDelay},
		{"CONNECTOR_BACKOFF", 250 * time.Millisecond, &c.Backoff},
		{"CONNECTOR_BACKOFF_MAX", 15 * time.Second, &c.BackoffMax},
		{"CONNECTOR_SHUTDOWN_TIMEOUT", 30 * time.Second, &c.ShutdownTimeout},
		{"CONNECTOR_CRON_TIMEOUT", 3 * time.Minute, &c.CronTimeout},
	}
	for _, d := range durations {
		if *d.dst, err = config.Duration(env, d.key, d.def); err != nil {
			return c, err
		}
	}
	if c.Cron, err = boolean(env, "CONNECTOR_CRON", true); err != nil {
		return c, err
	}
	if v := strings.TrimSpace(env("CONNECTOR_LOG_LEVEL")); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return c, fmt.Errorf("CONNECTOR_LOG_LEVEL=%q must be debug, info, warn or error", v)
		}
	}
	return c, c.validate()
}

func (c Config) validate() error {
	if c.Prefetch < 1 || c.Prefetch > 10000 {
		return fmt.Errorf("CONNECTOR_PREFETCH=%d must be between 1 and 10000 (0 would mean unlimited)", c.Prefetch)
	}
	positive := []struct {
		key string
		d   time.Duration
	}{
		{"CONNECTOR_REFRESH", c.Refresh},
		{"CONNECTOR_REFRESH_TIMEOUT", c.RefreshTimeout},
		{"CONNECTOR_INVOKE_TIMEOUT", c.InvokeTimeout},
		{"CONNECTOR_BACKOFF", c.Backoff},
		{"CONNECTOR_BACKOFF_MAX", c.BackoffMax},
		{"CONNECTOR_SHUTDOWN_TIMEOUT", c.ShutdownTimeout},
		{"CONNECTOR_CRON_TIMEOUT", c.CronTimeout},
	}
	for _, p := range positive {
		if p.d <= 0 {
			return fmt.Errorf("%s=%s must be positive", p.key, p.d)
		}
	}
	if c.RetryDelay < 0 {
		return fmt.Errorf("CONNECTOR_RETRY_DELAY=%s must not be negative", c.RetryDelay)
	}
	if c.BackoffMax < c.Backoff {
		return fmt.Errorf("CONNECTOR_BACKOFF_MAX=%s must not be below CONNECTOR_BACKOFF=%s", c.BackoffMax, c.Backoff)
	}
	if c.HealthAddr != "off" {
		if _, port, err := net.SplitHostPort(c.HealthAddr); err != nil || port == "" {
			return fmt.Errorf("CONNECTOR_HEALTH_ADDR=%q must be host:port or off", c.HealthAddr)
		}
	}
	return nil
}

// boolean reads a true/false variable, naming it in the error.
func boolean(env config.Getenv, key string, def bool) (bool, error) {
	v := strings.TrimSpace(env(key))
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return def, fmt.Errorf("%s=%q must be true or false", key, v)
	}
	return b, nil
}
