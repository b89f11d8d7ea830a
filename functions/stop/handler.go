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

var setup = sync.OnceValues(func() (*run.Store, error) {
	cfg, err := config.Read(os.Getenv)
	if err != nil {
		return nil, err
	}
	return run.Open(cfg)
})

var log = slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("function", "stop")

// Handle stops the current run.
func Handle(req handler.Request) (handler.Response, error) {
	if resp, ok := api.Method(req, http.MethodPost); !ok {
		return resp, nil
	}
	store, err := setup()
	if err != nil {
		return api.Fail(http.StatusInternalServerError, "configuration: "+err.Error()), nil
	}
	// Stop waits for the releaser to let go; a dead releaser's lease lasts
	// a few seconds at most.
	ctx, cancel := context.WithTimeout(api.Context(req), 15*time.Second)
	defer cancel()
	r, err := store.Stop(ctx)
	switch {
	case errors.Is(err, run.ErrNoRun):
		return api.Fail(http.StatusNotFound, "no run has ever been started"), nil
	case err != nil:
		return api.Fail(http.StatusServiceUnavailable, "stop run: "+err.Error()), nil
	}
	log.Info("run stopped", "run_id", r.ID, "state", r.State)
	return api.JSON(http.StatusOK, r), nil
}
