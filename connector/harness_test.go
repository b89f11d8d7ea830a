package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"optio.dev/optio/config"
	"optio.dev/optio/queue"
)

func TestMain(m *testing.M) {
	// connector-sdk logs every invocation with the standard logger
	log.SetOutput(io.Discard)
	code := m.Run()
	http.DefaultClient.CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func amqpURL() string {
	if u := os.Getenv("AMQP_URL"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

// harness is one connector against the real RabbitMQ, on queues of its
// own, and a fake gateway.
type harness struct {
	t    testing.TB
	gw   *fakeGateway
	cfg  Config
	top  queue.Topology
	ch   *amqp.Channel // the test's own channel, to publish and inspect
	c    *Connector
	stop context.CancelFunc
	done chan error
}

// newHarness builds a connector whose environment is the test defaults
// overridden by env; start runs it.
func newHarness(t testing.TB, gw *fakeGateway, env map[string]string) *harness {
	t.Helper()
	vars := map[string]string{
		"AMQP_URL":                   amqpURL(),
		"OPTIO_QUEUE":                "test.connector." + strings.ReplaceAll(t.Name(), "/", ".") + "." + randomHex(4),
		"OPTIO_GATEWAY_URL":          gw.URL(),
		"OPTIO_SECRETS_DIR":          t.TempDir(),
		"OPTIO_DELIVERY_LIMIT":       "20",
		"CONNECTOR_PREFETCH":         "4",
		"CONNECTOR_REFRESH":          "100ms",
		"CONNECTOR_BACKOFF":          "20ms",
		"CONNECTOR_BACKOFF_MAX":      "200ms",
		"CONNECTOR_RETRY_DELAY":      "5ms",
		"CONNECTOR_INVOKE_TIMEOUT":   "5s",
		"CONNECTOR_SHUTDOWN_TIMEOUT": "10s",
		"CONNECTOR_CRON":             "false",
		"CONNECTOR_HEALTH_ADDR":      "off",
	}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := ReadConfig(config.Map(vars))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	h := &harness{t: t, gw: gw, cfg: cfg, top: queue.Topology{Jobs: cfg.Shared.Queue, DeliveryLimit: cfg.Shared.DeliveryLimit}}

	conn, err := amqp.Dial(cfg.Shared.AMQPURL)
	if err != nil {
		t.Fatalf("RabbitMQ is needed at %s: %v", cfg.Shared.AMQPURL, err)
	}
	h.ch, err = conn.Channel()
	if err != nil {
		t.Fatalf("open channel: %v", err)
	}
	if err := h.top.Declare(h.ch); err != nil {
		t.Fatalf("declare: %v", err)
	}
	t.Cleanup(func() {
		_, _ = h.ch.QueueDelete(h.top.Jobs, false, false, false)
		_, _ = h.ch.QueueDelete(h.top.Dead(), false, false, false)
		_ = conn.Close()
	})
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.c = New(cfg, logger.With("test", t.Name()))
	return h
}

// start runs the connector until the test ends (or stop).
func (h *harness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.stop, h.done = cancel, make(chan error, 1)
	go func() { h.done <- h.c.Run(ctx) }()
	h.t.Cleanup(func() {
		cancel()
		if err := <-h.done; err != nil {
			h.t.Errorf("connector: %v", err)
		}
	})
}

// shutdown stops the connector as SIGTERM would and returns Run's result.
func (h *harness) shutdown() error {
	h.stop()
	err := <-h.done
	h.done <- err // for the cleanup
	return err
}

// publish sends n persistent messages and returns their ids.
func (h *harness) publish(n int) []string {
	h.t.Helper()
	ids := make([]string, n)
	for i := range ids {
		j := queue.Job{RunID: "r-" + randomHex(3), JobID: int64(i), ReleasedAt: time.Now().UTC()}
		ids[i] = fmt.Sprintf("%s/%d", j.RunID, j.JobID)
		err := h.ch.PublishWithContext(context.Background(), "", h.top.Jobs, false, false, amqp.Publishing{
			ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: ids[i], Body: j.Encode(),
		})
		if err != nil {
			h.t.Fatalf("publish: %v", err)
		}
	}
	return ids
}

// queueState is the jobs queue's ready messages and consumers.
func (h *harness) queueState() (ready, consumers int) {
	h.t.Helper()
	q, err := h.ch.QueueDeclarePassive(h.top.Jobs, true, false, false, false, nil)
	if err != nil {
		h.t.Fatalf("inspect %s: %v", h.top.Jobs, err)
	}
	return q.Messages, q.Consumers
}

// dead takes one message off the dead-letter queue, if any.
func (h *harness) dead() (amqp.Delivery, bool) {
	h.t.Helper()
	d, ok, err := h.ch.Get(h.top.Dead(), true)
	if err != nil {
		h.t.Fatalf("get from %s: %v", h.top.Dead(), err)
	}
	return d, ok
}

// eventually polls cond until it holds, failing the test after a generous
// deadline (not a timing assertion: it only bounds a hung test).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// closeConnection has the broker close the connector's connection, as
// `rabbitmqctl close_all_connections` would, but only this test's one.
func (h *harness) closeConnection() {
	h.t.Helper()
	h.c.Consumer.connMu.Lock()
	conn := h.c.Consumer.conn
	h.c.Consumer.connMu.Unlock()
	if conn == nil {
		h.t.Fatal("connector has no connection to close")
	}
	local := conn.LocalAddr().String()
	out, err := exec.Command("rabbitmqctl", "-q", "list_connections", "--no-table-headers", "pid", "name").CombinedOutput()
	if err != nil {
		h.t.Fatalf("rabbitmqctl list_connections (needed to close a connection from the broker): %v: %s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		pid, name, ok := strings.Cut(strings.TrimSpace(line), "\t")
		if ok && strings.HasPrefix(name, local+" ->") {
			if out, err := exec.Command("rabbitmqctl", "close_connection", pid, "test").CombinedOutput(); err != nil {
				h.t.Fatalf("rabbitmqctl close_connection: %v: %s", err, out)
			}
			return
		}
	}
	h.t.Fatalf("connection from %s not listed by rabbitmqctl:\n%s", local, out)
}
