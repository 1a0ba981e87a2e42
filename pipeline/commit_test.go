package pipeline_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"erasure"
	"erasure/store/sqlite"
)

// partialStore fails the first FinishAndLease that leases a task after its transaction
// committed, as a shared store does when only its second transaction (the results of requests
// another process held) failed: the tasks it leased come back with the error.
type partialStore struct {
	*sqlite.DB
	failed atomic.Bool
}

func (s *partialStore) FinishAndLease(ctx context.Context, results []erasure.TaskResult, owner string, n int, lease time.Duration) ([]int64, []erasure.Task, error) {
	dropped, leased, err := s.DB.FinishAndLease(ctx, results, owner, n, lease)
	if err == nil && len(leased) > 0 && s.failed.CompareAndSwap(false, true) {
		return dropped, leased, errors.New("injected: results of requests held elsewhere not committed")
	}
	return dropped, leased, err
}

// heldConn is a connector whose first call waits until open is closed.
type heldConn struct {
	open  chan struct{}
	calls atomic.Int64
}

func (g *heldConn) Close() error { return nil }
func (g *heldConn) Erase(ctx context.Context, s erasure.Subject) (erasure.Outcome, error) {
	if g.calls.Add(1) == 1 {
		<-g.open
	}
	return erasure.Outcome{Removed: 1}, nil
}

// TestEngine_TasksLeasedByAFailedCommitRun: the tasks a failed commit leased all the same are
// the engine's, and run at once; left aside, they would wait for their lease to expire (the
// dataset's timeout and a minute here).
func TestEngine_TasksLeasedByAFailedCommitRun(t *testing.T) {
	g := &heldConn{open: make(chan struct{})}
	d := &erasure.Dataset{Name: "crm", Owner: "team", Connector: "test", Method: erasure.MethodRealtime, Keys: []string{"user_id"}, Conn: g,
		Policy: erasure.Policy{Deadline: 720 * time.Hour, MaxAttempts: 3, Backoff: erasure.Backoff{Initial: time.Second, Max: time.Minute}, Timeout: 5 * time.Second}}
	h := newHarness(t, nil, d)
	ps := &partialStore{DB: h.store}
	// The main loop leases on its own only every hour: the second request's task is leased
	// by the commit of the first's result.
	h.engine.Store, h.engine.Poll = ps, time.Hour
	first := h.submit(t, "user_id", "1")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.engine.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for g.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	second := h.submit(t, "user_id", "2")
	close(g.open)
	for give := time.Now().Add(15 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		r1, r2 := h.get(t, first.ID), h.get(t, second.ID)
		if r1.Status == erasure.RequestCompleted && r2.Status == erasure.RequestCompleted {
			break
		}
		if time.Now().After(give) {
			t.Fatalf("after 15s: %s (task %s), %s (task %s), a commit failed: %v; want both completed", r1.Status, r1.Tasks[0].State, r2.Status, r2.Tasks[0].State, ps.failed.Load())
		}
	}
	if !ps.failed.Load() {
		t.Fatal("no commit that leased a task was failed: the test did not test the case")
	}
}
