package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"erasure"
)

// RunSweepUnits runs the conformance cases of erasure.SweepUnitStore: owned sweeps and the
// units shared sweeps are split into.
func RunSweepUnits(t *testing.T, open SweepOpener) {
	t.Run("OwnedSweepIsClaimedOnlyOnceItsLeaseExpired", func(t *testing.T) { testSweepOwnership(t, open) })
	t.Run("ReleasedSweepIsClaimedAtOnce", func(t *testing.T) { testSweepRelease(t, open) })
	t.Run("PlannedOnceByItsOwner", func(t *testing.T) { testSweepPlan(t, open) })
	t.Run("UnitsLeasedOnceAndTakenOverWhenExpired", func(t *testing.T) { testUnitLease(t, open) })
	t.Run("UnitResultsAndTheirEvents", func(t *testing.T) { testUnitFinish(t, open) })
	t.Run("FailedUnitKeepsItsGuard", func(t *testing.T) { testUnitGuard(t, open) })
	t.Run("UnitsOfAnEndedSweepAreNotLeased", func(t *testing.T) { testUnitsOfEndedSweep(t, open) })
	t.Run("ReleaseSweepLeases", func(t *testing.T) { testReleaseSweepLeases(t, open) })
	t.Run("BadUnitInputChangesNothing", func(t *testing.T) { testUnitBadInput(t, open) })
}

// ownedSweep queues n offline tasks on "snap" and starts a sweep of them owned by owner for a
// minute.
func ownedSweep(t *testing.T, s SweepStore, c *Clock, id, owner string, n int) (*erasure.Sweep, []*erasure.Request) {
	t.Helper()
	reqs := queueOffline(t, s, c, "snap", n, 1)
	sw, subjects, err := s.StartOwnedSweep(context.Background(), "snap", id, "scheduler", owner, time.Minute)
	if err != nil || sw.Tasks != n || len(subjects) != n {
		t.Fatalf("StartOwnedSweep: %+v, %d subjects, %v", sw, len(subjects), err)
	}
	return sw, reqs
}

func units(names ...string) []erasure.SweepUnitSpec {
	var out []erasure.SweepUnitSpec
	for i, n := range names {
		out = append(out, erasure.SweepUnitSpec{Name: n, Size: int64(100 * (i + 1))})
	}
	return out
}

func plan(t *testing.T, s SweepStore, id, owner string, names ...string) []erasure.SweepUnit {
	t.Helper()
	got, err := s.PlanSweep(context.Background(), id, owner, erasure.SweepPlan{ID: "plan-" + id, Units: units(names...)})
	if err != nil {
		t.Fatalf("PlanSweep: %v", err)
	}
	return got
}

func leaseUnits(t *testing.T, s SweepStore, id, owner string, n int) []erasure.SweepUnit {
	t.Helper()
	got, err := s.LeaseSweepUnits(context.Background(), id, owner, n, time.Minute)
	if err != nil {
		t.Fatalf("LeaseSweepUnits: %v", err)
	}
	return got
}

func unitDone(u erasure.SweepUnit, removed int64) erasure.SweepUnitResult {
	return erasure.SweepUnitResult{UnitID: u.ID, SweepID: u.SweepID, Owner: u.Owner, Attempt: u.Attempts, State: erasure.UnitDone,
		Result: erasure.SweepResult{Partitions: 1, Scanned: 10, Removed: removed, Bytes: u.Size}}
}

func finishUnits(t *testing.T, s SweepStore, rs ...erasure.SweepUnitResult) []int64 {
	t.Helper()
	dropped, err := s.FinishSweepUnits(context.Background(), rs)
	if err != nil {
		t.Fatalf("FinishSweepUnits: %v", err)
	}
	return dropped
}

