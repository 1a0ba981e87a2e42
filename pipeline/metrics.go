package pipeline

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the pipeline's Prometheus metrics.
type Metrics struct {
	finished *prometheus.CounterVec
	duration *prometheus.HistogramVec
	overdue  prometheus.Gauge
	deferred *prometheus.CounterVec
	// overdueHeld counts the overdue requests that wait on legal holds.
	overdueHeld prometheus.Gauge
	// Submitted counts accepted requests.
	submitted prometheus.Counter
	// guardTrips counts erasures stopped at their dataset's guard.
	guardTrips *prometheus.CounterVec
	// canaryOK is 1 when a dataset's last canary passed, 0 when it failed.
	canaryOK *prometheus.GaugeVec
	// canaryLast is when a dataset's last canary finished (unix seconds).
	canaryLast *prometheus.GaugeVec
	// canaryRuns counts canary runs by dataset and result (ok, failed).
	canaryRuns *prometheus.CounterVec

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
		deferred:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "erasure_tasks_deferred_total", Help: "Leased tasks given back unexecuted because every slot of their dataset was busy (its bulkhead)."}, []string{"dataset"}),
		submitted: prometheus.NewCounter(prometheus.CounterOpts{Name: "erasure_requests_submitted_total", Help: "Requests accepted (canaries not counted)."}),
		guardTrips: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "erasure_guard_trips_total",
			Help: "Erasures and sweeps stopped at their dataset's guard (max_removed, max_removed_share)."}, []string{"dataset"}),
		canaryOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "erasure_canary_ok",
			Help: "1 when the dataset's last canary (a synthetic erasure) passed, 0 when it failed."}, []string{"dataset"}),
		canaryLast: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "erasure_canary_last_run_timestamp_seconds",
			Help: "When the dataset's last canary finished."}, []string{"dataset"}),
		canaryRuns: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "erasure_canary_runs_total",
			Help: "Canary runs by dataset and result (ok, failed)."}, []string{"dataset", "result"}),
		overdueHeld: prometheus.NewGauge(prometheus.GaugeOpts{Name: "erasure_requests_overdue_held", Help: "Open requests past their deadline with tasks held by a legal hold."}),
		enqueued:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "erasure_notifications_enqueued_total", Help: "Notifications stored in the outbox, by subscriber."}, []string{"subscriber"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "erasure_notification_deliveries_total", Help: "Delivery attempts of notifications, by subscriber and outcome (delivered, retry, dead)."},
			[]string{"subscriber", "outcome"}),
		deliverySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "erasure_notification_delivery_seconds", Help: "Duration of notification delivery attempts.", Buckets: prometheus.ExponentialBuckets(0.005, 4, 8)}),
		notifyLag:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "erasure_notify_lag_events", Help: "Audit events not yet read by the notifier."}),
	}
	reg.MustRegister(m.finished, m.duration, m.overdue, m.submitted, m.deferred, m.guardTrips, m.canaryOK, m.canaryLast, m.canaryRuns, m.overdueHeld,
		m.enqueued, m.deliveries, m.deliverySeconds, m.notifyLag)
	return m
}
