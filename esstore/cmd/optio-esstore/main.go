// Command optio-esstore runs the local Elasticsearch-compatible store, a
// stand-in for Elasticsearch (see package optio.dev/esstore).
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"optio.dev/esstore"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg, err := esstore.ReadConfig(os.Getenv)
	if err != nil {
		log.Error("bad configuration", "err", err)
		os.Exit(2)
	}
	cfg.Logger = log
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := esstore.Run(ctx, cfg, nil); err != nil {
		log.Error("optio-esstore failed", "err", err)
		os.Exit(1)
	}
}
