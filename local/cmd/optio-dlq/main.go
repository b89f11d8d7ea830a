// Command optio-dlq shows and requeues the jobs in Optio's dead-letter queue
// (OPTIO_QUEUE + ".dead", where a job lands after OPTIO_DELIVERY_LIMIT failed
// deliveries and is counted as failed):
//
//	optio-dlq list    [-run ID] [-limit N] [-json]   # show them, leave them there
//	optio-dlq requeue [-run ID] [-limit N]           # put them back on the jobs queue
//
// A requeued job is marked as a retry: process works on it again with a
// fresh delivery limit, and a job that was counted as failed moves to
// processed when it succeeds (jobs of a stopped run stay failed). It reads
// AMQP_URL, OPTIO_QUEUE and OPTIO_DELIVERY_LIMIT like every Optio process.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"optio.dev/optio/config"
	"optio.dev/optio/queue"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	usage := func() {
		fmt.Fprintln(stderr, "usage: optio-dlq list|requeue [-run ID] [-limit N] [-json]")
	}
	if len(args) == 0 || (args[0] != "list" && args[0] != "requeue") {
		usage()
		return 2
	}
	fs := flag.NewFlagSet("optio-dlq "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	runID := fs.String("run", "", "only the jobs of this run")
	limit := fs.Int("limit", 100_000, "at most this many messages")
	asJSON := fs.Bool("json", false, "list as JSON lines")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	cfg, err := config.Read(os.Getenv)
	if err != nil {
		fmt.Fprintln(stderr, "optio-dlq:", err)
		return 2
	}
	top := queue.Topology{Jobs: cfg.Queue, DeliveryLimit: cfg.DeliveryLimit}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	keep := func(j queue.Job) bool { return *runID == "" || j.RunID == *runID }

	if args[0] == "requeue" {
		n, err := queue.RequeueDead(ctx, cfg.AMQPURL, top, *limit, keep)
		fmt.Fprintf(stdout, "requeued %d jobs from %s to %s\n", n, top.Dead(), top.Jobs)
		if err != nil {
			fmt.Fprintln(stderr, "optio-dlq:", err)
			return 1
		}
		return 0
	}
	all, err := queue.ListDead(ctx, cfg.AMQPURL, top, *limit)
	if err != nil {
		fmt.Fprintln(stderr, "optio-dlq:", err)
		return 1
	}
	shown := 0
	enc := json.NewEncoder(stdout)
	for _, d := range all {
		if !d.Bad && !keep(d.Job) {
			continue
		}
		shown++
		switch {
		case *asJSON:
			_ = enc.Encode(d)
		case d.Bad:
			fmt.Fprintf(stdout, "not a job  %q\n", d.Body)
		default:
			fmt.Fprintf(stdout, "%s  job %d  released %s  %s\n", d.Job.RunID, d.Job.JobID,
				d.Job.ReleasedAt.Format("2006-01-02T15:04:05Z07:00"), d.Reason)
		}
	}
	if !*asJSON {
		fmt.Fprintf(stdout, "%d dead-lettered jobs in %s\n", shown, top.Dead())
	}
	return 0
}
