// Package function is the stop function: POST stops the running run. Once it
// has answered, no further job of the run is released.
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
	store *run.Store
	token string // the API token, "" when none is required
}

var setup = sync.OnceValues(func() (deps, error) {
	cfg, err := config.Read(os.Getenv)
	if err != nil {
		return deps{}, err
	}
	store, err := run.Open(cfg)
	return deps{store: store, token: cfg.APIToken}, err
})

var log = slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("function", "stop")

// Handle stops the current run.
func Handle(req handler.Request) (handler.Response, error) {
	if resp, ok := api.Method(req, http.MethodPost); !ok {
		return resp, nil
	}
	d, err := setup()
	if err != nil {
		return api.Fail(http.StatusInternalServerError, "configuration: "+err.Error()), nil
	}
	if resp, ok := api.Authorize(req, d.token); !ok {
		return resp, nil
	}
	// Stop waits for the releaser to let go; a dead releaser's lease lasts
	// a few seconds at most.
	ctx, cancel := context.WithTimeout(api.Context(req), 15*time.Second)
	defer cancel()
	r, err := d.store.Stop(ctx)
	switch {
	case errors.Is(err, run.ErrNoRun):
		return api.Fail(http.StatusNotFound, "no run has ever been started"), nil
	case errors.Is(err, run.ErrLost):
		return api.Fail(http.StatusConflict, err.Error()), nil
	case err != nil:
		return api.Fail(http.StatusServiceUnavailable, "stop run: "+err.Error()), nil
	}
	log.Info("run stopped", "run_id", r.ID, "state", r.State)
	return api.JSON(http.StatusOK, r), nil
}
