package relay

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the relay's Prometheus metrics, on a registry of its own so
// that several relays (in tests) never collide.
type metrics struct {
	reg         *prometheus.Registry
	browsers    prometheus.Gauge
	connects    prometheus.Counter
	disconnects *prometheus.CounterVec
	rejected    *prometheus.CounterVec
	sent        prometheus.Counter
	dropped     prometheus.Counter
	events      prometheus.Counter
	badEvents   prometheus.Counter
	proxyErrors prometheus.Counter
}

// Reasons a browser is disconnected, the label of optio_relay_disconnects_total.
const (
	reasonClosed   = "closed"   // the browser went away
	reasonSlow     = "slow"     // a message took longer than WriteTimeout
	reasonPing     = "ping"     // no pong within PingTimeout
	reasonShutdown = "shutdown" // the relay is stopping
)

func newMetrics() (*metrics, error) {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		browsers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "optio_relay_browsers", Help: "Browsers connected to the WebSocket now.",
		}),
		connects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "optio_relay_connects_total", Help: "WebSocket connections accepted.",
		}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "optio_relay_disconnects_total", Help: "WebSocket connections ended, by reason (closed, slow, ping, shutdown).",
		}, []string{"reason"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "optio_relay_rejected_total", Help: "Requests refused, by reason (origin, capacity, upgrade, body).",
		}, []string{"reason"}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "optio_relay_messages_sent_total", Help: "State messages written to browsers.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "optio_relay_messages_dropped_total",
			Help: "States never sent to a browser because a newer one replaced them in its one-slot queue (coalescing, or a slow browser).",
		}),
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "optio_relay_events_total", Help: "Run events received from Redis.",
		}),
		badEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "optio_relay_bad_events_total", Help: "Events on the run channel that could not be decoded.",
		}),
		proxyErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "optio_relay_proxy_errors_total", Help: "Requests to /function/* that could not reach the gateway.",
		}),
	}
	for _, c := range []prometheus.Collector{m.browsers, m.connects, m.disconnects, m.rejected, m.sent,
		m.dropped, m.events, m.badEvents, m.proxyErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := m.reg.Register(c); err != nil {
			return nil, fmt.Errorf("register relay metrics: %w", err)
		}
	}
	return m, nil
}
