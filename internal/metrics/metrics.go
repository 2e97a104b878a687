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
	// LLMCalls counts model calls by tenant and result (ok, canceled,
	// exhausted, invalid, no_model, provider_error, unavailable): one per
	// call here rather than an audit entry each, which would drown the
	// admin audit view's sign-ins and activations.
	LLMCalls *prometheus.CounterVec
	// LLMTokens counts the tokens charged to tenants' budgets, by tenant
	// and kind (prompt, completion).
	LLMTokens *prometheus.CounterVec
	// IDELimitRefusals counts IDE proxy requests refused by a per-session
	// cap (websockets, requests): a steady rate means a cap is too low or an
	// author's page is hammering the gateway.
	IDELimitRefusals *prometheus.CounterVec
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
		LLMCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_llm_calls_total",
			Help: "Model (chat completion) calls, by tenant and result.",
		}, []string{"tenant", "result"}),
		LLMTokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_llm_tokens_total",
			Help: "Model tokens charged to tenants' daily budgets, by tenant and kind (prompt, completion).",
		}, []string{"tenant", "kind"}),
	}
	m.IDELimitRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gateway_ide_limit_refusals_total",
		Help: "IDE proxy requests refused by a per-edit-session cap, by cap (websockets, requests).",
	}, []string{"limit"})
	m.reg.MustRegister(m.Requests, m.Latency, m.SignIns, m.LiveSessions, m.LLMCalls, m.LLMTokens, m.IDELimitRefusals,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Registry is for tests that read figures back.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }
