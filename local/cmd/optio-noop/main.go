// Command optio-noop is a function that answers 200 at once, for benchmarks
// of the gateway, the provider and the watchdog.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/openfaas/templates-sdk/go-http"
	"optio.dev/local/watchdog"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	handle := func(handler.Request) (handler.Response, error) {
		return handler.Response{StatusCode: 200, Body: []byte("ok")}, nil
	}
	if err := watchdog.Serve(ctx, handle); err != nil {
		slog.Error("optio-noop stopped", "error", err)
		os.Exit(1)
	}
}
