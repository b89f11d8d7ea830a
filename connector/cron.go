package main

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// scheduleParser reads the "schedule" annotation: the standard 5 fields
// (minute hour day-of-month month day-of-week, e.g. "* * * * *") or a
// descriptor such as "@hourly" or "@every 30s".
var scheduleParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Cron fires the functions annotated "topic: cron-function" on their
// "schedule" annotation, as OpenFaaS's cron-connector does. The set of
// schedules follows the topic map: functions added, removed or
// rescheduled are picked up at the next refresh. Each firing invokes the
// function in its own goroutine, even while the previous invocation of
// the same function still runs, and never touches the queue consumer.
type Cron struct {
	cfg     Config
	log     *slog.Logger
	topics  *Topics
	client  *http.Client
	metrics *Metrics

	mu      sync.Mutex
	running map[string]int // invocations in flight per function
}

// NewCron returns a Cron; Run starts it.
func NewCron(cfg Config, log *slog.Logger, topics *Topics, client *http.Client, m *Metrics) *Cron {
	return &Cron{cfg: cfg, log: log, topics: topics, client: client, metrics: m, running: map[string]int{}}
}

// cronEntry is one scheduled function.
type cronEntry struct {
	schedule string
	id       cron.EntryID // 0 when the schedule does not parse
}

// Run schedules until ctx ends, then lets running invocations finish for
// the shutdown grace period (see grace) before cancelling them.
func (c *Cron) Run(ctx context.Context) error {
	fireCtx, abort := context.WithCancel(context.WithoutCancel(ctx))
	defer abort()
	sched := cron.New(cron.WithParser(scheduleParser), cron.WithLogger(cronLogger{c.log}))
	sched.Start()
	entries := map[string]cronEntry{}
	for {
		snap, changed := c.topics.Watch()
		c.sync(sched, entries, snap, fireCtx)
		select {
		case <-ctx.Done():
			stopped := sched.Stop()
			t := time.NewTimer(grace(c.cfg.ShutdownTimeout))
			defer t.Stop()
			select {
			case <-stopped.Done():
			case <-t.C:
				c.log.Warn("shutdown timeout: cancelling running cron invocations")
				abort()
				<-stopped.Done()
			}
			return nil
		case <-changed:
		}
	}
}

// sync makes sched's entries match the snapshot's cron functions. Every
// function keeps an entry, scheduled or not, so that a missing or bad
// schedule is reported once, not at every refresh.
func (c *Cron) sync(sched *cron.Cron, entries map[string]cronEntry, snap Snapshot, fireCtx context.Context) {
	want := map[string]string{} // function -> schedule, "" when it has none
	for _, fn := range snap.Lookup[CronTopic] {
		want[fn] = snap.Schedules[fn]
	}
	for fn, e := range entries {
		if s, ok := want[fn]; ok && s == e.schedule {
			continue
		}
		if e.id != 0 {
			sched.Remove(e.id)
			c.log.Info("cron function unscheduled", "function", fn, "schedule", e.schedule)
		}
		delete(entries, fn)
	}
	for fn, s := range want {
		if _, ok := entries[fn]; ok {
			continue
		}
		entries[fn] = cronEntry{schedule: s}
		if s == "" {
			c.log.Warn("cron function has no schedule annotation; not scheduled", "function", fn)
			continue
		}
		schedule, err := scheduleParser.Parse(s)
		if err != nil {
			c.log.Warn("cron function has a schedule that does not parse; not scheduled",
				"function", fn, "schedule", s, "err", err)
			continue
		}
		id := sched.Schedule(schedule, cron.FuncJob(func() { c.fire(fireCtx, fn) }))
		entries[fn] = cronEntry{schedule: s, id: id}
		c.log.Info("cron function scheduled", "function", fn, "schedule", s)
	}
}

// fire invokes fn once, bounded by Config.CronTimeout.
func (c *Cron) fire(ctx context.Context, fn string) {
	c.mu.Lock()
	c.running[fn]++
	n := c.running[fn]
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.running[fn]--; c.running[fn] == 0 {
			delete(c.running, fn)
		}
		c.mu.Unlock()
	}()
	if n > 1 {
		c.log.Debug("previous cron invocation still running; firing anyway", "function", fn, "running", n)
	}
	ictx, cancel := context.WithTimeout(ctx, c.cfg.CronTimeout)
	defer cancel()
	h := http.Header{}
	h.Set("X-Topic", CronTopic)
	h.Set("X-Connector", "optio-connector")
	start := time.Now()
	status, err := post(ictx, c.client, c.cfg.Shared.GatewayURL, fn, h)
	c.metrics.CronFirings.WithLabelValues(fn, outcome(status, err)).Inc()
	switch {
	case err != nil:
		c.log.Warn("cron invocation failed", "function", fn, "err", err, "duration", time.Since(start))
	case status < 200 || status > 299:
		c.log.Warn("cron invocation answered an error", "function", fn, "status", status, "duration", time.Since(start))
	default:
		c.log.Debug("cron invocation done", "function", fn, "status", status, "duration", time.Since(start))
	}
}

// cronLogger sends robfig/cron's own messages to slog.
type cronLogger struct{ log *slog.Logger }

func (l cronLogger) Info(msg string, kv ...any) { l.log.Debug("cron: "+msg, kv...) }

func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Error("cron: "+msg, append(kv, "err", err)...)
}
