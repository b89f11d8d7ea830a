// Command optio-relay serves Optio's dashboard and pushes the current run's
// state from Redis to browsers over WebSocket. Configuration comes from the
// environment (see relay.Config); it stops gracefully on SIGINT or SIGTERM.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"optio.dev/web/dashboard"
	"optio.dev/web/relay"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "relay")
	if err := run(log); err != nil {
		log.Error("relay failed", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	cfg, err := relay.Read(os.Getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	cfg.Logger = log
	srv, err := relay.New(cfg, dashboard.Files())
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(os.Stderr, "Optio dashboard: http://%s/\n", cfg.Addr)
	return srv.Run(ctx)
}
