package pipeline_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"erasure"
	"erasure/pipeline"
	"erasure/store/storetest"
)

// unitActors returns, from the trail, who did each unit done, by unit name (several names
// mean a unit done more than once).
func unitActors(t *testing.T, h *harness) map[string][]string {
	t.Helper()
	evs, err := h.store.Audit(context.Background(), erasure.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, ev := range evs {
		var d struct {
			Unit    string `json:"unit"`
			Outcome string `json:"outcome"`
		}
		if ev.Type == erasure.EventSweepUnit && json.Unmarshal(ev.Data, &d) == nil && d.Outcome == "done" {
			out[d.Unit] = append(out[d.Unit], ev.Actor)
		}
	}
	return out
}

func TestSweeper_SharedSweep(t *testing.T) {
	dir := snapshot(t, 12, 5) // users 1..60
	events := filesDataset(t, "events", dir)
	h := newHarness(t, nil, events)
	ctx := context.Background()
	reqs := h.queue(t, 3, 27, 58)

	// The process running the sweep works one unit at a time; two workers of other
	// processes share the rest.
	coordinator := h.sweeper(events)
	coordinator.Owner, coordinator.UnitWorkers = "coordinator", 1
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, owner := range []string{"worker-1", "worker-2"} {
		w := &pipeline.SweepWorker{Store: h.store, Datasets: coordinator.Datasets, Owner: owner, Poll: 5 * time.Millisecond}
		wg.Add(1)
		go func() { defer wg.Done(); w.Run(wctx) }()
	}
	sw, err := coordinator.SweepNow(ctx, "events", "op")
	stop()
	wg.Wait()
	if err != nil || sw.State != erasure.SweepCommitted || sw.Partitions != 12 || sw.Removed != 6 {
		t.Fatalf("shared sweep: %+v %v", sw, err)
	}
	if got := usersIn(t, dir); got["3"]+got["27"]+got["58"] != 0 || len(got) != 57 {
		t.Fatalf("rows after the sweep: %v", got)
	}
	for _, r := range reqs {
		if got := h.get(t, r.ID); got.Status != erasure.RequestCompleted {
			t.Fatalf("request %s is %s", r.ID, got.Status)
		}
	}
	actors := unitActors(t, h)
	if len(actors) != 12 {
		t.Fatalf("%d units done in the trail, want 12: %v", len(actors), actors)
	}
	by := map[string]int{}
	for unit, who := range actors {
		if len(who) != 1 {
			t.Errorf("unit %s done %d times: %v", unit, len(who), who)
		}
		by[who[0]]++
	}
	if by["worker-1"]+by["worker-2"] == 0 {
		t.Errorf("the other processes' workers did no unit: %v", by)
	}
	if rep, err := h.svc.VerifyAudit(ctx); err != nil || !rep.OK {
		t.Fatalf("audit trail: %+v %v", rep, err)
	}
}

func TestSweeper_HeldSweepIsNotResumedByAnother(t *testing.T) {
	clock := storetest.NewClock()
	dir := snapshot(t, 4, 5)
	events := filesDataset(t, "events", dir)
	h := newHarness(t, clock, events)
	ctx := context.Background()
	h.queue(t, 2, 13)
	// A process started the sweep, planned it, leased a unit and died.
	dead := "dead:1"
	started, subjects, err := h.store.StartOwnedSweep(ctx, "events", "s_dead", "scheduler", dead, time.Minute)
	if err != nil || started.Tasks != 2 {
		t.Fatalf("%+v %v", started, err)
	}
	plan, err := events.Conn.(erasure.PartitionedSweeper).PlanSweep(ctx, subjects)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.PlanSweep(ctx, "s_dead", dead, plan); err != nil {
		t.Fatal(err)
	}
	if got, err := h.store.LeaseSweepUnits(ctx, "s_dead", dead, 1, time.Minute); err != nil || len(got) != 1 {
		t.Fatalf("%+v %v", got, err)
	}

	heir := h.sweeper(events)
	heir.Owner = "heir"
	if n, err := heir.Resume(ctx); err != nil || n != 0 {
		t.Fatalf("Resume while the sweep's lease runs = %d, %v; want 0", n, err)
	}
	if s, _ := h.store.Sweep(ctx, "s_dead"); s.State != erasure.SweepRunning || s.Owner != dead {
		t.Fatalf("sweep after a refused resume: %+v", s)
	}
	clock.Add(time.Minute + time.Second)
	if n, err := heir.Resume(ctx); err != nil || n != 1 {
		t.Fatalf("Resume once the lease expired = %d, %v; want 1", n, err)
	}
	heir.Wait()
	s, _ := h.store.Sweep(ctx, "s_dead")
	if s.State != erasure.SweepCommitted || s.Removed != 4 {
		t.Fatalf("resumed sweep %+v", s)
	}
	if got := usersIn(t, dir); got["2"]+got["13"] != 0 || len(got) != 18 {
		t.Fatalf("rows after the resumed sweep: %v", got)
	}
	actors := unitActors(t, h)
	for unit, who := range actors {
		if len(who) != 1 || who[0] != "heir" {
			t.Errorf("unit %s done by %v, want once by the heir", unit, who)
		}
	}
	if len(actors) != 4 {
		t.Fatalf("%d units done, want 4 (the dead worker's unit taken over)", len(actors))
	}
}

func TestSweeper_StoppingLetsTheSweepGo(t *testing.T) {
	g := &gate{release: make(chan struct{}), entered: make(chan struct{}, 1)}
	d := &erasure.Dataset{Name: "lake", Method: erasure.MethodOffline, Keys: []string{"user_id"}, Conn: g, Policy: erasure.Policy{MaxAttempts: 3, Timeout: time.Second}}
	h := newHarness(t, nil, d)
	ctx := context.Background()
	h.queue(t, 1)
	first := h.sweeper(d)
	first.Owner = "first"
	bg, stop := context.WithCancel(ctx)
	first.Start(bg)
	sw, err := first.RunNow(ctx, "lake", "op")
	if err != nil {
		t.Fatal(err)
	}
	<-g.entered
	second := h.sweeper(d)
	second.Owner = "second"
	if n, err := second.Resume(ctx); err != nil || n != 0 {
		t.Fatalf("Resume while another process runs the sweep = %d, %v", n, err)
	}
	stop()
	first.Wait()
	if s, _ := h.store.Sweep(ctx, sw.ID); s.State != erasure.SweepRunning || s.Owner != "" {
		t.Fatalf("a stopped process kept its sweep: %+v", s)
	}
	close(g.release)
	if n, err := second.Resume(ctx); err != nil || n != 1 {
		t.Fatalf("Resume of a sweep let go = %d, %v", n, err)
	}
	second.Wait()
	if s, _ := h.store.Sweep(ctx, sw.ID); s.State != erasure.SweepCommitted {
		t.Fatalf("sweep after the resume: %+v", s)
	}
}

func TestSweeper_LostSweepIsLeftToItsNewOwner(t *testing.T) {
	g := &gate{release: make(chan struct{}), entered: make(chan struct{}, 1)}
	d := &erasure.Dataset{Name: "lake", Method: erasure.MethodOffline, Keys: []string{"user_id"}, Conn: g, Policy: erasure.Policy{MaxAttempts: 3, Timeout: time.Second}}
	clock := storetest.NewClock()
	h := newHarness(t, clock, d)
	ctx := context.Background()
	h.queue(t, 1)
	slow := h.sweeper(d)
	slow.Owner, slow.Lease = "slow", 30*time.Millisecond
	sw, err := slow.RunNow(ctx, "lake", "op")
	if err != nil {
		t.Fatal(err)
	}
	<-g.entered
	// The slow process's lease expires (say it was paused); another claims the sweep.
	clock.Add(time.Minute)
	if _, err := h.store.ClaimSweep(ctx, sw.ID, "other", time.Hour); err != nil {
		t.Fatal(err)
	}
	slow.Wait() // its next renewal fails: it stops without ending the sweep
	if s, _ := h.store.Sweep(ctx, sw.ID); s.State != erasure.SweepRunning || s.Owner != "other" {
		t.Fatalf("the process that lost the sweep changed it: %+v", s)
	}
	close(g.release)
}
