// Command optio-stop serves the stop function locally, as the golang-http
// template and of-watchdog serve it in a container.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	function "optio.dev/functions/stop"
	"optio.dev/local/watchdog"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := watchdog.Serve(ctx, function.Handle); err != nil {
		slog.Error("optio-stop stopped", "error", err)
		os.Exit(1)
	}
}
