package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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

// shareTrip is a partitioned dataset of two units, "ok" and "wide": "wide" would lose 9 of its
// 10 rows, which the dataset's guard (max_removed_share) refuses.
type shareTrip struct {
	mu                 sync.Mutex
	aborted, committed int
}

func (c *shareTrip) Close() error { return nil }

func (c *shareTrip) Sweep(ctx context.Context, batch []erasure.SweepSubject) (erasure.SweepResult, error) {
	return erasure.SweepResult{}, errors.New("a shared sweep was swept whole")
}

func (c *shareTrip) PlanSweep(ctx context.Context, batch []erasure.SweepSubject) (erasure.SweepPlan, error) {
	return erasure.SweepPlan{ID: "plan-1", Units: []erasure.SweepUnitSpec{{Name: "ok", Size: 10}, {Name: "wide", Size: 10}}}, nil
}

func (c *shareTrip) SweepUnit(ctx context.Context, plan, unit string) (erasure.SweepResult, error) {
	removed := int64(1)
	if unit == "wide" {
		removed = 9
	}
	if err := erasure.GuardFrom(ctx).CheckShare("lake", "partition "+unit, removed, 10); err != nil {
		return erasure.SweepResult{}, err
	}
	return erasure.SweepResult{Partitions: 1, Scanned: 10, Removed: removed}, nil
}

func (c *shareTrip) CommitSweep(ctx context.Context, plan string, batch []erasure.SweepSubject) (erasure.SweepResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.committed++
	return erasure.SweepResult{}, nil
}

func (c *shareTrip) AbortSweep(ctx context.Context, plan string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.aborted++
	return nil
}

// guardTrips returns erasure_guard_trips_total of dataset as reg holds it.
func guardTrips(t *testing.T, reg *prometheus.Registry, dataset string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "erasure_guard_trips_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "dataset" && l.GetValue() == dataset {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestSweeper_UnitStoppedAtTheGuard: a unit stopped at the dataset's guard (max_removed_share)
// fails its sweep as a whole sweep's trip does, whichever process ran the unit: the sweep's
// error is the *GuardError naming the partition (logged loudly, counted in
// erasure_guard_trips_total), nothing is committed, and the tasks go back to the queue.
func TestSweeper_UnitStoppedAtTheGuard(t *testing.T) {
	setup := func(t *testing.T, clock *storetest.Clock) (*harness, *erasure.Dataset, *shareTrip, []*erasure.Request) {
		conn := &shareTrip{}
		d := &erasure.Dataset{Name: "lake", Method: erasure.MethodOffline, Keys: []string{"user_id"}, Conn: conn,
			Policy: erasure.Policy{MaxAttempts: 3, Timeout: time.Second, Guard: erasure.Guard{MaxRemovedShare: 0.5}}}
		h := newHarness(t, clock, d)
		return h, d, conn, h.queue(t, 1, 2)
	}
	// sweeper returns a sweeper of d whose guard trips are counted in reg and logged in log.
	sweeper := func(h *harness, d *erasure.Dataset, owner string) (*pipeline.Sweeper, *prometheus.Registry, *bytes.Buffer) {
		reg, log := prometheus.NewRegistry(), &bytes.Buffer{}
		s := h.sweeper(d)
		s.Owner, s.Metrics, s.Logger = owner, pipeline.NewMetrics(reg), slog.New(slog.NewJSONHandler(log, nil))
		return s, reg, log
	}
	check := func(t *testing.T, h *harness, conn *shareTrip, reqs []*erasure.Request, id string, reg *prometheus.Registry, log *bytes.Buffer) {
		t.Helper()
		ctx := context.Background()
		sw, err := h.store.Sweep(ctx, id)
		if err != nil || sw.State != erasure.SweepFailed || !strings.Contains(sw.Error, "partition wide") || !strings.Contains(sw.Error, "max_removed_share 0.5") {
			t.Fatalf("sweep %+v, %v: want it failed at the guard of partition wide", sw, err)
		}
		if n := guardTrips(t, reg, "lake"); n != 1 {
			t.Errorf("erasure_guard_trips_total{dataset=lake} = %g, want 1", n)
		}
		var tripped bool
		for line := range strings.Lines(log.String()) {
			var rec struct {
				Msg     string `json:"msg"`
				Sweeper struct {
					Partition string `json:"partition"`
				} `json:"sweeper"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && strings.HasPrefix(rec.Msg, "sweep stopped at the dataset's guard") {
				tripped = rec.Sweeper.Partition == "partition wide"
			}
		}
		if !tripped {
			t.Errorf("no guard trip of partition wide in the log:\n%s", log)
		}
		conn.mu.Lock()
		if conn.committed != 0 || conn.aborted == 0 {
			t.Errorf("plan committed %d times, aborted %d times; want it aborted, never committed", conn.committed, conn.aborted)
		}
		conn.mu.Unlock()
		for _, r := range reqs {
			tk := offlineTask(t, h.get(t, r.ID))
			if tk.State != erasure.TaskQueued || tk.SweepID != "" || tk.Guard != erasure.GuardNone {
				t.Errorf("task of %s after the trip: %+v; want it back in the queue, its guard untouched", r.ID, tk)
			}
		}
	}

	t.Run("RunByTheSweepsProcess", func(t *testing.T) {
		h, d, conn, reqs := setup(t, nil)
		s, reg, log := sweeper(h, d, "coordinator")
		sw, err := s.SweepNow(context.Background(), "lake", "op")
		if err != nil {
			t.Fatal(err)
		}
		check(t, h, conn, reqs, sw.ID, reg, log)
	})

	t.Run("RunByAnotherProcess", func(t *testing.T) {
		clock := storetest.NewClock()
		h, d, conn, reqs := setup(t, clock)
		ctx := context.Background()
		// A process started and planned the sweep, then died; a worker of a third process ran
		// its units, one of them into the guard.
		dead := "dead:1"
		started, subjects, err := h.store.StartOwnedSweep(ctx, "lake", "s_dead", "scheduler", dead, time.Minute)
		if err != nil || started.Tasks != 2 {
			t.Fatalf("%+v %v", started, err)
		}
		plan, _ := conn.PlanSweep(ctx, subjects)
		if _, err := h.store.PlanSweep(ctx, "s_dead", dead, plan); err != nil {
			t.Fatal(err)
		}
		wctx, stop := context.WithCancel(ctx)
		w := &pipeline.SweepWorker{Store: h.store, Datasets: map[string]*erasure.Dataset{"lake": d}, Owner: "worker", Poll: 5 * time.Millisecond, Now: clock.Now}
		done := make(chan struct{})
		go func() { defer close(done); w.Run(wctx) }()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			us, err := h.store.SweepUnits(ctx, "s_dead")
			if err != nil {
				t.Fatal(err)
			}
			if us[0].State == erasure.UnitDone && us[1].State == erasure.UnitFailed {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("units after 10s: %+v", us)
			}
		}
		stop()
		<-done

		clock.Add(time.Minute + time.Second)
		heir, reg, log := sweeper(h, d, "heir")
		if n, err := heir.Resume(ctx); err != nil || n != 1 {
			t.Fatalf("Resume = %d, %v; want 1", n, err)
		}
		heir.Wait()
		check(t, h, conn, reqs, "s_dead", reg, log)
	})
}
