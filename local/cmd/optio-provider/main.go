// Command optio-provider is the local OpenFaaS provider: it runs deployed
// functions as local processes behind the OpenFaaS gateway.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"optio.dev/local/provider"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	slog.SetDefault(log)
	cfg, err := provider.ReadConfig(os.Getenv)
	if err != nil {
		log.Error("reading provider config", "error", err)
		os.Exit(2)
	}
	cfg.Logger = log
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := provider.Run(ctx, cfg); err != nil {
		log.Error("provider stopped", "error", err)
		os.Exit(1)
	}
}
