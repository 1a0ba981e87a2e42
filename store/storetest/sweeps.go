package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"erasure"
)

// SweepStore is a store that also keeps sweeps, their owners and their units.
type SweepStore interface {
	erasure.Store
	erasure.SweepStore
	erasure.SweepUnitStore
}

// SweepOpener opens a fresh empty sweep store whose clock is now.
type SweepOpener func(t *testing.T, now func() time.Time) SweepStore

// RunSweeps runs the conformance cases of erasure.SweepStore.
func RunSweeps(t *testing.T, open SweepOpener) {
	t.Run("NothingQueued", func(t *testing.T) { testSweepNothingQueued(t, open) })
	t.Run("TasksDoneOnlyWhenCommitted", func(t *testing.T) { testSweepCommit(t, open) })
	t.Run("FailureRequeues", func(t *testing.T) { testSweepFailure(t, open) })
	t.Run("CancelledTaskSkipped", func(t *testing.T) { testSweepCancelled(t, open) })
	t.Run("External", func(t *testing.T) { testSweepExternal(t, open) })
	t.Run("BadInputChangesNothing", func(t *testing.T) { testSweepBadInput(t, open) })
	t.Run("Listing", func(t *testing.T) { testSweepListing(t, open) })
	t.Run("Units", func(t *testing.T) { RunSweepUnits(t, open) })
}

func offline(ds string) erasure.TaskSpec {
	return erasure.TaskSpec{Dataset: ds, Kind: erasure.TaskErase, Method: erasure.MethodOffline, Keys: []string{"user_id"}}
}

// queueOffline creates n requests with a realtime task on "db" and an offline task on ds, runs
// them so that db is done and ds queued, and returns the requests.
func queueOffline(t *testing.T, s SweepStore, c *Clock, ds string, n int, firstUser int) []*erasure.Request {
	t.Helper()
	var out []*erasure.Request
	for i := 0; i < n; i++ {
		nr := newRequest(c, subject("user_id", itoa(firstUser+i), "email", "u"+itoa(firstUser+i)+"@example.com"), erase("db"), offline(ds))
		nr.Deadline = c.Now().Add(time.Duration(48-i) * time.Hour)
		out = append(out, create(t, s, nr))
	}
	for _, tk := range lease(t, s, "w", 100) {
		state := erasure.TaskDone
		if tk.Method == erasure.MethodOffline {
			state = erasure.TaskQueued
		}
		finish(t, s, c, state, tk)
	}
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }

func taskOf(t *testing.T, r *erasure.Request, ds string) erasure.Task {
	t.Helper()
	for _, tk := range r.Tasks {
		if tk.Dataset == ds && tk.Kind == erasure.TaskErase {
			return tk
		}
	}
	t.Fatalf("request %s has no task on %s", r.ID, ds)
	return erasure.Task{}
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if erasure.ErrorCode(err) != code {
		t.Fatalf("%s: err %v, want code %s", what, err, code)
	}
}

func testSweepNothingQueued(t *testing.T, open SweepOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	sw, subjects, err := s.StartSweep(ctx, "snap", "s_empty", "internal", "op")
	if err != nil || sw == nil || sw.Tasks != 0 || len(subjects) != 0 {
		t.Fatalf("StartSweep with nothing queued: %+v %v %v", sw, subjects, err)
	}
	if _, err := s.Sweep(ctx, "s_empty"); erasure.ErrorCode(err) != erasure.ENOTFOUND {
		t.Fatalf("an empty sweep must not be stored: %v", err)
	}
	if n, d, err := s.QueuedTasks(ctx, "snap"); n != 0 || !d.IsZero() || err != nil {
		t.Fatalf("QueuedTasks = %d %v %v", n, d, err)
	}
}

