package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the connector's Prometheus series, on a registry of their own
// (never the global one) so that tests can build as many as they like.
type Metrics struct {
	Registry *prometheus.Registry

	Acked       prometheus.Counter
	Requeued    prometheus.Counter
	Invocations *prometheus.HistogramVec
	InFlight    prometheus.Gauge
	Topics      prometheus.Gauge
	Refreshes   *prometheus.CounterVec
	Reconnects  prometheus.Counter
	CronFirings *prometheus.CounterVec
}

// NewMetrics registers the series on a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Acked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "optio_connector_messages_acked_total",
			Help: "Messages acknowledged after every subscribed function answered 2xx.",
		}),
		Requeued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "optio_connector_messages_requeued_total",
			Help: "Messages handed back to the queue (nack with requeue) after a failure, a timeout or at shutdown.",
		}),
		Invocations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "optio_connector_invocation_duration_seconds",
			Help:    "Duration of function invocations through the gateway, by function and outcome (2xx, 4xx, 5xx, error).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 180},
		}, []string{"function", "outcome"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "optio_connector_inflight",
			Help: "Messages being invoked right now (at most the prefetch).",
		}),
		Topics: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "optio_connector_topic_map_size",
			Help: "Topics in the last good topic map.",
		}),
		Refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "optio_connector_topic_refreshes_total",
			Help: "Topic map rebuilds, by result (ok, error).",
		}, []string{"result"}),
		Reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "optio_connector_amqp_reconnects_total",
			Help: "Times the connector lost RabbitMQ and connected again.",
		}),
		CronFirings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "optio_connector_cron_invocations_total",
			Help: "Cron invocations, by function and outcome (2xx, 4xx, 5xx, error).",
		}, []string{"function", "outcome"}),
	}
	m.Registry.MustRegister(m.Acked, m.Requeued, m.Invocations, m.InFlight, m.Topics,
		m.Refreshes, m.Reconnects, m.CronFirings,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// outcome names an invocation's result for the metrics.
func outcome(status int, err error) string {
	switch {
	case err != nil:
		return "error"
	case status >= 200 && status < 300:
		return "2xx"
	case status >= 400 && status < 500:
		return "4xx"
	case status >= 500 && status < 600:
		return "5xx"
	default:
		return "other"
	}
}

// Health serves /healthz and /metrics.
type Health struct {
	Addr     string
	Metrics  *Metrics
	Consumer *Consumer
	Topics   *Topics
	Log      *slog.Logger
}

// Handler answers /healthz with 200 while the connector consumes the queue
// and 503 while it is reconnecting to RabbitMQ, with a JSON body saying
// which; /metrics is the Prometheus exposition.
func (h *Health) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(h.Metrics.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		body := struct {
			Consuming   bool      `json:"consuming"`
			Topics      int       `json:"topics"`
			TopicsAt    time.Time `json:"topicsRefreshedAt"`
			Subscribers []string  `json:"subscribers"`
		}{Consuming: h.Consumer.Consuming()}
		snap, _ := h.Topics.Watch()
		body.Topics, body.TopicsAt = len(snap.Lookup), snap.At
		body.Subscribers = append([]string{}, snap.Lookup[h.Consumer.cfg.Topic()]...)
		w.Header().Set("Content-Type", "application/json")
		if !body.Consuming {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(body)
	})
	return mux
}

// Run serves until ctx ends.
func (h *Health) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", h.Addr)
	if err != nil {
		return fmt.Errorf("listen for health on %s: %w", h.Addr, err)
	}
	srv := &http.Server{Handler: h.Handler(), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	h.Log.Info("health and metrics listening", "addr", ln.Addr().String())
	select {
	case err := <-done:
		return fmt.Errorf("serve health: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("shut down health server: %w", err)
	}
	return nil
}
