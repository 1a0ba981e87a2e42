package storetest

import (
	"context"
	"testing"
	"time"

	"erasure"
)

// Holder holds the row of request id as another transaction on the store's database would (a
// worker of another process finishing tasks of that request) until release is called.
type Holder func(t *testing.T, id string) (release func())

// RunFinishBesideHeldRequest checks a store shared by several processes: a commit of results
// (FinishAndLease) does not keep the results of its other requests, nor its lease, waiting for
// a request another transaction holds. They are committed while it is held; the held
// request's result is applied once it is let go, before FinishAndLease returns. Nothing is
// dropped, and the trail verifies.
func RunFinishBesideHeldRequest(t *testing.T, open Opener, hold Holder) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	held := create(t, s, newRequest(c, subject("user_id", "1"), erase("crm")))
	free := create(t, s, newRequest(c, subject("user_id", "2"), erase("crm")))
	tasks := lease(t, s, "w", 2)
	if len(tasks) != 2 {
		t.Fatalf("leased %d tasks, want 2", len(tasks))
	}
	next := create(t, s, newRequest(c, subject("user_id", "3"), erase("crm")))
	var rs []erasure.TaskResult
	for _, tk := range tasks {
		rs = append(rs, erasure.TaskResult{TaskID: tk.ID, RequestID: tk.RequestID, Dataset: tk.Dataset, Kind: tk.Kind, Owner: tk.LeaseOwner, Attempt: tk.Attempts,
			State: erasure.TaskDone, Removed: 1, Verified: true, StartedAt: c.Now(), FinishedAt: c.Now(), Inputs: 1})
	}
	release := hold(t, held.ID)
	defer func() {
		if release != nil {
			release()
		}
	}()
	type outcome struct {
		dropped []int64
		leased  []erasure.Task
		err     error
	}
	done := make(chan outcome, 1)
	go func() {
		dropped, leased, err := s.FinishAndLease(ctx, rs, "w", 5, time.Minute)
		done <- outcome{dropped, leased, err}
	}()
	// The free request's result and the lease of the next request's task are committed while
	// the held request is held.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		f, n := get(t, s, free.ID), get(t, s, next.ID)
		if f.Tasks[0].State == erasure.TaskDone && n.Tasks[0].State == erasure.TaskRunning {
			break
		}
		select {
		case o := <-done:
			t.Fatalf("FinishAndLease returned while request %s was held: %+v", held.ID, o)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10s with request %s held: free request %s, next request %s; want done and running (nothing waits for the held request)",
				held.ID, states(f), states(n))
		}
	}
	if st := get(t, s, held.ID).Tasks[0].State; st != erasure.TaskRunning {
		t.Fatalf("held request's task %s while held, want running", st)
	}
	release()
	release = nil
	var o outcome
	select {
	case o = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("FinishAndLease did not return 10s after the request was let go")
	}
	if o.err != nil || len(o.dropped) != 0 {
		t.Fatalf("FinishAndLease: dropped %v, err %v", o.dropped, o.err)
	}
	if len(o.leased) != 1 || o.leased[0].RequestID != next.ID {
		t.Fatalf("leased %+v, want the task of %s", o.leased, next.ID)
	}
	for _, id := range []string{held.ID, free.ID} {
		if r := get(t, s, id); r.Status != erasure.RequestCompleted {
			t.Errorf("request %s: %s (%s), want completed", id, r.Status, states(r))
		}
	}
	VerifyTrail(t, s)
	CheckCounts(t, s)
}
