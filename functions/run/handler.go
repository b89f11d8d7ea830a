// Package function is the run function: POST {"x": 1000, "y": 10} starts a
// run of x jobs at y per minute and triggers its first schedule tick at once.
package function

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	handler "github.com/openfaas/templates-sdk/go-http"

	"optio.dev/optio/api"
	"optio.dev/optio/config"
	"optio.dev/optio/run"
)

type deps struct {
	cfg   config.Config
	store *run.Store
	http  *http.Client
	log   *slog.Logger
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
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("function", "run")
	return &deps{cfg: cfg, store: store, http: &http.Client{Timeout: 3 * time.Minute}, log: log}, nil
})

// Handle starts a run.
func Handle(req handler.Request) (handler.Response, error) {
	if resp, ok := api.Method(req, http.MethodPost); !ok {
		return resp, nil
	}
	d, err := setup()
	if err != nil {
		return api.Fail(http.StatusInternalServerError, "configuration: "+err.Error()), nil
	}
	if resp, ok := api.Authorize(req, d.cfg.APIToken); !ok {
		return resp, nil
	}
	body, err := api.DecodeRunRequest(req.Body)
	if err != nil {
		return answer(err), nil
	}
	r, err := d.store.Create(api.Context(req), body.X, body.Y)
	var running *run.RunningError
	if errors.As(err, &running) {
		return api.JSON(http.StatusConflict, api.RunWithError{Run: running.Run,
			Error: "run " + running.Run.ID + " is running; stop it first or wait for it to complete"}), nil
	}
	if err != nil {
		return answer(err), nil
	}
	d.log.Info("run started", "run_id", r.ID, "x", r.XTotal, "y", r.YPerMinute)
	go d.firstTick(r.ID)
	return api.JSON(http.StatusCreated, r), nil
}

// firstTick invokes schedule through the gateway right away, so that the
// first job goes out now and not at the next cron minute. The tick runs
// about a minute, so it outlives this request; cron picks the run up anyway
// if this call fails.
func (d *deps) firstTick(runID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.cfg.GatewayURL+"/function/schedule", nil)
	if err != nil {
		d.log.Error("trigger first tick", "run_id", runID, "err", err)
		return
	}
	if user := d.cfg.Secret(os.Getenv, "OPENFAAS_USER", "basic-auth-user"); user != "" {
		req.SetBasicAuth(user, d.cfg.Secret(os.Getenv, "OPENFAAS_PASSWORD", "basic-auth-password"))
	}
	resp, err := d.http.Do(req)
	if err != nil {
		d.log.Warn("first tick failed; the next cron tick releases the run", "run_id", runID, "err", err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		d.log.Warn("first tick answered an error; the next cron tick releases the run", "run_id", runID, "status", resp.StatusCode)
	}
}

// answer maps an error to its HTTP answer: the one place this function
// chooses a status.
func answer(err error) handler.Response {
	var apiErr *api.Error
	if errors.As(err, &apiErr) {
		return api.Fail(apiErr.Status, apiErr.Message)
	}
	return api.Fail(http.StatusServiceUnavailable, "start run: "+err.Error())
}
