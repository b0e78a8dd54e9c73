package httpapi

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the HTTP side's own series, registered on the registry the
// gateway passes in (never the global one).
type metrics struct {
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	commands     *prometheus.CounterVec
	authFailures *prometheus.CounterVec
	sseClients   prometheus.Gauge
	sseDropped   prometheus.Counter
	published    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "canary_http_requests_total",
			Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "canary_http_request_duration_seconds",
			Help:    "HTTP request latency by route (the event stream is excluded).",
			Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "canary_http_commands_total",
			Help: "Operator commands received over HTTP by action and result (ok, rejected, error).",
		}, []string{"action", "result"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "canary_http_auth_failures_total",
			Help: "Requests refused for missing or wrong credentials (401) or an insufficient role (403).",
		}, []string{"reason"}),
		sseClients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "canary_http_sse_clients",
			Help: "Connected event-stream clients.",
		}),
		sseDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "canary_http_sse_disconnected_slow_total",
			Help: "Event-stream clients disconnected because they fell behind (they reconnect and reload).",
		}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "canary_http_events_published_total",
			Help: "Changes pushed to the event stream by type.",
		}, []string{"type"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.commands, m.authFailures, m.sseClients, m.sseDropped, m.published} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register http metrics: %w", err)
		}
	}
	return m, nil
}
