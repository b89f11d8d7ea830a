// Command optio-connector consumes Optio's jobs queue on RabbitMQ and
// invokes, through the OpenFaaS gateway, every function subscribed to the
// queue's topic (annotation "topic: optio.jobs"), acknowledging a message
// only once every such function answered 2xx. It builds its topic map with
// connector-sdk and keeps the last good one while the gateway is away, and
// it fires the functions annotated "topic: cron-function" on their
// "schedule" where no cron-connector is installed.
//
// Configuration is read from the environment; see Config.
package main

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	os.Exit(run())
}

func run() int {
	cfg, err := ReadConfig(os.Getenv)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	if err != nil {
		logger.Error("read configuration", "err", err)
		return 2
	}
	// connector-sdk logs every invocation with the standard logger: send
	// those lines to slog at debug level, or, below debug, to io.Discard,
	// which the standard logger recognises and then formats nothing: no
	// per-message work on the hot path.
	log.SetFlags(0)
	if logger.Enabled(context.Background(), slog.LevelDebug) {
		log.SetOutput(debugWriter{logger})
	} else {
		log.SetOutput(io.Discard)
	}
	// faas-provider's SDK, which connector-sdk's lookup builder uses,
	// ignores the client it is given and calls http.DefaultClient: bound it
	// so that a hung gateway cannot stall the topic refresh for ever.
	http.DefaultClient.Timeout = cfg.RefreshTimeout

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	logger.Info("starting", "queue", cfg.Shared.Queue, "gateway", cfg.Shared.GatewayURL,
		"prefetch", cfg.Prefetch, "cron", cfg.Cron, "health", cfg.HealthAddr)
	// Run keeps its own shutdown within the timeout; this only guards
	// against a part that does not return.
	context.AfterFunc(ctx, func() {
		time.AfterFunc(cfg.ShutdownTimeout, func() {
			logger.Error("shutdown did not finish within the timeout; exiting", "timeout", cfg.ShutdownTimeout)
			os.Exit(1)
		})
	})
	if err := New(cfg, logger).Run(ctx); err != nil {
		logger.Error("connector failed", "err", err)
		return 1
	}
	logger.Info("stopped")
	return 0
}

// debugWriter turns standard-logger lines into slog debug records.
type debugWriter struct{ log *slog.Logger }

func (w debugWriter) Write(p []byte) (int, error) {
	w.log.Debug(string(bytes.TrimSpace(p)), "source", "connector-sdk")
	return len(p), nil
}
