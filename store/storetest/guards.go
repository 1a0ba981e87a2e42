package storetest

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"erasure"
)

// GuardStore is a store that keeps sweeps and canary results.
type GuardStore interface {
	SweepStore
	erasure.CanaryStore
}

// GuardOpener opens a fresh empty store whose clock is now.
type GuardOpener func(t *testing.T, now func() time.Time) GuardStore

// RunGuards runs the conformance cases of blast-radius guards and canaries: a tripped guard is
// kept with its task and lifted only by a forced retry, which is audited; a sweep stopped by a
// subject over its limit fails that subject's task alone; canary requests stay out of user
// statistics; canary results are kept and audited.
func RunGuards(t *testing.T, open GuardOpener) {
	t.Run("TrippedGuardIsKeptAndForcedRetryOverridesIt", func(t *testing.T) { testGuardTrip(t, open) })
	t.Run("SweepGuardFailsOnlyTheSubjectsOverTheLimit", func(t *testing.T) { testSweepGuard(t, open) })
	t.Run("CanaryRequestsStayOutOfStatistics", func(t *testing.T) { testCanaryRequests(t, open) })
	t.Run("CanaryResultsAreKeptAndAudited", func(t *testing.T) { testCanaryResults(t, open) })
}

// finishGuarded ends a leased task failed at its guard.
func finishGuarded(t *testing.T, s erasure.Store, c *Clock, tk erasure.Task) {
	t.Helper()
	_, err := s.FinishTasks(context.Background(), []erasure.TaskResult{{TaskID: tk.ID, RequestID: tk.RequestID, Dataset: tk.Dataset, Kind: tk.Kind,
		Owner: tk.LeaseOwner, Attempt: tk.Attempts, State: erasure.TaskFailed, Error: "guard: would remove 5000 rows, more than max_removed 10",
		GuardTripped: true, StartedAt: c.Now(), FinishedAt: c.Now()}})
	if err != nil {
		t.Fatal(err)
	}
}

func testGuardTrip(t *testing.T, open GuardOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	r := create(t, s, newRequest(c, subject("user_id", "1"), erase("a"), erase("b")))
	for _, tk := range lease(t, s, "w", 10) {
		if tk.Dataset == "a" {
			finishGuarded(t, s, c, tk)
		} else {
			finish(t, s, c, erasure.TaskFailed, tk)
		}
	}
	got := get(t, s, r.ID)
	if got.Status != erasure.RequestFailed || taskOf(t, got, "a").Guard != erasure.GuardTripped || taskOf(t, got, "b").Guard != erasure.GuardNone {
		t.Fatalf("after the trip: %s a=%q b=%q", got.Status, taskOf(t, got, "a").Guard, taskOf(t, got, "b").Guard)
	}
	t.Run("ForceOverridesOnlyTheTrippedTask", func(t *testing.T) {
		rr, err := s.RetryRequest(ctx, r.ID, "operator", erasure.RetryOptions{OverrideGuard: true})
		if err != nil {
			t.Fatal(err)
		}
		if a, b := taskOf(t, rr, "a"), taskOf(t, rr, "b"); a.Guard != erasure.GuardOverridden || a.State != erasure.TaskPending || b.Guard != erasure.GuardNone || b.State != erasure.TaskPending {
			t.Fatalf("after a forced retry: a=%s/%q b=%s/%q", a.State, a.Guard, b.State, b.Guard)
		}
		leased := lease(t, s, "w", 10)
		if len(leased) != 2 {
			t.Fatalf("leased %d", len(leased))
		}
		for _, tk := range leased {
			if want := map[string]erasure.GuardStatus{"a": erasure.GuardOverridden, "b": erasure.GuardNone}[tk.Dataset]; tk.Guard != want {
				t.Fatalf("leased %s task carries guard %q, want %q", tk.Dataset, tk.Guard, want)
			}
		}
		finish(t, s, c, erasure.TaskDone, leased...)
		done := get(t, s, r.ID)
		if done.Status != erasure.RequestCompleted || taskOf(t, done, "a").Guard != erasure.GuardOverridden {
			t.Fatalf("after the forced attempt: %s guard %q", done.Status, taskOf(t, done, "a").Guard)
		}
		evs, err := s.Audit(ctx, erasure.AuditFilter{RequestID: r.ID})
		if err != nil {
			t.Fatal(err)
		}
		var retried, trip, overridden bool
		for _, ev := range evs {
			var d struct {
				Override []int64             `json:"override_guard"`
				Guard    erasure.GuardStatus `json:"guard"`
			}
			json.Unmarshal(ev.Data, &d)
			switch {
			case ev.Type == erasure.EventRequestRetried && ev.Actor == "operator" && len(d.Override) == 1 && d.Override[0] == taskOf(t, done, "a").ID:
				retried = true
			case ev.Type == erasure.EventTaskAttempt && d.Guard == erasure.GuardTripped:
				trip = true
			case ev.Type == erasure.EventTaskAttempt && d.Guard == erasure.GuardOverridden:
				overridden = true
			}
		}
		if !retried || !trip || !overridden {
			t.Fatalf("the trail must show the trip (%v), the forced retry with its operator and task (%v) and the forced attempt (%v)", trip, retried, overridden)
		}
		VerifyTrail(t, s)
	})
	t.Run("ForceWithoutATripConflictsAndChangesNothing", func(t *testing.T) {
		r := create(t, s, newRequest(c, subject("user_id", "2"), erase("a")))
		finish(t, s, c, erasure.TaskFailed, lease(t, s, "w", 10)...)
		before := get(t, s, r.ID)
		if _, err := s.RetryRequest(ctx, r.ID, "operator", erasure.RetryOptions{OverrideGuard: true}); erasure.ErrorCode(err) != erasure.ECONFLICT {
			t.Fatalf("forced retry without a trip: %v, want conflict", err)
		}
		if after := get(t, s, r.ID); states(after) != states(before) || after.Status != before.Status {
			t.Fatalf("a refused retry changed %s to %s", states(before), states(after))
		}
	})
	CheckCounts(t, s)
}