func testSweepOwnership(t *testing.T, open SweepOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	sw, _ := ownedSweep(t, s, c, "s_1", "A", 2)
	if sw.Owner != "A" || sw.LeaseUntil == nil || !sw.LeaseUntil.Equal(c.Now().Add(time.Minute).Truncate(time.Millisecond)) {
		t.Fatalf("started sweep owner %q until %v", sw.Owner, sw.LeaseUntil)
	}
	if stored, err := s.Sweep(ctx, "s_1"); err != nil || stored.Owner != "A" {
		t.Fatalf("stored sweep %+v %v", stored, err)
	}
	if _, err := s.ClaimSweep(ctx, "s_1", "B", time.Minute); erasure.ErrorCode(err) != erasure.ECONFLICT {
		t.Fatalf("B claimed a sweep A holds: %v", err)
	}
	c.Add(50 * time.Second)
	if got, err := s.ClaimSweep(ctx, "s_1", "A", time.Minute); err != nil || got.Owner != "A" || !got.LeaseUntil.After(c.Now().Add(59*time.Second)) {
		t.Fatalf("A renewing: %+v %v", got, err)
	}
	c.Add(50 * time.Second)
	if _, err := s.ClaimSweep(ctx, "s_1", "B", time.Minute); erasure.ErrorCode(err) != erasure.ECONFLICT {
		t.Fatalf("B claimed a sweep whose renewed lease runs: %v", err)
	}
	c.Add(11 * time.Second)
	if got, err := s.ClaimSweep(ctx, "s_1", "B", time.Minute); err != nil || got.Owner != "B" {
		t.Fatalf("B claiming an expired sweep: %+v %v", got, err)
	}
	if _, err := s.ClaimSweep(ctx, "s_1", "A", time.Minute); erasure.ErrorCode(err) != erasure.ECONFLICT {
		t.Fatalf("A took back a sweep B claimed: %v", err)
	}
	if _, err := s.ClaimSweep(ctx, "s_nope", "A", time.Minute); erasure.ErrorCode(err) != erasure.ENOTFOUND {
		t.Fatalf("claiming an unknown sweep: %v", err)
	}
	ended, err := s.FinishSweep(ctx, "s_1", erasure.SweepResult{}, nil, "B")
	if err != nil || ended.Owner != "" {
		t.Fatalf("FinishSweep: %+v %v", ended, err)
	}
	if _, err := s.ClaimSweep(ctx, "s_1", "B", time.Minute); erasure.ErrorCode(err) != erasure.ECONFLICT {
		t.Fatalf("claiming an ended sweep: %v", err)
	}
	// A sweep started without an owner (an export, or one written before owners existed) is
	// claimable by anyone at once.
	queueOffline(t, s, c, "snap", 1, 50)
	if _, _, err := s.StartSweep(ctx, "snap", "s_2", erasure.SweepInternal, "op"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ClaimSweep(ctx, "s_2", "C", time.Minute); err != nil || got.Owner != "C" {
		t.Fatalf("claiming an unowned sweep: %+v %v", got, err)
	}
}

func testSweepRelease(t *testing.T, open SweepOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	ownedSweep(t, s, c, "s_1", "A", 1)
	if _, err := s.ClaimSweep(ctx, "s_1", "B", 0); erasure.ErrorCode(err) != erasure.ECONFLICT {
		t.Fatalf("B released a sweep A holds: %v", err)
	}
	if got, err := s.ClaimSweep(ctx, "s_1", "A", 0); err != nil || got.Owner != "" {
		t.Fatalf("A releasing: %+v %v", got, err)
	}
	if got, err := s.ClaimSweep(ctx, "s_1", "B", time.Minute); err != nil || got.Owner != "B" {
		t.Fatalf("B claiming a released sweep: %+v %v", got, err)
	}
}

func testSweepPlan(t *testing.T, open SweepOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	ownedSweep(t, s, c, "s_1", "A", 2)
	if got, err := s.SweepUnits(ctx, "s_1"); err != nil || len(got) != 0 {
		t.Fatalf("units before the plan: %+v %v", got, err)
	}
	if _, err := s.PlanSweep(ctx, "s_1", "B", erasure.SweepPlan{ID: "p", Units: units("a")}); erasure.ErrorCode(err) != erasure.ECONFLICT {
		t.Fatalf("B planned A's sweep: %v", err)
	}
	got := plan(t, s, "s_1", "A", "part-2", "part-1", "dir/part-3")
	if len(got) != 3 {
		t.Fatalf("planned %d units, want 3", len(got))
	}
	for i, want := range []string{"dir/part-3", "part-1", "part-2"} {
		u := got[i]
		if u.Name != want || u.State != erasure.UnitPending || u.SweepID != "s_1" || u.Dataset != "snap" || u.Plan != "plan-s_1" || u.Attempts != 0 {
			t.Fatalf("unit %d: %+v, want %s pending", i, u, want)
		}
	}
	// Planned once: a second plan (a new owner resuming) gets the first one's units.
	c.Add(2 * time.Minute)
	if _, err := s.ClaimSweep(ctx, "s_1", "B", time.Minute); err != nil {
		t.Fatal(err)
	}
	again := plan(t, s, "s_1", "B", "other")
	if len(again) != 3 || again[0].ID != got[0].ID || again[0].Plan != "plan-s_1" {
		t.Fatalf("replanning changed the units: %+v", again)
	}
	if sw, err := s.Sweep(ctx, "s_1"); err != nil || sw.Plan != "plan-s_1" {
		t.Fatalf("sweep plan %+v %v", sw, err)
	}
	planned := 0
	evs, _ := s.Audit(ctx, erasure.AuditFilter{})
	for _, ev := range evs {
		if ev.Type == erasure.EventSweepPlanned {
			planned++
			var d struct {
				Sweep string `json:"sweep"`
				Units int    `json:"units"`
				Bytes int64  `json:"bytes"`
			}
			if json.Unmarshal(ev.Data, &d); d.Sweep != "s_1" || d.Units != 3 || d.Bytes != 600 || ev.Dataset != "snap" {
				t.Fatalf("sweep.planned event %s", ev.Data)
			}
		}
	}
	if planned != 1 {
		t.Fatalf("%d sweep.planned events, want 1", planned)
	}
	VerifyTrail(t, s)
}

func testUnitLease(t *testing.T, open SweepOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	ownedSweep(t, s, c, "s_1", "A", 1)
	plan(t, s, "s_1", "A", "p1", "p2", "p3")
	w1 := leaseUnits(t, s, "", "w1", 2)
	w2 := leaseUnits(t, s, "s_1", "w2", 5)
	if len(w1) != 2 || len(w2) != 1 {
		t.Fatalf("w1 leased %d units, w2 %d; want 2 and 1", len(w1), len(w2))
	}
	for _, u := range append(w1, w2...) {
		if u.State != erasure.UnitRunning || u.Attempts != 1 || u.Plan != "plan-s_1" || u.Dataset != "snap" || !u.DueAt.Equal(c.Now().Add(time.Minute).Truncate(time.Millisecond)) {
			t.Fatalf("leased unit %+v", u)
		}
	}
	if w1[0].Owner != "w1" || w2[0].Owner != "w2" {
		t.Fatalf("owners %q %q", w1[0].Owner, w2[0].Owner)
	}
	if more := leaseUnits(t, s, "", "w3", 5); len(more) != 0 {
		t.Fatalf("leased %d units held by others", len(more))
	}
	if err := s.ExtendSweepUnits(ctx, "w1", []int64{w1[0].ID}, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	// w2 and w1's second unit expire; w3 takes them over, w1 keeps the one it extended.
	c.Add(time.Minute + time.Second)
	taken := leaseUnits(t, s, "", "w3", 5)
	if len(taken) != 2 || taken[0].Attempts != 2 {
		t.Fatalf("w3 took over %+v, want the 2 expired units at attempt 2", taken)
	}
	if dropped := finishUnits(t, s, unitDone(w2[0], 1), unitDone(w1[1], 1)); len(dropped) != 2 {
		t.Fatalf("results of lost leases kept: dropped %v", dropped)
	}
	if dropped := finishUnits(t, s, unitDone(w1[0], 1), unitDone(taken[0], 2), unitDone(taken[1], 3)); len(dropped) != 0 {
		t.Fatalf("results of held leases dropped: %v", dropped)
	}
	got, err := s.SweepUnits(ctx, "s_1")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range got {
		if u.State != erasure.UnitDone {
			t.Fatalf("unit %s is %s", u.Name, u.State)
		}
	}
}

func testUnitFinish(t *testing.T, open SweepOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	ownedSweep(t, s, c, "s_1", "A", 1)
	plan(t, s, "s_1", "A", "p1", "p2", "p3")
	got := leaseUnits(t, s, "s_1", "w", 3)
	retry := erasure.SweepUnitResult{UnitID: got[1].ID, SweepID: "s_1", Owner: "w", Attempt: 1, State: erasure.UnitPending,
		DueAt: c.Now().Add(30 * time.Second), Error: "disk busy"}
	failed := erasure.SweepUnitResult{UnitID: got[2].ID, SweepID: "s_1", Owner: "w", Attempt: 1, State: erasure.UnitFailed, Error: "p3: malformed JSON\non line 3"}
	if dropped := finishUnits(t, s, unitDone(got[0], 4), retry, failed); len(dropped) != 0 {
		t.Fatalf("dropped %v", dropped)
	}
	us, _ := s.SweepUnits(ctx, "s_1")
	if u := us[0]; u.State != erasure.UnitDone || u.Result.Removed != 4 || u.Result.Scanned != 10 || u.Result.Bytes != 100 || u.FinishedAt == nil || u.Owner != "" {
		t.Fatalf("done unit %+v", u)
	}
	if u := us[1]; u.State != erasure.UnitPending || u.Error != "disk busy" || !u.DueAt.Equal(retry.DueAt.Truncate(time.Millisecond)) {
		t.Fatalf("retried unit %+v", u)
	}
	if u := us[2]; u.State != erasure.UnitFailed || u.Error != "p3: malformed JSON on line 3" {
		t.Fatalf("failed unit %+v", u)
	}
	if early := leaseUnits(t, s, "s_1", "w", 3); len(early) != 0 {
		t.Fatalf("a unit retried in 30s was leased at once: %+v", early)
	}
	c.Add(31 * time.Second)
	if again := leaseUnits(t, s, "s_1", "w", 3); len(again) != 1 || again[0].ID != got[1].ID || again[0].Attempts != 2 {
		t.Fatalf("leased after the retry's due time: %+v", again)
	}
	// The trail holds one sweep.unit event per unit ended, none for the retry.
	evs, err := s.Audit(ctx, erasure.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	outcomes := map[string]string{}
	for _, ev := range evs {
		if ev.Type != erasure.EventSweepUnit {
			continue
		}
		var d struct {
			Sweep   string `json:"sweep"`
			Unit    string `json:"unit"`
			Outcome string `json:"outcome"`
			Removed int64  `json:"rows_removed"`
		}
		json.Unmarshal(ev.Data, &d)
		if d.Sweep != "s_1" || ev.Dataset != "snap" || ev.Actor != "w" {
			t.Fatalf("sweep.unit event %+v %s", ev, ev.Data)
		}
		outcomes[d.Unit] = d.Outcome
	}
	if want := map[string]string{"p1": "done", "p3": "failed"}; fmt.Sprint(outcomes) != fmt.Sprint(want) {
		t.Fatalf("unit events %v, want %v", outcomes, want)
	}
	VerifyTrail(t, s)
}

// testUnitGuard: the guard that stopped a unit is read back whole, by whichever process runs
// the sweep, so that the sweep fails with it; a unit done has none.
func testUnitGuard(t *testing.T, open SweepOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	ownedSweep(t, s, c, "s_1", "A", 1)
	plan(t, s, "s_1", "A", "p1", "p2")
	got := leaseUnits(t, s, "s_1", "w", 2)
	// Every field is set, those of a per-subject guard too, so that none is lost on the way.
	guard := &erasure.GuardError{Dataset: "snap", Unit: "rows", Count: 80, Limit: 10, Partition: "partition p1", Rows: 100, MaxShare: 0.5,
		Reported: true, Tasks: []int64{7, 9}}
	failed := erasure.SweepUnitResult{UnitID: got[0].ID, SweepID: "s_1", Owner: "w", Attempt: 1, State: erasure.UnitFailed,
		Error: guard.Error(), Guard: guard}
	if dropped := finishUnits(t, s, failed, unitDone(got[1], 1)); len(dropped) != 0 {
		t.Fatalf("dropped %v", dropped)
	}
	us, err := s.SweepUnits(ctx, "s_1")
	if err != nil || len(us) != 2 {
		t.Fatalf("SweepUnits: %+v %v", us, err)
	}
	if u := us[0]; u.State != erasure.UnitFailed || u.Guard == nil || !reflect.DeepEqual(*u.Guard, *guard) {
		t.Fatalf("unit failed at its guard: %+v, guard %+v; want guard %+v", u, u.Guard, guard)
	}
	if u := us[1]; u.State != erasure.UnitDone || u.Guard != nil {
		t.Fatalf("done unit %+v, guard %+v; want none", u, u.Guard)
	}
	guards := map[string]string{}
	evs, err := s.Audit(ctx, erasure.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		var d struct {
			Unit  string `json:"unit"`
			Guard string `json:"guard"`
		}
		if ev.Type == erasure.EventSweepUnit && json.Unmarshal(ev.Data, &d) == nil {
			guards[d.Unit] = d.Guard
		}
	}
	if want := map[string]string{"p1": "tripped", "p2": ""}; !reflect.DeepEqual(guards, want) {
		t.Fatalf("guards in the sweep.unit events %v, want %v", guards, want)
	}
	VerifyTrail(t, s)
}

func testUnitsOfEndedSweep(t *testing.T, open SweepOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	ownedSweep(t, s, c, "s_1", "A", 1)
	plan(t, s, "s_1", "A", "p1", "p2")
	held := leaseUnits(t, s, "s_1", "w", 1)
	if _, err := s.FinishSweep(ctx, "s_1", erasure.SweepResult{}, fmt.Errorf("p2 is corrupt"), "A"); err != nil {
		t.Fatal(err)
	}
	if got := leaseUnits(t, s, "", "w", 5); len(got) != 0 {
		t.Fatalf("leased units of a failed sweep: %+v", got)
	}
	if dropped := finishUnits(t, s, unitDone(held[0], 1)); !slices.Equal(dropped, []int64{held[0].ID}) {
		t.Fatalf("a result after the sweep ended was kept: dropped %v", dropped)
	}
	us, _ := s.SweepUnits(ctx, "s_1")
	for _, u := range us {
		if u.State != erasure.UnitCancelled {
			t.Fatalf("unit %s of the failed sweep is %s, want cancelled", u.Name, u.State)
		}
	}
	// The tasks went back to the queue: the next sweep has its own units.
	sw, _, err := s.StartOwnedSweep(ctx, "snap", "s_2", "scheduler", "A", time.Minute)
	if err != nil || sw.Tasks != 1 {
		t.Fatalf("next sweep %+v %v", sw, err)
	}
	plan(t, s, "s_2", "A", "p1", "p2")
	if got := leaseUnits(t, s, "", "w", 5); len(got) != 2 || got[0].SweepID != "s_2" {
		t.Fatalf("units of the next sweep: %+v", got)
	}
}

func testReleaseSweepLeases(t *testing.T, open SweepOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	ownedSweep(t, s, c, "s_1", "A", 1)
	plan(t, s, "s_1", "A", "p1", "p2")
	leaseUnits(t, s, "s_1", "w", 2)
	n, err := s.ReleaseSweepLeases(ctx)
	if err != nil || n != 1 {
		t.Fatalf("ReleaseSweepLeases = %d, %v; want 1 sweep", n, err)
	}
	if got, err := s.ClaimSweep(ctx, "s_1", "B", time.Minute); err != nil || got.Owner != "B" {
		t.Fatalf("claiming after the release: %+v %v", got, err)
	}
	if got := leaseUnits(t, s, "", "w2", 5); len(got) != 2 || got[0].Attempts != 2 {
		t.Fatalf("units after the release: %+v", got)
	}
}

func testUnitBadInput(t *testing.T, open SweepOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	ownedSweep(t, s, c, "s_1", "A", 1)
	head := VerifyTrail(t, s)
	for name, p := range map[string]erasure.SweepPlan{
		"NoID":      {Units: units("a")},
		"NoUnits":   {ID: "p"},
		"EmptyName": {ID: "p", Units: []erasure.SweepUnitSpec{{Name: ""}}},
		"Repeated":  {ID: "p", Units: units("a", "b", "a")},
		"Negative":  {ID: "p", Units: []erasure.SweepUnitSpec{{Name: "a", Size: -1}}},
	} {
		if _, err := s.PlanSweep(ctx, "s_1", "A", p); erasure.ErrorCode(err) != erasure.EINVALID {
			t.Errorf("%s: err %v, want EINVALID", name, err)
		}
	}
	if _, err := s.PlanSweep(ctx, "s_nope", "A", erasure.SweepPlan{ID: "p", Units: units("a")}); erasure.ErrorCode(err) != erasure.ENOTFOUND {
		t.Errorf("plan of an unknown sweep: %v", err)
	}
	for name, call := range map[string]func() error{
		"LeaseWithoutOwner": func() error { _, err := s.LeaseSweepUnits(ctx, "", "", 1, time.Minute); return err },
		"LeaseOfNone":       func() error { _, err := s.LeaseSweepUnits(ctx, "", "w", 0, time.Minute); return err },
		"ClaimWithoutOwner": func() error { _, err := s.ClaimSweep(ctx, "s_1", "", time.Minute); return err },
		"OwnedWithoutLease": func() error { _, _, err := s.StartOwnedSweep(ctx, "snap", "s_x", "op", "A", 0); return err },
		"UnknownState": func() error {
			_, err := s.FinishSweepUnits(ctx, []erasure.SweepUnitResult{{UnitID: 1, SweepID: "s_1", Owner: "w", Attempt: 1, State: erasure.UnitRunning}})
			return err
		},
		"NegativeCounts": func() error {
			_, err := s.FinishSweepUnits(ctx, []erasure.SweepUnitResult{{UnitID: 1, SweepID: "s_1", Owner: "w", Attempt: 1, State: erasure.UnitDone, Result: erasure.SweepResult{Removed: -1}}})
			return err
		},
	} {
		if err := call(); erasure.ErrorCode(err) != erasure.EINVALID {
			t.Errorf("%s: err %v, want EINVALID", name, err)
		}
	}
	if got, _ := s.SweepUnits(ctx, "s_1"); len(got) != 0 {
		t.Fatalf("bad input planned units: %+v", got)
	}
	if after := VerifyTrail(t, s); after != head {
		t.Fatalf("bad input appended to the trail: %+v then %+v", head, after)
	}
}

// testConcurrentUnits: workers on their own handles lease, extend and finish the units of one
// sweep while leases expire under them; every unit is done exactly once, in the store and in
// the trail. Meanwhile every handle tries to claim the sweep once its owner's lease expired:
// exactly one wins.
func testConcurrentUnits(t *testing.T, open Handles) {
	c := NewClock()
	hs := open(t, workers, c.Now)
	ctx := context.Background()
	ownedSweep(t, hs[0], c, "s_1", "coordinator", 1)
	const n = 40
	var names []string
	for i := 0; i < n; i++ {
		names = append(names, fmt.Sprintf("part-%03d", i))
	}
	plan(t, hs[0], "s_1", "coordinator", names...)

	c.Add(2 * time.Minute) // the coordinator's lease expires: one handle takes the sweep over
	var claimed atomic.Int64
	var wg sync.WaitGroup
	for i, s := range hs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.ClaimSweep(ctx, "s_1", fmt.Sprintf("heir-%d", i), time.Hour); err == nil {
				claimed.Add(1)
			} else if erasure.ErrorCode(err) != erasure.ECONFLICT {
				t.Errorf("ClaimSweep: %v", err)
			}
		}()
	}
	wg.Wait()
	if claimed.Load() != 1 {
		t.Fatalf("%d handles claimed the sweep, want exactly 1", claimed.Load())
	}

	var done atomic.Int64
	errs := make(chan error, len(hs))
	for w, s := range hs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 11))
			owner := fmt.Sprintf("w%d", w)
			for idle := 0; done.Load() < n; {
				if rnd.IntN(40) == 0 {
					c.Add(time.Minute + time.Second) // every lease now held expires
				}
				got, err := s.LeaseSweepUnits(ctx, "", owner, 1+rnd.IntN(3), time.Minute)
				if err != nil {
					errs <- fmt.Errorf("%s lease: %w", owner, err)
					return
				}
				if len(got) == 0 {
					if idle++; idle > 3000 {
						errs <- fmt.Errorf("%s: nothing to lease for too long", owner)
						return
					}
					time.Sleep(time.Millisecond)
					continue
				}
				idle = 0
				var ids []int64
				for _, u := range got {
					ids = append(ids, u.ID)
				}
				if err := s.ExtendSweepUnits(ctx, owner, ids, time.Minute); err != nil {
					errs <- fmt.Errorf("%s extend: %w", owner, err)
					return
				}
				var rs []erasure.SweepUnitResult
				for _, u := range got {
					r := unitDone(u, 1)
					if rnd.IntN(6) == 0 {
						r.State, r.DueAt, r.Error = erasure.UnitPending, c.Now(), "transient"
					}
					rs = append(rs, r)
				}
				dropped, err := s.FinishSweepUnits(ctx, rs)
				if err != nil {
					errs <- fmt.Errorf("%s finish: %w", owner, err)
					return
				}
				for _, r := range rs {
					if r.State == erasure.UnitDone && !slices.Contains(dropped, r.UnitID) {
						done.Add(1)
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
	if done.Load() != n {
		t.Fatalf("%d units done, want %d", done.Load(), n)
	}
	us, err := hs[0].SweepUnits(ctx, "s_1")
	if err != nil || len(us) != n {
		t.Fatalf("SweepUnits: %d %v", len(us), err)
	}
	for _, u := range us {
		if u.State != erasure.UnitDone {
			t.Errorf("unit %s is %s", u.Name, u.State)
		}
	}
	VerifyTrail(t, hs[0])
	evs, err := hs[0].Audit(ctx, erasure.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	doneIn := map[string]int{}
	for _, ev := range evs {
		var d struct {
			Unit    string `json:"unit"`
			Outcome string `json:"outcome"`
		}
		if ev.Type == erasure.EventSweepUnit && json.Unmarshal(ev.Data, &d) == nil && d.Outcome == "done" {
			doneIn[d.Unit]++
		}
	}
	for _, name := range names {
		if doneIn[name] != 1 {
			t.Errorf("unit %s done %d times in the trail", name, doneIn[name])
		}
	}
}
