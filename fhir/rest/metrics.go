package rest

import (
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	storeErrors *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fhir_http_requests_total",
			Help: "HTTP requests by FHIR interaction and status code.",
		}, []string{"interaction", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fhir_http_request_duration_seconds",
			Help:    "HTTP request latency by FHIR interaction.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"interaction"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fhir_store_errors_total",
			Help: "Failures of the store (not client errors), by operation.",
		}, []string{"op"}),
	}
	reg.MustRegister(m.requests, m.latency, m.storeErrors)
	// Start the store error series at zero, so alerts see them before the first failure.
	for _, op := range []string{"read", "vread", "write", "find", "history"} {
		m.storeErrors.WithLabelValues(op)
	}
	return m
}

const interactionKey = "fhir.interaction"

// setInteraction names the interaction a request is, for metrics and logs.
func setInteraction(c echo.Context, name string) { c.Set(interactionKey, name) }

func (m *metrics) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err) // renders the OperationOutcome so the status is known
		}
		name, _ := c.Get(interactionKey).(string)
		if name == "" {
			name = "unknown"
		}
		m.requests.WithLabelValues(name, strconv.Itoa(c.Response().Status)).Inc()
		m.latency.WithLabelValues(name).Observe(time.Since(start).Seconds())
		return nil
	}
}
