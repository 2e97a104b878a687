// Package metrics owns the gateway's Prometheus registry. It is a registry
// of its own (not the global default), so tests can build many gateways in
// one process and read each one's figures.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds every figure the gateway exports.
type Metrics struct {
	reg          *prometheus.Registry
	Requests     *prometheus.CounterVec   // by route, method, status
	Latency      *prometheus.HistogramVec // by route
	SignIns      *prometheus.CounterVec   // by result: ok or the reason it failed
	LiveSessions prometheus.Gauge         // live edit sessions
}

// New registers the collectors on a fresh registry.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_http_requests_total",
			Help: "HTTP requests answered, by route template, method and status.",
		}, []string{"route", "method", "status"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gateway_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by route template.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		SignIns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_sign_ins_total",
			Help: "Finished sign-in attempts, by result (ok, or why it failed).",
		}, []string{"result"}),
		LiveSessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gateway_live_edit_sessions",
			Help: "Edit sessions alive now.",
		}),
	}
	m.reg.MustRegister(m.Requests, m.Latency, m.SignIns, m.LiveSessions,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Registry is for tests that read figures back.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }
