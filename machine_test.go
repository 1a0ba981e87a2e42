package erasure_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"erasure"
)

// The state machine tested on domain values alone: every transition of the diagram on
// erasure.TaskState, with no store.

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// plainHasher is a deterministic stand-in for the keyed hasher (the machine only compares hashes).
type plainHasher struct{}

func (plainHasher) Identifier(id erasure.Identifier) string {
	s := sha256.Sum256([]byte(id.Type + "\x00" + id.Value))
	return id.Type + ":" + hex.EncodeToString(s[:8])
}
func (plainHasher) Sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func erase(ds string, after ...string) erasure.TaskSpec {
	return erasure.TaskSpec{Dataset: ds, Kind: erasure.TaskErase, Method: erasure.MethodRealtime, Keys: []string{"user_id"}, After: after}
}

func lookup(ds string, keys ...string) erasure.TaskSpec {
	return erasure.TaskSpec{Dataset: ds, Kind: erasure.TaskLookup, Method: erasure.MethodRealtime, Keys: keys}
}

func async(ds string) erasure.TaskSpec {
	return erasure.TaskSpec{Dataset: ds, Kind: erasure.TaskErase, Method: erasure.MethodAsync, Keys: []string{"user_id"}}
}

func offline(ds string) erasure.TaskSpec {
	return erasure.TaskSpec{Dataset: ds, Kind: erasure.TaskErase, Method: erasure.MethodOffline, Keys: []string{"user_id"}}
}

// request is a request as a store would hold it, with tasks numbered from 1.
type request struct {
	t  *testing.T
	rs *erasure.RequestState
}

func newRequest(t *testing.T, ids []erasure.Identifier, specs ...erasure.TaskSpec) *request {
	t.Helper()
	tasks := erasure.PlanTasks("r1", specs, t0)
	for i := range tasks {
		tasks[i].ID = int64(i + 1)
	}
	rs := &erasure.RequestState{ID: "r1", Status: erasure.RequestPending, Tasks: tasks}
	for _, id := range ids {
		rs.Identifiers = append(rs.Identifiers, plainHasher{}.Identifier(id))
	}
	return &request{t: t, rs: rs}
}

func userID(v string) erasure.Identifier { return erasure.Identifier{Type: "user_id", Value: v} }
func email(v string) erasure.Identifier  { return erasure.Identifier{Type: "email", Value: v} }

// task returns the task of dataset ds and kind.
func (r *request) task(ds string, kind erasure.TaskKind) *erasure.Task {
	r.t.Helper()
	for i := range r.rs.Tasks {
		if r.rs.Tasks[i].Dataset == ds && r.rs.Tasks[i].Kind == kind {
			return &r.rs.Tasks[i]
		}
	}
	r.t.Fatalf("no %s task of %s", kind, ds)
	return nil
}

// lease does what a store's lease query does to a due task.
func (r *request) lease(ds string, kind erasure.TaskKind, owner string) erasure.Task {
	r.t.Helper()
	tk := r.task(ds, kind)
	if !tk.State.Leasable() {
		r.t.Fatalf("%s is %s, not leasable", tk, tk.State)
	}
	tk.PrevState, tk.State, tk.LeaseOwner = tk.State, erasure.TaskRunning, owner
	tk.Attempts++
	return *tk
}

// apply runs fn on a machine over the request, settles it, and returns the changes.
func (r *request) apply(fn func(m *erasure.Machine)) erasure.Changes {
	r.t.Helper()
	m := erasure.NewMachine(r.rs, plainHasher{}, t0)
	fn(m)
	m.Settle("test")
	return m.Changes()
}

// finish applies a result of a leased task.
func (r *request) finish(tk erasure.Task, state erasure.TaskState, found ...erasure.Identifier) (bool, erasure.Changes) {
	r.t.Helper()
	var ok bool
	ch := r.apply(func(m *erasure.Machine) {
		ok = m.Finish(erasure.TaskResult{TaskID: tk.ID, RequestID: "r1", Dataset: tk.Dataset, Kind: tk.Kind, Owner: tk.LeaseOwner, Attempt: tk.Attempts,
			State: state, Found: found, Inputs: r.inputs(tk), StartedAt: t0, FinishedAt: t0})
	})
	return ok, ch
}

// inputs counts the identifiers of the task's key types the request has (what the engine gives).
func (r *request) inputs(tk erasure.Task) int {
	n := 0
	for _, h := range r.rs.Identifiers {
		for _, k := range tk.Keys {
			if strings.HasPrefix(h, k+":") {
				n++
			}
		}
	}
	return n
}

func (r *request) states() string {
	var out []string
	for _, tk := range r.rs.Tasks {
		out = append(out, fmt.Sprintf("%s/%s=%s", tk.Dataset, tk.Kind, tk.State))
	}
	return strings.Join(out, " ")
}

func (r *request) want(status erasure.RequestStatus, states string) {
	r.t.Helper()
	if r.rs.Status != status || r.states() != states {
		r.t.Fatalf("got %s [%s]\nwant %s [%s]", r.rs.Status, r.states(), status, states)
	}
}

func eventTypes(ch erasure.Changes) string {
	var out []string
	for _, ev := range ch.Events {
		out = append(out, ev.Type)
	}
	return strings.Join(out, " ")
}

func TestPlanTasks_FirstStates(t *testing.T) {
	tests := []struct {
		name  string
		specs []erasure.TaskSpec
		want  string
	}{
		{"EraseWithoutDependenciesIsPending", []erasure.TaskSpec{erase("a")}, "a/erase=pending"},
		{"AfterWaitsBlocked", []erasure.TaskSpec{erase("a"), erase("b", "a")}, "a/erase=pending b/erase=blocked"},
		{"LookupsRunFirstAndEverythingElseWaits", []erasure.TaskSpec{lookup("a", "email"), erase("a"), erase("b")}, "a/lookup=pending a/erase=blocked b/erase=blocked"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRequest(t, []erasure.Identifier{userID("1")}, tc.specs...)
			r.want(erasure.RequestPending, tc.want)
		})
	}
}

func TestMachine_Finish(t *testing.T) {
	tests := []struct {
		name       string
		outcome    erasure.TaskState
		wantTask   erasure.TaskState
		wantStatus erasure.RequestStatus
	}{
		{"DoneCompletesTheRequest", erasure.TaskDone, erasure.TaskDone, erasure.RequestCompleted},
		{"SkippedCompletesTheRequest", erasure.TaskSkipped, erasure.TaskSkipped, erasure.RequestCompleted},
		{"TransientErrorRetriesLater", erasure.TaskPending, erasure.TaskPending, erasure.RequestRunning},
		{"PermanentErrorFailsTheRequest", erasure.TaskFailed, erasure.TaskFailed, erasure.RequestFailed},
		{"AsyncCommandDispatchedWaits", erasure.TaskDispatched, erasure.TaskDispatched, erasure.RequestRunning},
		{"OfflineTaskQueuedWaits", erasure.TaskQueued, erasure.TaskQueued, erasure.RequestRunning},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRequest(t, []erasure.Identifier{userID("1")}, erase("a"))
			tk := r.lease("a", erasure.TaskErase, "w1")
			ok, ch := r.finish(tk, tc.outcome)
			if !ok {
				t.Fatal("result of the lease holder dropped")
			}
			r.want(tc.wantStatus, "a/erase="+string(tc.wantTask))
			if len(ch.Tasks) != 1 || ch.Guard[0] != (erasure.TaskGuard{State: erasure.TaskRunning, Attempts: 1}) {
				t.Fatalf("changes %+v guard %+v", ch.Tasks, ch.Guard)
			}
			if ch.Events[0].Type != erasure.EventTaskAttempt {
				t.Fatalf("first event %s", ch.Events[0].Type)
			}
			if ended := tc.wantStatus.Ended(); ended != (ch.FinishedAt != nil) {
				t.Fatalf("request ended=%v but FinishedAt=%v", ended, ch.FinishedAt)
			}
		})
	}
}

