// Command optio-bench measures Optio end to end on the local runtime, side
// by side in one invocation with the floor of this machine (the same path to
// a function that does nothing, and a direct consumer doing the same per-job
// work with no HTTP hop) and with Asynq doing the same work on the same
// Redis. It writes bench/results/latest.json and prints a Markdown table.
//
// It starts its own stacks with optio.dev/local/supervisor (one per setting,
// one after another, each under the gateway lock), on its own Redis prefix,
// queue and index, and stops them when done.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg, err := readConfig(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "optio-bench:", err)
		os.Exit(2)
	}
	if err := benchmark(ctx, cfg, log); err != nil {
		fmt.Fprintln(os.Stderr, "optio-bench:", err)
		os.Exit(1)
	}
}
