package provider

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/gorilla/mux"
	"github.com/openfaas/faas-provider/types"
)

// maxAPIBody bounds the JSON bodies of the provider API.
const maxAPIBody = 1 << 20

// Handlers returns the provider's handlers in faas-provider's shape.
func Handlers(rt *Runtime) *types.FaaSHandlers {
	return &types.FaaSHandlers{
		FunctionProxy:        MakeProxyHandler(rt),
		FunctionReader:       MakeReadHandler(rt),
		DeployHandler:        MakeDeployHandler(rt),
		UpdateHandler:        MakeUpdateHandler(rt),
		DeleteHandler:        MakeDeleteHandler(rt),
		ReplicaReader:        MakeReplicaReader(rt),
		ReplicaUpdater:       MakeReplicaUpdater(rt),
		SecretHandler:        MakeSecretHandler(rt),
		LogHandler:           MakeLogHandler(rt),
		HealthHandler:        MakeHealthHandler(),
		InfoHandler:          MakeInfoHandler(),
		ListNamespaceHandler: MakeNamespaceLister(),
	}
}

// statusOf maps an error of the runtime to an HTTP status, in one place.
func statusOf(err error) int {
	var bad *BadRequestError
	switch {
	case errors.As(err, &bad):
		return http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrExists):
		return http.StatusConflict
	case errors.Is(err, ErrStopping), errors.Is(err, errNoReplica):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

func writeError(w http.ResponseWriter, err error) {
	http.Error(w, err.Error(), statusOf(err))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func decode(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAPIBody+1))
	if err != nil {
		return fmt.Errorf("reading request body: %w", err)
	}
	if len(body) > maxAPIBody {
		return badRequest("request body larger than %d bytes", maxAPIBody)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return badRequest("request body is not valid JSON for this call: %v", err)
	}
	return nil
}

// MakeDeployHandler creates a function (POST /system/functions); deploying an
// existing name replaces it.
func MakeDeployHandler(rt *Runtime) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var dep types.FunctionDeployment
		if err := decode(r, &dep); err != nil {
			writeError(w, err)
			return
		}
		if err := rt.Deploy(dep); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}
}

// MakeUpdateHandler replaces an existing function (PUT /system/functions);
// 404 when it does not exist, so faas-cli falls back to POST.
func MakeUpdateHandler(rt *Runtime) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var dep types.FunctionDeployment
		if err := decode(r, &dep); err != nil {
			writeError(w, err)
			return
		}
		if err := rt.Update(dep); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}
}

// MakeDeleteHandler removes a function (DELETE /system/functions).
func MakeDeleteHandler(rt *Runtime) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req types.DeleteFunctionRequest
		if err := decode(r, &req); err != nil {
			writeError(w, err)
			return
		}
		if req.FunctionName == "" {
			writeError(w, badRequest("functionName is required"))
			return
		}
		if err := rt.Delete(req.FunctionName); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}
}

// MakeReadHandler lists the functions (GET /system/functions).
func MakeReadHandler(rt *Runtime) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, rt.List())
	}
}

// MakeReplicaReader describes one function (GET /system/function/NAME).
func MakeReplicaReader(rt *Runtime) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		st, err := rt.Status(mux.Vars(r)["name"])
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, st)
	}
}

// MakeReplicaUpdater scales a function (POST /system/scale-function/NAME),
// within its com.openfaas.scale.min/max labels.
func MakeReplicaUpdater(rt *Runtime) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req types.ScaleServiceRequest
		if err := decode(r, &req); err != nil {
			writeError(w, err)
			return
		}
		name := mux.Vars(r)["name"]
		if req.ServiceName != "" && req.ServiceName != name {
			writeError(w, badRequest("serviceName %q does not match the path's %q", req.ServiceName, name))
			return
		}
		if err := rt.Scale(name, req.Replicas); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}
}

// MakeReplicaLister lists the replicas of a function with their process ids
// (GET /local/replicas/NAME), which the tests use to kill one.
func MakeReplicaLister(rt *Runtime) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rs, err := rt.Replicas(mux.Vars(r)["name"])
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, rs)
	}
}

// MakeSecretHandler lists, creates, updates and deletes secrets
// (/system/secrets).
func MakeSecretHandler(rt *Runtime) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			list, err := rt.Secrets()
			if err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, list)
			return
		}
		var s types.Secret
		if err := decode(r, &s); err != nil {
			writeError(w, err)
			return
		}
		var err error
		switch r.Method {
		case http.MethodPost:
			err = rt.PutSecret(s, true)
		case http.MethodPut:
			err = rt.PutSecret(s, false)
		case http.MethodDelete:
			err = rt.DeleteSecret(s.Name)
		default:
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}
}

// MakeLogHandler answers GET /system/logs: function logs are files here.
func MakeLogHandler(rt *Runtime) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "the local provider writes function logs to "+rt.cfg.StateDir+"/logs/NAME.log", http.StatusNotImplemented)
	}
}

// MakeHealthHandler answers GET /healthz.
func MakeHealthHandler() http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "OK")
	}
}

// MakeInfoHandler describes the provider (GET /system/info).
func MakeInfoHandler() http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, types.ProviderInfo{
			Name:          "optio-local",
			Orchestration: "process",
			Version:       &types.VersionInfo{Release: "dev", SHA: "local"},
		})
	}
}

// MakeNamespaceLister lists the one namespace (GET /system/namespaces).
func MakeNamespaceLister() http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, []string{Namespace})
	}
}