func TestMachine_LostLease(t *testing.T) {
	r := newRequest(t, []erasure.Identifier{userID("1")}, erase("a"))
	first := r.lease("a", erasure.TaskErase, "w1")
	t.Run("AnotherHoldersResultIsDropped", func(t *testing.T) {
		other := first
		other.LeaseOwner = "w2"
		if ok, ch := r.finish(other, erasure.TaskDone); ok || len(ch.Tasks) != 0 || len(ch.Events) != 0 {
			t.Fatalf("accepted=%v changes=%+v", ok, ch)
		}
	})
	// The lease expires and w2 takes the task over (running → running, attempt 2).
	second := r.lease("a", erasure.TaskErase, "w2")
	t.Run("OlderAttemptOfTheSameOwnerIsDropped", func(t *testing.T) {
		stale := second
		stale.Attempts = 1
		if ok, _ := r.finish(stale, erasure.TaskDone); ok {
			t.Fatal("result of attempt 1 accepted after attempt 2 was leased")
		}
	})
	t.Run("FirstHoldersLateResultIsDropped", func(t *testing.T) {
		if ok, _ := r.finish(first, erasure.TaskDone); ok {
			t.Fatal("w1's result accepted after w2 took the lease")
		}
	})
	if ok, _ := r.finish(second, erasure.TaskDone); !ok {
		t.Fatal("current holder's result dropped")
	}
	r.want(erasure.RequestCompleted, "a/erase=done")
	t.Run("ResultForAFinalTaskIsDropped", func(t *testing.T) {
		if ok, _ := r.finish(second, erasure.TaskDone); ok {
			t.Fatal("a second result completed the task twice")
		}
	})
}

func TestMachine_After(t *testing.T) {
	r := newRequest(t, []erasure.Identifier{userID("1")}, erase("a"), erase("b", "a"), erase("c", "b"))
	r.want(erasure.RequestPending, "a/erase=pending b/erase=blocked c/erase=blocked")
	r.finish(r.lease("a", erasure.TaskErase, "w"), erasure.TaskDone)
	r.want(erasure.RequestRunning, "a/erase=done b/erase=pending c/erase=blocked")
	t.Run("FailedDependencyKeepsTheChainBlocked", func(t *testing.T) {
		r.finish(r.lease("b", erasure.TaskErase, "w"), erasure.TaskFailed)
		r.want(erasure.RequestFailed, "a/erase=done b/erase=failed c/erase=blocked")
	})
	t.Run("RetryReopensAndTheChainGoesOn", func(t *testing.T) {
		ch := r.apply(func(m *erasure.Machine) {
			if err := m.Retry("op", erasure.RetryOptions{}); err != nil {
				t.Fatal(err)
			}
		})
		r.want(erasure.RequestRunning, "a/erase=done b/erase=pending c/erase=blocked")
		if b := r.task("b", erasure.TaskErase); b.Attempts != 0 {
			t.Fatalf("retried task keeps %d attempts", b.Attempts)
		}
		if eventTypes(ch) != erasure.EventRequestRetried {
			t.Fatalf("events %s", eventTypes(ch))
		}
		r.finish(r.lease("b", erasure.TaskErase, "w"), erasure.TaskSkipped)
		r.want(erasure.RequestRunning, "a/erase=done b/erase=skipped c/erase=pending")
		r.finish(r.lease("c", erasure.TaskErase, "w"), erasure.TaskDone)
		r.want(erasure.RequestCompleted, "a/erase=done b/erase=skipped c/erase=done")
	})
}

func TestMachine_Lookups(t *testing.T) {
	t.Run("FoundIdentifierReopensLookupsTakingItsType", func(t *testing.T) {
		r := newRequest(t, []erasure.Identifier{email("a@x")}, lookup("users", "email"), lookup("accounts", "user_id"), erase("users"), erase("accounts"))
		users := r.lease("users", erasure.TaskLookup, "w")
		accounts := r.lease("accounts", erasure.TaskLookup, "w")
		r.finish(accounts, erasure.TaskSkipped) // no user_id yet
		r.want(erasure.RequestRunning, "users/lookup=running accounts/lookup=skipped users/erase=blocked accounts/erase=blocked")
		ok, ch := r.finish(users, erasure.TaskDone, userID("42"), email("a@x"))
		if !ok {
			t.Fatal("dropped")
		}
		if len(ch.Identifiers) != 1 || ch.Identifiers[0].Identifier != userID("42") || ch.Identifiers[0].FoundBy != "users" {
			t.Fatalf("new identifiers %+v (the known e-mail must not be added again)", ch.Identifiers)
		}
		r.want(erasure.RequestRunning, "users/lookup=done accounts/lookup=pending users/erase=blocked accounts/erase=blocked")
		r.finish(r.lease("accounts", erasure.TaskLookup, "w"), erasure.TaskDone)
		r.want(erasure.RequestRunning, "users/lookup=done accounts/lookup=done users/erase=pending accounts/erase=pending")
	})
	t.Run("LookupThatRanBeforeAnotherFoundItsInputRunsAgain", func(t *testing.T) {
		r := newRequest(t, []erasure.Identifier{email("b@x")}, lookup("users", "email"), lookup("accounts", "user_id"), erase("accounts"))
		users := r.lease("users", erasure.TaskLookup, "w")
		accounts := r.lease("accounts", erasure.TaskLookup, "w") // given no user_id
		r.finish(users, erasure.TaskDone, userID("7"))
		// accounts was running when user_id 7 was found, so it was not re-opened; its result,
		// computed from 0 inputs, arrives now.
		m := erasure.NewMachine(r.rs, plainHasher{}, t0)
		m.Finish(erasure.TaskResult{TaskID: accounts.ID, RequestID: "r1", Kind: erasure.TaskLookup, Owner: "w", Attempt: accounts.Attempts, State: erasure.TaskSkipped, Inputs: 0})
		m.Settle("test")
		r.want(erasure.RequestRunning, "users/lookup=done accounts/lookup=pending accounts/erase=blocked")
	})
	t.Run("FailedLookupBlocksEveryErase", func(t *testing.T) {
		r := newRequest(t, []erasure.Identifier{email("c@x")}, lookup("users", "email"), erase("users"))
		r.finish(r.lease("users", erasure.TaskLookup, "w"), erasure.TaskFailed)
		r.want(erasure.RequestFailed, "users/lookup=failed users/erase=blocked")
	})
	t.Run("NothingNewFoundIsAFixpoint", func(t *testing.T) {
		r := newRequest(t, []erasure.Identifier{email("d@x")}, lookup("users", "email"), erase("users"))
		_, ch := r.finish(r.lease("users", erasure.TaskLookup, "w"), erasure.TaskDone, email("d@x"))
		if len(ch.Identifiers) != 0 {
			t.Fatalf("added %d known identifiers", len(ch.Identifiers))
		}
		r.want(erasure.RequestRunning, "users/lookup=done users/erase=pending")
	})
}

// ackOf decides and applies ack a as the answer to the dispatch of attempt dispatched.
func ackOf(r *request, tk erasure.Task, dataset string, a erasure.Ack, dispatched int) (erasure.Changes, error) {
	d, err := erasure.DecideAck(&tk, a, dispatched, 3, t0.Add(time.Minute))
	if err != nil {
		return erasure.Changes{}, err
	}
	var aerr error
	ch := r.apply(func(m *erasure.Machine) { _, aerr = m.Ack(dataset, d, "svc") })
	return ch, aerr
}

