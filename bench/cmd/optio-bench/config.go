package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"optio.dev/optio/config"
)

// Config is the benchmark's configuration, read from the environment.
type Config struct {
	// Root is the repository (BENCH_ROOT). Default "..", the parent of bench/.
	Root string
	// BinDir holds the built binaries (OPTIO_BIN_DIR). Default Root/bin.
	BinDir string
	// Out is where the results go (BENCH_OUT). Default Root/bench/results/latest.json.
	Out string
	// Prefetches are the connector prefetches measured (BENCH_PREFETCH,
	// comma separated). Default 10,100.
	Prefetches []int
	// X is the jobs of each throughput run (BENCH_X). Default 20000.
	X int64
	// Repeats is how many runs each throughput figure is the median of
	// (BENCH_REPEATS). Default 3.
	Repeats int
	// RateFor is how long each rate run releases (BENCH_RATE_SECONDS).
	// Default 180s.
	RateFor time.Duration
	// Long adds memory_flat (1,000,000 jobs of one run) and the rate runs at
	// every prefetch (BENCH_LONG=1). Default off.
	Long bool
	// Clients is the number of WebSocket clients of the live measurement
	// (BENCH_CLIENTS). Default 100.
	Clients int
	// LockWait is how long to wait for another stack or test to free the
	// gateway's ports (OPTIO_LOCK_WAIT). Default 15m.
	LockWait time.Duration
	// RedisURL, AMQPURL: the shared services (REDIS_URL, AMQP_URL).
	RedisURL, AMQPURL string
	// Steps limits the measurements to some of e2e, stop, latency, rate,
	// noop (BENCH_STEPS, comma separated), for profiling. Default all.
	Steps map[string]bool
	// ID makes the keys, queues and index of this invocation its own.
	ID string
}

func readConfig(getenv config.Getenv) (Config, error) {
	shared, err := config.Read(getenv)
	if err != nil {
		return Config{}, err
	}
	c := Config{Root: getenv("BENCH_ROOT"), BinDir: getenv("OPTIO_BIN_DIR"), Out: getenv("BENCH_OUT"),
		RedisURL: shared.RedisURL, AMQPURL: shared.AMQPURL, Long: getenv("BENCH_LONG") == "1"}
	if c.Root == "" {
		c.Root = ".."
	}
	if c.Root, err = filepath.Abs(c.Root); err != nil {
		return c, fmt.Errorf("BENCH_ROOT: %w", err)
	}
	if c.BinDir == "" {
		c.BinDir = filepath.Join(c.Root, "bin")
	}
	if c.Out == "" {
		c.Out = filepath.Join(c.Root, "bench", "results", "latest.json")
	}
	pf := getenv("BENCH_PREFETCH")
	if pf == "" {
		pf = "10,100"
	}
	for _, s := range strings.Split(pf, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return c, fmt.Errorf("BENCH_PREFETCH=%q: want positive integers separated by commas", pf)
		}
		c.Prefetches = append(c.Prefetches, n)
	}
	x, err := config.Int(getenv, "BENCH_X", 20000)
	if err != nil {
		return c, err
	}
	c.X = int64(x)
	if c.Repeats, err = config.Int(getenv, "BENCH_REPEATS", 3); err != nil {
		return c, err
	}
	secs, err := config.Int(getenv, "BENCH_RATE_SECONDS", 180)
	if err != nil {
		return c, err
	}
	c.RateFor = time.Duration(secs) * time.Second
	if c.Clients, err = config.Int(getenv, "BENCH_CLIENTS", 100); err != nil {
		return c, err
	}
	if c.LockWait, err = config.Duration(getenv, "OPTIO_LOCK_WAIT", 15*time.Minute); err != nil {
		return c, err
	}
	steps := getenv("BENCH_STEPS")
	if steps == "" {
		steps = "e2e,stop,latency,rate,noop"
	}
	c.Steps = map[string]bool{}
	for _, s := range strings.Split(steps, ",") {
		c.Steps[strings.TrimSpace(s)] = true
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	c.ID = hex.EncodeToString(b[:])
	return c, c.validate()
}

func (c Config) validate() error {
	switch {
	case c.X < 100:
		return fmt.Errorf("BENCH_X=%d must be at least 100", c.X)
	case c.Repeats < 1:
		return fmt.Errorf("BENCH_REPEATS=%d must be at least 1", c.Repeats)
	case c.RateFor < 10*time.Second:
		return fmt.Errorf("BENCH_RATE_SECONDS=%v must be at least 10", c.RateFor.Seconds())
	case c.Clients < 1:
		return fmt.Errorf("BENCH_CLIENTS=%d must be at least 1", c.Clients)
	}
	return nil
}
