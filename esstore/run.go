package esstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Run opens the store, serves it on cfg.Addr until ctx ends, then shuts the
// server down gracefully and closes the database. ready, when not nil, is
// called with the listening address once requests are accepted.
func Run(ctx context.Context, cfg Config, ready func(addr string)) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	store, err := Open(cfg.DataDir, StoreOptions{BatchDelay: cfg.BatchDelay, BatchSize: cfg.BatchSize})
	if err != nil {
		return err
	}
	defer store.Close()
	h, err := NewHandler(store, log, cfg.Faults)
	if err != nil {
		return fmt.Errorf("setting up faults: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("optio-esstore listening (a stand-in for Elasticsearch)", "addr", ln.Addr().String(), "data", cfg.DataDir, "version", Version)
	if len(cfg.Faults) > 0 {
		log.Warn("fault injection active (test aid)", "faults", len(cfg.Faults))
	}
	if ready != nil {
		ready(ln.Addr().String())
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutting down: %w", err)
	}
	<-served
	log.Info("optio-esstore stopped")
	return nil
}
