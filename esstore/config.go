package esstore

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"
)

// Config is the store's configuration, read from the environment by
// ReadConfig.
type Config struct {
	// Addr is where the store listens (ESSTORE_ADDR). Default 127.0.0.1:9200.
	// Port 0 picks a free port; the "listening" log line names it.
	Addr string
	// DataDir holds the database file esstore.db (ESSTORE_DATA). Default ./.optio/esstore.
	DataDir string
	// BatchDelay is how long a write waits to share its commit with others
	// (ESSTORE_BATCH_DELAY, a Go duration). Default 1ms.
	BatchDelay time.Duration
	// BatchSize is the most writes one commit takes (ESSTORE_BATCH_SIZE). Default 1000.
	BatchSize int
	// Faults are test-aid faults pending at start (ESSTORE_FAULTS, a JSON
	// array of Fault). Default none.
	Faults []Fault
	// Logger receives the store's logs. Default slog.Default().
	Logger *slog.Logger
}

// ReadConfig fills a Config from getenv and checks it.
func ReadConfig(getenv func(string) string) (Config, error) {
	c := Config{Addr: "127.0.0.1:9200", DataDir: "./.optio/esstore", BatchDelay: time.Millisecond, BatchSize: 1000}
	if v := getenv("ESSTORE_ADDR"); v != "" {
		c.Addr = v
	}
	if v := getenv("ESSTORE_DATA"); v != "" {
		c.DataDir = v
	}
	if v := getenv("ESSTORE_BATCH_DELAY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return c, fmt.Errorf("ESSTORE_BATCH_DELAY=%q is not a duration: %w", v, err)
		}
		c.BatchDelay = d
	}
	if v := getenv("ESSTORE_BATCH_SIZE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return c, fmt.Errorf("ESSTORE_BATCH_SIZE=%q is not an integer: %w", v, err)
		}
		c.BatchSize = n
	}
	var err error
	if c.Faults, err = ParseFaults(getenv("ESSTORE_FAULTS")); err != nil {
		return c, err
	}
	return c, c.validate()
}

func (c Config) validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("ESSTORE_ADDR=%q is not host:port: %w", c.Addr, err)
	}
	if c.DataDir == "" {
		return errors.New("ESSTORE_DATA is empty")
	}
	if c.BatchDelay < 0 || c.BatchDelay > time.Second {
		return fmt.Errorf("ESSTORE_BATCH_DELAY=%s is outside 0..1s", c.BatchDelay)
	}
	if c.BatchSize < 1 {
		return fmt.Errorf("ESSTORE_BATCH_SIZE=%d must be at least 1", c.BatchSize)
	}
	return nil
}
