package provider

import (
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"optio.dev/optio/config"
)

// Config is the provider's configuration. Each field names the environment
// variable it is read from and its default.
type Config struct {
	// Addr is where the provider API listens (OPTIO_PROVIDER_ADDR).
	// Default 127.0.0.1:8081.
	Addr string
	// BinDir holds the function binaries that images map to
	// (OPTIO_BIN_DIR). Default ./bin.
	BinDir string
	// StateDir holds secrets, per-function secret files and function logs
	// (OPTIO_STATE_DIR). Default ./.optio.
	StateDir string
	// StartTimeout is how long a replica may take to answer GET /_/health
	// with 200 before it is killed and started again (OPTIO_START_TIMEOUT).
	// Default 30s.
	StartTimeout time.Duration
	// StopGrace is how long a replica has between SIGTERM and SIGKILL
	// (OPTIO_STOP_GRACE). Default 10s.
	StopGrace time.Duration
	// DrainTimeout bounds how long a replica removed by a scale-down, an
	// update or a delete waits for its requests in flight before SIGTERM
	// (OPTIO_DRAIN_TIMEOUT). Default 150s.
	DrainTimeout time.Duration
	// ReadyWait is how long a call waits for a ready replica (while one
	// starts or restarts) before it gets 503 (OPTIO_READY_WAIT). Default 10s.
	ReadyWait time.Duration
	// MaxReplicas caps the replicas of one function (OPTIO_MAX_REPLICAS).
	// Default 20.
	MaxReplicas int
	// ReadTimeout and WriteTimeout bound the API server's requests
	// (read_timeout, write_timeout, as faas-provider reads them).
	// Default 130s each.
	ReadTimeout, WriteTimeout time.Duration
	// MaxIdleConnsPerHost is how many idle keep-alive connections the proxy
	// keeps to each replica (max_idle_conns_per_host). Default 1024.
	MaxIdleConnsPerHost int
	// RestartBackoff is the first wait before a dead replica is started
	// again; it doubles up to 10s. Default 200ms.
	RestartBackoff time.Duration
	// Logger receives the provider's logs. Default slog.Default().
	Logger *slog.Logger
}

// ReadConfig reads Config from env and checks it.
func ReadConfig(env config.Getenv) (Config, error) {
	c := Config{
		Addr:           str(env, "OPTIO_PROVIDER_ADDR", "127.0.0.1:8081"),
		BinDir:         str(env, "OPTIO_BIN_DIR", "./bin"),
		StateDir:       str(env, "OPTIO_STATE_DIR", "./.optio"),
		RestartBackoff: 200 * time.Millisecond,
		Logger:         slog.Default(),
	}
	durations := []struct {
		key string
		def time.Duration
		dst *time.Duration
	}{
		{"OPTIO_START_TIMEOUT", 30 * time.Second, &c.StartTimeout},
		{"OPTIO_STOP_GRACE", 10 * time.Second, &c.StopGrace},
		{"OPTIO_DRAIN_TIMEOUT", 150 * time.Second, &c.DrainTimeout},
		{"OPTIO_READY_WAIT", 10 * time.Second, &c.ReadyWait},
		{"read_timeout", 130 * time.Second, &c.ReadTimeout},
		{"write_timeout", 130 * time.Second, &c.WriteTimeout},
	}
	for _, d := range durations {
		v, err := config.Duration(env, d.key, d.def)
		if err != nil {
			return c, err
		}
		*d.dst = v
	}
	var err error
	if c.MaxReplicas, err = config.Int(env, "OPTIO_MAX_REPLICAS", 20); err != nil {
		return c, err
	}
	if c.MaxIdleConnsPerHost, err = config.Int(env, "max_idle_conns_per_host", 1024); err != nil {
		return c, err
	}
	return c, c.validate()
}

func (c *Config) validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("OPTIO_PROVIDER_ADDR=%q is not host:port: %w", c.Addr, err)
	}
	if c.BinDir == "" {
		return fmt.Errorf("OPTIO_BIN_DIR must not be empty")
	}
	if c.StateDir == "" {
		return fmt.Errorf("OPTIO_STATE_DIR must not be empty")
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"OPTIO_START_TIMEOUT", c.StartTimeout}, {"OPTIO_STOP_GRACE", c.StopGrace},
		{"OPTIO_READY_WAIT", c.ReadyWait}, {"read_timeout", c.ReadTimeout}, {"write_timeout", c.WriteTimeout},
	} {
		if d.v <= 0 {
			return fmt.Errorf("%s=%s must be positive", d.key, d.v)
		}
	}
	if c.DrainTimeout < 0 {
		return fmt.Errorf("OPTIO_DRAIN_TIMEOUT=%s must not be negative", c.DrainTimeout)
	}
	if c.MaxReplicas < 1 || c.MaxReplicas > 1000 {
		return fmt.Errorf("OPTIO_MAX_REPLICAS=%d must be between 1 and 1000", c.MaxReplicas)
	}
	if c.MaxIdleConnsPerHost < 1 {
		return fmt.Errorf("max_idle_conns_per_host=%d must be positive", c.MaxIdleConnsPerHost)
	}
	if c.RestartBackoff <= 0 {
		c.RestartBackoff = 200 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	var err error
	if c.BinDir, err = filepath.Abs(c.BinDir); err != nil {
		return fmt.Errorf("OPTIO_BIN_DIR=%q: %w", c.BinDir, err)
	}
	if c.StateDir, err = filepath.Abs(c.StateDir); err != nil {
		return fmt.Errorf("OPTIO_STATE_DIR=%q: %w", c.StateDir, err)
	}
	return nil
}

func str(env config.Getenv, key, def string) string {
	if v := env(key); v != "" {
		return v
	}
	return def
}
