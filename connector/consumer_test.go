package main

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// subscriber is a function of the fake gateway subscribed to the harness's
// queue; topic is the queue name.
func subscriber(name, topic string, handle func(w http.ResponseWriter, r *http.Request)) fakeFunction {
	return fakeFunction{Name: name, Annotations: map[string]string{"topic": topic}, Handle: handle}
}

// failFirst answers fail to the first n invocations, then 200.
func failFirst(n int64, fail func(w http.ResponseWriter, r *http.Request)) func(w http.ResponseWriter, r *http.Request) {
	var seen atomic.Int64
	return func(w http.ResponseWriter, r *http.Request) {
		if seen.Add(1) <= n {
			fail(w, r)
			return
		}
		w.WriteHeader(http.StatusOK)
	}
}

func TestDelivery(t *testing.T) {
	t.Parallel()
	status500 := func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	}
	hang := func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // until the connector gives up
	}
	tests := []struct {
		name       string
		handle     func(w http.ResponseWriter, r *http.Request)
		wantCounts []string // X-Delivery-Count of each invocation
	}{
		{"2xx acks", nil, []string{"0"}},
		{"500 requeues", failFirst(1, status500), []string{"0", "1"}},
		{"404 requeues", failFirst(2, http.NotFound), []string{"0", "1", "2"}},
		{"timeout requeues", failFirst(1, hang), []string{"0", "1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			gw := newFakeGateway(t)
			gw.user, gw.password = "admin", "secret" // /system needs the credentials
			h := newHarness(t, gw, map[string]string{
				"CONNECTOR_INVOKE_TIMEOUT": "300ms",
				"OPENFAAS_USER":            "admin",
				"OPENFAAS_PASSWORD":        "secret",
			})
			gw.set(subscriber("process", h.cfg.Topic(), tt.handle))
			h.start()
			ids := h.publish(1)

			eventually(t, "the message is acked", func() bool { return testutil.ToFloat64(h.c.Metrics.Acked) == 1 })
			calls := gw.callsTo("process")
			if len(calls) != len(tt.wantCounts) {
				t.Fatalf("invocations = %d, want %d", len(calls), len(tt.wantCounts))
			}
			for i, c := range calls {
				for k, want := range map[string]string{
					"X-Delivery-Count": tt.wantCounts[i], "X-Message-Id": ids[0], "X-Topic": h.cfg.Topic(),
					"Content-Type": "application/json",
				} {
					if got := c.Header.Get(k); got != want {
						t.Errorf("invocation %d: %s = %q, want %q", i, k, got, want)
					}
				}
				if c.Body == "" {
					t.Errorf("invocation %d: empty body", i)
				}
			}
			if got, want := testutil.ToFloat64(h.c.Metrics.Requeued), float64(len(tt.wantCounts)-1); got != want {
				t.Errorf("requeued = %v, want %v", got, want)
			}
			if ready, _ := h.queueState(); ready != 0 {
				t.Errorf("ready messages = %d, want 0", ready)
			}
		})
	}
}

func TestDeadLetterAfterDeliveryLimit(t *testing.T) {
	t.Parallel()
	gw := newFakeGateway(t)
	h := newHarness(t, gw, map[string]string{"OPTIO_DELIVERY_LIMIT": "2"})
	gw.set(subscriber("process", h.cfg.Topic(), func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "always failing", http.StatusInternalServerError)
	}))
	h.start()
	ids := h.publish(1)

	var got string
	eventually(t, "the message reaches "+h.top.Dead(), func() bool {
		d, ok := h.dead()
		got = d.MessageId
		return ok
	})
	if got != ids[0] {
		t.Errorf("dead-lettered message id = %q, want %q", got, ids[0])
	}
	if n := len(gw.callsTo("process")); n < 2 {
		t.Errorf("invocations before dead-lettering = %d, want at least the delivery limit 2", n)
	}
	if acked := testutil.ToFloat64(h.c.Metrics.Acked); acked != 0 {
		t.Errorf("acked = %v, want 0", acked)
	}
}

