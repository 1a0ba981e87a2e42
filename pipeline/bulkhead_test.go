package pipeline_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"erasure"
)

// frozen is a dataset whose service accepts calls and never answers (a process stopped with
// SIGSTOP): every call waits for its context.
type frozen struct{ calls atomic.Int64 }

func (f *frozen) Close() error { return nil }
func (f *frozen) Erase(ctx context.Context, s erasure.Subject) (erasure.Outcome, error) {
	f.calls.Add(1)
	<-ctx.Done()
	return erasure.Outcome{}, erasure.Transient(ctx.Err(), 0)
}

// frozenDataset is dataset "frozen" on fz: a minute's timeout, concurrency 2.
func frozenDataset(fz *frozen) *erasure.Dataset {
	return &erasure.Dataset{Name: "frozen", Owner: "team", Connector: "test", Method: erasure.MethodRealtime, Keys: []string{"user_id"}, Conn: fz,
		Policy: erasure.Policy{Deadline: 720 * time.Hour, MaxAttempts: 3, Backoff: erasure.Backoff{Initial: time.Second, Max: time.Minute},
			Timeout: time.Minute, Concurrency: 2}}
}

// TestEngine_FrozenDatasetHoldsOnlyItsOwnSlots runs a frozen dataset beside a healthy one: the
// healthy dataset's tasks all complete while the frozen one's calls hang, and the frozen
// dataset never has more calls in flight than its concurrency. Without bulkheads the frozen
// dataset's tasks take every executor slot and the healthy ones wait for the frozen calls'
// timeout (a minute here).
func TestEngine_FrozenDatasetHoldsOnlyItsOwnSlots(t *testing.T) {
	healthy := dataset("healthy", &conn{}, []string{"user_id"})
	fz := &frozen{}
	stuck := frozenDataset(fz)
	h := newHarness(t, nil, healthy, stuck)
	h.engine.Workers, h.engine.Grace = 4, 100*time.Millisecond
	const n = 40
	var ids []string
	for i := 0; i < n; i++ {
		ids = append(ids, h.submit(t, "user_id", fmt.Sprint(i)).ID)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.engine.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	healthyDone := func() int {
		n := 0
		for _, id := range ids {
			r, err := h.svc.Request(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			for _, tk := range r.Tasks {
				if tk.Dataset == "healthy" && tk.State == erasure.TaskDone {
					n++
				}
			}
		}
		return n
	}
	// A guard against a hang, far below the frozen calls' one-minute timeout.
	for give := time.Now().Add(20 * time.Second); healthyDone() < n; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(give) {
			t.Fatalf("%d of %d healthy tasks done while the frozen dataset hangs: it holds slots that are not its own", healthyDone(), n)
		}
	}
	if c := fz.calls.Load(); c > 2 {
		t.Fatalf("%d calls in flight to the frozen dataset, its concurrency is 2", c)
	}
	stats, err := h.svc.Dataset(context.Background(), "frozen")
	if err != nil {
		t.Fatal(err)
	}
	if stats.Health.ByState["done"] != 0 {
		t.Fatalf("frozen dataset tasks done: %v", stats.Health.ByState)
	}
}

// TestEngine_WakeUpsBesideHungTasksStillLease: a wake-up while results are in flight is left
// to the lease of the transaction that commits them; but when every task in flight hangs no
// commit comes, and a storm of wake-ups must not hold leases back for longer than Poll: a new
// request's healthy task runs while the frozen calls wait for their timeout (a minute).
func TestEngine_WakeUpsBesideHungTasksStillLease(t *testing.T) {
	healthy := dataset("healthy", &conn{}, []string{"user_id"})
	fz := &frozen{}
	stuck := frozenDataset(fz)
	h := newHarness(t, nil, healthy, stuck)
	h.engine.Poll, h.engine.Grace = 200*time.Millisecond, 100*time.Millisecond
	first := h.submit(t, "user_id", "1")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.engine.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	healthyDone := func(id string) bool {
		r, err := h.svc.Request(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range r.Tasks {
			if tk.Dataset == "healthy" {
				return tk.State == erasure.TaskDone
			}
		}
		return false
	}
	// A guard against a hang, far below the frozen calls' one-minute timeout.
	wait := func(id string) {
		t.Helper()
		for give := time.Now().Add(20 * time.Second); !healthyDone(id); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(give) {
				t.Fatalf("the healthy task of %s did not run beside the frozen calls", id)
			}
		}
	}
	wait(first.ID)
	for fz.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	// Only the frozen call is in flight now. Wake-ups every millisecond, and a new request.
	stop := make(chan struct{})
	storm := make(chan struct{})
	go func() {
		defer close(storm)
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
				h.engine.Wake()
			}
		}
	}()
	second := h.submit(t, "user_id", "2")
	wait(second.ID)
	close(stop)
	<-storm
}
