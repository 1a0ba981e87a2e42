package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"erasure"
	"erasure/audit"
)

// PolicyStore is what the policy cases need of a store: legal holds, grace windows, the
// suppression list, retention runs, the replay escrow and the erased hashes.
type PolicyStore interface {
	erasure.Store
	erasure.HoldStore
	erasure.GraceStore
	erasure.SuppressionStore
	erasure.RetentionStore
	erasure.EscrowStore
	erasure.ErasedStore
}

// PolicyOpener opens a fresh empty store on the clock now that leaves what completion says
// behind completed requests, keyed with SuppressionHasher and sealed with Escrow.
type PolicyOpener func(t *testing.T, now func() time.Time, completion erasure.Completion) PolicyStore

// SuppressionHasher and Escrow are the suppression key and escrow cipher stores under test use.
var SuppressionHasher, Escrow = func() (*audit.Hasher, *audit.Escrow) {
	key := []byte("storetest-audit-key-0123456789abcdef")
	h, err := audit.NewHasher(audit.SuppressionKey(key))
	if err != nil {
		panic(err)
	}
	e, err := audit.NewEscrow(key)
	if err != nil {
		panic(err)
	}
	return h, e
}()

// RunPolicies runs the policy cases.
func RunPolicies(t *testing.T, open PolicyOpener) {
	t.Run("HoldWaitsWhileOthersComplete", func(t *testing.T) { testHoldLifecycle(t, open) })
	t.Run("HoldAtSubmissionAndThroughALookup", func(t *testing.T) { testHoldAtSubmission(t, open) })
	t.Run("HoldBadInput", func(t *testing.T) { testHoldBadInput(t, open) })
	t.Run("GraceWindowWithdrawn", func(t *testing.T) { testGraceWithdrawn(t, open) })
	t.Run("GraceWindowEnds", func(t *testing.T) { testGraceEnds(t, open) })
	t.Run("Suppression", func(t *testing.T) { testSuppression(t, open) })
	t.Run("RetentionRuns", func(t *testing.T) { testRetentionRuns(t, open) })
	t.Run("Escrow", func(t *testing.T) { testEscrow(t, open) })
	t.Run("ErasedSince", func(t *testing.T) { testErasedSince(t, open) })
}

func wantErr(t *testing.T, what string, err error, code string) {
	t.Helper()
	if erasure.ErrorCode(err) != code {
		t.Fatalf("%s: err %v, want code %s", what, err, code)
	}
}

