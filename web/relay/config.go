package relay

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path"
	"strings"
	"time"

	"optio.dev/optio/config"
)

// Config is everything the relay needs. Read fills it from the environment;
// tests build it by hand. Zero durations and counts take their defaults.
type Config struct {
	// Shared is the configuration every Optio process shares: REDIS_URL,
	// OPTIO_PREFIX (whose events channel the relay subscribes to) and
	// OPTIO_GATEWAY_URL (where /function/* is forwarded).
	Shared config.Config

	// Addr is where the relay listens (RELAY_ADDR). Default 127.0.0.1:8090.
	Addr string
	// AllowedOrigins lists extra host patterns (path.Match syntax, matched
	// against the Origin's host, or against scheme://host when the pattern
	// has "://") whose pages may open the WebSocket and call /function/*
	// (RELAY_ALLOWED_ORIGINS, comma-separated). Default none: only pages
	// served by the relay itself, i.e. an Origin equal to the Host.
	AllowedOrigins []string
	// SendInterval is the least time between two messages to one browser,
	// so at most 1/SendInterval messages a second; states arriving in between
	// are coalesced, the latest sent (RELAY_SEND_INTERVAL). Default 100ms.
	SendInterval time.Duration
	// WriteTimeout is how long one message may take to reach a browser's
	// socket before that browser is disconnected as too slow
	// (RELAY_WRITE_TIMEOUT). Default 5s.
	WriteTimeout time.Duration
	// PingInterval is how often each browser is pinged (RELAY_PING_INTERVAL).
	// Default 15s.
	PingInterval time.Duration
	// PingTimeout is how long a pong may take before the browser is
	// disconnected as dead (RELAY_PING_TIMEOUT). Default 10s.
	PingTimeout time.Duration
	// MaxBrowsers caps the browsers connected at once; more are answered
	// 503 (RELAY_MAX_BROWSERS). Default 1000.
	MaxBrowsers int
	// ResyncInterval is how often the relay rereads the current run from
	// Redis, in case an event was lost (RELAY_RESYNC_INTERVAL). Default 10s.
	ResyncInterval time.Duration
	// ShutdownTimeout bounds a graceful shutdown (RELAY_SHUTDOWN_TIMEOUT).
	// Default 5s.
	ShutdownTimeout time.Duration

	// Logger receives the relay's logs. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock, for tests. Default time.Now.
	Now func() time.Time
}

// Limits no configuration changes.
const (
	// MaxReadBytes is the largest WebSocket message a browser may send. The
	// dashboard sends none; anything larger closes the connection.
	MaxReadBytes = 512
	// MaxProxyBody is the largest request body forwarded to the gateway.
	MaxProxyBody = 64 << 10
)

// Read fills a Config from env: the shared variables through
// optio/config, then the RELAY_* ones. The result is validated.
func Read(env config.Getenv) (Config, error) {
	shared, err := config.Read(env)
	if err != nil {
		return Config{}, err
	}
	c := Config{Shared: shared, Addr: strings.TrimSpace(env("RELAY_ADDR"))}
	for _, p := range strings.Split(env("RELAY_ALLOWED_ORIGINS"), ",") {
		if p = strings.TrimSpace(p); p != "" {
			c.AllowedOrigins = append(c.AllowedOrigins, p)
		}
	}
	durations := []struct {
		key string
		dst *time.Duration
	}{
		{"RELAY_SEND_INTERVAL", &c.SendInterval},
		{"RELAY_WRITE_TIMEOUT", &c.WriteTimeout},
		{"RELAY_PING_INTERVAL", &c.PingInterval},
		{"RELAY_PING_TIMEOUT", &c.PingTimeout},
		{"RELAY_RESYNC_INTERVAL", &c.ResyncInterval},
		{"RELAY_SHUTDOWN_TIMEOUT", &c.ShutdownTimeout},
	}
	for _, d := range durations {
		if *d.dst, err = config.Duration(env, d.key, 0); err != nil {
			return Config{}, err
		}
	}
	if c.MaxBrowsers, err = config.Int(env, "RELAY_MAX_BROWSERS", 0); err != nil {
		return Config{}, err
	}
	c.setDefaults()
	return c, c.validate()
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8090"
	}
	def(&c.SendInterval, 100*time.Millisecond)
	def(&c.WriteTimeout, 5*time.Second)
	def(&c.PingInterval, 15*time.Second)
	def(&c.PingTimeout, 10*time.Second)
	def(&c.ResyncInterval, 10*time.Second)
	def(&c.ShutdownTimeout, 5*time.Second)
	if c.MaxBrowsers == 0 {
		c.MaxBrowsers = 1000
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

func (c *Config) validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("RELAY_ADDR=%q is not host:port: %w", c.Addr, err)
	}
	for _, p := range c.AllowedOrigins {
		if p == "*" {
			return errors.New(`RELAY_ALLOWED_ORIGINS must not be "*": it would let any web page drive Optio`)
		}
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("RELAY_ALLOWED_ORIGINS: pattern %q: %w", p, err)
		}
	}
	checks := []struct {
		key   string
		v, lo time.Duration
	}{
		{"RELAY_SEND_INTERVAL", c.SendInterval, time.Millisecond},
		{"RELAY_WRITE_TIMEOUT", c.WriteTimeout, 10 * time.Millisecond},
		{"RELAY_PING_INTERVAL", c.PingInterval, 10 * time.Millisecond},
		{"RELAY_PING_TIMEOUT", c.PingTimeout, 10 * time.Millisecond},
		{"RELAY_RESYNC_INTERVAL", c.ResyncInterval, 10 * time.Millisecond},
		{"RELAY_SHUTDOWN_TIMEOUT", c.ShutdownTimeout, 10 * time.Millisecond},
	}
	for _, d := range checks {
		if d.v < d.lo {
			return fmt.Errorf("%s=%s must be at least %s", d.key, d.v, d.lo)
		}
	}
	if c.SendInterval > time.Second {
		return fmt.Errorf("RELAY_SEND_INTERVAL=%s must be at most 1s: changes must reach browsers within a second", c.SendInterval)
	}
	if c.MaxBrowsers < 1 {
		return fmt.Errorf("RELAY_MAX_BROWSERS=%d must be at least 1", c.MaxBrowsers)
	}
	return nil
}
