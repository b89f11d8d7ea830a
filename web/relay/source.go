package relay

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"optio.dev/optio/run"
)

// source feeds the hub from Redis: every event on the run channel, a
// snapshot of the current run whenever the subscription is (re)established
// and every ResyncInterval, and a tick each second for the clock-driven
// fields.
type source struct {
	rdb     *redis.Client
	store   *run.Store
	hub     *Hub
	log     *slog.Logger
	resync  time.Duration
	metrics *metrics

	// healthy is whether the last exchange with Redis succeeded.
	healthy atomic.Bool
	// failing is whether a failure was logged and no success since; only
	// the Run goroutine uses it.
	failing bool
}

// Run subscribes and feeds the hub until ctx ends.
func (s *source) Run(ctx context.Context) error {
	ps := s.rdb.Subscribe(ctx, s.store.Channel())
	defer ps.Close()
	// A large buffer so a burst of events (one per job) never makes
	// go-redis wait; the loop below only decodes and swaps a pointer.
	ch := ps.ChannelWithSubscriptions(redis.WithChannelSize(4096))

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	resync := time.NewTicker(s.resync)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-ch:
			if !ok {
				return fmt.Errorf("subscription to %s closed", s.store.Channel())
			}
			switch m := m.(type) {
			case *redis.Subscription:
				// Subscribed, or subscribed again after a lost connection:
				// events may have been missed, so read the current run.
				if m.Kind == "subscribe" {
					s.log.Info("subscribed to run events", "channel", m.Channel)
					s.snapshot(ctx)
				}
			case *redis.Message:
				s.healthy.Store(true)
				s.metrics.events.Inc()
				r, err := run.DecodeEvent([]byte(m.Payload))
				if err != nil {
					s.metrics.badEvents.Inc()
					s.log.Warn("ignoring an event that is not a run", "err", err)
					continue
				}
				s.offer(ctx, r)
			}
		case <-tick.C:
			s.hub.Tick()
		case <-resync.C:
			s.snapshot(ctx)
		}
	}
}

// snapshot reads the current run from Redis into the hub.
func (s *source) snapshot(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	r, err := s.store.Current(ctx)
	if err != nil {
		if !s.failing {
			s.log.Warn("reading the current run failed; retrying", "err", err)
			s.failing = true
		}
		s.healthy.Store(false)
		return
	}
	if s.failing {
		s.log.Info("reading the current run works again")
		s.failing = false
	}
	s.healthy.Store(true)
	s.offer(ctx, r)
}

// offer hands r to the hub, with the run's release histogram when the
// relay meets the run in mid-run (it started, or restarted, after the run
// did), so that the chart and the measured rate cover the whole run.
func (s *source) offer(ctx context.Context, r run.Run) {
	if !s.hub.NeedsHistory(r) {
		s.hub.Update(r)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	released, err := s.store.ReleasesPerSecond(ctx, r.ID)
	if err != nil {
		s.log.Warn("reading the release history failed; the chart starts now", "run_id", r.ID, "err", err)
	}
	s.hub.UpdateWithHistory(r, released)
}