// events returns the types of the audit events of request id (all when id is "").
func events(t *testing.T, s erasure.Store, id string) []erasure.AuditEvent {
	t.Helper()
	evs, err := s.Audit(context.Background(), erasure.AuditFilter{RequestID: id})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func hasEvent(evs []erasure.AuditEvent, typ string) *erasure.AuditEvent {
	for i := range evs {
		if evs[i].Type == typ {
			return &evs[i]
		}
	}
	return nil
}

// testHoldLifecycle: a hold placed after submission holds its dataset's task; the others
// complete; the held request is overdue past its deadline and says why; release completes it.
func testHoldLifecycle(t *testing.T, open PolicyOpener) {
	ctx := context.Background()
	c := NewClock()
	s := open(t, c.Now, erasure.Completion{})
	r := create(t, s, newRequest(c, subject("user_id", "1"), erase("a"), erase("b"), erase("c", "b")))
	other := create(t, s, newRequest(c, subject("user_id", "2"), erase("b")))
	h, err := s.AddHold(ctx, erasure.Hold{ID: "h_00000000000000000000000001", Identifier: Hasher.Identifier(erasure.Identifier{Type: "user_id", Value: "1"}),
		Datasets: []string{"b"}, Reason: "litigation 2026-17"}, "legal")
	if err != nil {
		t.Fatal(err)
	}
	if h.CreatedBy != "legal" || !h.Active() {
		t.Fatalf("hold %+v", h)
	}
	if got := states(get(t, s, r.ID)); got != "a/erase=pending b/erase=held c/erase=blocked" {
		t.Fatalf("after the hold: %s", got)
	}
	if got := states(get(t, s, other.ID)); got != "b/erase=pending" {
		t.Fatalf("another subject's request: %s", got)
	}
	tasks := lease(t, s, "w", 10)
	if len(tasks) != 2 {
		t.Fatalf("leased %d tasks, want a of r and b of the other request", len(tasks))
	}
	for _, tk := range tasks {
		if tk.RequestID == r.ID && tk.Dataset != "a" {
			t.Fatalf("leased held task %s", tk.Dataset)
		}
	}
	finish(t, s, c, erasure.TaskDone, tasks...)
	got := get(t, s, r.ID)
	if got.Status != erasure.RequestHeld || states(got) != "a/erase=done b/erase=held c/erase=blocked" {
		t.Fatalf("held request: %s [%s]", got.Status, states(got))
	}
	if tk := got.Tasks[1]; len(tk.HeldBy) != 1 || tk.HeldBy[0] != h.ID {
		t.Fatalf("held by %v", tk.HeldBy)
	}
	if got.Overdue || got.OverdueReason != "" {
		t.Fatalf("overdue before the deadline: %+v", got)
	}
	if n := len(lease(t, s, "w", 10)); n != 0 {
		t.Fatalf("leased %d tasks of a held request", n)
	}

	// Past its deadline, the held request is overdue and says why; the alarm counts it.
	c.Add(25 * time.Hour)
	got = get(t, s, r.ID)
	if !got.Overdue || !strings.Contains(got.OverdueReason, h.ID) || !strings.Contains(got.OverdueReason, "litigation 2026-17") {
		t.Fatalf("overdue %v, reason %q", got.Overdue, got.OverdueReason)
	}
	if n, err := s.OverdueRequests(ctx); err != nil || n != 1 {
		t.Fatalf("overdue requests %d, %v", n, err)
	}
	if n, err := s.OverdueHeld(ctx); err != nil || n != 1 {
		t.Fatalf("overdue held %d, %v", n, err)
	}
	if page, err := s.Requests(ctx, erasure.RequestFilter{Status: erasure.RequestHeld}); err != nil || len(page.Requests) != 1 || page.Requests[0].ID != r.ID {
		t.Fatalf("held listing %+v, %v", page, err)
	}
	if hs, err := s.Holds(ctx, erasure.HoldFilter{}); err != nil || len(hs) != 1 || hs[0].ID != h.ID {
		t.Fatalf("holds in force %+v, %v", hs, err)
	}

	// Release: the held task runs, then the one after it, and the request completes.
	rel, err := s.ReleaseHold(ctx, h.ID, "legal")
	if err != nil || rel.Active() || rel.ReleasedBy != "legal" {
		t.Fatalf("release %+v, %v", rel, err)
	}
	if got := states(get(t, s, r.ID)); got != "a/erase=done b/erase=pending c/erase=blocked" {
		t.Fatalf("after release: %s", got)
	}
	finish(t, s, c, erasure.TaskDone, lease(t, s, "w", 10)...)
	finish(t, s, c, erasure.TaskDone, lease(t, s, "w", 10)...)
	if got := get(t, s, r.ID); got.Status != erasure.RequestCompleted {
		t.Fatalf("after release: %s [%s]", got.Status, states(got))
	}
	_, err = s.ReleaseHold(ctx, h.ID, "legal")
	wantErr(t, "release twice", err, erasure.ECONFLICT)
	if hs, _ := s.Holds(ctx, erasure.HoldFilter{}); len(hs) != 0 {
		t.Fatalf("holds in force after release: %+v", hs)
	}
	if hs, _ := s.Holds(ctx, erasure.HoldFilter{All: true}); len(hs) != 1 || hs[0].ReleasedAt == nil {
		t.Fatalf("all holds: %+v", hs)
	}

	// The hold never blocked the audit: every step is in the trail, which verifies.
	evs := events(t, s, r.ID)
	for _, typ := range []string{erasure.EventTaskHeld, erasure.EventTaskReleased, erasure.EventRequestCompleted} {
		if hasEvent(evs, typ) == nil {
			t.Fatalf("no %s event for the request", typ)
		}
	}
	all := events(t, s, "")
	for _, typ := range []string{erasure.EventHoldAdded, erasure.EventHoldReleased} {
		ev := hasEvent(all, typ)
		if ev == nil {
			t.Fatalf("no %s event", typ)
		}
		if strings.Contains(string(ev.Data), `"1"`) {
			t.Fatalf("%s holds the identifier in clear: %s", typ, ev.Data)
		}
	}
	VerifyTrail(t, s)
	CheckCounts(t, s)
}

// testHoldAtSubmission: a request submitted while a hold is in force starts held; a hold on
// an identifier a lookup finds holds the request once it is found.
func testHoldAtSubmission(t *testing.T, open PolicyOpener) {
	ctx := context.Background()
	c := NewClock()
	s := open(t, c.Now, erasure.Completion{})
	if _, err := s.AddHold(ctx, erasure.Hold{ID: "h_00000000000000000000000002", Identifier: Hasher.Identifier(erasure.Identifier{Type: "user_id", Value: "7"}),
		All: true, Reason: "regulator inquiry"}, "legal"); err != nil {
		t.Fatal(err)
	}
	r := create(t, s, newRequest(c, subject("user_id", "7"), erase("a"), erase("b")))
	if r.Status != erasure.RequestHeld || states(r) != "a/erase=held b/erase=held" {
		t.Fatalf("created %s [%s]", r.Status, states(r))
	}
	if got := get(t, s, r.ID); states(got) != "a/erase=held b/erase=held" || got.Status != erasure.RequestHeld {
		t.Fatalf("stored %s [%s]", got.Status, states(got))
	}
	if ev := hasEvent(events(t, s, r.ID), erasure.EventRequestSubmitted); ev == nil || !strings.Contains(string(ev.Data), `"held"`) {
		t.Fatalf("submitted event does not name the holds: %+v", ev)
	}

	// Submitted by e-mail; the lookup finds user 7, which is held.
	lk := erasure.TaskSpec{Dataset: "accounts", Kind: erasure.TaskLookup, Method: erasure.MethodRealtime, Keys: []string{"email"}}
	r2 := create(t, s, newRequest(c, subject("email", "seven@example.com"), lk, erase("accounts")))
	tasks := lease(t, s, "w", 10)
	if len(tasks) != 1 || tasks[0].RequestID != r2.ID {
		t.Fatalf("leased %+v", tasks)
	}
	res := erasure.TaskResult{TaskID: tasks[0].ID, RequestID: r2.ID, Dataset: "accounts", Kind: erasure.TaskLookup, Owner: "w", Attempt: 1,
		State: erasure.TaskDone, Found: []erasure.Identifier{{Type: "user_id", Value: "7"}}, Inputs: 1, StartedAt: c.Now(), FinishedAt: c.Now()}
	if _, err := s.FinishTasks(ctx, []erasure.TaskResult{res}); err != nil {
		t.Fatal(err)
	}
	if got := get(t, s, r2.ID); got.Status != erasure.RequestHeld || states(got) != "accounts/lookup=done accounts/erase=held" {
		t.Fatalf("after the lookup: %s [%s]", got.Status, states(got))
	}
	VerifyTrail(t, s)
	CheckCounts(t, s)
}

func testHoldBadInput(t *testing.T, open PolicyOpener) {
	ctx := context.Background()
	c := NewClock()
	s := open(t, c.Now, erasure.Completion{})
	h := erasure.Hold{ID: "h_00000000000000000000000003", Identifier: "user_id:00", All: true, Reason: "x"}
	if _, err := s.AddHold(ctx, h, "legal"); err != nil {
		t.Fatal(err)
	}
	_, err := s.AddHold(ctx, h, "legal")
	wantErr(t, "same id twice", err, erasure.ECONFLICT)
	_, err = s.ReleaseHold(ctx, "h_00000000000000000000000099", "legal")
	wantErr(t, "unknown hold", err, erasure.ENOTFOUND)
	_, err = s.Hold(ctx, "h_00000000000000000000000099")
	wantErr(t, "unknown hold", err, erasure.ENOTFOUND)
}

func withGrace(nr erasure.NewRequest, until time.Time) erasure.NewRequest {
	nr.NotBefore = until
	nr.Tasks = append(nr.Tasks, erasure.TaskSpec{Dataset: nr.Tasks[0].Dataset, Kind: erasure.TaskHide, Method: erasure.MethodRealtime, Keys: []string{"user_id"}})
	return nr
}

// testGraceWithdrawn: during its grace window a request runs its hide task only; its submitter
// withdraws it and nothing is erased.
func testGraceWithdrawn(t *testing.T, open PolicyOpener) {
	ctx := context.Background()
	c := NewClock()
	s := open(t, c.Now, erasure.Completion{Suppress: true})
	r := create(t, s, withGrace(newRequest(c, subject("user_id", "1"), erase("a")), c.Now().Add(72*time.Hour)))
	if r.Status != erasure.RequestScheduled || states(r) != "a/erase=scheduled a/hide=pending" || r.NotBefore == nil {
		t.Fatalf("created %s [%s] not before %v", r.Status, states(r), r.NotBefore)
	}
	tasks := lease(t, s, "w", 10)
	if len(tasks) != 1 || tasks[0].Kind != erasure.TaskHide {
		t.Fatalf("leased %+v during the window", tasks)
	}
	finish(t, s, c, erasure.TaskDone, tasks...)
	if n, err := s.EndGraceWindows(ctx, 10); err != nil || n != 0 {
		t.Fatalf("ended %d windows early, %v", n, err)
	}
	_, err := s.WithdrawRequest(ctx, r.ID, "someone-else")
	wantErr(t, "withdraw by another channel", err, erasure.EFORBIDDEN)
	got, err := s.WithdrawRequest(ctx, r.ID, "tester")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != erasure.RequestCancelled || states(got) != "a/erase=cancelled a/hide=done" {
		t.Fatalf("withdrawn: %s [%s]", got.Status, states(got))
	}
	c.Add(73 * time.Hour)
	if n, _ := s.EndGraceWindows(ctx, 10); n != 0 || len(lease(t, s, "w", 10)) != 0 {
		t.Fatal("a withdrawn request's erasure started")
	}
	if ok, err := s.Suppressed(ctx, []string{SuppressionHasher.Identifier(erasure.Identifier{Type: "user_id", Value: "1"})}); err != nil || ok[0] {
		t.Fatalf("withdrawn subject suppressed: %v %v", ok, err)
	}
	if hasEvent(events(t, s, r.ID), erasure.EventRequestWithdrawn) == nil {
		t.Fatal("no request.withdrawn event")
	}
	VerifyTrail(t, s)
	CheckCounts(t, s)
}

// testGraceEnds: when the window ends the erasure runs; withdrawing is then refused.
func testGraceEnds(t *testing.T, open PolicyOpener) {
	ctx := context.Background()
	c := NewClock()
	s := open(t, c.Now, erasure.Completion{})
	r := create(t, s, withGrace(newRequest(c, subject("user_id", "1"), erase("a"), erase("b", "a")), c.Now().Add(time.Hour)))
	c.Add(time.Hour)
	if n, err := s.EndGraceWindows(ctx, 10); err != nil || n != 1 {
		t.Fatalf("ended %d, %v", n, err)
	}
	got := get(t, s, r.ID)
	if states(got) != "a/erase=pending b/erase=blocked a/hide=skipped" {
		t.Fatalf("after the window: %s", states(got))
	}
	_, err := s.WithdrawRequest(ctx, r.ID, "tester")
	wantErr(t, "withdraw after the window", err, erasure.ECONFLICT)
	finish(t, s, c, erasure.TaskDone, lease(t, s, "w", 10)...)
	finish(t, s, c, erasure.TaskDone, lease(t, s, "w", 10)...)
	if got := get(t, s, r.ID); got.Status != erasure.RequestCompleted {
		t.Fatalf("%s [%s]", got.Status, states(got))
	}
	if hasEvent(events(t, s, r.ID), erasure.EventGraceEnded) == nil {
		t.Fatal("no request.grace_ended event")
	}
	CheckCounts(t, s)
}

// complete leases and finishes every due task done, twice (for tasks after others).
func complete(t *testing.T, s erasure.Store, c *Clock) {
	t.Helper()
	for i := 0; i < 3; i++ {
		finish(t, s, c, erasure.TaskDone, lease(t, s, "w", 100)...)
	}
}

// testSuppression: a completed request's identifiers join the list (by the suppression key,
// never in clear), an opted-out one's do not; unsuppress is audited; completing again puts
// the identifier back.
func testSuppression(t *testing.T, open PolicyOpener) {
	ctx := context.Background()
	c := NewClock()
	s := open(t, c.Now, erasure.Completion{Suppress: true, SuppressTypes: []string{"user_id", "email"}})
	sh := func(typ, v string) string {
		return SuppressionHasher.Identifier(erasure.Identifier{Type: typ, Value: v})
	}
	r1 := create(t, s, newRequest(c, subject("user_id", "1", "email", "one@example.com", "phone", "+3312"), erase("a")))
	optOut := newRequest(c, subject("user_id", "3"), erase("a"))
	optOut.NoSuppress = true
	create(t, s, optOut)
	complete(t, s, c)
	// Request 5 stays open: its identifier is not suppressed yet.
	create(t, s, newRequest(c, subject("user_id", "5"), erase("held")))
	if got := get(t, s, r1.ID); got.Status != erasure.RequestCompleted {
		t.Fatalf("%s", got.Status)
	}
	check := []string{sh("user_id", "1"), sh("email", "one@example.com"), sh("phone", "+3312"), sh("user_id", "2"), sh("user_id", "3"), sh("user_id", "5"), Hasher.Identifier(erasure.Identifier{Type: "user_id", Value: "1"})}
	got, err := s.Suppressed(ctx, check)
	if err != nil {
		t.Fatal(err)
	}
	want := []bool{true, true, false, false, false, false, false}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("suppressed %v, want %v (user 1, its email, its phone (type not suppressed), user 2 (never), user 3 (opted out), user 5 (open), user 1 by the audit key)", got, want)
		}
	}
	var all, emails []string
	if err := s.Suppressions(ctx, "", func(h string) error { all = append(all, h); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Suppressions(ctx, "email", func(h string) error { emails = append(emails, h); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || len(emails) != 1 || emails[0] != sh("email", "one@example.com") {
		t.Fatalf("export all %v, emails %v", all, emails)
	}
	if ev := hasEvent(events(t, s, r1.ID), erasure.EventSubjectSuppressed); ev == nil {
		t.Fatal("no subject.suppressed event")
	}

	ah := Hasher.Identifier(erasure.Identifier{Type: "user_id", Value: "1"})
	removed, err := s.Unsuppress(ctx, []string{sh("user_id", "1"), sh("user_id", "2")}, []string{ah, "user_id:x"}, "wrongly erased, ticket 12", "op")
	if err != nil || !removed[0] || removed[1] {
		t.Fatalf("unsuppress %v, %v", removed, err)
	}
	if got, _ := s.Suppressed(ctx, []string{sh("user_id", "1")}); got[0] {
		t.Fatal("still suppressed after unsuppress")
	}
	ev := hasEvent(events(t, s, ""), erasure.EventSuppressionRemoved)
	if ev == nil || ev.Actor != "op" || !strings.Contains(string(ev.Data), ah) || strings.Contains(string(ev.Data), "user_id:x") {
		t.Fatalf("suppression.removed %+v", ev)
	}
	// Erased again: back on the list.
	create(t, s, newRequest(c, subject("user_id", "1"), erase("a")))
	complete(t, s, c)
	if got, _ := s.Suppressed(ctx, []string{sh("user_id", "1")}); !got[0] {
		t.Fatal("not suppressed after a second erasure")
	}

	// Many requests ending in one commit (more than one statement's worth), two of them of the
	// same subject, one opted out: each is completed, scrubbed and suppressed as if alone.
	var batch []*erasure.Request
	var hashes []string
	for i := range 40 {
		v := fmt.Sprintf("batch-%d", i)
		if i == 7 || i == 33 {
			v = "batch-twice"
		}
		nr := newRequest(c, subject("user_id", v, "email", v+"@example.com"), erase("a"))
		nr.NoSuppress = i == 20
		batch = append(batch, create(t, s, nr))
		hashes = append(hashes, sh("user_id", v))
	}
	finish(t, s, c, erasure.TaskDone, lease(t, s, "w", 100)...)
	got, err = s.Suppressed(ctx, hashes)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range batch {
		if g := get(t, s, r.ID); g.Status != erasure.RequestCompleted || len(g.Subject) != 0 {
			t.Fatalf("request %d of the batch: %s, %d identifiers in clear", i, g.Status, len(g.Subject))
		}
		if got[i] != (i != 20) {
			t.Fatalf("request %d of the batch: suppressed %v", i, got[i])
		}
	}
	VerifyTrail(t, s)
}

func testRetentionRuns(t *testing.T, open PolicyOpener) {
	ctx := context.Background()
	c := NewClock()
	s := open(t, c.Now, erasure.Completion{})
	run := erasure.RetentionRun{ID: "ret1", Dataset: "events", Cutoff: c.Now().Add(-400 * 24 * time.Hour), Actor: "retention", Started: c.Now()}
	if err := s.StartRetention(ctx, run, c.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	second := run
	second.ID = "ret2"
	wantErr(t, "a second run", s.StartRetention(ctx, second, c.Now().Add(-time.Hour)), erasure.ECONFLICT)
	other := run
	other.ID, other.Dataset = "ret3", "logins"
	if err := s.StartRetention(ctx, other, c.Now().Add(-time.Hour)); err != nil {
		t.Fatalf("another dataset: %v", err)
	}
	done, err := s.FinishRetention(ctx, "ret1", erasure.RetentionResult{Expired: 10, Removed: 10}, nil)
	if err != nil || done.State != erasure.RetentionDone || done.Removed != 10 || done.Finished == nil {
		t.Fatalf("finish %+v, %v", done, err)
	}
	_, err = s.FinishRetention(ctx, "ret1", erasure.RetentionResult{}, nil)
	wantErr(t, "finish twice", err, erasure.ECONFLICT)
	_, err = s.FinishRetention(ctx, "nope", erasure.RetentionResult{}, nil)
	wantErr(t, "finish unknown", err, erasure.ENOTFOUND)

	// A dry run ends done with nothing removed; a failure keeps its message.
	dry := run
	dry.ID, dry.DryRun = "ret4", true
	if err := s.StartRetention(ctx, dry, c.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.FinishRetention(ctx, "ret4", erasure.RetentionResult{Expired: 7}, erasure.ErrDryRun); err != nil || got.State != erasure.RetentionDone || got.Error != "" {
		t.Fatalf("dry run %+v, %v", got, err)
	}
	// A run left running by a process that died is taken over once stale.
	c.Add(2 * time.Hour)
	stale := other
	stale.ID, stale.Started = "ret5", c.Now()
	if err := s.StartRetention(ctx, stale, c.Now().Add(-time.Hour)); err != nil {
		t.Fatalf("stale run not taken over: %v", err)
	}
	if got, err := s.FinishRetention(ctx, "ret5", erasure.RetentionResult{Expired: 3}, errors.New("guard:\nrefused")); err != nil || got.State != erasure.RetentionFailed || got.Error != "guard: refused" {
		t.Fatalf("failed run %+v, %v", got, err)
	}
	runs, err := s.RetentionRuns(ctx, "logins", 10)
	if err != nil || len(runs) != 2 || runs[0].ID != "ret5" || runs[1].State != erasure.RetentionFailed || !strings.Contains(runs[1].Error, "abandoned") {
		t.Fatalf("runs %+v, %v", runs, err)
	}
	var audited int
	for _, ev := range events(t, s, "") {
		if ev.Type == erasure.EventRetentionRun {
			audited++
			var d struct {
				Expired, Removed int64
			}
			json.Unmarshal(ev.Data, &d)
			if ev.Dataset == "" {
				t.Fatalf("retention event without its dataset: %+v", ev)
			}
		}
	}
	if audited != 3 {
		t.Fatalf("%d retention.run events, want 3", audited)
	}
	VerifyTrail(t, s)
}

// testEscrow: a completed request's identifiers of an escrowed dataset can be opened until the
// month's key is destroyed, then never.
func testEscrow(t *testing.T, open PolicyOpener) {
	ctx := context.Background()
	c := NewClock() // 2026-03-01
	s := open(t, c.Now, erasure.Completion{Escrow: map[string]time.Duration{"profiles": 30 * 24 * time.Hour}})
	since := c.Now()
	r := create(t, s, newRequest(c, subject("user_id", "1", "email", "one@example.com"), erase("profiles"), erase("other")))
	complete(t, s, c)
	got, destroyed, err := s.OpenEscrow(ctx, "profiles", since)
	if err != nil || destroyed != 0 || len(got) != 1 || got[0].RequestID != r.ID {
		t.Fatalf("escrow %+v destroyed %d, %v", got, destroyed, err)
	}
	if want := subject("user_id", "1"); len(got[0].Subject) != 1 || got[0].Subject[0] != want[0] {
		t.Fatalf("escrowed subject %v, want the dataset's key identifiers %v", got[0].Subject, want)
	}
	if other, _, _ := s.OpenEscrow(ctx, "other", since); len(other) != 0 {
		t.Fatalf("a dataset without escrow kept %v", other)
	}
	if later, _, _ := s.OpenEscrow(ctx, "profiles", c.Now().Add(time.Hour)); len(later) != 0 {
		t.Fatal("escrow of a request completed before since")
	}
	// The request's own identifiers are hashed: only the escrow can give them back.
	if req := get(t, s, r.ID); len(req.Subject) != 0 {
		t.Fatalf("clear identifiers after completion: %v", req.Subject)
	}
	if n, err := s.DestroyEscrowKeys(ctx); err != nil || n != 0 {
		t.Fatalf("destroyed %d keys before their time, %v", n, err)
	}
	// March's key lives until April 1 + 30 days.
	c.Add(61 * 24 * time.Hour)
	if n, err := s.DestroyEscrowKeys(ctx); err != nil || n != 1 {
		t.Fatalf("destroyed %d keys, %v", n, err)
	}
	got, destroyed, err = s.OpenEscrow(ctx, "profiles", since)
	if err != nil || len(got) != 0 || destroyed != 1 {
		t.Fatalf("after destruction: %+v destroyed %d, %v", got, destroyed, err)
	}
	if ev := hasEvent(events(t, s, ""), erasure.EventEscrowDestroyed); ev == nil || ev.Dataset != "profiles" {
		t.Fatalf("escrow.destroyed %+v", ev)
	}
	VerifyTrail(t, s)
}

func testErasedSince(t *testing.T, open PolicyOpener) {
	ctx := context.Background()
	c := NewClock()
	s := open(t, c.Now, erasure.Completion{})
	create(t, s, newRequest(c, subject("user_id", "1"), erase("a")))
	complete(t, s, c)
	c.Add(time.Hour)
	since := c.Now()
	create(t, s, newRequest(c, subject("user_id", "2", "email", "two@example.com"), erase("a")))
	create(t, s, newRequest(c, subject("user_id", "3"), erase("a")))
	complete(t, s, c)
	create(t, s, newRequest(c, subject("user_id", "4"), erase("open")))
	hashes, n, err := s.ErasedSince(ctx, since, []string{"user_id"})
	if err != nil || n != 2 {
		t.Fatalf("%v %d %v", hashes, n, err)
	}
	want := map[string]bool{Hasher.Identifier(erasure.Identifier{Type: "user_id", Value: "2"}): true, Hasher.Identifier(erasure.Identifier{Type: "user_id", Value: "3"}): true}
	if len(hashes) != 2 || !want[hashes[0]] || !want[hashes[1]] {
		t.Fatalf("hashes %v", hashes)
	}
}
