// Package function is the status function: GET answers the current (or
// last) run, or an idle run with zero counters when none ever existed, with
// the number of process replicas running right now.
package function

import (
	"net/http"
	"os"
	"sync"

	handler "github.com/openfaas/templates-sdk/go-http"

	"optio.dev/optio/api"
	"optio.dev/optio/config"
	"optio.dev/optio/replica"
	"optio.dev/optio/run"
)

// processFunction is the function whose replicas status reports.
const processFunction = "process"

type deps struct {
	store    *run.Store
	replicas *replica.Counter
	token    string // required API token: only with OPTIO_STATUS_AUTH=true
}

var setup = sync.OnceValues(func() (deps, error) {
	cfg, err := config.Read(os.Getenv)
	if err != nil {
		return deps{}, err
	}
	store, err := run.Open(cfg)
	if err != nil {
		return deps{}, err
	}
	counter, err := replica.New(replica.Config{
		GatewayURL: cfg.GatewayURL,
		Function:   processFunction,
		User:       cfg.Secret(os.Getenv, "OPENFAAS_USER", "basic-auth-user"),
		Password:   cfg.Secret(os.Getenv, "OPENFAAS_PASSWORD", "basic-auth-password"),
	})
	if err != nil {
		return deps{}, err
	}
	d := deps{store: store, replicas: counter}
	if cfg.StatusAuth {
		d.token = cfg.APIToken
	}
	return d, nil
})

// answer is the run with the replicas of process: how many are ready right
// now (read through the gateway, at most a second old), or -1 when the
// gateway cannot tell.
type answer struct {
	run.Run
	ProcessReplicas int `json:"processReplicas"`
}

// Handle answers the current run.
func Handle(req handler.Request) (handler.Response, error) {
	if resp, ok := api.Method(req, http.MethodGet, http.MethodHead); !ok {
		return resp, nil
	}
	d, err := setup()
	if err != nil {
		return api.Fail(http.StatusInternalServerError, "configuration: "+err.Error()), nil
	}
	if resp, ok := api.Authorize(req, d.token); !ok {
		return resp, nil
	}
	ctx := api.Context(req)
	replicas := make(chan int, 1)
	go func() { replicas <- d.replicas.Count(ctx) }()
	r, err := d.store.Current(ctx)
	if err != nil {
		return api.Fail(http.StatusServiceUnavailable, "read run: "+err.Error()), nil
	}
	return api.JSON(http.StatusOK, answer{Run: r, ProcessReplicas: <-replicas}), nil
}
