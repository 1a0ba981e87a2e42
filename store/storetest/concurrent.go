package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"erasure"
)

// Handles opens n handles on one fresh, empty store: n processes' connections for a store
// shared by processes (PostgreSQL), or the same store n times for one a single process owns
// (SQLite). Every handle runs on the given clock.
type Handles func(t *testing.T, n int, now func() time.Time) []SweepStore

// RunConcurrent runs the concurrent cases: several workers, each on its own handle, leasing,
// finishing, acknowledging, cancelling and sweeping at once. Every task must complete exactly
// once and the audit trail must verify.
func RunConcurrent(t *testing.T, open Handles) {
	t.Run("LeaseAndFinishExactlyOnce", func(t *testing.T) { testConcurrentFinish(t, open) })
	t.Run("AcksRacingRedispatch", func(t *testing.T) { testConcurrentAcks(t, open) })
	t.Run("OneSweepPerDataset", func(t *testing.T) { testConcurrentSweeps(t, open) })
	t.Run("CancelRacingWorkers", func(t *testing.T) { testConcurrentCancel(t, open) })
	t.Run("SweepUnitsDoneOnce", func(t *testing.T) { testConcurrentUnits(t, open) })
}

const workers = 4

// doneOnce checks in the trail that every task of the requests completed exactly once, and
// that the trail verifies.
func doneOnce(t *testing.T, s erasure.Store, requests []*erasure.Request) {
	t.Helper()
	VerifyTrail(t, s)
	CheckCounts(t, s)
	evs, err := s.Audit(context.Background(), erasure.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	done := map[int64]int{}
	for _, ev := range evs {
		var d struct {
			Outcome erasure.TaskState `json:"outcome"`
		}
		json.Unmarshal(ev.Data, &d)
		if (ev.Type == erasure.EventTaskAttempt || ev.Type == erasure.EventTaskAcked) && d.Outcome == erasure.TaskDone {
			done[ev.TaskID]++
		}
	}
	for _, r := range requests {
		got := get(t, s, r.ID)
		if got.Status != erasure.RequestCompleted {
			t.Errorf("request %s is %s: %s", r.ID, got.Status, states(got))
		}
		for _, tk := range got.Tasks {
			if n := done[tk.ID]; n != 1 {
				t.Errorf("task %d (%s) completed %d times in the trail", tk.ID, tk.Dataset, n)
			}
		}
	}
}

// work runs n workers, each on its own handle, until stop returns true: each leases a few
// tasks, maybe lets its lease expire (another worker then runs the task again), and finishes
// what it leased with outcome; committed, when set, is told of every result the store took.
func work(t *testing.T, hs []SweepStore, c *Clock, stop func() bool, outcome func(erasure.Task, *rand.Rand) erasure.TaskState, committed func(erasure.TaskResult)) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(hs))
	for w, s := range hs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 7))
			owner := fmt.Sprintf("w%d", w)
			for idle := 0; !stop(); {
				if rnd.IntN(60) == 0 {
					// Every lease now running expires: their holders' results will be
					// dropped and the tasks run again by whoever leases them next.
					c.Add(time.Minute + time.Second)
				}
				got, err := s.LeaseTasks(context.Background(), owner, 1+rnd.IntN(8), time.Minute)
				if err != nil {
					errs <- fmt.Errorf("%s lease: %w", owner, err)
					return
				}
				if len(got) == 0 {
					if idle++; idle > 2000 {
						errs <- fmt.Errorf("%s: nothing to lease for too long", owner)
						return
					}
					time.Sleep(time.Millisecond)
					continue
				}
				idle = 0
				var rs []erasure.TaskResult
				for _, tk := range got {
					rs = append(rs, erasure.TaskResult{TaskID: tk.ID, RequestID: tk.RequestID, Dataset: tk.Dataset, Kind: tk.Kind, Owner: owner, Attempt: tk.Attempts,
						State: outcome(tk, rnd), DueAt: c.Now(), Removed: 1, StartedAt: c.Now(), FinishedAt: c.Now(), Inputs: len(tk.Subject.Only(tk.Keys))})
				}
				dropped, err := s.FinishTasks(context.Background(), rs)
				if err != nil {
					errs <- fmt.Errorf("%s finish: %w", owner, err)
					return
				}
				for _, r := range rs {
					if committed != nil && !slices.Contains(dropped, r.TaskID) {
						committed(r)
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// allStatus reports whether every request's status satisfies ok (false on a read error: the
// workers go on, and the test fails later if the store stays unreadable).
func allStatus(s erasure.Store, requests []*erasure.Request, ok func(erasure.RequestStatus) bool) bool {
	for _, r := range requests {
		got, err := s.Request(context.Background(), r.ID)
		if err != nil || !ok(got.Status) {
			return false
		}
	}
	return true
}

func testConcurrentFinish(t *testing.T, open Handles) {
	c := NewClock()
	hs := open(t, workers, c.Now)
	const n = 60
	var requests []*erasure.Request
	for i := 0; i < n; i++ {
		requests = append(requests, create(t, hs[i%len(hs)], newRequest(c, subject("user_id", itoa(i)), erase("a"), erase("b", "a"), erase("c"), erase("d"))))
	}
	var left atomic.Int64
	left.Store(n * 4)
	work(t, hs, c, func() bool { return left.Load() <= 0 }, func(tk erasure.Task, rnd *rand.Rand) erasure.TaskState {
		if rnd.IntN(5) == 0 {
			return erasure.TaskPending // a transient failure: retried at once
		}
		return erasure.TaskDone
	}, func(r erasure.TaskResult) {
		if r.State == erasure.TaskDone {
			left.Add(-1)
		}
	})
	doneOnce(t, hs[0], requests)
}

func testConcurrentAcks(t *testing.T, open Handles) {
	c := NewClock()
	hs := open(t, workers, c.Now)
	ctx := context.Background()
	async := erasure.TaskSpec{Dataset: "notif", Kind: erasure.TaskErase, Method: erasure.MethodAsync, Keys: []string{"user_id"}}
	const n = 40
	var requests []*erasure.Request
	for i := 0; i < n; i++ {
		requests = append(requests, create(t, hs[0], newRequest(c, subject("user_id", itoa(i)), async)))
	}
	// Workers dispatch (and, the ack timeout being 0, dispatch again) while ackers on other
	// handles acknowledge every task, some twice, some with an older attempt's failure first.
	var acked atomic.Int64
	stopAcks := make(chan struct{})
	var ackers sync.WaitGroup
	for a := range hs {
		ackers.Add(1)
		go func() {
			defer ackers.Done()
			s := hs[a]
			rnd := rand.New(rand.NewPCG(uint64(a), 9))
			for {
				select {
				case <-stopAcks:
					return
				default:
				}
				r, err := s.Request(ctx, requests[rnd.IntN(n)].ID)
				if err != nil {
					t.Errorf("request: %v", err)
					return
				}
				tk := r.Tasks[0]
				if tk.Attempts == 0 {
					continue
				}
				a := erasure.Ack{TaskID: tk.ID, Status: erasure.AckDone, Removed: 1}
				if rnd.IntN(3) == 0 {
					a = erasure.Ack{TaskID: tk.ID, Status: erasure.AckFailed, Error: "busy"}
				}
				// The ack answers the latest dispatch, or (a late one) any earlier.
				d := erasure.AckDecision{Ack: a, Dispatched: 1 + rnd.IntN(tk.Attempts), Attempt: tk.Attempts, Next: erasure.TaskPending, DueAt: c.Now()}
				got, err := s.AckTask(ctx, "notif", d, "acker")
				if err != nil && !errors.Is(err, erasure.ErrStale) && !errors.Is(err, erasure.ErrDispatchUnrecorded) {
					t.Errorf("ack: %v", err)
					return
				}
				if err == nil && got.State == erasure.TaskDone && a.Status == erasure.AckDone {
					acked.Add(1)
				}
			}
		}()
	}
	allDone := func() bool {
		return allStatus(hs[0], requests, func(s erasure.RequestStatus) bool { return s == erasure.RequestCompleted })
	}
	work(t, hs, c, allDone, func(erasure.Task, *rand.Rand) erasure.TaskState { return erasure.TaskDispatched }, nil)
	close(stopAcks)
	ackers.Wait()
	doneOnce(t, hs[0], requests)
}

func testConcurrentSweeps(t *testing.T, open Handles) {
	c := NewClock()
	hs := open(t, workers, c.Now)
	ctx := context.Background()
	requests := queueOffline(t, hs[0], c, "snap", 30, 1)
	var wg sync.WaitGroup
	var won atomic.Int64
	for i, s := range hs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sw, subjects, err := s.StartSweep(ctx, "snap", fmt.Sprintf("s_%d", i), erasure.SweepInternal, "sweeper")
			if erasure.ErrorCode(err) == erasure.ECONFLICT {
				return
			} else if err != nil {
				t.Errorf("StartSweep: %v", err)
				return
			}
			if sw.Tasks == 0 {
				return // another sweep took every task first
			}
			won.Add(1)
			if len(subjects) != 30 {
				t.Errorf("sweep %s took %d subjects, want all 30", sw.ID, len(subjects))
			}
			if _, err := s.FinishSweep(ctx, sw.ID, erasure.SweepResult{Removed: int64(len(subjects))}, nil, "sweeper"); err != nil {
				t.Errorf("FinishSweep: %v", err)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d sweeps took the queued tasks, want exactly 1", won.Load())
	}
	doneOnce(t, hs[0], requests)
}

func testConcurrentCancel(t *testing.T, open Handles) {
	c := NewClock()
	hs := open(t, workers, c.Now)
	ctx := context.Background()
	const n = 30
	var requests []*erasure.Request
	for i := 0; i < n; i++ {
		requests = append(requests, create(t, hs[0], newRequest(c, subject("user_id", itoa(i)), erase("a"), erase("b", "a"))))
	}
	var cancelled sync.Map
	go func() {
		for i, r := range requests {
			if i%3 == 0 {
				if _, err := hs[1%len(hs)].CancelRequest(ctx, r.ID, "op"); err == nil {
					cancelled.Store(r.ID, true)
				}
			}
		}
	}()
	ended := func() bool { return allStatus(hs[0], requests, erasure.RequestStatus.Ended) }
	work(t, hs, c, ended, func(erasure.Task, *rand.Rand) erasure.TaskState { return erasure.TaskDone }, nil)
	VerifyTrail(t, hs[0])
	CheckCounts(t, hs[0])
	for _, r := range requests {
		got := get(t, hs[0], r.ID)
		_, wasCancelled := cancelled.Load(r.ID)
		if wasCancelled != (got.Status == erasure.RequestCancelled) {
			t.Errorf("request %s: cancel succeeded=%v but status %s", r.ID, wasCancelled, got.Status)
		}
		for _, tk := range got.Tasks {
			if got.Status == erasure.RequestCancelled && tk.State != erasure.TaskDone && tk.State != erasure.TaskCancelled {
				t.Errorf("cancelled request %s has task %s %s", r.ID, tk.Dataset, tk.State)
			}
		}
	}
}

// CheckCounts fails t unless the store's dataset health (DatasetStats, kept as counts by every
// change) says what its tasks say, counted one by one.
func CheckCounts(t *testing.T, s erasure.Store) {
	t.Helper()
	ctx := context.Background()
	want := map[string]map[string]int{}
	for cursor := ""; ; {
		page, err := s.Requests(ctx, erasure.RequestFilter{Cursor: cursor, Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Requests {
			for _, tk := range get(t, s, r.ID).Tasks {
				if want[tk.Dataset] == nil {
					want[tk.Dataset] = map[string]int{}
				}
				want[tk.Dataset][string(tk.State)]++
			}
		}
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	stats, err := s.DatasetStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]int{}
	for _, st := range stats {
		for state, n := range st.ByState {
			if n != 0 {
				if got[st.Dataset] == nil {
					got[st.Dataset] = map[string]int{}
				}
				got[st.Dataset][state] = n
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("dataset counts %v, the tasks say %v", got, want)
	}
}
