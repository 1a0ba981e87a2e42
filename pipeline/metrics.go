package pipeline

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the pipeline's Prometheus metrics.
type Metrics struct {
	finished *prometheus.CounterVec
	duration *prometheus.HistogramVec
	overdue  prometheus.Gauge
	// overdueHeld counts the overdue requests that wait on legal holds.
	overdueHeld prometheus.Gauge
	// Submitted counts accepted requests.
	submitted prometheus.Counter
}

// NewMetrics registers the pipeline's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		finished:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "erasure_task_attempts_total", Help: "Task attempts finished, by outcome (done, pending = retry, failed, skipped, dispatched, queued)."}, []string{"outcome"}),
		duration:    prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "erasure_task_attempt_seconds", Help: "Duration of task attempts by dataset.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}, []string{"dataset"}),
		overdue:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "erasure_requests_overdue", Help: "Open requests past their deadline."}),
		submitted:   prometheus.NewCounter(prometheus.CounterOpts{Name: "erasure_requests_submitted_total", Help: "Requests accepted."}),
		overdueHeld: prometheus.NewGauge(prometheus.GaugeOpts{Name: "erasure_requests_overdue_held", Help: "Open requests past their deadline with tasks held by a legal hold."}),
	}
	reg.MustRegister(m.finished, m.duration, m.overdue, m.submitted, m.overdueHeld)
	return m
}
