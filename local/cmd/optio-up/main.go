// Command optio-up runs the whole product on this machine in the foreground
// (`make up`): Redis and RabbitMQ, the esstore or ES_URL, Prometheus, the
// local provider, the OpenFaaS gateway with the functions of stack.yml, the
// connector and the relay. Ctrl-C stops all of it.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"optio.dev/local/supervisor"
)

const usage = `usage: optio-up (usually through make up)

Runs the whole product here in the foreground; Ctrl-C stops all of it.
It takes no arguments; it reads its settings from the environment
(OPTIO_BIN_DIR, OPTIO_STATE_DIR, OPTIO_STACK_FILE, ES_URL, REDIS_URL,
AMQP_URL, OPTIO_GATEWAY_PASSWORD, ...: README.md, "Configure it").
`

func main() {
	if code, done := helpOnly(os.Args[1:], os.Stderr); done {
		os.Exit(code)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg, err := supervisor.ReadConfig(os.Environ())
	if err != nil {
		log.Error("reading config", "error", err)
		os.Exit(2)
	}
	cfg.Logger = log
	cfg.Output = os.Stderr

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := supervisor.Start(ctx, cfg)
	if err != nil {
		log.Error("optio-up could not start the stack", "error", err)
		os.Exit(1)
	}
	creds := st.Credentials()
	fmt.Printf("\nOptio is up.\n  dashboard: %s\n  gateway:   %s\n  logs:      %s/logs\n"+
		"  gateway /system API: user %s, password %s (kept in %s, mode 0600)\nCtrl-C stops everything.\n\n",
		supervisor.DashboardURL, st.GatewayURL(), cfg.StateDir, creds.User, creds.Password, creds.Dir)
	<-ctx.Done()
	stop() // a second Ctrl-C ends optio-up at once; its children get SIGTERM
	fmt.Println("\nstopping…")
	st.Stop()
}

// helpOnly handles a command line: optio-up has no flags, so anything on it
// is a request for help (exit 0 for -h and the like, 2 otherwise), never a
// reason to start the stack.
func helpOnly(args []string, w io.Writer) (code int, done bool) {
	if len(args) == 0 {
		return 0, false
	}
	fmt.Fprint(w, usage)
	switch args[0] {
	case "-h", "-help", "--help", "help":
		return 0, true
	}
	return 2, true
}
