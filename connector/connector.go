package main

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
)

// Connector is the whole process: the topic map refresh, the queue
// consumer, the cron trigger and the health server, sharing one HTTP
// transport to the gateway.
type Connector struct {
	Config    Config
	Log       *slog.Logger
	Metrics   *Metrics
	Topics    *Topics
	Consumer  *Consumer
	Cron      *Cron // nil when Config.Cron is false
	Health    *Health
	transport *http.Transport
}

// New wires a Connector from cfg.
func New(cfg Config, log *slog.Logger) *Connector {
	m := NewMetrics()
	tr := NewTransport(cfg.Prefetch)
	// Invocations and cron firings are bounded by their contexts
	// (Config.InvokeTimeout, Config.CronTimeout); the /system calls by
	// the client.
	invoke := &http.Client{Transport: tr}
	system := &http.Client{Transport: tr, Timeout: cfg.RefreshTimeout}
	c := &Connector{Config: cfg, Log: log, Metrics: m, transport: tr}
	c.Topics = NewTopics(cfg, log, m, system)
	c.Consumer = NewConsumer(cfg, log, c.Topics, invoke, m)
	if cfg.Cron {
		c.Cron = NewCron(cfg, log, c.Topics, invoke, m)
	}
	if cfg.HealthAddr != "off" {
		c.Health = &Health{Addr: cfg.HealthAddr, Metrics: m, Consumer: c.Consumer, Topics: c.Topics, Log: log}
	}
	return c
}

// Run runs every part until ctx ends or one of them fails, then shuts them
// all down gracefully and returns the first failure.
func (c *Connector) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	start := func(run func(context.Context) error) {
		wg.Go(func() {
			if err := run(ctx); err != nil {
				once.Do(func() { first = err })
				cancel()
			}
		})
	}
	start(c.Topics.Run)
	start(c.Consumer.Run)
	if c.Cron != nil {
		start(c.Cron.Run)
	}
	if c.Health != nil {
		start(c.Health.Run)
	}
	wg.Wait()
	c.transport.CloseIdleConnections()
	// the lookup builder's SDK uses http.DefaultClient
	http.DefaultClient.CloseIdleConnections()
	return first
}
