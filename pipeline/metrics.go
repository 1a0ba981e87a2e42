package pipeline

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the pipeline's Prometheus metrics.
type Metrics struct {
	finished *prometheus.CounterVec
	duration *prometheus.HistogramVec
	overdue  prometheus.Gauge
	// Submitted counts accepted requests.
	submitted prometheus.Counter

	enqueued        *prometheus.CounterVec
	deliveries      *prometheus.CounterVec
	deliverySeconds prometheus.Histogram
	notifyLag       prometheus.Gauge
}

// NewMetrics registers the pipeline's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		finished:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "erasure_task_attempts_total", Help: "Task attempts finished, by dataset and outcome (done, pending = retry, failed, skipped, dispatched, queued)."}, []string{"dataset", "outcome"}),
		duration:  prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "erasure_task_attempt_seconds", Help: "Duration of task attempts by dataset.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}, []string{"dataset"}),
		overdue:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "erasure_requests_overdue", Help: "Open requests past their deadline."}),
		submitted: prometheus.NewCounter(prometheus.CounterOpts{Name: "erasure_requests_submitted_total", Help: "Requests accepted."}),
		enqueued:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "erasure_notifications_enqueued_total", Help: "Notifications stored in the outbox, by subscriber."}, []string{"subscriber"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "erasure_notification_deliveries_total", Help: "Delivery attempts of notifications, by subscriber and outcome (delivered, retry, dead)."},
			[]string{"subscriber", "outcome"}),
		deliverySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "erasure_notification_delivery_seconds", Help: "Duration of notification delivery attempts.", Buckets: prometheus.ExponentialBuckets(0.005, 4, 8)}),
		notifyLag:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "erasure_notify_lag_events", Help: "Audit events not yet read by the notifier."}),
	}
	reg.MustRegister(m.finished, m.duration, m.overdue, m.submitted, m.enqueued, m.deliveries, m.deliverySeconds, m.notifyLag)
	return m
}
