package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"erasure"
)

// SweepWorker prepares the units of shared sweeps (erasure.SweepUnitStore): it leases due
// units of any running sweep, runs each through its dataset's connector (an
// erasure.PartitionedSweeper) while renewing the lease, and writes the result. Every process of
// a deployment on a shared store runs one, next to its Engine; the process running a sweep
// works its units too (Sweeper), so a single process needs none.
type SweepWorker struct {
	Store    erasure.SweepUnitStore
	Datasets map[string]*erasure.Dataset
	// Owner names this worker in leases and audit events (default host:pid).
	Owner string
	// Workers is how many units run at once (default 2: a unit reads and writes a whole
	// partition, mostly I/O).
	Workers int
	// Lease is how long a unit is held between renewals (default 30s); a unit whose worker
	// died is taken over once it expires.
	Lease time.Duration
	// Poll is how often to look for due units when idle (default 1s).
	Poll   time.Duration
	Now    func() time.Time
	Logger *slog.Logger
}

// Run works units until ctx is cancelled; units in hand are then given back (due at once),
// their partitions left for the next worker, which reuses what was prepared.
func (w *SweepWorker) Run(ctx context.Context) {
	if w.Workers <= 0 {
		w.Workers = 2
	}
	if w.Poll <= 0 {
		w.Poll = time.Second
	}
	r := newUnitRunner(w.Store, w.Datasets, w.Owner, w.Lease, w.Now, w.Logger)
	sem := make(chan struct{}, w.Workers)
	freed := make(chan struct{}, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	for ctx.Err() == nil {
		free := cap(sem) - len(sem)
		if free > 0 {
			got, err := w.Store.LeaseSweepUnits(ctx, "", r.owner, free, r.lease)
			if err != nil && ctx.Err() == nil {
				r.log.Error("lease of sweep units failed", "err", err)
			}
			for _, u := range got {
				sem <- struct{}{}
				wg.Add(1)
				go func() {
					defer wg.Done()
					r.work(ctx, u)
					<-sem
					select {
					case freed <- struct{}{}:
					default:
					}
				}()
			}
			if len(got) == free {
				continue // more may be due
			}
		}
		select {
		case <-ctx.Done():
		case <-freed:
		case <-time.After(w.Poll):
		}
	}
}

// unitRunner runs leased units: the connector's SweepUnit under a renewed lease, then the
// result, decided here: done, a retry with the dataset's backoff while attempts are left
// (transient errors), or failed.
type unitRunner struct {
	store    erasure.SweepUnitStore
	datasets map[string]*erasure.Dataset
	owner    string
	lease    time.Duration
	now      func() time.Time
	log      *slog.Logger

	mu   sync.Mutex
	rand *rand.Rand
}

func newUnitRunner(store erasure.SweepUnitStore, datasets map[string]*erasure.Dataset, owner string, lease time.Duration, now func() time.Time, log *slog.Logger) *unitRunner {
	if owner == "" {
		owner = defaultOwner()
	}
	if lease <= 0 {
		lease = DefaultSweepLease
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &unitRunner{store: store, datasets: datasets, owner: owner, lease: lease, now: now, log: log.WithGroup("sweep_units"),
		rand: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
}

// DefaultSweepLease is how long a sweep or a unit is held between renewals by default.
const DefaultSweepLease = 30 * time.Second

func defaultOwner() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s:%d", host, os.Getpid())
}

// work runs u and writes its result; when ctx ends first, u is given back.
func (r *unitRunner) work(ctx context.Context, u erasure.SweepUnit) {
	res := r.run(ctx, u)
	if ctx.Err() != nil && res.State != erasure.UnitDone {
		res.State, res.DueAt, res.Error, res.Guard = erasure.UnitPending, r.now(), "interrupted: the worker stopped", nil
	}
	r.finish(context.WithoutCancel(ctx), res)
}

// run prepares u while renewing its lease and returns the result to write.
func (r *unitRunner) run(ctx context.Context, u erasure.SweepUnit) erasure.SweepUnitResult {
	res := erasure.SweepUnitResult{UnitID: u.ID, SweepID: u.SweepID, Owner: r.owner, Attempt: u.Attempts}
	d := r.datasets[u.Dataset]
	var conn erasure.PartitionedSweeper
	if d != nil {
		conn, _ = d.Conn.(erasure.PartitionedSweeper)
	}
	if conn == nil {
		// Another process registers the dataset (a configuration being rolled out): leave
		// the unit to it, a little later.
		res.State, res.DueAt, res.Error = erasure.UnitPending, r.now().Add(r.lease), "dataset "+u.Dataset+" cannot be swept in shared units here"
		return res
	}
	// The dataset's guard holds in every process: a partition about to lose more than
	// max_removed_share of its rows fails its unit, and so the sweep, before any swap.
	uctx, cancel := context.WithCancel(erasure.ContextWithGuard(ctx, d.Policy.Guard))
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		t := time.NewTicker(r.lease / 3)
		defer t.Stop()
		for {
			select {
			case <-uctx.Done():
				return
			case <-t.C:
				if err := r.store.ExtendSweepUnits(uctx, r.owner, []int64{u.ID}, r.lease); err != nil && uctx.Err() == nil {
					r.log.Warn("unit lease not renewed", "sweep", u.SweepID, "unit", u.ID, "err", err)
				}
			}
		}
	}()
	start := r.now()
	out, err := conn.SweepUnit(uctx, u.Plan, u.Name)
	cancel()
	<-renewed
	if err == nil {
		res.State, res.Result = erasure.UnitDone, out
		r.log.Debug("unit done", "sweep", u.SweepID, "unit", u.ID, "rows_scanned", out.Scanned, "took", r.now().Sub(start).Round(time.Millisecond))
		return res
	}
	res.Error = erasure.OneLine(err, 1000)
	if g, ok := erasure.AsGuardError(err); ok {
		// The guard's counts go to the store with the unit, so that the process running the
		// sweep (maybe another) fails it with them: the trip is counted and logged there. A
		// guard error is permanent (Guard.CheckShare); it fails the unit however it came.
		cp := *g
		res.State, res.Guard = erasure.UnitFailed, &cp
		return res
	}
	p := d.Policy
	if erasure.IsPermanent(err) || erasure.ErrorCode(err) == erasure.ENOTFOUND || erasure.ErrorCode(err) == erasure.EINVALID || u.Attempts >= max(p.MaxAttempts, 1) {
		res.State = erasure.UnitFailed
		return res
	}
	r.mu.Lock()
	wait := Backoff(p.Backoff, u.Attempts, erasure.RetryAfter(err), r.rand)
	r.mu.Unlock()
	res.State, res.DueAt = erasure.UnitPending, r.now().Add(wait)
	return res
}

// finish writes a result, trying again a few times while the store does not answer; a result
// never written leaves the unit to be leased again when its lease expires.
func (r *unitRunner) finish(ctx context.Context, res erasure.SweepUnitResult) {
	for try := 0; try < 5; try++ {
		dropped, err := r.store.FinishSweepUnits(ctx, []erasure.SweepUnitResult{res})
		if err == nil {
			if len(dropped) > 0 {
				r.log.Warn("unit result dropped: lease lost or sweep ended", "sweep", res.SweepID, "unit", res.UnitID)
			} else if res.State == erasure.UnitFailed {
				r.log.Error("unit failed; its sweep fails", "sweep", res.SweepID, "unit", res.UnitID, "err", res.Error)
			}
			return
		}
		time.Sleep(time.Duration(try+1) * 200 * time.Millisecond)
	}
	r.log.Error("unit result not written; the unit runs again once its lease expires", "sweep", res.SweepID, "unit", res.UnitID)
}

// unitProgress sums a sweep's units as a progress report.
func unitProgress(units []erasure.SweepUnit, started, now time.Time) erasure.SweepProgress {
	var p erasure.SweepProgress
	p.PartitionsTotal = len(units)
	for _, u := range units {
		p.BytesTotal += u.Size
		if u.State == erasure.UnitDone {
			p.PartitionsDone++
			p.BytesDone += u.Size
			p.BytesRead += u.Result.Bytes
			p.RowsScanned += u.Result.Scanned
			p.RowsRemoved += u.Result.Removed
		}
	}
	p.Elapsed = now.Sub(started)
	return p
}
