// Package provider is the local OpenFaaS provider: a faas-provider backend
// that runs each deployed function as local processes instead of containers.
//
// An image such as ghcr.io/optio/optio-process:dev runs the binary
// BinDir/optio-process. Each replica gets the deployment's environment, a
// free PORT and OPTIO_SECRETS_DIR; it is ready when GET /_/health answers
// 200, started again with backoff when it dies, and drained (no new calls,
// then SIGTERM once its calls finish) when it is scaled away.
//
// The handlers are MakeXHandler(rt) closures in faas-provider's FaaSHandlers.
// They are served by Run rather than bootstrap.Serve, because Serve listens
// on every interface, cannot be stopped, and keeps its router in a global
// built in init(); Router mounts the same routes.
package provider

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/gorilla/mux"
	"github.com/openfaas/faas-provider/types"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// nameExpr is faas-provider's function name expression.
const nameExpr = "-a-zA-Z_0-9."

// Router mounts faas-provider's routes (as bootstrap.Serve does) and the
// local /local/replicas/NAME.
func Router(h *types.FaaSHandlers, rt *Runtime) http.Handler {
	r := mux.NewRouter()
	name := "{name:[" + nameExpr + "]+}"
	r.HandleFunc("/system/functions", h.FunctionReader).Methods(http.MethodGet)
	r.HandleFunc("/system/functions", h.DeployHandler).Methods(http.MethodPost)
	r.HandleFunc("/system/functions", h.DeleteHandler).Methods(http.MethodDelete)
	r.HandleFunc("/system/functions", h.UpdateHandler).Methods(http.MethodPut)
	r.HandleFunc("/system/function/"+name, h.ReplicaReader).Methods(http.MethodGet)
	r.HandleFunc("/system/scale-function/"+name, h.ReplicaUpdater).Methods(http.MethodPost)
	r.HandleFunc("/system/info", h.InfoHandler).Methods(http.MethodGet)
	r.HandleFunc("/system/secrets", h.SecretHandler).Methods(http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete)
	r.HandleFunc("/system/logs", h.LogHandler).Methods(http.MethodGet)
	r.HandleFunc("/system/namespaces", h.ListNamespaceHandler).Methods(http.MethodGet)
	r.HandleFunc("/function/"+name, h.FunctionProxy)
	r.HandleFunc("/function/"+name+"/", h.FunctionProxy)
	r.HandleFunc("/function/"+name+"/{params:.*}", h.FunctionProxy)
	r.HandleFunc("/healthz", h.HealthHandler).Methods(http.MethodGet)
	r.Handle("/metrics", promhttp.Handler())
	r.HandleFunc("/local/replicas/"+name, MakeReplicaLister(rt)).Methods(http.MethodGet)
	return r
}

// Run serves the provider on cfg.Addr until ctx ends, then stops taking
// calls, waits up to StopGrace for calls in flight, and stops every function
// process.
func Run(ctx context.Context, cfg Config) error {
	rt, err := NewRuntime(cfg)
	if err != nil {
		return err
	}
	defer rt.Close()
	ln, err := net.Listen("tcp", rt.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", rt.cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           Router(Handlers(rt), rt),
		ReadTimeout:       rt.cfg.ReadTimeout,
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      rt.cfg.WriteTimeout,
		IdleTimeout:       2 * time.Minute,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	rt.log.Info("provider listening", "addr", ln.Addr().String(), "bin_dir", rt.cfg.BinDir, "state_dir", rt.cfg.StateDir)
	select {
	case err := <-served:
		return fmt.Errorf("serving provider API: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), rt.cfg.StopGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("stopping provider API: %w", err)
	}
	return nil
}