func TestNoSubscriberHoldsMessages(t *testing.T) {
	t.Parallel()
	gw := newFakeGateway(t, fakeFunction{Name: "other", Annotations: map[string]string{"topic": "elsewhere"}})
	h := newHarness(t, gw, map[string]string{"OPTIO_DELIVERY_LIMIT": "1"})
	h.start()
	ids := h.publish(2)

	// Several refreshes with the messages delivered and nobody subscribed.
	eventually(t, "the connector consumes", h.c.Consumer.Consuming)
	eventually(t, "five topic refreshes", func() bool {
		return testutil.ToFloat64(h.c.Metrics.Refreshes.WithLabelValues("ok")) >= 5
	})
	if n := len(gw.callsTo("other")); n != 0 {
		t.Fatalf("a function of another topic was invoked %d times", n)
	}
	if d, ok := h.dead(); ok {
		t.Fatalf("message %s dead-lettered while nobody subscribed", d.MessageId)
	}
	if n := testutil.ToFloat64(h.c.Metrics.Requeued); n != 0 {
		t.Fatalf("requeued %v times while nobody subscribed, spending the delivery limit", n)
	}

	gw.set(subscriber("process", h.cfg.Topic(), nil))
	eventually(t, "both messages are acked", func() bool { return testutil.ToFloat64(h.c.Metrics.Acked) == 2 })
	seen := map[string]bool{}
	for _, c := range gw.callsTo("process") {
		seen[c.Header.Get("X-Message-Id")] = true
		if got := c.Header.Get("X-Delivery-Count"); got != "0" {
			t.Errorf("X-Delivery-Count = %q, want 0: holding spent a delivery", got)
		}
	}
	for _, id := range ids {
		if !seen[id] {
			t.Errorf("message %s never invoked", id)
		}
	}
}

func TestGatewayOutage(t *testing.T) {
	t.Parallel()
	t.Run("system API down keeps the last topic map", func(t *testing.T) {
		t.Parallel()
		gw := newFakeGateway(t)
		h := newHarness(t, gw, nil)
		gw.set(subscriber("process", h.cfg.Topic(), nil))
		h.start()
		eventually(t, "the topic map has the subscriber", func() bool {
			snap, _ := h.c.Topics.Watch()
			return len(snap.Lookup[h.cfg.Topic()]) == 1
		})

		gw.systemDown.Store(true)
		before := testutil.ToFloat64(h.c.Metrics.Refreshes.WithLabelValues("error"))
		eventually(t, "three failed refreshes", func() bool {
			return testutil.ToFloat64(h.c.Metrics.Refreshes.WithLabelValues("error")) >= before+3
		})
		snap, _ := h.c.Topics.Watch()
		if got := snap.Lookup[h.cfg.Topic()]; len(got) != 1 || got[0] != "process" {
			t.Fatalf("subscribers during the outage = %v, want [process]", got)
		}
		h.publish(3)
		eventually(t, "messages are acked during the outage", func() bool {
			return testutil.ToFloat64(h.c.Metrics.Acked) == 3
		})
	})
	t.Run("unreachable gateway holds messages without spending deliveries", func(t *testing.T) {
		t.Parallel()
		gw := newFakeGateway(t)
		h := newHarness(t, gw, map[string]string{"OPTIO_DELIVERY_LIMIT": "1"})
		gw.set(subscriber("process", h.cfg.Topic(), nil))
		h.start()
		eventually(t, "the topic map has the subscriber", func() bool {
			snap, _ := h.c.Topics.Watch()
			return len(snap.Lookup[h.cfg.Topic()]) == 1
		})
		eventually(t, "the connector consumes", h.c.Consumer.Consuming)

		gw.down()
		h.publish(2)
		eventually(t, "several invocation attempts fail", func() bool {
			return testutil.CollectAndCount(h.c.Metrics.Invocations) > 0 &&
				histogramCount(t, h, "process", "error") >= 4
		})
		if n := testutil.ToFloat64(h.c.Metrics.Requeued); n != 0 {
			t.Fatalf("requeued %v while the gateway was unreachable", n)
		}
		gw.up()
		eventually(t, "both messages are acked", func() bool { return testutil.ToFloat64(h.c.Metrics.Acked) == 2 })
		for _, c := range gw.callsTo("process") {
			if got := c.Header.Get("X-Delivery-Count"); got != "0" {
				t.Errorf("X-Delivery-Count = %q, want 0", got)
			}
		}
		if d, ok := h.dead(); ok {
			t.Errorf("message %s dead-lettered", d.MessageId)
		}
	})
}

// histogramCount is how many invocations of fn ended with outcome.
func histogramCount(t *testing.T, h *harness, fn, outcome string) uint64 {
	t.Helper()
	m, err := h.c.Metrics.Registry.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range m {
		if f.GetName() != "optio_connector_invocation_duration_seconds" {
			continue
		}
		for _, s := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["function"] == fn && labels["outcome"] == outcome {
				return s.GetHistogram().GetSampleCount()
			}
		}
	}
	return 0
}

