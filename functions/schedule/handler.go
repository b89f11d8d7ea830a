// Package function is the schedule function: each invocation (a tick, from
// cron every minute and from run at once) releases jobs of the current run
// into the jobs queue at the run's rate for about a minute. Invocations that
// overlap are safe: only the one holding the run's release lease releases.
package function

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	handler "github.com/openfaas/templates-sdk/go-http"

	"optio.dev/optio/api"
	"optio.dev/optio/config"
	"optio.dev/optio/queue"
	"optio.dev/optio/release"
	"optio.dev/optio/run"
)

type deps struct {
	cfg   config.Config
	store *run.Store
	log   *slog.Logger

	mu  sync.Mutex
	pub *queue.Publisher
}

var setup = sync.OnceValues(func() (*deps, error) {
	cfg, err := config.Read(os.Getenv)
	if err != nil {
		return nil, err
	}
	store, err := run.Open(cfg)
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("function", "schedule")
	return &deps{cfg: cfg, store: store, log: log}, nil
})

// publisher returns the process's publisher, dialling again when the last
// one's connection is gone.
func (d *deps) publisher() (*queue.Publisher, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pub != nil && !d.pub.Closed() {
		return d.pub, nil
	}
	if d.pub != nil {
		d.pub.Close()
	}
	pub, err := queue.Dial(d.cfg.AMQPURL, queue.Topology{Jobs: d.cfg.Queue, DeliveryLimit: d.cfg.DeliveryLimit})
	if err != nil {
		return nil, err
	}
	d.pub = pub
	return pub, nil
}

// Batch publishes through the current connection, so that a tick survives a
// broker restart: a failed batch is published again on a new connection.
func (d *deps) Batch(ctx context.Context, n int, stamp func(int) (queue.Job, bool)) (int, error) {
	pub, err := d.publisher()
	if err != nil {
		return 0, err
	}
	return pub.Batch(ctx, n, stamp)
}

// Handle runs one tick.
func Handle(req handler.Request) (handler.Response, error) {
	if resp, ok := api.Method(req, http.MethodPost, http.MethodGet); !ok {
		return resp, nil
	}
	d, err := setup()
	if err != nil {
		return api.Fail(http.StatusInternalServerError, "configuration: "+err.Error()), nil
	}
	// The tick outlives a caller that hangs up (run fires and forgets), but
	// never more than its own bound.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(api.Context(req)), 2*time.Minute)
	defer cancel()
	start := time.Now()
	res, err := release.Tick(ctx, d.store, d, release.Config{}, d.log)
	if err != nil {
		d.log.Error("tick failed", "run_id", res.RunID, "released", res.Released, "err", err)
		return api.Fail(http.StatusServiceUnavailable, fmt.Sprintf("tick: %v (released %d first)", err, res.Released)), nil
	}
	if res.Released > 0 || res.RunID != "" {
		d.log.Info("tick done", "run_id", res.RunID, "released", res.Released, "next", res.Next,
			"reason", res.Reason, "took", time.Since(start).Round(time.Millisecond).String())
	}
	return api.JSON(http.StatusOK, res), nil
}