func testSweepGuard(t *testing.T, open GuardOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	reqs := queueOffline(t, s, c, "snap", 2, 1)
	big := taskOf(t, reqs[0], "snap")
	if _, _, err := s.StartSweep(ctx, "snap", "s_g1", "internal", "sweeper"); err != nil {
		t.Fatal(err)
	}
	cause := erasure.Permanent(&erasure.GuardError{Dataset: "snap", Unit: "rows", Count: 40, Limit: 10, Tasks: []int64{big.ID}})
	sw, err := s.FinishSweep(ctx, "s_g1", erasure.SweepResult{}, cause, "sweep:s_g1")
	if err != nil || sw.State != erasure.SweepFailed || !strings.Contains(sw.Error, "max_removed 10") {
		t.Fatalf("FinishSweep = %+v, %v", sw, err)
	}
	b, sm := get(t, s, reqs[0].ID), get(t, s, reqs[1].ID)
	if tk := taskOf(t, b, "snap"); tk.State != erasure.TaskFailed || tk.Guard != erasure.GuardTripped || !strings.Contains(tk.LastError, "max_removed 10") || b.Status != erasure.RequestFailed {
		t.Fatalf("task over the limit: %+v, request %s", tk, b.Status)
	}
	if tk := taskOf(t, sm, "snap"); tk.State != erasure.TaskQueued || tk.SweepID != "" || tk.Guard != erasure.GuardNone {
		t.Fatalf("task under the limit must wait for the next sweep: %+v", tk)
	}
	if _, err := s.RetryRequest(ctx, reqs[0].ID, "operator", erasure.RetryOptions{OverrideGuard: true}); err != nil {
		t.Fatal(err)
	}
	for _, tk := range lease(t, s, "w", 10) {
		finish(t, s, c, erasure.TaskQueued, tk)
	}
	_, subjects, err := s.StartSweep(ctx, "snap", "s_g2", "internal", "sweeper")
	if err != nil || len(subjects) != 2 {
		t.Fatalf("second sweep: %d subjects, %v", len(subjects), err)
	}
	for _, sub := range subjects {
		if want := sub.TaskID == big.ID; sub.OverrideGuard != want {
			t.Fatalf("sweep subject of task %d: OverrideGuard %v, want %v", sub.TaskID, sub.OverrideGuard, want)
		}
	}
	if again, err := s.SweepSubjects(ctx, "s_g2"); err != nil || len(again) != 2 || again[0].OverrideGuard != (again[0].TaskID == big.ID) || again[1].OverrideGuard != (again[1].TaskID == big.ID) {
		t.Fatalf("SweepSubjects (a resume) = %+v, %v", again, err)
	}
	if _, err := s.FinishSweep(ctx, "s_g2", erasure.SweepResult{Removed: 41}, nil, "sweep:s_g2"); err != nil {
		t.Fatal(err)
	}
	for _, r := range reqs {
		if got := get(t, s, r.ID); got.Status != erasure.RequestCompleted {
			t.Fatalf("request %s is %s after the forced sweep", r.ID, got.Status)
		}
	}
	VerifyTrail(t, s)
	CheckCounts(t, s)
}

