package pipeline_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"erasure"
	"erasure/pipeline"
)

// lockedBuffer is a log destination for the tests.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(strings.TrimSpace(l.b.String()), "\n")
}

func TestHealth(t *testing.T) {
	var out lockedBuffer
	h := pipeline.NewHealth(slog.New(slog.NewTextHandler(&out, nil)))
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	h.Now = func() time.Time { return now }
	task := erasure.Task{ID: 7, RequestID: "r_1", Dataset: "cache", Kind: erasure.TaskErase,
		Subject: erasure.NewSubject(erasure.Identifier{Type: "email", Value: "alice@example.com"})}
	attempt := func(state erasure.TaskState, errMsg string) {
		now = now.Add(2 * time.Second)
		h.Record(task, erasure.TaskResult{TaskID: 7, Dataset: "cache", Attempt: 1, State: state, Error: errMsg, DueAt: now.Add(time.Second), FinishedAt: now})
	}
	stats := func() erasure.DatasetStats {
		st := erasure.DatasetStats{Dataset: "cache"}
		h.Apply(&st)
		return st
	}

	attempt(erasure.TaskDone, "")
	if st := stats(); st.FailedAttempts != 0 || st.FailingSince != nil || st.LastError != "" {
		t.Fatalf("after a success: %+v", st)
	}
	began := now.Add(2 * time.Second)
	for i := 0; i < 6; i++ {
		attempt(erasure.TaskPending, "redis UNLINK k:{user_id}: connection refused")
	}
	st := stats()
	if st.FailedAttempts != 6 || st.LastError != "redis UNLINK k:{user_id}: connection refused" || st.FailingSince == nil || !st.FailingSince.Equal(began) || !st.LastErrorAt.Equal(now) {
		t.Fatalf("during an outage: %+v (began %s)", st, began)
	}
	// One line per 10 s of a dataset's retried attempts, the next counting those left out.
	lines := out.lines()
	if len(lines) != 2 || !strings.Contains(lines[0], `msg="attempt failed; will retry"`) || !strings.Contains(lines[1], "not_logged=4") {
		t.Fatalf("log lines:\n%s", strings.Join(lines, "\n"))
	}
	for _, want := range []string{"dataset=cache", "task=7", "request=r_1", "attempt=1", "retry_in=1s", "failing_for=10s", `err="redis UNLINK`} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("line %q lacks %s", lines[1], want)
		}
	}
	// An attempt that fails the task is always logged.
	attempt(erasure.TaskFailed, "gave up after 12 attempts: connection refused")
	lines = out.lines()
	if len(lines) != 3 || !strings.Contains(lines[2], "level=ERROR") || !strings.Contains(lines[2], "task failed") {
		t.Fatalf("the final failure was not logged:\n%s", strings.Join(lines, "\n"))
	}
	for _, l := range lines {
		if strings.Contains(l, "alice") {
			t.Errorf("a log line holds the subject: %s", l)
		}
	}
	// A success ends the outage; the failed attempts stay counted within the window.
	attempt(erasure.TaskDone, "")
	if st := stats(); st.FailingSince != nil || st.FailedAttempts != 7 || st.LastError == "" {
		t.Fatalf("after recovering: %+v", st)
	}
	now = now.Add(erasure.AttemptWindow)
	if st := stats(); st.FailedAttempts != 0 {
		t.Fatalf("a window later: %d failed attempts", st.FailedAttempts)
	}
	// Another dataset's health is its own.
	other := erasure.DatasetStats{Dataset: "web"}
	h.Apply(&other)
	if other.FailedAttempts != 0 || other.LastError != "" {
		t.Fatalf("another dataset: %+v", other)
	}
}
