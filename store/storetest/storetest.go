// Package storetest is the conformance suite every erasure.Store must pass. A store's tests
// call Run with a function that opens a fresh, empty store on the given clock.
package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"erasure"
	"erasure/audit"
)

// Clock is a settable clock for stores under test.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock set to a fixed instant.
func NewClock() *Clock { return &Clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Add moves the clock forward.
func (c *Clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// Opener opens a fresh empty store whose clock is now, keyed with Hasher and Chain.
type Opener func(t *testing.T, now func() time.Time) erasure.Store

// Hasher and Chain are the keys stores under test use, so that the suite can verify their
// audit trails.
var Hasher, Chain = func() (*audit.Hasher, *audit.Chain) {
	h, err := audit.NewHasher([]byte("storetest-audit-key-0123456789abcdef"))
	if err != nil {
		panic(err)
	}
	return h, h.Chain()
}()

// VerifyTrail verifies s's whole audit trail and fails t when it is broken.
func VerifyTrail(t *testing.T, s erasure.Store) erasure.AuditHead {
	t.Helper()
	head, err := audit.VerifyTrail(context.Background(), s, Chain)
	if err != nil {
		t.Fatalf("audit trail: %v", err)
	}
	return head
}

// Run runs the whole suite.
func Run(t *testing.T, open Opener) {
	t.Run("CreateRequest", func(t *testing.T) { testCreate(t, open) })
	t.Run("Lease", func(t *testing.T) { testLease(t, open) })
	t.Run("Ordering", func(t *testing.T) { testOrdering(t, open) })
	t.Run("Lookups", func(t *testing.T) { testLookups(t, open) })
	t.Run("CancelRetry", func(t *testing.T) { testCancelRetry(t, open) })
	t.Run("Ack", func(t *testing.T) { testAck(t, open) })
	t.Run("ListAndOverdue", func(t *testing.T) { testList(t, open) })
	t.Run("Audit", func(t *testing.T) { testAudit(t, open) })
	t.Run("Deployment", func(t *testing.T) { testDeployment(t, open) })
}

// testDeployment: a store has one deployment id for good, and two stores never share one.
func testDeployment(t *testing.T, open Opener) {
	ctx := context.Background()
	c := NewClock()
	a, b := open(t, c.Now), open(t, c.Now)
	idA, err := a.Deployment(ctx)
	if err != nil || len(idA) < 16 {
		t.Fatalf("Deployment = %q, %v; want an id of at least 16 characters", idA, err)
	}
	create(t, a, newRequest(c, subject("user_id", "1"), erase("a")))
	if again, err := a.Deployment(ctx); err != nil || again != idA {
		t.Fatalf("Deployment changed from %q to %q (%v)", idA, again, err)
	}
	if idB, err := b.Deployment(ctx); err != nil || idB == idA {
		t.Fatalf("two stores share the deployment id %q (%v)", idB, err)
	}
}

var reqSeq int

// newRequest returns a request with one erase task per dataset name ("name>after" sets after).
func newRequest(c *Clock, subject erasure.Subject, specs ...erasure.TaskSpec) erasure.NewRequest {
	reqSeq++
	return erasure.NewRequest{
		ID:      fmt.Sprintf("r_%013d%013d", c.Now().UnixMilli(), reqSeq),
		Subject: subject, Reason: "test", Deadline: c.Now().Add(24 * time.Hour), SubmittedBy: "tester", Tasks: specs,
	}
}

func erase(ds string, after ...string) erasure.TaskSpec {
	return erasure.TaskSpec{Dataset: ds, Kind: erasure.TaskErase, Method: erasure.MethodRealtime, Keys: []string{"user_id"}, After: after}
}

func subject(kv ...string) erasure.Subject {
	var ids []erasure.Identifier
	for i := 0; i+1 < len(kv); i += 2 {
		ids = append(ids, erasure.Identifier{Type: kv[i], Value: kv[i+1]})
	}
	return erasure.NewSubject(ids...)
}

func create(t *testing.T, s erasure.Store, nr erasure.NewRequest) *erasure.Request {
	t.Helper()
	r, created, err := s.CreateRequest(context.Background(), nr)
	if err != nil || !created {
		t.Fatalf("CreateRequest: created=%v err=%v", created, err)
	}
	return r
}

func lease(t *testing.T, s erasure.Store, owner string, n int) []erasure.Task {
	t.Helper()
	got, err := s.LeaseTasks(context.Background(), owner, n, time.Minute)
	if err != nil {
		t.Fatalf("LeaseTasks: %v", err)
	}
	return got
}

func finish(t *testing.T, s erasure.Store, c *Clock, state erasure.TaskState, tasks ...erasure.Task) []int64 {
	t.Helper()
	var rs []erasure.TaskResult
	for _, tk := range tasks {
		// Inputs as the engine counts them: the identifiers of the task's key types it was given.
		rs = append(rs, erasure.TaskResult{TaskID: tk.ID, RequestID: tk.RequestID, Dataset: tk.Dataset, Kind: tk.Kind, Owner: tk.LeaseOwner, Attempt: tk.Attempts,
			State: state, Removed: 1, Verified: state == erasure.TaskDone, StartedAt: c.Now(), FinishedAt: c.Now(), Inputs: len(tk.Subject.Only(tk.Keys))})
	}
	dropped, err := s.FinishTasks(context.Background(), rs)
	if err != nil {
		t.Fatalf("FinishTasks: %v", err)
	}
	return dropped
}

func get(t *testing.T, s erasure.Store, id string) *erasure.Request {
	t.Helper()
	r, err := s.Request(context.Background(), id)
	if err != nil {
		t.Fatalf("Request(%s): %v", id, err)
	}
	return r
}

func states(r *erasure.Request) string {
	var out []string
	for _, tk := range r.Tasks {
		out = append(out, tk.Dataset+"/"+string(tk.Kind)+"="+string(tk.State))
	}
	return strings.Join(out, " ")
}

func testCreate(t *testing.T, open Opener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	nr := newRequest(c, subject("user_id", "42", "email", "a@example.com"), erase("a"), erase("b", "a"))
	nr.IdempotencyKey, nr.Fingerprint = "key-1", "fp-1"
	r := create(t, s, nr)
	if r.Status != erasure.RequestPending || len(r.Tasks) != 2 {
		t.Fatalf("new request: status %s, %d tasks", r.Status, len(r.Tasks))
	}
	if got, want := states(r), "a/erase=pending b/erase=blocked"; got != want {
		t.Errorf("task states %q, want %q", got, want)
	}
	if len(r.Subject) != 2 || len(r.SubjectHashes) != 2 {
		t.Errorf("subject %d identifiers in clear, %d hashes; want 2 and 2", len(r.Subject), len(r.SubjectHashes))
	}
	t.Run("SameIdempotencyKeyReturnsTheRequest", func(t *testing.T) {
		again := nr
		again.ID = "r_other"
		r2, created, err := s.CreateRequest(ctx, again)
		if err != nil || created || r2.ID != r.ID {
			t.Fatalf("got %v created=%v err=%v; want the first request", r2, created, err)
		}
	})
	t.Run("SameKeyOtherContentConflicts", func(t *testing.T) {
		other := nr
		other.ID, other.Fingerprint = "r_other2", "fp-2"
		_, _, err := s.CreateRequest(ctx, other)
		if erasure.ErrorCode(err) != erasure.ECONFLICT {
			t.Fatalf("err %v, want conflict", err)
		}
	})
	t.Run("UnknownRequestIsNotFound", func(t *testing.T) {
		_, err := s.Request(ctx, "r_missing")
		if erasure.ErrorCode(err) != erasure.ENOTFOUND {
			t.Fatalf("err %v, want not found", err)
		}
	})
}

func testLease(t *testing.T, open Opener) {
	c := NewClock()
	s := open(t, c.Now)
	r := create(t, s, newRequest(c, subject("user_id", "42"), erase("a"), erase("b")))
	got := lease(t, s, "w1", 10)
	if len(got) != 2 {
		t.Fatalf("leased %d tasks, want 2", len(got))
	}
	for _, tk := range got {
		if tk.Attempts != 1 || tk.State != erasure.TaskRunning || tk.PrevState != erasure.TaskPending || tk.LeaseOwner != "w1" {
			t.Errorf("leased task %+v", tk)
		}
		if v := tk.Subject.Values("user_id"); len(v) != 1 || v[0] != "42" {
			t.Errorf("leased task subject %v", tk.Subject)
		}
		if !tk.Deadline.Equal(r.Deadline) {
			t.Errorf("leased task deadline %v, want %v", tk.Deadline, r.Deadline)
		}
	}
	t.Run("LeasedTasksAreNotLeasedAgain", func(t *testing.T) {
		if again := lease(t, s, "w2", 10); len(again) != 0 {
			t.Fatalf("leased %d tasks twice", len(again))
		}
	})
	t.Run("ExpiredLeaseIsReclaimed", func(t *testing.T) {
		c.Add(time.Minute + time.Second)
		again := lease(t, s, "w2", 10)
		if len(again) != 2 || again[0].Attempts != 2 || again[0].PrevState != erasure.TaskRunning {
			t.Fatalf("reclaimed %+v", again)
		}
		t.Run("OldHolderResultIsDropped", func(t *testing.T) {
			if dropped := finish(t, s, c, erasure.TaskDone, got...); len(dropped) != 2 {
				t.Fatalf("dropped %v, want both", dropped)
			}
		})
		if dropped := finish(t, s, c, erasure.TaskDone, again...); len(dropped) != 0 {
			t.Fatalf("new holder's results dropped: %v", dropped)
		}
		if r := get(t, s, r.ID); r.Status != erasure.RequestCompleted {
			t.Fatalf("status %s after both tasks done: %s", r.Status, states(r))
		}
	})
	t.Run("RetryWaitsForDueTime", func(t *testing.T) {
		r := create(t, s, newRequest(c, subject("user_id", "7"), erase("a")))
		tk := lease(t, s, "w1", 10)
		if len(tk) != 1 {
			t.Fatalf("leased %d", len(tk))
		}
		_, err := s.FinishTasks(context.Background(), []erasure.TaskResult{{TaskID: tk[0].ID, RequestID: tk[0].RequestID, Dataset: tk[0].Dataset, Owner: "w1", Attempt: 1, State: erasure.TaskPending, DueAt: c.Now().Add(10 * time.Second), Error: "boom"}})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(lease(t, s, "w1", 10)); n != 0 {
			t.Fatalf("leased %d before due", n)
		}
		c.Add(11 * time.Second)
		again := lease(t, s, "w1", 10)
		if len(again) != 1 || again[0].Attempts != 2 || again[0].LastError != "boom" {
			t.Fatalf("after due: %+v", again)
		}
		if st := get(t, s, r.ID).Status; st != erasure.RequestRunning {
			t.Errorf("status %s, want running", st)
		}
	})
	t.Run("ReleaseLeasesMakesRunningTasksDue", func(t *testing.T) {
		create(t, s, newRequest(c, subject("user_id", "8"), erase("a")))
		if n := len(lease(t, s, "w1", 10)); n != 1 {
			t.Fatalf("leased %d", n)
		}
		if _, err := s.ReleaseLeases(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := len(lease(t, s, "w2", 10)); n < 1 {
			t.Fatalf("after release leased %d", n)
		}
	})
}

func testOrdering(t *testing.T, open Opener) {
	c := NewClock()
	s := open(t, c.Now)
	r := create(t, s, newRequest(c, subject("user_id", "1"), erase("child"), erase("parent", "child", "other"), erase("other")))
	first := lease(t, s, "w", 10)
	if len(first) != 2 {
		t.Fatalf("leased %d, want child and other", len(first))
	}
	finish(t, s, c, erasure.TaskDone, first[0])
	if got := lease(t, s, "w", 10); len(got) != 0 {
		t.Fatalf("parent leased before all its after: datasets: %+v", got)
	}
	finish(t, s, c, erasure.TaskDone, first[1])
	got := lease(t, s, "w", 10)
	if len(got) != 1 || got[0].Dataset != "parent" {
		t.Fatalf("got %+v, want parent", got)
	}
	t.Run("FailedDependencyBlocksAndFailsRequest", func(t *testing.T) {
		r2 := create(t, s, newRequest(c, subject("user_id", "2"), erase("child"), erase("parent", "child")))
		tk := lease(t, s, "w", 10)
		finish(t, s, c, erasure.TaskFailed, tk...)
		if st := get(t, s, r2.ID); st.Status != erasure.RequestFailed || !strings.Contains(states(st), "parent/erase=blocked") {
			t.Fatalf("status %s %s, want failed with parent blocked", st.Status, states(st))
		}
	})
	_ = r
}

func testLookups(t *testing.T, open Opener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	lookup := func(ds string, keys ...string) erasure.TaskSpec {
		return erasure.TaskSpec{Dataset: ds, Kind: erasure.TaskLookup, Method: erasure.MethodRealtime, Keys: keys}
	}
	r := create(t, s, newRequest(c, subject("email", "a@example.com"),
		lookup("users", "email"), lookup("accounts", "user_id"), erase("users"), erase("accounts")))
	got := lease(t, s, "w", 10)
	if len(got) != 2 {
		t.Fatalf("leased %d, want both lookups (erases wait)", len(got))
	}
	var users, accounts erasure.Task
	for _, tk := range got {
		if tk.Dataset == "users" {
			users = tk
		} else {
			accounts = tk
		}
	}
	// accounts finds nothing yet (no user_id); users finds user_id 42.
	finish(t, s, c, erasure.TaskSkipped, accounts)
	_, err := s.FinishTasks(ctx, []erasure.TaskResult{{TaskID: users.ID, RequestID: users.RequestID, Dataset: users.Dataset, Kind: erasure.TaskLookup, Owner: "w", Attempt: 1,
		State: erasure.TaskDone, Found: []erasure.Identifier{{Type: "user_id", Value: "42"}}, Inputs: 1}})
	if err != nil {
		t.Fatal(err)
	}
	again := lease(t, s, "w", 10)
	if len(again) != 1 || again[0].Dataset != "accounts" || again[0].Kind != erasure.TaskLookup {
		t.Fatalf("after user_id found: leased %+v, want the accounts lookup again", again)
	}
	if v := again[0].Subject.Values("user_id"); len(v) != 1 || v[0] != "42" {
		t.Fatalf("subject after lookup %v", again[0].Subject)
	}
	finish(t, s, c, erasure.TaskDone, again...)
	erases := lease(t, s, "w", 10)
	if len(erases) != 2 || erases[0].Kind != erasure.TaskErase {
		t.Fatalf("after lookups: leased %+v, want the two erases", erases)
	}
	finish(t, s, c, erasure.TaskDone, erases...)
	done := get(t, s, r.ID)
	if done.Status != erasure.RequestCompleted || len(done.Subject) != 0 || len(done.SubjectHashes) != 2 {
		t.Fatalf("ended: status %s, %d clear identifiers, %d hashes", done.Status, len(done.Subject), len(done.SubjectHashes))
	}
	t.Run("LookupThatRanBeforeAnIdentifierWasFoundRunsAgain", func(t *testing.T) {
		r := create(t, s, newRequest(c, subject("email", "b@example.com"), lookup("users", "email"), lookup("accounts", "user_id"), erase("accounts")))
		got := lease(t, s, "w", 10)
		var users, accounts erasure.Task
		for _, tk := range got {
			if tk.Dataset == "users" {
				users = tk
			} else {
				accounts = tk
			}
		}
		// users commits its finding first; accounts, leased before, ends with nothing.
		res := func(tk erasure.Task, state erasure.TaskState, found ...erasure.Identifier) erasure.TaskResult {
			return erasure.TaskResult{TaskID: tk.ID, RequestID: tk.RequestID, Dataset: tk.Dataset, Kind: erasure.TaskLookup, Owner: "w", Attempt: 1, State: state, Found: found, Inputs: len(tk.Subject.Only(tk.Keys))}
		}
		if _, err := s.FinishTasks(ctx, []erasure.TaskResult{res(users, erasure.TaskDone, erasure.Identifier{Type: "user_id", Value: "7"})}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.FinishTasks(ctx, []erasure.TaskResult{res(accounts, erasure.TaskSkipped)}); err != nil {
			t.Fatal(err)
		}
		for _, tk := range get(t, s, r.ID).Tasks {
			if tk.Dataset == "accounts" && tk.Kind == erasure.TaskLookup && tk.State != erasure.TaskPending {
				t.Fatalf("accounts lookup %s; want pending again, with user_id now known", tk.State)
			}
		}
	})
}

func testCancelRetry(t *testing.T, open Opener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	r := create(t, s, newRequest(c, subject("user_id", "1"), erase("a"), erase("b", "a")))
	cancelled, err := s.CancelRequest(ctx, r.ID, "op")
	if err != nil || cancelled.Status != erasure.RequestCancelled || states(cancelled) != "a/erase=cancelled b/erase=cancelled" {
		t.Fatalf("cancel: %v %s %s", err, cancelled.Status, states(cancelled))
	}
	if got := lease(t, s, "w", 10); len(got) != 0 {
		t.Fatalf("leased %d tasks of a cancelled request", len(got))
	}
	if _, err := s.CancelRequest(ctx, r.ID, "op"); erasure.ErrorCode(err) != erasure.ECONFLICT {
		t.Fatalf("second cancel: %v, want conflict", err)
	}
	if len(cancelled.Subject) != 0 {
		t.Fatalf("cancelled request keeps identifiers in clear")
	}
	t.Run("RetryReopensFailedTasks", func(t *testing.T) {
		r := create(t, s, newRequest(c, subject("user_id", "2"), erase("a")))
		if _, err := s.RetryRequest(ctx, r.ID, "op", erasure.RetryOptions{}); erasure.ErrorCode(err) != erasure.ECONFLICT {
			t.Fatalf("retry without failure: %v, want conflict", err)
		}
		finish(t, s, c, erasure.TaskFailed, lease(t, s, "w", 10)...)
		if st := get(t, s, r.ID).Status; st != erasure.RequestFailed {
			t.Fatalf("status %s, want failed", st)
		}
		if len(get(t, s, r.ID).Subject) != 1 {
			t.Fatalf("a failed request must keep its identifiers for a retry")
		}
		rr, err := s.RetryRequest(ctx, r.ID, "op", erasure.RetryOptions{})
		if err != nil || rr.Status != erasure.RequestRunning || rr.Tasks[0].State != erasure.TaskPending || rr.Tasks[0].Attempts != 0 {
			t.Fatalf("retry: %v %s %+v", err, rr.Status, rr.Tasks)
		}
		if got := lease(t, s, "w", 10); len(got) != 1 {
			t.Fatalf("leased %d after retry", len(got))
		}
	})
	t.Run("CancelledRunningTaskResultIsDropped", func(t *testing.T) {
		r := create(t, s, newRequest(c, subject("user_id", "3"), erase("a")))
		tk := lease(t, s, "w", 10)
		if _, err := s.CancelRequest(ctx, r.ID, "op"); err != nil {
			t.Fatal(err)
		}
		if dropped := finish(t, s, c, erasure.TaskDone, tk...); len(dropped) != 1 {
			t.Fatalf("result of a cancelled task accepted")
		}
	})
}

func testAck(t *testing.T, open Opener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	async := erasure.TaskSpec{Dataset: "notif", Kind: erasure.TaskErase, Method: erasure.MethodAsync, Keys: []string{"user_id"}}
	r := create(t, s, newRequest(c, subject("user_id", "1"), async))
	tk := lease(t, s, "w", 10)[0]
	_, err := s.FinishTasks(ctx, []erasure.TaskResult{{TaskID: tk.ID, RequestID: tk.RequestID, Dataset: tk.Dataset, Owner: "w", Attempt: 1, State: erasure.TaskDispatched, DueAt: c.Now().Add(time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	// decide decides an ack as the pipeline does: a failed ack retries in a minute.
	decide := func(a erasure.Ack) erasure.AckDecision {
		cur, err := s.Task(ctx, a.TaskID)
		attempts := 0
		if err == nil {
			attempts = cur.Attempts
		}
		return erasure.AckDecision{Ack: a, Dispatched: attempts, Attempt: attempts, Next: erasure.TaskPending, DueAt: c.Now().Add(time.Minute)}
	}
	t.Run("WrongDatasetIsNotFound", func(t *testing.T) {
		_, err := s.AckTask(ctx, "other", decide(erasure.Ack{TaskID: tk.ID, Status: "done"}), "x")
		if erasure.ErrorCode(err) != erasure.ENOTFOUND {
			t.Fatalf("err %v", err)
		}
		_, err = s.AckTask(ctx, "notif", decide(erasure.Ack{TaskID: 999999, Status: "done"}), "x")
		if erasure.ErrorCode(err) != erasure.ENOTFOUND {
			t.Fatalf("unknown task: err %v", err)
		}
	})
	t.Run("FailedAckFollowsPolicy", func(t *testing.T) {
		got, err := s.AckTask(ctx, "notif", decide(erasure.Ack{TaskID: tk.ID, Status: "failed", Error: "disk full"}), "svc")
		if err != nil || got.State != erasure.TaskPending || got.LastError != "disk full" {
			t.Fatalf("failed ack: %v %+v", err, got)
		}
	})
	t.Run("LateDoneAckCompletesOnce", func(t *testing.T) {
		for i := 0; i < 2; i++ {
			got, err := s.AckTask(ctx, "notif", decide(erasure.Ack{TaskID: tk.ID, Status: "done", Removed: 3}), "svc")
			if err != nil || got.State != erasure.TaskDone || got.Removed != 3 {
				t.Fatalf("ack %d: %v %+v", i, err, got)
			}
		}
		if st := get(t, s, r.ID).Status; st != erasure.RequestCompleted {
			t.Fatalf("status %s", st)
		}
		evs, _ := s.Audit(ctx, erasure.AuditFilter{RequestID: r.ID})
		n := 0
		for _, ev := range evs {
			if ev.Type == erasure.EventTaskAcked && strings.Contains(string(ev.Data), `"outcome":"done"`) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d done acks audited, want 1", n)
		}
	})
	t.Run("AckBeforeTheDispatchIsWrittenKeepsBoth", func(t *testing.T) {
		r := create(t, s, newRequest(c, subject("user_id", "3"), async))
		var tk erasure.Task
		for _, l := range lease(t, s, "w2", 10) {
			if l.RequestID == r.ID {
				tk = l
			}
		}
		// The owner answers attempt 1 while the executor has not written its result yet.
		got, err := s.AckTask(ctx, "notif", erasure.AckDecision{Ack: erasure.Ack{TaskID: tk.ID, Status: "done", Removed: 2}, Dispatched: 1, Attempt: 1}, "svc")
		if err != nil || got.State != erasure.TaskDone {
			t.Fatalf("ack of a running task: %v %+v", err, got)
		}
		dropped, err := s.FinishTasks(ctx, []erasure.TaskResult{{TaskID: tk.ID, RequestID: tk.RequestID, Dataset: tk.Dataset, Owner: "w2", Attempt: 1,
			State: erasure.TaskDispatched, DueAt: c.Now().Add(time.Hour)}})
		if err != nil || len(dropped) != 0 {
			t.Fatalf("the dispatch result was dropped (%v, %v)", dropped, err)
		}
		if got, _ := s.Task(ctx, tk.ID); got.State != erasure.TaskDone || got.Removed != 2 {
			t.Fatalf("task %+v", got)
		}
		evs, _ := s.Audit(ctx, erasure.AuditFilter{RequestID: r.ID})
		var types []string
		for _, ev := range evs {
			if ev.TaskID == tk.ID {
				types = append(types, ev.Type)
			}
		}
		if strings.Join(types, " ") != "task.acked task.attempt" {
			t.Fatalf("task events %v, want the ack then the dispatch", types)
		}
	})
	t.Run("CancelledTaskConflicts", func(t *testing.T) {
		r := create(t, s, newRequest(c, subject("user_id", "2"), async))
		if _, err := s.CancelRequest(ctx, r.ID, "op"); err != nil {
			t.Fatal(err)
		}
		_, err := s.AckTask(ctx, "notif", decide(erasure.Ack{TaskID: get(t, s, r.ID).Tasks[0].ID, Status: "done"}), "svc")
		if erasure.ErrorCode(err) != erasure.ECONFLICT {
			t.Fatalf("err %v, want conflict", err)
		}
	})
}

func testList(t *testing.T, open Opener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	var ids []string
	for i := 0; i < 7; i++ {
		nr := newRequest(c, subject("user_id", fmt.Sprint(i)), erase("a"))
		if i < 3 {
			nr.Deadline = c.Now().Add(time.Hour)
		}
		ids = append(ids, create(t, s, nr).ID)
		c.Add(time.Millisecond)
	}
	var seen []string
	cursor := ""
	for pages := 0; pages < 10; pages++ {
		p, err := s.Requests(ctx, erasure.RequestFilter{Limit: 3, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Requests {
			seen = append(seen, r.ID)
		}
		if cursor = p.Next; cursor == "" {
			break
		}
	}
	if len(seen) != 7 || seen[0] != ids[6] || seen[6] != ids[0] {
		t.Fatalf("paged listing %v, want all 7 newest first", seen)
	}
	c.Add(2 * time.Hour)
	p, err := s.Requests(ctx, erasure.RequestFilter{Overdue: true})
	if err != nil || len(p.Requests) != 3 || !p.Requests[0].Overdue {
		t.Fatalf("overdue listing: %v %+v", err, p.Requests)
	}
	if n, _ := s.OverdueRequests(ctx); n != 3 {
		t.Fatalf("OverdueRequests %d, want 3", n)
	}
	p, _ = s.Requests(ctx, erasure.RequestFilter{Status: erasure.RequestCompleted})
	if len(p.Requests) != 0 {
		t.Fatalf("completed listing has %d", len(p.Requests))
	}
	stats, err := s.DatasetStats(ctx)
	if err != nil || len(stats) != 1 || stats[0].Backlog != 7 {
		t.Fatalf("stats %v %+v", err, stats)
	}
}

func testAudit(t *testing.T, open Opener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	r := create(t, s, newRequest(c, subject("email", "secret@example.com", "user_id", "4242"), erase("a")))
	finish(t, s, c, erasure.TaskDone, lease(t, s, "w", 10)...)
	evs, err := s.Audit(ctx, erasure.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	VerifyTrail(t, s)
	CheckCounts(t, s)
	var types []string
	for _, ev := range evs {
		types = append(types, ev.Type)
		if strings.Contains(string(ev.Data), "secret@example.com") || strings.Contains(string(ev.Data), "4242") {
			t.Errorf("event %d holds an identifier in clear: %s", ev.Seq, ev.Data)
		}
		if !json.Valid(ev.Data) {
			t.Errorf("event %d data is not JSON", ev.Seq)
		}
	}
	want := "request.submitted task.attempt request.completed subject.hashed"
	if got := strings.Join(types, " "); got != want {
		t.Fatalf("events %q, want %q", got, want)
	}
	if evs2, _ := s.Audit(ctx, erasure.AuditFilter{RequestID: r.ID, After: 1, Limit: 2}); len(evs2) != 2 || evs2[0].Seq != 2 {
		t.Fatalf("filtered audit %+v", evs2)
	}
}