func testCanaryRequests(t *testing.T, open GuardOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	user := create(t, s, newRequest(c, subject("user_id", "1"), erase("a")))
	nr := newRequest(c, subject("user_id", "erasure-canary-1"), erase("a"))
	nr.Canary = "a"
	canary := create(t, s, nr)
	if canary.Canary != "a" || get(t, s, canary.ID).Canary != "a" || get(t, s, user.ID).Canary != "" {
		t.Fatalf("canary marks: new %q stored %q user %q", canary.Canary, get(t, s, canary.ID).Canary, get(t, s, user.ID).Canary)
	}
	for _, tk := range lease(t, s, "w", 10) {
		if tk.Canary != (tk.RequestID == canary.ID) {
			t.Fatalf("leased task of %s: Canary %v", tk.RequestID, tk.Canary)
		}
		finish(t, s, c, erasure.TaskFailed, tk)
	}
	c.Add(48 * time.Hour) // both overdue
	page, err := s.Requests(ctx, erasure.RequestFilter{})
	if err != nil || len(page.Requests) != 1 || page.Requests[0].ID != user.ID {
		t.Fatalf("listing %+v, %v: want the user's request only", page.Requests, err)
	}
	if page, err = s.Requests(ctx, erasure.RequestFilter{Canary: true}); err != nil || len(page.Requests) != 1 || page.Requests[0].ID != canary.ID || page.Requests[0].Canary != "a" {
		t.Fatalf("canary listing %+v, %v", page.Requests, err)
	}
	if n, err := s.OverdueRequests(ctx); err != nil || n != 1 {
		t.Fatalf("OverdueRequests = %d, %v; want 1 (the canary left out)", n, err)
	}
	stats, err := s.DatasetStats(ctx)
	if err != nil || len(stats) != 1 || stats[0].Failures != 1 || stats[0].ByState["failed"] != 1 {
		t.Fatalf("DatasetStats = %+v, %v; want one failure (the canary's left out)", stats, err)
	}
	CheckCounts(t, s)
}

func testCanaryResults(t *testing.T, open GuardOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	if got, err := s.LastCanaries(ctx); err != nil || len(got) != 0 {
		t.Fatalf("LastCanaries of a new store = %+v, %v", got, err)
	}
	if err := s.RecordCanary(ctx, erasure.CanaryResult{}); erasure.ErrorCode(err) != erasure.EINVALID {
		t.Fatalf("a result without a dataset: %v, want invalid", err)
	}
	run := func(ds string, ok bool, reason string) erasure.CanaryResult {
		r := erasure.CanaryResult{Dataset: ds, RequestID: "r_" + ds, Started: c.Now(), OK: ok, Actor: "canary"}
		c.Add(time.Second)
		r.Finished = c.Now()
		if !ok {
			r.Stage, r.Reason = erasure.CanaryCheck, reason
		}
		if err := s.RecordCanary(ctx, r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	run("a", false, "old failure")
	run("b", true, "")
	lastA := run("a", false, "the planted row is still there")
	got, err := s.LastCanaries(ctx)
	if err != nil || len(got) != 2 || got[0].Dataset != "a" || got[1].Dataset != "b" {
		t.Fatalf("LastCanaries = %+v, %v", got, err)
	}
	if a := got[0]; a.OK || a.Reason != lastA.Reason || a.Stage != erasure.CanaryCheck || !a.Started.Equal(lastA.Started) || !a.Finished.Equal(lastA.Finished) || a.RequestID != "r_a" || a.Actor != "canary" {
		t.Fatalf("last canary of a: %+v, want %+v", a, lastA)
	}
	if !got[1].OK {
		t.Fatalf("last canary of b: %+v", got[1])
	}
	evs, err := s.Audit(ctx, erasure.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var failed, passed int
	for _, ev := range evs {
		switch ev.Type {
		case erasure.EventCanaryFailed:
			failed++
			if ev.Dataset != "a" || !strings.Contains(string(ev.Data), `"stage":"check"`) {
				t.Fatalf("canary.failed event %+v %s", ev, ev.Data)
			}
		case erasure.EventCanaryPassed:
			passed++
		}
	}
	if failed != 2 || passed != 1 {
		t.Fatalf("trail holds %d canary.failed and %d canary.passed events, want 2 and 1", failed, passed)
	}
	VerifyTrail(t, s)
}
