package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"optio.dev/optio/config"
)

func TestTopicsRefresh(t *testing.T) {
	t.Parallel()
	fns := []fakeFunction{
		{Name: "process", Annotations: map[string]string{"topic": "optio.jobs"}},
		{Name: "audit", Annotations: map[string]string{"topic": "optio.jobs,audit"}},
		{Name: "schedule", Annotations: map[string]string{"topic": "cron-function", "schedule": "* * * * *"}},
		{Name: "status"},
	}
	tests := []struct {
		name       string
		namespaces []string
		want       Snapshot
	}{
		{"no namespaces", nil, Snapshot{
			Lookup:    map[string][]string{"optio.jobs": {"audit", "process"}, "audit": {"audit"}, "cron-function": {"schedule"}},
			Schedules: map[string]string{"schedule": "* * * * *"},
		}},
		{"namespaced", []string{"openfaas-fn"}, Snapshot{
			Lookup: map[string][]string{
				"optio.jobs": {"audit.openfaas-fn", "process.openfaas-fn"}, "audit": {"audit.openfaas-fn"},
				"cron-function": {"schedule.openfaas-fn"},
			},
			Schedules: map[string]string{"schedule.openfaas-fn": "* * * * *"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			gw := newFakeGateway(t, fns...)
			gw.namespaces = tt.namespaces
			gw.user, gw.password = "admin", "pw"
			cfg, err := ReadConfig(config.Map(map[string]string{
				"OPTIO_GATEWAY_URL": gw.URL(), "OPENFAAS_USER": "admin", "OPENFAAS_PASSWORD": "pw",
				"OPTIO_SECRETS_DIR": t.TempDir(),
			}))
			if err != nil {
				t.Fatal(err)
			}
			m := NewMetrics()
			top := NewTopics(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), m, &http.Client{Timeout: 5 * time.Second})
			_, changed := top.Watch()
			top.Refresh(context.Background())
			got, _ := top.Watch()
			if diff := cmp.Diff(tt.want, got, cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "At" }, cmp.Ignore())); diff != "" {
				t.Errorf("snapshot (-want +got):\n%s", diff)
			}
			select {
			case <-changed:
			default:
				t.Error("Watch channel not closed by a change")
			}
			if diff := cmp.Diff(tt.want.Lookup["optio.jobs"], top.Map().Match("optio.jobs")); diff != "" {
				t.Errorf("connector-sdk topic map (-want +got):\n%s", diff)
			}
			if got := testutil.ToFloat64(m.Topics); got != 3 {
				t.Errorf("topic map size = %v, want 3", got)
			}

			// The same functions again: no change to announce.
			_, changed = top.Watch()
			top.Refresh(context.Background())
			select {
			case <-changed:
				t.Error("Watch channel closed without a change")
			default:
			}

			// Gateway refuses the credentials: the last map stays.
			gw.password = "rotated"
			top.Refresh(context.Background())
			if got, _ := top.Watch(); len(got.Lookup["optio.jobs"]) != 2 {
				t.Errorf("after a failed refresh, subscribers = %v, want the last good ones", got.Lookup["optio.jobs"])
			}
			if got := testutil.ToFloat64(m.Refreshes.WithLabelValues("error")); got != 1 {
				t.Errorf("failed refreshes = %v, want 1", got)
			}
		})
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	gw := newFakeGateway(t)
	h := newHarness(t, gw, nil)
	gw.set(subscriber("process", h.cfg.Topic(), nil))
	hl := &Health{Metrics: h.c.Metrics, Consumer: h.c.Consumer, Topics: h.c.Topics}
	srv := httptest.NewServer(hl.Handler())
	defer srv.Close()
	get := func(path string) (int, string) {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("before consuming: /healthz = %d %s, want 503", code, body)
	}
	h.start()
	eventually(t, "the connector consumes", h.c.Consumer.Consuming)
	eventually(t, "the subscriber is known", func() bool {
		_, body := get("/healthz")
		return strings.Contains(body, `"subscribers":["process"]`)
	})
	if code, body := get("/healthz"); code != http.StatusOK {
		t.Errorf("consuming: /healthz = %d %s, want 200", code, body)
	}
	h.publish(1)
	eventually(t, "the message is acked", func() bool { return testutil.ToFloat64(h.c.Metrics.Acked) == 1 })
	_, body := get("/metrics")
	for _, want := range []string{
		"optio_connector_messages_acked_total 1", "optio_connector_messages_requeued_total 0",
		"optio_connector_inflight 0", "optio_connector_topic_map_size 1",
		`optio_connector_invocation_duration_seconds_count{function="process",outcome="2xx"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	b := backoff{base: 100 * time.Millisecond, max: time.Second}
	for i, step := range []time.Duration{100, 200, 400, 800, 1000, 1000, 1000} {
		step *= time.Millisecond
		if d := b.next(); d < step/2 || d > step {
			t.Errorf("wait %d = %v, want between %v and %v", i, d, step/2, step)
		}
	}
	b.reset()
	if d := b.next(); d > 100*time.Millisecond {
		t.Errorf("after reset, wait = %v, want at most 100ms", d)
	}
}

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		base  time.Duration
		count int64
		want  time.Duration
	}{
		{0, 3, 0},
		{200 * time.Millisecond, 0, 200 * time.Millisecond},
		{200 * time.Millisecond, 2, 800 * time.Millisecond},
		{200 * time.Millisecond, 5, 6 * time.Second},
		{200 * time.Millisecond, 100, 6 * time.Second},
	}
	for _, tt := range tests {
		if got := retryDelay(tt.base, tt.count); got != tt.want {
			t.Errorf("retryDelay(%v, %d) = %v, want %v", tt.base, tt.count, got, tt.want)
		}
	}
}
