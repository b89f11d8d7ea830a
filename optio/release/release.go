// Package release paces the jobs of the current run into the jobs queue: at
// most Y per minute, each release at least 60s/Y after the one before it,
// measured on the real instants the messages are published.
//
// One schedule invocation (a "tick") holds the run's release lease and
// releases for about a minute, until the next cron tick takes over. Spacing
// every release from the previous one (a rate limiter with no burst) is what
// makes both bounds of PRODUCT.md hold on real instants: any 60 s window sees
// at most Y releases and any s-second window at most ceil(Y*s/60). A late or
// missed tick leaves a pause and never a catch-up burst, because the next
// release is spaced from the last real one, not from a timetable.
package release

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"optio.dev/optio/queue"
	"optio.dev/optio/run"
)

// Config tunes a Releaser. Zero fields take their defaults.
type Config struct {
	// LeaseTTL is how long the lease outlives a holder that died. Default 5s.
	LeaseTTL time.Duration
	// Wait is how long a tick waits for the lease held by another tick
	// before it gives up. Default 20s.
	Wait time.Duration
	// Grace is how long a tick goes on past the next minute boundary when no
	// successor shows up; the next tick normally takes over at the boundary.
	// Default 10s.
	Grace time.Duration
	// MinRun is the least a tick releases before the boundary that ends it
	// counts, so that a tick started at :59 runs on to the following minute.
	// Default 30s.
	MinRun time.Duration
	// Batch is how long a tick publishes before it commits (counts the
	// releases in Redis, renews the lease, looks for a stop). Default 50ms.
	Batch time.Duration
	// Period is how often cron starts a tick. Default 1m ("* * * * *").
	Period time.Duration
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.LeaseTTL, 5*time.Second)
	def(&c.Wait, 20*time.Second)
	def(&c.Grace, 10*time.Second)
	def(&c.MinRun, 30*time.Second)
	def(&c.Batch, 50*time.Millisecond)
	def(&c.Period, time.Minute)
	return c
}

// Publisher is what a tick publishes through; *queue.Publisher in production.
type Publisher interface {
	Batch(ctx context.Context, n int, stamp func(i int) (queue.Job, bool)) (int, error)
}

// Result says what one tick did.
type Result struct {
	RunID    string `json:"runId,omitempty"`
	Released int64  `json:"released"`
	Next     int64  `json:"next"`
	// Reason says why the tick ended.
	Reason string `json:"reason"`
}

// Reasons a tick ends.
const (
	ReasonIdle     = "no run is running"
	ReasonBusy     = "another schedule invocation is releasing this run"
	ReasonAllOut   = "every job of the run is released"
	ReasonStopped  = "the run is no longer running"
	ReasonHandover = "handed over to the next tick"
	ReasonDeadline = "tick ended at its deadline"
	ReasonLost     = "release lease lost"
)

