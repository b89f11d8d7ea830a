// Package function is the status function: GET answers the current (or
// last) run, or an idle run with zero counters when none ever existed.
package function

import (
	"net/http"
	"os"
	"sync"

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

// Handle answers the current run.
func Handle(req handler.Request) (handler.Response, error) {
	if resp, ok := api.Method(req, http.MethodGet, http.MethodHead); !ok {
		return resp, nil
	}
	store, err := setup()
	if err != nil {
		return api.Fail(http.StatusInternalServerError, "configuration: "+err.Error()), nil
	}
	r, err := store.Current(api.Context(req))
	if err != nil {
		return api.Fail(http.StatusServiceUnavailable, "read run: "+err.Error()), nil
	}
	return api.JSON(http.StatusOK, r), nil
}