func TestMachine_Ack(t *testing.T) {
	dispatched := func(t *testing.T) (*request, erasure.Task) {
		r := newRequest(t, []erasure.Identifier{userID("1")}, async("notif"))
		tk := r.lease("notif", erasure.TaskErase, "w")
		r.finish(tk, erasure.TaskDispatched)
		return r, *r.task("notif", erasure.TaskErase)
	}
	ack := func(r *request, tk erasure.Task, dataset string, a erasure.Ack) (erasure.Changes, error) {
		return ackOf(r, tk, dataset, a, tk.Attempts)
	}
	t.Run("DoneCompletes", func(t *testing.T) {
		r, tk := dispatched(t)
		ch, err := ack(r, tk, "notif", erasure.Ack{TaskID: tk.ID, Status: erasure.AckDone, Removed: 3})
		if err != nil {
			t.Fatal(err)
		}
		r.want(erasure.RequestCompleted, "notif/erase=done")
		if got := eventTypes(ch); got != "task.acked request.completed subject.hashed" {
			t.Fatalf("events %s", got)
		}
		t.Run("SecondDoneIsANoop", func(t *testing.T) {
			ch, err := ack(r, *r.task("notif", erasure.TaskErase), "notif", erasure.Ack{TaskID: tk.ID, Status: erasure.AckDone, Removed: 3})
			if err != nil || !ch.Empty() || r.task("notif", erasure.TaskErase).Removed != 3 {
				t.Fatalf("err %v changes %+v", err, ch)
			}
		})
	})
	t.Run("FailedRetriesAtTheDecidedTime", func(t *testing.T) {
		r, tk := dispatched(t)
		if _, err := ack(r, tk, "notif", erasure.Ack{TaskID: tk.ID, Status: erasure.AckFailed, Error: "quota"}); err != nil {
			t.Fatal(err)
		}
		got := r.task("notif", erasure.TaskErase)
		if got.State != erasure.TaskPending || !got.DueAt.Equal(t0.Add(time.Minute)) || got.LastError != "quota" {
			t.Fatalf("task %+v", got)
		}
	})
	t.Run("FailedAfterLastAttemptFails", func(t *testing.T) {
		r, tk := dispatched(t)
		tk.Attempts = 3
		r.task("notif", erasure.TaskErase).Attempts = 3
		if _, err := ack(r, tk, "notif", erasure.Ack{TaskID: tk.ID, Status: erasure.AckFailed, Error: "quota"}); err != nil {
			t.Fatal(err)
		}
		r.want(erasure.RequestFailed, "notif/erase=failed")
	})
	t.Run("LateDoneAckCompletesAPendingOrFailedTask", func(t *testing.T) {
		for _, from := range []erasure.TaskState{erasure.TaskPending, erasure.TaskRunning, erasure.TaskFailed} {
			r, tk := dispatched(t)
			r.task("notif", erasure.TaskErase).State = from
			if _, err := ack(r, tk, "notif", erasure.Ack{TaskID: tk.ID, Status: erasure.AckDone}); err != nil {
				t.Fatalf("from %s: %v", from, err)
			}
			r.want(erasure.RequestCompleted, "notif/erase=done")
		}
	})
	t.Run("FailedAckOfANewerAttemptUnderWayIsIgnored", func(t *testing.T) {
		r, tk := dispatched(t)
		r.lease("notif", erasure.TaskErase, "w") // the ack timeout passed: published again
		ch, err := ack(r, tk, "notif", erasure.Ack{TaskID: tk.ID, Status: erasure.AckFailed, Error: "late"})
		if err != nil || !ch.Empty() {
			t.Fatalf("err %v changes %+v", err, ch)
		}
	})
	t.Run("DecisionOnAnOlderAttemptIsIgnored", func(t *testing.T) {
		r, tk := dispatched(t)
		// Re-dispatched (attempt 2) between the decision and its application.
		r.finish(r.lease("notif", erasure.TaskErase, "w"), erasure.TaskDispatched)
		ch, err := ack(r, tk, "notif", erasure.Ack{TaskID: tk.ID, Status: erasure.AckFailed, Error: "x"})
		if err != nil || !ch.Empty() {
			t.Fatalf("err %v changes %+v", err, ch)
		}
	})
	t.Run("OtherDatasetIsNotFound", func(t *testing.T) {
		r, tk := dispatched(t)
		_, err := ack(r, tk, "billing", erasure.Ack{TaskID: tk.ID, Status: erasure.AckDone})
		if erasure.ErrorCode(err) != erasure.ENOTFOUND {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("CancelledTaskConflicts", func(t *testing.T) {
		r, tk := dispatched(t)
		r.apply(func(m *erasure.Machine) { m.Cancel("op") })
		_, err := ack(r, tk, "notif", erasure.Ack{TaskID: tk.ID, Status: erasure.AckDone})
		if erasure.ErrorCode(err) != erasure.ECONFLICT {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("RealtimeTaskConflicts", func(t *testing.T) {
		r := newRequest(t, []erasure.Identifier{userID("1")}, erase("a"))
		_, err := ack(r, r.lease("a", erasure.TaskErase, "w"), "a", erasure.Ack{TaskID: 1, Status: erasure.AckDone})
		if erasure.ErrorCode(err) != erasure.ECONFLICT {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("BadStatusIsInvalid", func(t *testing.T) {
		r, tk := dispatched(t)
		if _, err := ack(r, tk, "notif", erasure.Ack{TaskID: tk.ID, Status: "ok"}); erasure.ErrorCode(err) != erasure.EINVALID {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("DecisionNeedsADispatchOfTheTask", func(t *testing.T) {
		_, tk := dispatched(t)
		for _, attempt := range []int{0, -1, tk.Attempts + 1} {
			if _, err := erasure.DecideAck(&tk, erasure.Ack{TaskID: tk.ID, Status: erasure.AckDone}, attempt, 3, t0); erasure.ErrorCode(err) != erasure.ENOTFOUND {
				t.Errorf("attempt %d: err %v, want not found", attempt, err)
			}
		}
	})
	t.Run("DecisionForAnAttemptTheTaskNoLongerHasIsStale", func(t *testing.T) {
		r, tk := dispatched(t)
		// An operator retry started the attempts again between the decision and its application.
		r.task("notif", erasure.TaskErase).Attempts = 0
		r.task("notif", erasure.TaskErase).State = erasure.TaskPending
		if _, err := ack(r, tk, "notif", erasure.Ack{TaskID: tk.ID, Status: erasure.AckDone}); !errors.Is(err, erasure.ErrStale) {
			t.Fatalf("err %v, want ErrStale", err)
		}
	})
	t.Run("LateDoneAckOfAnOlderAttemptCompletes", func(t *testing.T) {
		r, tk := dispatched(t)
		r.finish(r.lease("notif", erasure.TaskErase, "w"), erasure.TaskDispatched) // attempt 2
		tk = *r.task("notif", erasure.TaskErase)
		ch, err := ackOf(r, tk, "notif", erasure.Ack{TaskID: tk.ID, Status: erasure.AckDone, Removed: 1}, 1)
		if err != nil {
			t.Fatal(err)
		}
		r.want(erasure.RequestCompleted, "notif/erase=done")
		if !strings.Contains(string(ch.Events[0].Data), `"dispatched":1`) {
			t.Fatalf("ack event %s does not name the dispatch it answers", ch.Events[0].Data)
		}
	})
	t.Run("FailedAckOfAnOlderAttemptIsIgnored", func(t *testing.T) {
		r, _ := dispatched(t)
		r.finish(r.lease("notif", erasure.TaskErase, "w"), erasure.TaskDispatched) // attempt 2
		tk := *r.task("notif", erasure.TaskErase)
		ch, err := ackOf(r, tk, "notif", erasure.Ack{TaskID: tk.ID, Status: erasure.AckFailed, Error: "late"}, 1)
		if err != nil || !ch.Empty() {
			t.Fatalf("err %v changes %+v", err, ch)
		}
	})
	t.Run("FailedAckOfTheRunningAttemptWaitsForItsDispatch", func(t *testing.T) {
		r := newRequest(t, []erasure.Identifier{userID("1")}, async("notif"))
		tk := r.lease("notif", erasure.TaskErase, "w")
		_, err := ackOf(r, tk, "notif", erasure.Ack{TaskID: tk.ID, Status: erasure.AckFailed, Error: "quota"}, 1)
		if !errors.Is(err, erasure.ErrDispatchUnrecorded) || erasure.ErrorCode(err) != erasure.EUNAVAILABLE {
			t.Fatalf("err %v, want ErrDispatchUnrecorded", err)
		}
		r.finish(tk, erasure.TaskDispatched)
		if _, err := ackOf(r, *r.task("notif", erasure.TaskErase), "notif", erasure.Ack{TaskID: tk.ID, Status: erasure.AckFailed, Error: "quota"}, 1); err != nil {
			t.Fatalf("once dispatched: %v", err)
		}
		r.want(erasure.RequestRunning, "notif/erase=pending")
	})
}

// TestMachine_AckBeforeItsDispatchIsRecorded: the owner may answer a command before the
// executor has written the dispatch (publish, then commit). Whatever the order, each dispatch
// is audited once and the task ends done.
func TestMachine_AckBeforeItsDispatchIsRecorded(t *testing.T) {
	for _, tc := range []struct {
		name string
		// result is the outcome of the running attempt, written after the ack.
		result erasure.TaskState
		// dispatched is the attempt the ack answers (the running one, or an older one).
		republished bool
		events      string
	}{
		{"DispatchOfTheAckedAttempt", erasure.TaskDispatched, false, "task.attempt"},
		{"RepublicationWhileALateAckCame", erasure.TaskDispatched, true, "task.attempt"},
		{"AttemptThatFailedToPublish", erasure.TaskPending, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRequest(t, []erasure.Identifier{userID("1")}, async("notif"))
			if tc.republished {
				r.finish(r.lease("notif", erasure.TaskErase, "w"), erasure.TaskDispatched)
			}
			running := r.lease("notif", erasure.TaskErase, "w")
			ch, err := ackOf(r, running, "notif", erasure.Ack{TaskID: running.ID, Status: erasure.AckDone, Removed: 2}, 1)
			if err != nil {
				t.Fatal(err)
			}
			if got := eventTypes(ch); got != "task.acked request.completed subject.hashed" {
				t.Fatalf("ack events %s", got)
			}
			ok, ch := r.finish(running, tc.result)
			if !ok {
				t.Fatal("the result of the acknowledged attempt was dropped as a lost lease")
			}
			if got := eventTypes(ch); got != tc.events {
				t.Fatalf("result events %q, want %q", got, tc.events)
			}
			tk := r.task("notif", erasure.TaskErase)
			if tk.State != erasure.TaskDone || tk.Removed != 2 || tk.LeaseOwner != "" || tk.Attempts != running.Attempts {
				t.Fatalf("task %+v", tk)
			}
			r.want(erasure.RequestCompleted, "notif/erase=done")
			if tc.events != "" && !strings.Contains(string(ch.Events[0].Data), `"outcome":"dispatched"`) {
				t.Fatalf("dispatch event %s", ch.Events[0].Data)
			}
			t.Run("AnotherOwnersResultIsStillDropped", func(t *testing.T) {
				other := running
				other.LeaseOwner = "x"
				if ok, _ := r.finish(other, erasure.TaskDispatched); ok {
					t.Fatal("accepted")
				}
			})
		})
	}
}

func TestDispatchID(t *testing.T) {
	h := plainHasher{}
	tk := erasure.Task{ID: 7, Attempts: 3}
	ids := map[string]bool{}
	for _, dep := range []string{"dep-a", "dep-b"} {
		for _, task := range []int64{7, 8} {
			for attempt := 1; attempt <= 3; attempt++ {
				id := erasure.DispatchID(h, dep, task, attempt)
				if !erasure.ValidDispatchID(id) || ids[id] {
					t.Fatalf("DispatchID(%s, %d, %d) = %q: malformed or repeated", dep, task, attempt, id)
				}
				ids[id] = true
			}
		}
	}
	for attempt := 1; attempt <= 3; attempt++ {
		got, ok := erasure.DispatchAttempt(h, "dep-a", &tk, erasure.DispatchID(h, "dep-a", 7, attempt))
		if !ok || got != attempt {
			t.Errorf("attempt %d: DispatchAttempt = %d, %v", attempt, got, ok)
		}
	}
	for name, id := range map[string]string{
		"OtherDeployment": erasure.DispatchID(h, "dep-b", 7, 1),
		"OtherTask":       erasure.DispatchID(h, "dep-a", 8, 1),
		"AttemptNotMade":  erasure.DispatchID(h, "dep-a", 7, 4),
		"Upper":           strings.ToUpper(erasure.DispatchID(h, "dep-a", 7, 1)),
		"Short":           erasure.DispatchID(h, "dep-a", 7, 1)[:31],
		"Empty":           "",
	} {
		if a, ok := erasure.DispatchAttempt(h, "dep-a", &tk, id); ok {
			t.Errorf("%s: DispatchAttempt accepted %q as attempt %d", name, id, a)
		}
	}
}

func TestMachine_Cancel(t *testing.T) {
	r := newRequest(t, []erasure.Identifier{userID("1")}, erase("a"), erase("b", "a"), async("c"), offline("d"))
	r.finish(r.lease("a", erasure.TaskErase, "w"), erasure.TaskDone)
	running := r.lease("b", erasure.TaskErase, "w")
	r.finish(r.lease("c", erasure.TaskErase, "w"), erasure.TaskDispatched)
	r.finish(r.lease("d", erasure.TaskErase, "w"), erasure.TaskQueued)
	ch := r.apply(func(m *erasure.Machine) {
		if err := m.Cancel("op"); err != nil {
			t.Fatal(err)
		}
	})
	r.want(erasure.RequestCancelled, "a/erase=done b/erase=cancelled c/erase=cancelled d/erase=cancelled")
	if got := eventTypes(ch); got != "task.cancelled task.cancelled task.cancelled request.cancelled subject.hashed" {
		t.Fatalf("events %s", got)
	}
	if !ch.Cancelled || ch.FinishedAt == nil {
		t.Fatalf("changes %+v", ch)
	}
	t.Run("ResultOfACancelledRunningTaskIsDropped", func(t *testing.T) {
		if ok, _ := r.finish(running, erasure.TaskDone); ok {
			t.Fatal("accepted")
		}
	})
	t.Run("CancelAgainConflicts", func(t *testing.T) {
		m := erasure.NewMachine(r.rs, plainHasher{}, t0)
		if err := m.Cancel("op"); erasure.ErrorCode(err) != erasure.ECONFLICT {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("RetryOfAnEndedRequestConflicts", func(t *testing.T) {
		m := erasure.NewMachine(r.rs, plainHasher{}, t0)
		if err := m.Retry("op", erasure.RetryOptions{}); erasure.ErrorCode(err) != erasure.ECONFLICT {
			t.Fatalf("err %v", err)
		}
	})
}

func TestMachine_RetryWithoutFailureConflicts(t *testing.T) {
	r := newRequest(t, []erasure.Identifier{userID("1")}, erase("a"))
	m := erasure.NewMachine(r.rs, plainHasher{}, t0)
	if err := m.Retry("op", erasure.RetryOptions{}); erasure.ErrorCode(err) != erasure.ECONFLICT {
		t.Fatalf("err %v", err)
	}
}

func TestMachine_Sweeps(t *testing.T) {
	queued := func(t *testing.T) (*request, *erasure.Sweep) {
		r := newRequest(t, []erasure.Identifier{userID("1")}, offline("snap"), erase("a"))
		r.finish(r.lease("snap", erasure.TaskErase, "w"), erasure.TaskQueued)
		r.finish(r.lease("a", erasure.TaskErase, "w"), erasure.TaskDone)
		tk := r.task("snap", erasure.TaskErase)
		if !tk.Sweepable() {
			t.Fatalf("queued task not sweepable: %+v", tk)
		}
		tk.SweepID = "s1"
		if tk.Sweepable() {
			t.Fatal("a task in a sweep is sweepable again")
		}
		return r, &erasure.Sweep{ID: "s1", Dataset: "snap", State: erasure.SweepRunning, Started: t0}
	}
	t.Run("CommitCompletesTasksAndRequest", func(t *testing.T) {
		r, sw := queued(t)
		if err := sw.Finish(erasure.SweepResult{Removed: 4}, nil, t0); err != nil || sw.State != erasure.SweepCommitted {
			t.Fatalf("%v %s", err, sw.State)
		}
		ch := r.apply(func(m *erasure.Machine) { m.CommitSweep(sw, "sweeper") })
		r.want(erasure.RequestCompleted, "snap/erase=done a/erase=done")
		if tk := r.task("snap", erasure.TaskErase); tk.VerifiedAt == nil || tk.Note != "sweep s1" {
			t.Fatalf("task %+v", tk)
		}
		if got := eventTypes(ch); got != "task.attempt request.completed subject.hashed" {
			t.Fatalf("events %s", got)
		}
		if err := sw.Finish(erasure.SweepResult{}, nil, t0); erasure.ErrorCode(err) != erasure.ECONFLICT {
			t.Fatalf("second finish: %v", err)
		}
	})
	t.Run("FailureRequeuesWithTheError", func(t *testing.T) {
		r, sw := queued(t)
		sw.Finish(erasure.SweepResult{}, errors.New("disk\nfull"), t0)
		if sw.State != erasure.SweepFailed || sw.Error != "disk full" {
			t.Fatalf("sweep %s %q", sw.State, sw.Error)
		}
		r.apply(func(m *erasure.Machine) { m.FailSweep(sw, nil) })
		tk := r.task("snap", erasure.TaskErase)
		if tk.State != erasure.TaskQueued || tk.SweepID != "" || !strings.Contains(tk.LastError, "disk full") {
			t.Fatalf("task %+v", tk)
		}
		r.want(erasure.RequestRunning, "snap/erase=queued a/erase=done")
	})
}

func TestSubmission_Validate(t *testing.T) {
	ok := erasure.Submission{Subject: erasure.NewSubject(userID("42")), Reason: "user_request"}
	many := make([]erasure.Identifier, erasure.MaxSubjectIdentifiers+1)
	for i := range many {
		many[i] = userID(fmt.Sprint(i))
	}
	tests := []struct {
		name string
		edit func(s *erasure.Submission)
	}{
		{"NoSubject", func(s *erasure.Submission) { s.Subject = nil }},
		{"TooManyIdentifiers", func(s *erasure.Submission) { s.Subject = erasure.NewSubject(many...) }},
		{"InvalidUTF8", func(s *erasure.Submission) { s.Subject = erasure.Subject{{Type: "user_id", Value: "\xff"}} }},
		{"BadType", func(s *erasure.Submission) { s.Subject = erasure.Subject{{Type: "User", Value: "1"}} }},
		{"NoReason", func(s *erasure.Submission) { s.Reason = "" }},
		{"FreeTextReason", func(s *erasure.Submission) { s.Reason = "Because Alice asked" }},
		{"ReasonWithOuterSpace", func(s *erasure.Submission) { s.Reason = "user_request " }},
		{"LongIdempotencyKey", func(s *erasure.Submission) { s.IdempotencyKey = strings.Repeat("k", erasure.MaxIdempotencyKey+1) }},
		{"ControlInIdempotencyKey", func(s *erasure.Submission) { s.IdempotencyKey = "a\nb" }},
	}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid submission refused: %v", err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := ok
			tc.edit(&s)
			err := s.Validate()
			if erasure.ErrorCode(err) != erasure.EINVALID {
				t.Fatalf("err %v, want invalid", err)
			}
			if strings.Contains(err.Error(), "\xff") || strings.Contains(err.Error(), "Alice") {
				t.Fatalf("message echoes the input: %v", err)
			}
		})
	}
}

func TestMachine_DeferredLeaseIsNotAnAttempt(t *testing.T) {
	r := newRequest(t, []erasure.Identifier{userID("1")}, erase("a"))
	tk := r.lease("a", erasure.TaskErase, "w")
	var ok bool
	ch := r.apply(func(m *erasure.Machine) {
		ok = m.Finish(erasure.TaskResult{TaskID: tk.ID, RequestID: "r1", Owner: "w", Attempt: tk.Attempts, Deferred: true, DueAt: t0.Add(time.Second)})
	})
	got := r.task("a", erasure.TaskErase)
	if !ok || got.State != erasure.TaskPending || got.Attempts != 0 || !got.DueAt.Equal(t0.Add(time.Second)) || got.LeaseOwner != "" {
		t.Fatalf("deferred: ok=%v task %+v", ok, got)
	}
	if len(ch.Events) != 0 {
		t.Fatalf("a deferral is audited: %s", eventTypes(ch))
	}
}

// finishGuarded applies a failed result of a leased task that stopped at its guard.
func (r *request) finishGuarded(tk erasure.Task) erasure.Changes {
	r.t.Helper()
	return r.apply(func(m *erasure.Machine) {
		if !m.Finish(erasure.TaskResult{TaskID: tk.ID, RequestID: "r1", Dataset: tk.Dataset, Kind: tk.Kind, Owner: tk.LeaseOwner, Attempt: tk.Attempts,
			State: erasure.TaskFailed, Error: "guard: would remove 5000 rows", GuardTripped: true, StartedAt: t0, FinishedAt: t0}) {
			r.t.Fatal("dropped")
		}
	})
}

func TestMachine_Guard(t *testing.T) {
	// Each case: which tasks of a request of datasets a and b failed, and how; what a retry
	// with the given options answers; and the guard status of each task after it.
	tests := []struct {
		name string
		// fail says how each dataset's task ends before the retry: "guard", "error" or "done".
		fail      map[string]string
		force     bool
		wantErr   string // error code, "" for success
		wantGuard map[string]erasure.GuardStatus
		wantState string
	}{
		{"ForcedRetryOverridesTheTrippedTask", map[string]string{"a": "guard", "b": "done"}, true, "",
			map[string]erasure.GuardStatus{"a": erasure.GuardOverridden, "b": ""}, "a/erase=pending b/erase=done"},
		{"PlainRetryKeepsTheGuard", map[string]string{"a": "guard", "b": "done"}, false, "",
			map[string]erasure.GuardStatus{"a": erasure.GuardTripped, "b": ""}, "a/erase=pending b/erase=done"},
		{"ForceOverridesOnlyTheTrippedTask", map[string]string{"a": "guard", "b": "error"}, true, "",
			map[string]erasure.GuardStatus{"a": erasure.GuardOverridden, "b": ""}, "a/erase=pending b/erase=pending"},
		{"ForceWithoutATrippedTaskConflicts", map[string]string{"a": "error", "b": "done"}, true, erasure.ECONFLICT,
			map[string]erasure.GuardStatus{"a": "", "b": ""}, "a/erase=failed b/erase=done"},
		{"ForceWithoutAFailedTaskConflicts", map[string]string{"a": "done", "b": "done"}, true, erasure.ECONFLICT,
			map[string]erasure.GuardStatus{"a": "", "b": ""}, "a/erase=done b/erase=done"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRequest(t, []erasure.Identifier{userID("1")}, erase("a"), erase("b"))
			for _, ds := range []string{"a", "b"} {
				tk := r.lease(ds, erasure.TaskErase, "w")
				switch tc.fail[ds] {
				case "guard":
					ch := r.finishGuarded(tk)
					var d erasure.AttemptData
					if err := json.Unmarshal(ch.Events[0].Data, &d); err != nil || d.Guard != erasure.GuardTripped {
						t.Fatalf("attempt event %s (%v): the trip must be audited", ch.Events[0].Data, err)
					}
				case "error":
					r.finish(tk, erasure.TaskFailed)
				default:
					r.finish(tk, erasure.TaskDone)
				}
			}
			before := r.states()
			var err error
			ch := r.apply(func(m *erasure.Machine) { err = m.Retry("op", erasure.RetryOptions{OverrideGuard: tc.force}) })
			if erasure.ErrorCode(err) != tc.wantErr {
				t.Fatalf("retry: %v, want code %q", err, tc.wantErr)
			}
			if tc.wantErr != "" && (r.states() != before || len(ch.Tasks) != 0 || len(ch.Events) != 0) {
				t.Fatalf("a refused retry changed %v %v", ch.Tasks, ch.Events)
			}
			if r.states() != tc.wantState {
				t.Fatalf("states %s, want %s", r.states(), tc.wantState)
			}
			for ds, want := range tc.wantGuard {
				if got := r.task(ds, erasure.TaskErase).Guard; got != want {
					t.Fatalf("%s: guard %q, want %q", ds, got, want)
				}
			}
			if tc.wantErr == "" && tc.force {
				var data struct {
					Override []int64 `json:"override_guard"`
				}
				if json.Unmarshal(ch.Events[0].Data, &data); len(data.Override) != 1 || data.Override[0] != r.task("a", erasure.TaskErase).ID {
					t.Fatalf("request.retried %s must list the overridden task", ch.Events[0].Data)
				}
			}
		})
	}

	t.Run("OverrideStaysForTheTasksLife", func(t *testing.T) {
		r := newRequest(t, []erasure.Identifier{userID("1")}, erase("a"))
		r.finishGuarded(r.lease("a", erasure.TaskErase, "w"))
		r.apply(func(m *erasure.Machine) { m.Retry("op", erasure.RetryOptions{OverrideGuard: true}) })
		// A transient failure, then success: the override holds throughout and is audited.
		r.finish(r.lease("a", erasure.TaskErase, "w"), erasure.TaskPending)
		_, ch := r.finish(r.lease("a", erasure.TaskErase, "w"), erasure.TaskDone)
		if g := r.task("a", erasure.TaskErase).Guard; g != erasure.GuardOverridden {
			t.Fatalf("guard %q after the forced attempts", g)
		}
		var d erasure.AttemptData
		json.Unmarshal(ch.Events[0].Data, &d)
		if d.Guard != erasure.GuardOverridden {
			t.Fatalf("attempt event %s must say the guard was overridden", ch.Events[0].Data)
		}
		r.want(erasure.RequestCompleted, "a/erase=done")
	})
	t.Run("PassingAttemptClearsATrip", func(t *testing.T) {
		r := newRequest(t, []erasure.Identifier{userID("1")}, erase("a"))
		r.finishGuarded(r.lease("a", erasure.TaskErase, "w"))
		r.apply(func(m *erasure.Machine) { m.Retry("op", erasure.RetryOptions{}) })
		r.finish(r.lease("a", erasure.TaskErase, "w"), erasure.TaskDone)
		if g := r.task("a", erasure.TaskErase).Guard; g != erasure.GuardNone {
			t.Fatalf("guard %q after an attempt that passed it", g)
		}
	})
	t.Run("SweepFailsOnlyTheTasksOverTheLimit", func(t *testing.T) {
		r := newRequest(t, []erasure.Identifier{userID("1")}, offline("snap"), offline("other"))
		r.finish(r.lease("snap", erasure.TaskErase, "w"), erasure.TaskQueued)
		r.finish(r.lease("other", erasure.TaskErase, "w"), erasure.TaskQueued)
		snap, other := r.task("snap", erasure.TaskErase), r.task("other", erasure.TaskErase)
		snap.SweepID, other.SweepID = "s1", "s1"
		sw := &erasure.Sweep{ID: "s1", Dataset: "snap", State: erasure.SweepRunning, Started: t0}
		cause := erasure.Permanent(&erasure.GuardError{Dataset: "snap", Unit: "rows", Count: 30, Limit: 10, Tasks: []int64{snap.ID}})
		sw.Finish(erasure.SweepResult{}, cause, t0)
		ch := r.apply(func(m *erasure.Machine) { m.FailSweep(sw, cause) })
		r.want(erasure.RequestRunning, "snap/erase=failed other/erase=queued")
		if snap.Guard != erasure.GuardTripped || !strings.Contains(snap.LastError, "max_removed 10") || other.Guard != erasure.GuardNone || other.SweepID != "" {
			t.Fatalf("snap %+v other %+v", snap, other)
		}
		if got := eventTypes(ch); got != "task.attempt" {
			t.Fatalf("events %s", got)
		}
		// The operator forces it: it runs again, to be queued for the next sweep unguarded.
		r.apply(func(m *erasure.Machine) {
			if err := m.Retry("op", erasure.RetryOptions{OverrideGuard: true}); err != nil {
				t.Fatal(err)
			}
		})
		r.want(erasure.RequestRunning, "snap/erase=pending other/erase=queued")
		if snap.Guard != erasure.GuardOverridden {
			t.Fatalf("guard %q", snap.Guard)
		}
	})
}

func TestGuard_Check(t *testing.T) {
	tests := []struct {
		name    string
		g       erasure.Guard
		count   int64
		tripped bool
	}{
		{"UnderTheLimit", erasure.Guard{MaxRemoved: 10}, 10, false},
		{"OverTheLimit", erasure.Guard{MaxRemoved: 10}, 11, true},
		{"NoLimit", erasure.Guard{}, 1 << 40, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.g.Check("accounts.users", "rows", tc.count)
			if (err != nil) != tc.tripped {
				t.Fatalf("err %v", err)
			}
			if err == nil {
				return
			}
			g, ok := erasure.AsGuardError(err)
			if !ok || !erasure.IsPermanent(err) {
				t.Fatalf("%T %v: want a permanent *GuardError", err, err)
			}
			if msg := err.Error(); !strings.Contains(msg, "11 rows") || !strings.Contains(msg, "max_removed 10") || !strings.Contains(msg, "accounts.users") || g.Count != 11 {
				t.Fatalf("message %q must name the count, the limit and the dataset", msg)
			}
		})
	}
	shares := []struct {
		name          string
		g             erasure.Guard
		removed, rows int64
		tripped       bool
	}{
		{"HalfIsAllowed", erasure.Guard{MaxRemovedShare: 0.5}, 50, 100, false},
		{"MoreThanTheShare", erasure.Guard{MaxRemovedShare: 0.5}, 51, 100, true},
		{"SmallPartitionsMayEmpty", erasure.Guard{MaxRemovedShare: 0.5, ShareMinRows: 100}, 99, 99, false},
		{"ShareOfOneIsNoBound", erasure.Guard{MaxRemovedShare: 1}, 100, 100, false},
	}
	for _, tc := range shares {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.g.CheckShare("warehouse.events", "partition 2024/part-1.jsonl", tc.removed, tc.rows)
			if (err != nil) != tc.tripped {
				t.Fatalf("err %v", err)
			}
			if err != nil && !strings.Contains(err.Error(), "partition 2024/part-1.jsonl") {
				t.Fatalf("message %q must name the partition", err)
			}
		})
	}
}

// Policies: legal holds, the grace window, what a completed request leaves behind.

func hide(ds string) erasure.TaskSpec {
	return erasure.TaskSpec{Dataset: ds, Kind: erasure.TaskHide, Method: erasure.MethodRealtime, Keys: []string{"user_id"}}
}

// hold returns a hold in force on identifier id covering datasets (every one when none).
func hold(hid string, id erasure.Identifier, datasets ...string) erasure.Hold {
	return erasure.Hold{ID: hid, Identifier: plainHasher{}.Identifier(id), All: len(datasets) == 0, Datasets: datasets, Reason: "case " + hid}
}

// newPlanned is newRequest through PlanRequest: with a grace window ending at notBefore (zero:
// none) and the holds in force.
func newPlanned(t *testing.T, ids []erasure.Identifier, notBefore time.Time, holds []erasure.Hold, specs ...erasure.TaskSpec) *request {
	t.Helper()
	var hashes []string
	for _, id := range ids {
		hashes = append(hashes, plainHasher{}.Identifier(id))
	}
	tasks := erasure.PlanRequest(erasure.NewRequest{ID: "r1", Tasks: specs, NotBefore: notBefore}, hashes, holds, t0)
	for i := range tasks {
		tasks[i].ID = int64(i + 1)
	}
	rs := &erasure.RequestState{ID: "r1", Tasks: tasks, Identifiers: hashes, NotBefore: notBefore, Holds: holds, Suppress: true, SubmittedBy: "intake"}
	rs.Status = erasure.RequestStatusOf(false, tasks)
	return &request{t: t, rs: rs}
}

// applyAt is apply with the Machine's clock at now.
func (r *request) applyAt(now time.Time, fn func(m *erasure.Machine)) erasure.Changes {
	r.t.Helper()
	m := erasure.NewMachine(r.rs, plainHasher{}, now)
	fn(m)
	m.Settle("test")
	return m.Changes()
}

func TestPlanRequest_GraceAndHolds(t *testing.T) {
	later := t0.Add(72 * time.Hour)
	tests := []struct {
		name      string
		notBefore time.Time
		holds     []erasure.Hold
		specs     []erasure.TaskSpec
		status    erasure.RequestStatus
		want      string
	}{
		{"NoGraceNoHoldIsPlanTasks", time.Time{}, nil, []erasure.TaskSpec{erase("a"), erase("b", "a")}, erasure.RequestPending, "a/erase=pending b/erase=blocked"},
		{"GraceSchedulesEveryEraseTask", later, nil, []erasure.TaskSpec{lookup("a", "email"), erase("a"), erase("b", "a"), hide("a")},
			erasure.RequestScheduled, "a/lookup=pending a/erase=scheduled b/erase=scheduled a/hide=blocked"},
		{"HideRunsAtOnceWithoutLookups", later, nil, []erasure.TaskSpec{erase("a"), hide("a")}, erasure.RequestScheduled, "a/erase=scheduled a/hide=pending"},
		{"GraceInThePastIsNoGrace", t0.Add(-time.Second), nil, []erasure.TaskSpec{erase("a")}, erasure.RequestPending, "a/erase=pending"},
		{"HoldOnOneDatasetHoldsItAlone", time.Time{}, []erasure.Hold{hold("h1", userID("1"), "b")}, []erasure.TaskSpec{erase("a"), erase("b")},
			erasure.RequestPending, "a/erase=pending b/erase=held"},
		{"HoldOnAllDatasets", time.Time{}, []erasure.Hold{hold("h1", userID("1"))}, []erasure.TaskSpec{erase("a"), erase("b")}, erasure.RequestHeld, "a/erase=held b/erase=held"},
		{"HoldOfAnotherSubjectIsIgnored", time.Time{}, []erasure.Hold{hold("h1", userID("2"))}, []erasure.TaskSpec{erase("a")}, erasure.RequestPending, "a/erase=pending"},
		{"ReleasedHoldIsIgnored", time.Time{}, []erasure.Hold{func() erasure.Hold { h := hold("h1", userID("1")); h.ReleasedAt = &t0; return h }()},
			[]erasure.TaskSpec{erase("a")}, erasure.RequestPending, "a/erase=pending"},
		{"HoldAndGrace", later, []erasure.Hold{hold("h1", userID("1"), "a")}, []erasure.TaskSpec{erase("a"), erase("b")}, erasure.RequestScheduled, "a/erase=held b/erase=scheduled"},
		{"HoldNeverStopsLookupsNorHides", later, []erasure.Hold{hold("h1", userID("1"))}, []erasure.TaskSpec{lookup("a", "user_id"), erase("a"), hide("a")},
			erasure.RequestPending, "a/lookup=pending a/erase=held a/hide=blocked"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newPlanned(t, []erasure.Identifier{userID("1")}, tc.notBefore, tc.holds, tc.specs...)
			r.want(tc.status, tc.want)
		})
	}
}

func TestRequestStatus_WithHeldAndScheduledTasks(t *testing.T) {
	tests := []struct {
		states []erasure.TaskState
		want   erasure.RequestStatus
	}{
		{[]erasure.TaskState{erasure.TaskDone, erasure.TaskHeld}, erasure.RequestHeld},
		{[]erasure.TaskState{erasure.TaskHeld, erasure.TaskBlocked}, erasure.RequestHeld}, // blocked behind the held one
		{[]erasure.TaskState{erasure.TaskHeld, erasure.TaskPending}, erasure.RequestPending},
		{[]erasure.TaskState{erasure.TaskHeld, erasure.TaskDone, erasure.TaskRunning}, erasure.RequestRunning},
		{[]erasure.TaskState{erasure.TaskHeld, erasure.TaskFailed}, erasure.RequestFailed},
		{[]erasure.TaskState{erasure.TaskScheduled, erasure.TaskDone}, erasure.RequestScheduled},
		{[]erasure.TaskState{erasure.TaskScheduled, erasure.TaskHeld}, erasure.RequestScheduled},
		{[]erasure.TaskState{erasure.TaskScheduled, erasure.TaskFailed}, erasure.RequestFailed},
		{[]erasure.TaskState{erasure.TaskDone, erasure.TaskSkipped}, erasure.RequestCompleted},
	}
	for _, tc := range tests {
		var tasks []erasure.Task
		for _, s := range tc.states {
			tasks = append(tasks, erasure.Task{State: s})
		}
		if got := erasure.RequestStatusOf(false, tasks); got != tc.want {
			t.Errorf("%v: status %s, want %s", tc.states, got, tc.want)
		}
	}
}

func TestMachine_Holds(t *testing.T) {
	t.Run("HeldDatasetWaitsWhileOthersCompleteAndReleaseCompletesIt", func(t *testing.T) {
		r := newPlanned(t, []erasure.Identifier{userID("1")}, time.Time{}, []erasure.Hold{hold("h1", userID("1"), "b")}, erase("a"), erase("b"), erase("c", "b"))
		r.want(erasure.RequestPending, "a/erase=pending b/erase=held c/erase=blocked")
		r.finish(r.lease("a", erasure.TaskErase, "w"), erasure.TaskDone)
		r.want(erasure.RequestHeld, "a/erase=done b/erase=held c/erase=blocked")
		if held := r.task("b", erasure.TaskErase); len(held.HeldBy) != 1 || held.HeldBy[0] != "h1" {
			t.Fatalf("held by %v", held.HeldBy)
		}
		r.rs.Holds[0].ReleasedAt = &t0 // the store loads only holds in force; a released one covers nothing
		ch := r.apply(func(*erasure.Machine) {})
		r.want(erasure.RequestRunning, "a/erase=done b/erase=pending c/erase=blocked")
		if got := eventTypes(ch); got != "task.released request.running" && got != "task.released" {
			t.Fatalf("events %s", got)
		}
		r.finish(r.lease("b", erasure.TaskErase, "w"), erasure.TaskDone)
		r.finish(r.lease("c", erasure.TaskErase, "w"), erasure.TaskDone)
		r.want(erasure.RequestCompleted, "a/erase=done b/erase=done c/erase=done")
	})
	t.Run("AHoldPlacedLaterHoldsWhatHasNotStarted", func(t *testing.T) {
		tests := []struct {
			name string
			prep func(r *request)
			want erasure.TaskState
		}{
			{"Pending", func(r *request) {}, erasure.TaskHeld},
			{"Running", func(r *request) { r.lease("a", erasure.TaskErase, "w") }, erasure.TaskRunning},
			{"QueuedForASweep", func(r *request) { r.finish(r.lease("a", erasure.TaskErase, "w"), erasure.TaskQueued) }, erasure.TaskHeld},
			{"InASweep", func(r *request) {
				r.finish(r.lease("a", erasure.TaskErase, "w"), erasure.TaskQueued)
				r.task("a", erasure.TaskErase).SweepID = "s1"
			}, erasure.TaskQueued},
			{"Dispatched", func(r *request) { r.finish(r.lease("a", erasure.TaskErase, "w"), erasure.TaskDispatched) }, erasure.TaskDispatched},
			{"Failed", func(r *request) { r.finish(r.lease("a", erasure.TaskErase, "w"), erasure.TaskFailed) }, erasure.TaskFailed},
			{"Done", func(r *request) { r.finish(r.lease("a", erasure.TaskErase, "w"), erasure.TaskDone) }, erasure.TaskDone},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				r := newPlanned(t, []erasure.Identifier{userID("1")}, time.Time{}, nil, erase("a"), erase("b"))
				tc.prep(r)
				r.rs.Holds = []erasure.Hold{hold("h1", userID("1"), "a")}
				ch := r.apply(func(*erasure.Machine) {})
				tk := r.task("a", erasure.TaskErase)
				if tk.State != tc.want {
					t.Fatalf("a is %s, want %s", tk.State, tc.want)
				}
				if tc.want == erasure.TaskHeld && (tk.SweepID != "" || !strings.Contains(eventTypes(ch), "task.held")) {
					t.Fatalf("held task %+v, events %s", tk, eventTypes(ch))
				}
				if r.task("b", erasure.TaskErase).State == erasure.TaskHeld {
					t.Fatal("a hold on a held b too")
				}
			})
		}
	})
	t.Run("AnIdentifierFoundByALookupBringsItsHold", func(t *testing.T) {
		r := newPlanned(t, []erasure.Identifier{email("a@x")}, time.Time{}, []erasure.Hold{hold("h1", userID("7"))}, lookup("accounts", "email"), erase("accounts"))
		r.want(erasure.RequestPending, "accounts/lookup=pending accounts/erase=blocked")
		r.finish(r.lease("accounts", erasure.TaskLookup, "w"), erasure.TaskDone, userID("7"))
		r.want(erasure.RequestHeld, "accounts/lookup=done accounts/erase=held")
	})
	t.Run("ReleaseDuringTheGraceWindowReturnsToScheduled", func(t *testing.T) {
		later := t0.Add(time.Hour)
		r := newPlanned(t, []erasure.Identifier{userID("1")}, later, []erasure.Hold{hold("h1", userID("1"))}, erase("a"))
		r.want(erasure.RequestHeld, "a/erase=held")
		r.rs.Holds = nil
		r.apply(func(*erasure.Machine) {})
		r.want(erasure.RequestScheduled, "a/erase=scheduled")
		if tk := r.task("a", erasure.TaskErase); !tk.DueAt.Equal(later) {
			t.Fatalf("due %s, want the end of the window %s", tk.DueAt, later)
		}
	})
	t.Run("ASecondHoldKeepsItHeld", func(t *testing.T) {
		r := newPlanned(t, []erasure.Identifier{userID("1"), email("a@x")}, time.Time{}, []erasure.Hold{hold("h1", userID("1")), hold("h2", email("a@x"), "a")}, erase("a"))
		r.want(erasure.RequestHeld, "a/erase=held")
		r.rs.Holds = r.rs.Holds[1:]
		if ch := r.apply(func(*erasure.Machine) {}); len(ch.Tasks) != 0 {
			t.Fatalf("changed %+v", ch.Tasks)
		}
		r.want(erasure.RequestHeld, "a/erase=held")
	})
	t.Run("CancelStopsHeldTasks", func(t *testing.T) {
		r := newPlanned(t, []erasure.Identifier{userID("1")}, time.Time{}, []erasure.Hold{hold("h1", userID("1"))}, erase("a"))
		r.apply(func(m *erasure.Machine) {
			if err := m.Cancel("op"); err != nil {
				t.Fatal(err)
			}
		})
		r.want(erasure.RequestCancelled, "a/erase=cancelled")
	})
}

func TestExplainHeld(t *testing.T) {
	h := hold("h1", userID("1"), "a")
	r := &erasure.Request{Overdue: true, SubjectHashes: []string{h.Identifier}, Tasks: []erasure.Task{{Dataset: "a", State: erasure.TaskHeld}, {Dataset: "b", State: erasure.TaskDone}}}
	erasure.ExplainHeld(r, []erasure.Hold{h, hold("h2", userID("2"))})
	if got := r.Tasks[0].HeldBy; len(got) != 1 || got[0] != "h1" {
		t.Fatalf("held by %v", got)
	}
	if !strings.Contains(r.OverdueReason, "legal hold h1 (case h1)") {
		t.Fatalf("overdue reason %q", r.OverdueReason)
	}
	r.Overdue, r.OverdueReason = false, ""
	erasure.ExplainHeld(r, []erasure.Hold{h})
	if r.OverdueReason != "" {
		t.Fatalf("a request within its deadline has an overdue reason: %q", r.OverdueReason)
	}
}

func TestMachine_EndGrace(t *testing.T) {
	end := t0.Add(72 * time.Hour)
	tests := []struct {
		name    string
		at      time.Time
		prep    func(r *request)
		ended   bool
		status  erasure.RequestStatus
		want    string
		events  string
		hideDue bool
	}{
		{"WhileTheWindowLastsNothingChanges", end.Add(-time.Millisecond), func(*request) {}, false,
			erasure.RequestScheduled, "a/erase=scheduled b/erase=scheduled a/hide=pending", "", false},
		{"WindowOverTheErasureStartsAndTheHideIsSkipped", end, func(*request) {}, true,
			erasure.RequestRunning, "a/erase=pending b/erase=blocked a/hide=skipped", "request.grace_ended request.running", false},
		{"AHideThatRanStaysDone", end, func(r *request) { r.finish(r.lease("a", erasure.TaskHide, "w"), erasure.TaskDone) }, true,
			erasure.RequestRunning, "a/erase=pending b/erase=blocked a/hide=done", "request.grace_ended request.running", false},
		{"ARunningHideFinishesItsAttempt", end, func(r *request) { r.lease("a", erasure.TaskHide, "w") }, true,
			erasure.RequestRunning, "a/erase=pending b/erase=blocked a/hide=running", "request.grace_ended request.running", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newPlanned(t, []erasure.Identifier{userID("1")}, end, nil, erase("a"), erase("b", "a"), hide("a"))
			tc.prep(r)
			var ended bool
			ch := r.applyAt(tc.at, func(m *erasure.Machine) { ended = m.EndGrace("grace") })
			if ended != tc.ended {
				t.Fatalf("EndGrace = %v", ended)
			}
			r.want(tc.status, tc.want)
			if got := eventTypes(ch); tc.events != "" && !strings.HasPrefix(got, "request.grace_ended") {
				t.Fatalf("events %s", got)
			} else if tc.events == "" && got != "" {
				t.Fatalf("events %s while the window lasts", got)
			}
		})
	}
}

func TestMachine_Withdraw(t *testing.T) {
	end := t0.Add(72 * time.Hour)
	tests := []struct {
		name  string
		actor string
		at    time.Time
		prep  func(r *request)
		code  string
	}{
		{"TheSubmitterInTheWindow", "intake", t0, func(*request) {}, ""},
		{"AnotherChannel", "other-intake", t0, func(*request) {}, erasure.EFORBIDDEN},
		{"AfterTheWindow", "intake", end, func(r *request) { r.applyAt(end, func(m *erasure.Machine) { m.EndGrace("grace") }) }, erasure.ECONFLICT},
		{"InTheWindowWithEveryTaskHeld", "intake", t0, func(r *request) {
			r.rs.Holds = []erasure.Hold{hold("h1", userID("1"))}
			r.apply(func(*erasure.Machine) {})
		}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newPlanned(t, []erasure.Identifier{userID("1")}, end, nil, erase("a"), hide("a"))
			r.finish(r.lease("a", erasure.TaskHide, "w"), erasure.TaskDone)
			tc.prep(r)
			before := r.states()
			var err error
			ch := r.applyAt(tc.at, func(m *erasure.Machine) { err = m.Withdraw(tc.actor) })
			if erasure.ErrorCode(err) != tc.code {
				t.Fatalf("err %v, want code %q", err, tc.code)
			}
			if tc.code != "" {
				if r.states() != before || len(ch.Events) != 0 {
					t.Fatalf("a refused withdrawal changed %s → %s, events %s", before, r.states(), eventTypes(ch))
				}
				return
			}
			// Nothing is erased: the erase task never ran; the hide that ran stays done.
			r.want(erasure.RequestCancelled, "a/erase=cancelled a/hide=done")
			if got := eventTypes(ch); got != "request.withdrawn task.cancelled request.cancelled subject.hashed" {
				t.Fatalf("events %s", got)
			}
			if len(ch.Suppress) != 0 {
				t.Fatal("a withdrawn request suppressed its subject")
			}
		})
	}
}

func TestMachine_Completion(t *testing.T) {
	escrow := map[string]time.Duration{"profiles": 180 * 24 * time.Hour, "cache": 24 * time.Hour}
	tests := []struct {
		name       string
		completion erasure.Completion
		optOut     bool
		skipCache  bool
		suppress   []string // identifier types whose hashes are suppressed
		escrow     []string
	}{
		{"Off", erasure.Completion{}, false, false, nil, nil},
		{"EveryType", erasure.Completion{Suppress: true}, false, false, []string{"email", "user_id"}, nil},
		{"SomeTypes", erasure.Completion{Suppress: true, SuppressTypes: []string{"email"}}, false, false, []string{"email"}, nil},
		{"SubmitterOptedOut", erasure.Completion{Suppress: true}, true, false, nil, nil},
		{"EscrowOfDoneTasksOnly", erasure.Completion{Escrow: escrow}, false, true, nil, []string{"profiles"}},
		{"Both", erasure.Completion{Suppress: true, SuppressTypes: []string{"user_id"}, Escrow: escrow}, false, false, []string{"user_id"}, []string{"profiles", "cache"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newPlanned(t, []erasure.Identifier{userID("1"), email("a@x")}, time.Time{}, nil, erase("profiles"), erase("cache"), erase("other"))
			r.rs.Suppress = !tc.optOut
			r.finish(r.lease("profiles", erasure.TaskErase, "w"), erasure.TaskDone)
			r.finish(r.lease("other", erasure.TaskErase, "w"), erasure.TaskDone)
			cache := r.lease("cache", erasure.TaskErase, "w")
			outcome := erasure.TaskDone
			if tc.skipCache {
				outcome = erasure.TaskSkipped
			}
			var ch erasure.Changes
			r.apply(func(m *erasure.Machine) {}) // settle
			ch = r.apply(func(m *erasure.Machine) {
				m.SetCompletion(tc.completion)
				m.Finish(erasure.TaskResult{TaskID: cache.ID, RequestID: "r1", Dataset: "cache", Kind: erasure.TaskErase, Owner: "w", Attempt: cache.Attempts,
					State: outcome, StartedAt: t0, FinishedAt: t0})
			})
			if r.rs.Status != erasure.RequestCompleted {
				t.Fatalf("status %s", r.rs.Status)
			}
			var types []string
			for _, h := range ch.Suppress {
				typ, _, _ := strings.Cut(h, ":")
				types = append(types, typ)
			}
			sort.Strings(types)
			if fmt.Sprint(types) != fmt.Sprint(tc.suppress) {
				t.Fatalf("suppressed types %v, want %v", types, tc.suppress)
			}
			var datasets []string
			for _, e := range ch.Escrow {
				datasets = append(datasets, e.Dataset)
				if e.Period != escrow[e.Dataset] || fmt.Sprint(e.Types) != "[user_id]" {
					t.Fatalf("escrow %+v", e)
				}
			}
			if fmt.Sprint(datasets) != fmt.Sprint(tc.escrow) {
				t.Fatalf("escrowed %v, want %v", datasets, tc.escrow)
			}
			evs := eventTypes(ch)
			if (len(tc.suppress) > 0) != strings.Contains(evs, "subject.suppressed") || (len(tc.escrow) > 0) != strings.Contains(evs, "escrow.sealed") {
				t.Fatalf("events %s", evs)
			}
		})
	}
}

func TestEscrowMonth(t *testing.T) {
	month, destroy := erasure.EscrowMonth(time.Date(2026, 1, 31, 23, 59, 0, 0, time.UTC), 180*24*time.Hour)
	if month != "2026-01" || !destroy.Equal(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC).Add(180*24*time.Hour)) {
		t.Fatalf("%s %s", month, destroy)
	}
}