func testSweepCommit(t *testing.T, open SweepOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	reqs := queueOffline(t, s, c, "snap", 3, 1)
	n, earliest, err := s.QueuedTasks(ctx, "snap")
	if err != nil || n != 3 {
		t.Fatalf("QueuedTasks = %d, %v", n, err)
	}
	if want := reqs[2].Deadline; !earliest.Equal(want) {
		t.Fatalf("earliest deadline %v, want %v", earliest, want)
	}
	if n, _, _ := s.QueuedTasks(ctx, "other"); n != 0 {
		t.Fatalf("QueuedTasks of another dataset = %d", n)
	}

	sw, subjects, err := s.StartSweep(ctx, "snap", "s_1", "internal", "op")
	if err != nil {
		t.Fatal(err)
	}
	if sw.ID != "s_1" || sw.State != erasure.SweepRunning || sw.Tasks != 3 || sw.Dataset != "snap" || sw.Mode != "internal" || sw.Actor != "op" {
		t.Fatalf("started sweep %+v", sw)
	}
	var gotIDs []int64
	for i, sub := range subjects {
		gotIDs = append(gotIDs, sub.TaskID)
		if want := taskOf(t, reqs[i], "snap").ID; sub.TaskID != want {
			t.Fatalf("subject %d is task %d, want %d", i, sub.TaskID, want)
		}
		// Only the task's key types are handed to the sweep.
		if len(sub.Subject) != 1 || sub.Subject[0] != (erasure.Identifier{Type: "user_id", Value: itoa(i + 1)}) {
			t.Fatalf("subject of task %d: %+v", sub.TaskID, sub.Subject)
		}
	}
	if again, err := s.SweepSubjects(ctx, "s_1"); err != nil || len(again) != 3 || again[1].TaskID != gotIDs[1] || again[1].Subject[0].Value != "2" {
		t.Fatalf("SweepSubjects = %+v, %v", again, err)
	}
	if n, _, _ := s.QueuedTasks(ctx, "snap"); n != 0 {
		t.Fatalf("tasks in a sweep still counted as waiting: %d", n)
	}
	if _, _, err := s.StartSweep(ctx, "snap", "s_2", "internal", "op"); erasure.ErrorCode(err) != erasure.ECONFLICT {
		t.Fatalf("second sweep while one runs: %v", err)
	}
	// Running sweep: the tasks are still queued, the requests not completed.
	before := map[string]int64{}
	for _, r := range reqs {
		got := get(t, s, r.ID)
		before[r.ID] = taskOf(t, got, "snap").Removed
		if tk := taskOf(t, got, "snap"); tk.State != erasure.TaskQueued || tk.SweepID != "s_1" {
			t.Fatalf("task during the sweep: %s sweep %q", tk.State, tk.SweepID)
		}
		if got.Status == erasure.RequestCompleted {
			t.Fatalf("request %s completed before the sweep committed", r.ID)
		}
	}
	// A request queued while the sweep runs waits for the next one.
	late := queueOffline(t, s, c, "snap", 1, 10)[0]
	if open, err := s.OpenSweeps(ctx); err != nil || len(open) != 1 || open[0].ID != "s_1" {
		t.Fatalf("OpenSweeps = %+v, %v", open, err)
	}

	c.Add(time.Minute)
	// The sweeper counted the rows of each subject: 4, 3 and none.
	res := erasure.SweepResult{Partitions: 4, Scanned: 100, Removed: 7, Bytes: 4096,
		PerTask: map[int64]int64{gotIDs[0]: 4, gotIDs[1]: 3}}
	sameResult := func(got erasure.SweepResult) bool {
		return got.Partitions == res.Partitions && got.Scanned == res.Scanned && got.Removed == res.Removed && got.Bytes == res.Bytes
	}
	done, err := s.FinishSweep(ctx, "s_1", res, nil, "pipeline")
	if err != nil {
		t.Fatal(err)
	}
	if done.State != erasure.SweepCommitted || done.Finished == nil || !done.Finished.Equal(c.Now()) || !sameResult(done.SweepResult) || done.Error != "" {
		t.Fatalf("committed sweep %+v", done)
	}
	if stored, err := s.Sweep(ctx, "s_1"); err != nil || stored.State != erasure.SweepCommitted || !sameResult(stored.SweepResult) || stored.Tasks != 3 {
		t.Fatalf("stored sweep %+v, %v", stored, err)
	}
	for i, r := range reqs {
		got := get(t, s, r.ID)
		tk := taskOf(t, got, "snap")
		if tk.State != erasure.TaskDone || tk.FinishedAt == nil || tk.VerifiedAt == nil || !strings.Contains(tk.Note, "s_1") {
			t.Fatalf("task after commit: %+v", tk)
		}
		if want := before[r.ID] + []int64{4, 3, 0}[i]; tk.Removed != want {
			t.Fatalf("task of subject %d reports %d rows removed, want the %d its sweep removed for it", i+1, tk.Removed, want)
		}
		if got.Status != erasure.RequestCompleted {
			t.Fatalf("request %s is %s after the sweep committed", r.ID, got.Status)
		}
	}
	if tk := taskOf(t, get(t, s, late.ID), "snap"); tk.State != erasure.TaskQueued || tk.SweepID != "" {
		t.Fatalf("task queued during the sweep: %s sweep %q", tk.State, tk.SweepID)
	}
	if _, err := s.FinishSweep(ctx, "s_1", res, nil, "pipeline"); erasure.ErrorCode(err) != erasure.ECONFLICT {
		t.Fatalf("finishing a committed sweep again: %v", err)
	}
	if _, err := s.FinishSweep(ctx, "s_nope", res, nil, "pipeline"); erasure.ErrorCode(err) != erasure.ENOTFOUND {
		t.Fatalf("finishing an unknown sweep: %v", err)
	}
	if open, _ := s.OpenSweeps(ctx); len(open) != 0 {
		t.Fatalf("OpenSweeps after commit = %+v", open)
	}

	// The trail: one done attempt per task naming the sweep, no identifier in clear, chain intact.
	evs, err := s.Audit(ctx, erasure.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	VerifyTrail(t, s)
	CheckCounts(t, s)
	doneOf := map[int64]int{}
	var types []string
	for i := range evs {
		ev := evs[i]
		if strings.Contains(ev.Type, "sweep") {
			types = append(types, ev.Type)
		}
		if strings.Contains(string(ev.Data), "@example.com") {
			t.Fatalf("event %d holds an identifier in clear: %s", ev.Seq, ev.Data)
		}
		var d struct {
			Outcome string `json:"outcome"`
			Sweep   string `json:"sweep"`
		}
		json.Unmarshal(ev.Data, &d)
		if ev.Type == erasure.EventTaskAttempt && d.Outcome == "done" && ev.Dataset == "snap" {
			if d.Sweep != "s_1" {
				t.Fatalf("done attempt of task %d names sweep %q", ev.TaskID, d.Sweep)
			}
			doneOf[ev.TaskID]++
		}
	}
	for _, id := range gotIDs {
		if doneOf[id] != 1 {
			t.Fatalf("task %d has %d done attempts in the trail", id, doneOf[id])
		}
	}
	if got := strings.Join(types, " "); got != "sweep.started sweep.committed" {
		t.Fatalf("sweep events %q", got)
	}
}

func testSweepFailure(t *testing.T, open SweepOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	reqs := queueOffline(t, s, c, "snap", 2, 1)
	if _, _, err := s.StartSweep(ctx, "snap", "s_bad", "internal", "op"); err != nil {
		t.Fatal(err)
	}
	c.Add(time.Second)
	sweepErr := erasure.Permanentf("files: part-3.jsonl: line 7: malformed JSON")
	failed, err := s.FinishSweep(ctx, "s_bad", erasure.SweepResult{Partitions: 2}, sweepErr, "pipeline")
	if err != nil {
		t.Fatal(err)
	}
	if failed.State != erasure.SweepFailed || !strings.Contains(failed.Error, "part-3.jsonl") || failed.Finished == nil {
		t.Fatalf("failed sweep %+v", failed)
	}
	if stored, _ := s.Sweep(ctx, "s_bad"); stored.State != erasure.SweepFailed || stored.Error != failed.Error {
		t.Fatalf("stored failed sweep %+v", stored)
	}
	for _, r := range reqs {
		got := get(t, s, r.ID)
		tk := taskOf(t, got, "snap")
		if tk.State != erasure.TaskQueued || tk.SweepID != "" || !strings.Contains(tk.LastError, "part-3.jsonl") || tk.FinishedAt != nil {
			t.Fatalf("task after a failed sweep: %+v", tk)
		}
		if got.Status == erasure.RequestCompleted || got.Status == erasure.RequestFailed {
			t.Fatalf("request is %s after a failed sweep; its task waits for the next one", got.Status)
		}
	}
	if n, _, _ := s.QueuedTasks(ctx, "snap"); n != 2 {
		t.Fatalf("QueuedTasks after failure = %d, want 2", n)
	}
	if _, err := s.FinishSweep(ctx, "s_bad", erasure.SweepResult{}, nil, "pipeline"); erasure.ErrorCode(err) != erasure.ECONFLICT {
		t.Fatalf("committing a failed sweep: %v", err)
	}
	// The next sweep takes the same tasks and can commit them.
	sw, subjects, err := s.StartSweep(ctx, "snap", "s_next", "internal", "op")
	if err != nil || sw.Tasks != 2 || len(subjects) != 2 {
		t.Fatalf("next sweep %+v %v", sw, err)
	}
	if _, err := s.FinishSweep(ctx, "s_next", erasure.SweepResult{}, nil, "pipeline"); err != nil {
		t.Fatal(err)
	}
	for _, r := range reqs {
		if got := get(t, s, r.ID); got.Status != erasure.RequestCompleted || taskOf(t, got, "snap").LastError != "" {
			t.Fatalf("request after the next sweep: %s %+v", got.Status, taskOf(t, got, "snap"))
		}
	}
}

func testSweepCancelled(t *testing.T, open SweepOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	reqs := queueOffline(t, s, c, "snap", 2, 1)
	if _, _, err := s.StartSweep(ctx, "snap", "s_c", "internal", "op"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CancelRequest(ctx, reqs[0].ID, "op"); err != nil {
		t.Fatal(err)
	}
	subjects, err := s.SweepSubjects(ctx, "s_c")
	if err != nil || len(subjects) != 1 || subjects[0].TaskID != taskOf(t, reqs[1], "snap").ID {
		t.Fatalf("SweepSubjects after a cancel = %+v, %v", subjects, err)
	}
	if _, err := s.FinishSweep(ctx, "s_c", erasure.SweepResult{Removed: 1}, nil, "pipeline"); err != nil {
		t.Fatal(err)
	}
	if got := get(t, s, reqs[0].ID); got.Status != erasure.RequestCancelled || taskOf(t, got, "snap").State != erasure.TaskCancelled {
		t.Fatalf("cancelled request after the sweep: %s %s", got.Status, states(got))
	}
	if got := get(t, s, reqs[1].ID); got.Status != erasure.RequestCompleted {
		t.Fatalf("other request after the sweep: %s %s", got.Status, states(got))
	}
}

func testSweepExternal(t *testing.T, open SweepOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	reqs := queueOffline(t, s, c, "lake", 2, 1)
	sw, subjects, err := s.StartSweep(ctx, "lake", "s_x", "external", "op")
	if err != nil || sw.State != erasure.SweepExported || sw.Mode != "external" || len(subjects) != 2 {
		t.Fatalf("external sweep %+v %v", sw, err)
	}
	if open, _ := s.OpenSweeps(ctx); len(open) != 1 || open[0].State != erasure.SweepExported {
		t.Fatalf("OpenSweeps = %+v", open)
	}
	if _, _, err := s.StartSweep(ctx, "lake", "s_y", "internal", "op"); erasure.ErrorCode(err) != erasure.ECONFLICT {
		t.Fatalf("a sweep while one is exported: %v", err)
	}
	if got := get(t, s, reqs[0].ID); got.Status == erasure.RequestCompleted {
		t.Fatal("request completed before the external job acknowledged")
	}
	done, err := s.FinishSweep(ctx, "s_x", erasure.SweepResult{Removed: 12}, nil, "ack:lake")
	if err != nil || done.State != erasure.SweepCommitted || done.Removed != 12 {
		t.Fatalf("ack %+v %v", done, err)
	}
	for _, r := range reqs {
		if got := get(t, s, r.ID); got.Status != erasure.RequestCompleted {
			t.Fatalf("request after the ack: %s", got.Status)
		}
	}
}

func testSweepBadInput(t *testing.T, open SweepOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	queueOffline(t, s, c, "snap", 1, 1)
	before, _ := s.Audit(ctx, erasure.AuditFilter{})
	for _, tc := range []struct {
		name, dataset, id string
		mode              erasure.SweepMode
	}{
		{"UnknownMode", "snap", "s_1", "sideways"},
		{"EmptyID", "snap", "", "internal"},
		{"EmptyDataset", "", "s_1", "internal"},
		{"InjectionInMode", "snap", "s_1", "internal'; DROP TABLE tasks; --"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := s.StartSweep(ctx, tc.dataset, tc.id, tc.mode, "op")
			wantCode(t, "StartSweep", err, erasure.EINVALID)
		})
	}
	if _, err := s.SweepSubjects(ctx, "s_1"); erasure.ErrorCode(err) != erasure.ENOTFOUND {
		t.Fatalf("SweepSubjects of an unknown sweep: %v", err)
	}
	after, _ := s.Audit(ctx, erasure.AuditFilter{})
	if n, _, _ := s.QueuedTasks(ctx, "snap"); n != 1 || len(after) != len(before) {
		t.Fatalf("bad input changed the store: queued %d, events %d → %d", n, len(before), len(after))
	}
}

func testSweepListing(t *testing.T, open SweepOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	var ids []string
	for i, ds := range []string{"a", "b", "a"} {
		queueOffline(t, s, c, ds, 1, i*10)
		id := "s_" + itoa(i)
		if _, _, err := s.StartSweep(ctx, ds, id, "internal", "op"); err != nil {
			t.Fatal(err)
		}
		var sweepErr error
		if i == 1 {
			sweepErr = errors.New("disk full")
		}
		if _, err := s.FinishSweep(ctx, id, erasure.SweepResult{}, sweepErr, "pipeline"); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		c.Add(time.Minute)
	}
	list := func(ds string, limit int) []string {
		sws, err := s.Sweeps(ctx, ds, limit)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, sw := range sws {
			out = append(out, sw.ID)
		}
		return out
	}
	if got := list("a", 10); !slices.Equal(got, []string{"s_2", "s_0"}) {
		t.Fatalf("sweeps of a: %v", got)
	}
	if got := list("", 10); !slices.Equal(got, []string{"s_2", "s_1", "s_0"}) {
		t.Fatalf("all sweeps: %v", got)
	}
	if got := list("", 1); !slices.Equal(got, []string{"s_2"}) {
		t.Fatalf("limited: %v", got)
	}
	if got := list("zzz", 10); len(got) != 0 {
		t.Fatalf("sweeps of an unknown dataset: %v", got)
	}
	if sw, err := s.Sweep(ctx, "s_1"); err != nil || sw.State != erasure.SweepFailed || sw.Error != "disk full" {
		t.Fatalf("Sweep(s_1) = %+v, %v", sw, err)
	}
	if _, err := s.Sweep(ctx, "s_404"); erasure.ErrorCode(err) != erasure.ENOTFOUND {
		t.Fatalf("Sweep of an unknown id: %v", err)
	}
}