// Tick releases jobs of the current run for about a minute. It is safe to
// call any number of times at once: only the holder of the run's lease
// releases.
func Tick(ctx context.Context, store *run.Store, pub Publisher, cfg Config, log *slog.Logger) (Result, error) {
	cfg = cfg.withDefaults()
	start := time.Now()
	cur, err := store.Current(ctx)
	if err != nil {
		return Result{}, err
	}
	if cur.State != run.Running {
		return Result{Reason: ReasonIdle}, nil
	}
	res := Result{RunID: cur.ID}
	lease, err := store.AcquireWaiting(ctx, cur.ID, cfg.LeaseTTL, cfg.Wait)
	var notRunning *run.NotRunningError
	switch {
	case errors.Is(err, run.ErrBusy):
		res.Reason = ReasonBusy
		return res, nil
	case errors.As(err, &notRunning):
		res.Reason = ReasonStopped
		return res, nil
	case err != nil:
		return res, err
	}
	defer func() {
		if err := lease.Release(); err != nil {
			log.Warn("give up release lease", "run_id", cur.ID, "err", err)
		}
	}()

	// The tick ends at the first minute boundary at least MinRun away, when
	// the next cron tick is due; with no successor by Grace after it, it ends anyway.
	boundary := start.Add(cfg.MinRun).Truncate(cfg.Period).Add(cfg.Period)
	deadline := boundary.Add(cfg.Grace)
	interval := time.Duration(float64(time.Minute) / float64(lease.Y))
	last := lease.Last
	next := lease.Next
	// retry is the pause after a failed publish: the broker may be
	// restarting, and the tick publishes again on a new connection rather
	// than leave the run to the next cron minute.
	const firstRetry, maxRetry = 100 * time.Millisecond, 2 * time.Second
	retry := firstRetry
	log.Debug("tick holds the lease", "run_id", cur.ID, "next", next, "x", lease.X, "y", lease.Y)

	for {
		batchStart := time.Now()
		perSecond := map[int64]int64{}
		stamp := func(i int) (queue.Job, bool) {
			due := batchStart
			if !last.IsZero() {
				due = last.Add(interval)
			}
			// Never wait beyond the batch: the commit after it is where a
			// stop or a successor is noticed.
			limit := batchStart.Add(cfg.Batch)
			if due.After(limit) || due.After(deadline) {
				if i == 0 {
					// Nothing is due in this batch: wait it out rather
					// than spin on commits.
					_ = sleepUntil(ctx, limit)
				}
				return queue.Job{}, false
			}
			if err := sleepUntil(ctx, due); err != nil {
				return queue.Job{}, false
			}
			now := time.Now()
			last = now
			perSecond[now.Unix()]++
			return queue.Job{RunID: cur.ID, JobID: next + int64(i), ReleasedAt: now.UTC()}, true
		}
		remaining := lease.X - next
		n, pubErr := pub.Batch(ctx, int(min(remaining, 10_000)), stamp)
		if pubErr != nil {
			// Some of the batch may be in the queue already; the next batch
			// publishes it again, which processing absorbs. last keeps the
			// real instants so the spacing stays right.
			log.Warn("publish jobs; trying again", "run_id", cur.ID, "next", next, "in", retry, "err", pubErr)
			n = 0
		}
		next += int64(n)
		res.Released += int64(n)
		state, successor, err := lease.Commit(context.WithoutCancel(ctx), next, last, int64(n), perSecond)
		res.Next = next
		switch {
		case errors.Is(err, run.ErrLeaseLost):
			res.Reason = ReasonLost
			return res, nil
		case err != nil:
			return res, err
		case state != run.Running:
			res.Reason = ReasonStopped
			return res, nil
		case next >= lease.X:
			res.Reason = ReasonAllOut
			return res, nil
		case successor && !time.Now().Before(boundary):
			res.Reason = ReasonHandover
			return res, nil
		case !time.Now().Before(deadline):
			res.Reason = ReasonDeadline
			return res, nil
		case ctx.Err() != nil:
			if pubErr != nil {
				return res, pubErr
			}
			return res, fmt.Errorf("tick of run %s: %w", cur.ID, ctx.Err())
		}
		if pubErr != nil {
			if err := sleepUntil(ctx, time.Now().Add(retry)); err != nil {
				return res, pubErr
			}
			retry = min(2*retry, maxRetry)
		} else {
			retry = firstRetry
		}
	}
}

// sleepUntil waits until t. Timers overshoot by tens of microseconds, which
// at high rates would cost throughput (the spacing is strict), so it sleeps
// to within half a millisecond and yields the processor for the rest.
func sleepUntil(ctx context.Context, t time.Time) error {
	for {
		d := time.Until(t)
		if d <= 0 {
			return nil
		}
		if d > time.Millisecond {
			timer := time.NewTimer(d - 500*time.Microsecond)
			select {
			case <-ctx.Done():
				timer.Stop()
				return ctx.Err()
			case <-timer.C:
			}
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		runtime.Gosched()
	}
}
