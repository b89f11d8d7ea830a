// Package watchdog serves one golang-http style function over HTTP, the way
// the OpenFaaS of-watchdog and the golang-http template serve it inside a
// container: every request becomes a handler.Request, the handler's
// handler.Response becomes the answer. It is the local stand-in for both, so
// a function binary is a tiny main that calls Serve.
//
// GET /_/health answers 200 once the server listens. Serve returns when its
// context ends, after the requests in flight have finished.
package watchdog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/openfaas/templates-sdk/go-http"
	"optio.dev/optio/config"
)

// HandleFunc is the signature of a golang-http function's Handle.
type HandleFunc func(handler.Request) (handler.Response, error)

// Config says how a function is served. The environment variable names are
// the ones of-watchdog reads, so stack.yml means the same here and on a
// cluster.
type Config struct {
	// Addr is the listen address, built from PORT. Default ":8080".
	Addr string
	// ReadTimeout bounds reading a request (read_timeout). Default 10s.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing an answer and is how long shutdown waits
	// for requests in flight (write_timeout). Default 10s.
	WriteTimeout time.Duration
	// ExecTimeout is the deadline of the context a handler gets
	// (exec_timeout); 0 means none. Default 10s.
	ExecTimeout time.Duration
	// MaxBodyBytes is the largest request body read into memory; a larger one
	// gets 400 (OPTIO_WATCHDOG_MAX_BODY). Default 1 MiB: no Optio function
	// takes more than 64 KiB, and each applies its own, smaller limit.
	MaxBodyBytes int64
	// Logger receives errors. Default slog.Default().
	Logger *slog.Logger
}

// ReadConfig reads Config from the environment.
func ReadConfig(env config.Getenv) (Config, error) {
	c := Config{Addr: ":8080", Logger: slog.Default()}
	if p := env("PORT"); p != "" {
		c.Addr = ":" + p
	}
	var err error
	if c.ReadTimeout, err = config.Timeout(env, "read_timeout", 10*time.Second); err != nil {
		return c, err
	}
	if c.WriteTimeout, err = config.Timeout(env, "write_timeout", 10*time.Second); err != nil {
		return c, err
	}
	if c.ExecTimeout, err = config.Timeout(env, "exec_timeout", 10*time.Second); err != nil {
		return c, err
	}
	n, err := config.Int(env, "OPTIO_WATCHDOG_MAX_BODY", 1<<20)
	if err != nil {
		return c, err
	}
	c.MaxBodyBytes = int64(n)
	return c, c.validate()
}

func (c Config) validate() error {
	if _, port, err := net.SplitHostPort(c.Addr); err != nil || port == "" {
		return fmt.Errorf("PORT: %q is not a port", c.Addr)
	}
	if c.ReadTimeout < 0 || c.WriteTimeout < 0 || c.ExecTimeout < 0 {
		return errors.New("read_timeout, write_timeout and exec_timeout must not be negative")
	}
	if c.MaxBodyBytes < 1 {
		return fmt.Errorf("OPTIO_WATCHDOG_MAX_BODY=%d must be positive", c.MaxBodyBytes)
	}
	return nil
}

// Serve reads Config from the environment and serves handle until ctx ends.
func Serve(ctx context.Context, handle HandleFunc) error {
	cfg, err := ReadConfig(os.Getenv)
	if err != nil {
		return fmt.Errorf("reading watchdog config: %w", err)
	}
	return cfg.Serve(ctx, handle)
}

// Serve listens on c.Addr and serves handle until ctx ends, then waits up to
// WriteTimeout for requests in flight.
func (c Config) Serve(ctx context.Context, handle HandleFunc) error {
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", c.Addr, err)
	}
	return c.ServeListener(ctx, ln, handle)
}

// ServeListener is Serve on a listener the caller opened (tests use it).
func (c Config) ServeListener(ctx context.Context, ln net.Listener, handle HandleFunc) error {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	srv := &http.Server{
		Handler:           c.Handler(handle),
		ReadTimeout:       c.ReadTimeout,
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      c.WriteTimeout,
		IdleTimeout:       2 * time.Minute,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serving function: %w", err)
	case <-ctx.Done():
	}
	grace := c.WriteTimeout
	if grace <= 0 {
		grace = 10 * time.Second
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("waiting for requests in flight: %w", err)
	}
	<-served
	return nil
}

// Handler is the HTTP side of Serve: health check and function calls.
func (c Config) Handler(handle HandleFunc) http.Handler {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_/health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "OK")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { c.call(w, r, handle) })
	return mux
}

func (c Config) call(w http.ResponseWriter, r *http.Request, handle HandleFunc) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, c.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			// 400 like every other bad body of Optio's API (PRODUCT.md).
			jsonError(w, http.StatusBadRequest, fmt.Sprintf("request body larger than %d bytes", tooBig.Limit))
			return
		}
		jsonError(w, http.StatusBadRequest, "reading request body: "+err.Error())
		return
	}
	ctx := r.Context()
	if c.ExecTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.ExecTimeout)
		defer cancel()
	}
	req := handler.Request{
		Body:        body,
		Header:      r.Header,
		QueryString: r.URL.RawQuery,
		Method:      r.Method,
		Host:        r.Host,
	}
	req.WithContext(ctx)

	res, err := c.invoke(handle, req)
	for k, v := range res.Header {
		w.Header()[k] = v
	}
	status := res.StatusCode
	if err != nil {
		c.Logger.Error("function failed", "error", err)
		status = http.StatusInternalServerError
		if len(res.Body) == 0 {
			res.Body = []byte(err.Error())
		}
	}
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = w.Write(res.Body)
}

// jsonError answers status with {"error": msg}, as the functions do.
func jsonError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(map[string]string{"error": msg})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// invoke calls handle, turning a panic into an error so one bad request does
// not take the replica down.
func (c Config) invoke(handle HandleFunc, req handler.Request) (res handler.Response, err error) {
	defer func() {
		if p := recover(); p != nil {
			res, err = handler.Response{}, fmt.Errorf("function panicked: %v", p)
		}
	}()
	return handle(req)
}