func TestPrefetchBoundsConcurrency(t *testing.T) {
	t.Parallel()
	const prefetch, messages = 3, 30
	gw := newFakeGateway(t)
	h := newHarness(t, gw, map[string]string{"CONNECTOR_PREFETCH": "3"})
	gw.set(subscriber("process", h.cfg.Topic(), func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond) // let invocations overlap
	}))
	h.publish(messages)
	h.start()
	eventually(t, "every message is acked", func() bool {
		return testutil.ToFloat64(h.c.Metrics.Acked) == messages
	})
	if got := gw.maxInflight.Load(); got > prefetch {
		t.Errorf("at most %d invocations were in flight at once, want at most the prefetch %d", got, prefetch)
	}
	t.Logf("peak concurrency %d of prefetch %d", gw.maxInflight.Load(), prefetch)
	// keep-alive: connections are reused, not opened per message
	if n := gw.conns.Load(); n > prefetch+2 { // + the topic refresh's
		t.Errorf("%d connections to the gateway for %d messages, want at most %d", n, messages, prefetch+2)
	}
}

func TestReconnectAfterBrokerClosesConnection(t *testing.T) {
	t.Parallel()
	gw := newFakeGateway(t)
	h := newHarness(t, gw, nil)
	gw.set(subscriber("process", h.cfg.Topic(), nil))
	h.start()
	h.publish(1)
	eventually(t, "the first message is acked", func() bool { return testutil.ToFloat64(h.c.Metrics.Acked) == 1 })

	h.closeConnection()
	eventually(t, "the connector reconnects", func() bool {
		return testutil.ToFloat64(h.c.Metrics.Reconnects) >= 1 && h.c.Consumer.Consuming()
	})
	h.publish(2)
	eventually(t, "the later messages are acked", func() bool { return testutil.ToFloat64(h.c.Metrics.Acked) == 3 })
}

func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	t.Run("finishes in-flight invocations", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		gw := newFakeGateway(t)
		h := newHarness(t, gw, map[string]string{"CONNECTOR_PREFETCH": "3"})
		gw.set(subscriber("process", h.cfg.Topic(), func(w http.ResponseWriter, r *http.Request) {
			<-release
		}))
		h.publish(5)
		h.start()
		eventually(t, "three invocations in flight", func() bool { return gw.inflight.Load() == 3 })

		result := make(chan error, 1)
		go func() { result <- h.shutdown() }()
		// basic.cancel comes first (quorum queues still count a cancelled
		// consumer until its messages are settled, so ask the connector)
		eventually(t, "the consumer is cancelled", func() bool { return !h.c.Consumer.Consuming() })
		select {
		case err := <-result:
			t.Fatalf("Run returned (%v) before its in-flight invocations finished", err)
		default:
		}
		close(release)
		if err := <-result; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if got := testutil.ToFloat64(h.c.Metrics.Acked); got != 3 {
			t.Errorf("acked = %v, want the 3 in flight", got)
		}
		if ready, _ := h.queueState(); ready != 2 {
			t.Errorf("ready messages = %d, want the 2 never started", ready)
		}
		if n := len(gw.callsTo("process")); n != 3 {
			t.Errorf("invocations = %d, want 3", n)
		}
	})
	t.Run("requeues what outlives the shutdown timeout", func(t *testing.T) {
		t.Parallel()
		gw := newFakeGateway(t)
		h := newHarness(t, gw, map[string]string{
			"CONNECTOR_PREFETCH":         "3",
			"CONNECTOR_SHUTDOWN_TIMEOUT": "200ms",
			"CONNECTOR_INVOKE_TIMEOUT":   "1m",
		})
		gw.set(subscriber("process", h.cfg.Topic(), func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		}))
		h.publish(5)
		h.start()
		eventually(t, "three invocations in flight", func() bool { return gw.inflight.Load() == 3 })
		if err := h.shutdown(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if got := testutil.ToFloat64(h.c.Metrics.Acked); got != 0 {
			t.Errorf("acked = %v, want 0", got)
		}
		eventually(t, "all five messages are back in the queue", func() bool {
			ready, _ := h.queueState()
			return ready == 5
		})
	})
}

// BenchmarkThroughput measures messages acked per second through a fake
// gateway that answers at once: the connector's own overhead.
func BenchmarkThroughput(b *testing.B) {
	gw := newFakeGateway(b)
	h := newHarness(b, gw, map[string]string{"CONNECTOR_PREFETCH": "64", "OPTIO_DELIVERY_LIMIT": "5"})
	gw.set(subscriber("process", h.cfg.Topic(), nil))
	h.start()
	eventually(b, "the topic map has the subscriber", func() bool {
		snap, _ := h.c.Topics.Watch()
		return len(snap.Lookup[h.cfg.Topic()]) == 1
	})
	b.ResetTimer()
	h.publish(b.N)
	eventually(b, "every message is acked", func() bool { return testutil.ToFloat64(h.c.Metrics.Acked) == float64(b.N) })
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(gw.conns.Load()), "conns")
}
