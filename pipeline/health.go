package pipeline

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"erasure"
)

// Health keeps what the executor saw of each dataset's recent attempts, for the datasets'
// health (erasure.DatasetStats), and writes one log line per failed attempt: every attempt
// that fails a task for good, and of those that will be retried at most one per dataset every
// LogEvery (the next line counts those left out, not_logged). It never logs or keeps an
// identifier: a task's error is the connector's message, written without the subject's values.
//
// It is per process: a deployment of several workers sees each worker's own attempts.
type Health struct {
	// Window is how far back failed attempts are counted (default erasure.AttemptWindow).
	Window time.Duration
	// LogEvery is the shortest interval between two lines of one dataset (default 10s).
	LogEvery time.Duration
	Now      func() time.Time
	Logger   *slog.Logger

	mu       sync.Mutex
	datasets map[string]*datasetHealth
}

type datasetHealth struct {
	failures     []time.Time // failed attempts within the window, oldest first
	lastError    string
	lastErrorAt  time.Time
	failingSince time.Time // zero while the latest attempt succeeded
	lastLog      time.Time
	unlogged     int // failed attempts not logged since lastLog
}

// NewHealth returns a Health logging to log (nil: nowhere).
func NewHealth(log *slog.Logger) *Health {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Health{Logger: log, datasets: map[string]*datasetHealth{}}
}

func (h *Health) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *Health) window() time.Duration {
	if h.Window > 0 {
		return h.Window
	}
	return erasure.AttemptWindow
}

// Record takes the result of one attempt of task t: pending with an error (a retry) and
// failed are failed attempts; done, skipped, dispatched and queued succeeded.
func (h *Health) Record(t erasure.Task, r erasure.TaskResult) {
	if h == nil {
		return
	}
	failed := r.State == erasure.TaskFailed || (r.State == erasure.TaskPending && r.Error != "")
	now := r.FinishedAt
	if now.IsZero() {
		now = h.now()
	}
	h.mu.Lock()
	if h.datasets == nil {
		h.datasets = map[string]*datasetHealth{}
	}
	d := h.datasets[t.Dataset]
	if d == nil {
		d = &datasetHealth{}
		h.datasets[t.Dataset] = d
	}
	if !failed {
		d.failingSince = time.Time{}
		h.mu.Unlock()
		return
	}
	d.prune(now, h.window())
	d.failures = append(d.failures, now)
	d.lastError, d.lastErrorAt = r.Error, now
	if d.failingSince.IsZero() {
		d.failingSince = now
	}
	every := h.LogEvery
	if every <= 0 {
		every = 10 * time.Second
	}
	final := r.State == erasure.TaskFailed
	if !final && !d.lastLog.IsZero() && now.Sub(d.lastLog) < every {
		d.unlogged++
		h.mu.Unlock()
		return
	}
	suppressed, since := d.unlogged, d.failingSince
	d.lastLog, d.unlogged = now, 0
	h.mu.Unlock()

	attrs := []slog.Attr{slog.String("dataset", t.Dataset), slog.Int64("task", t.ID), slog.String("request", t.RequestID),
		slog.String("kind", string(t.Kind)), slog.Int("attempt", r.Attempt), slog.String("err", r.Error)}
	msg, level := "attempt failed; will retry", slog.LevelWarn
	if final {
		msg, level = "attempt failed; task failed (an operator may retry it)", slog.LevelError
	} else {
		attrs = append(attrs, slog.String("retry_in", roughly(r.DueAt.Sub(now))))
	}
	attrs = append(attrs, slog.String("failing_for", roughly(now.Sub(since))))
	if suppressed > 0 {
		attrs = append(attrs, slog.Int("not_logged", suppressed))
	}
	h.Logger.LogAttrs(context.Background(), level, msg, attrs...)
}

func (d *datasetHealth) prune(now time.Time, window time.Duration) {
	i := 0
	for i < len(d.failures) && now.Sub(d.failures[i]) > window {
		i++
	}
	d.failures = d.failures[i:]
}

// Apply adds to st what was seen of its dataset's attempts.
func (h *Health) Apply(st *erasure.DatasetStats) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.datasets[st.Dataset]
	if d == nil {
		return
	}
	d.prune(h.now(), h.window())
	st.FailedAttempts = len(d.failures)
	if d.lastError != "" {
		st.LastError = d.lastError
		at := d.lastErrorAt.UTC()
		st.LastErrorAt = &at
	}
	if !d.failingSince.IsZero() {
		since := d.failingSince.UTC()
		st.FailingSince = &since
	}
}

// roughly writes d for people: to the millisecond under a second, else to the second.
func roughly(d time.Duration) string {
	if d < time.Second {
		return erasure.FormatDuration(d.Round(time.Millisecond))
	}
	return erasure.FormatDuration(d.Round(time.Second))
}
