package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"erasure"
)

// SweepStore is the store a Sweeper needs.
type SweepStore interface {
	erasure.Store
	erasure.SweepStore
	erasure.SweepUnitStore
}

// ExportFunc writes the queued identifiers of subjects (those of the given types) in format for
// a sweep run by an external engine, and returns the rows written; EINVALID for an unknown
// format. connector/files.WriteExport is one.
type ExportFunc func(w io.Writer, format string, subjects []erasure.SweepSubject, types []string) (int, error)

// ProgressFunc returns a context whose sweeps report their progress to report. The default,
// erasure.ContextWithSweepProgress, is how connectors (files) find where to report.
type ProgressFunc func(ctx context.Context, report erasure.SweepProgressFunc) context.Context

// Sweeper runs the sweeps of offline datasets: on demand (RunNow), on a schedule (Schedule),
// after a restart (Resume), and for datasets swept by an external job, as an export that the
// job acknowledges (Export, Ack). A sweep's tasks become done only when the whole sweep has
// committed, in one transaction of the store; a failed sweep leaves them queued for the next.
//
// A sweep is run by the process that started it, which holds it in the store (a lease it
// renews every Lease/3) and lets go when it stops; a process whose lease was taken over stops
// its part. Sweeps of different datasets run at once, one per dataset. When the dataset's
// connector is an erasure.PartitionedSweeper, the sweep is split into one unit per partition:
// the process running it works its units (UnitWorkers at once) and so do the SweepWorkers of
// every other process sharing the store; once every unit is done it commits. Resume, run by
// one process (the leader) at start and now and then, takes over the sweeps whose holder died.
//
// Scheduling (Schedule): every Interval, each offline dataset whose sweep mode is internal and
// whose connector is an erasure.Sweeper is swept when it has queued tasks and no open sweep,
// and either Policy.SweepEvery has passed since its last sweep started (or it never had one),
// or the earliest deadline among its queued tasks falls before the next regular sweep plus
// UrgentMargin, so that no task waits for a sweep that would come after its deadline. After a
// failed sweep the next one comes RetryFailed (capped at SweepEvery) after it ended: soon
// enough to catch a transient failure, not so soon that a broken dataset is read every minute.
type Sweeper struct {
	Store    SweepStore
	Datasets map[string]*erasure.Dataset
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
	// Export writes exports (default: JSON lines only, see WriteJSONLines).
	Export ExportFunc
	// Progress gives running sweeps a context that reports their progress (default
	// erasure.ContextWithSweepProgress).
	Progress ProgressFunc
	// Interval is how often Schedule looks for datasets to sweep (default 1 minute, or the
	// shortest sweep interval of the datasets when shorter).
	Interval time.Duration
	// UrgentMargin is how long before a deadline a sweep is started out of turn (default 24h).
	UrgentMargin time.Duration
	// RetryFailed is the least time after a failed sweep before the next (default 1h).
	RetryFailed time.Duration
	// Metrics, when set, counts the sweeps stopped at their dataset's guard.
	Metrics *Metrics
	// Owner names this process in the leases of sweeps and units (default host:pid).
	Owner string
	// Lease is how long a sweep or a unit is held between renewals (default 30s): a sweep or
	// unit whose holder died is taken over that long after its last renewal.
	Lease time.Duration
	// UnitWorkers is how many units of its own sweep this process prepares at once (default 2).
	UnitWorkers int
	// Poll is how often the process running a shared sweep looks at its units (default 250ms).
	Poll time.Duration

	once sync.Once
	mu   sync.Mutex
	ctx  context.Context // lifetime of background sweeps (Start); Background before
	live map[string]*liveSweep
	wg   sync.WaitGroup
}

// liveSweep is a sweep running in this process.
type liveSweep struct {
	sweep    erasure.Sweep
	progress *erasure.SweepProgress
	done     chan struct{}
	final    *erasure.Sweep
}

// Live is a running sweep with its last reported progress (nil before the first report or for
// connectors that report none).
type Live struct {
	Sweep    erasure.Sweep          `json:"sweep"`
	Progress *erasure.SweepProgress `json:"progress,omitempty"`
}

func (s *Sweeper) init() {
	s.once.Do(func() {
		if s.Now == nil {
			s.Now = time.Now
		}
		if s.Logger == nil {
			s.Logger = slog.New(slog.DiscardHandler)
		}
		s.Logger = s.Logger.WithGroup("sweeper")
		if s.Interval <= 0 {
			s.Interval = time.Minute
			for _, d := range s.Datasets {
				if every := d.Policy.SweepEvery; every > 0 && every < s.Interval {
					s.Interval = every
				}
			}
		}
		if s.UrgentMargin <= 0 {
			s.UrgentMargin = 24 * time.Hour
		}
		if s.RetryFailed <= 0 {
			s.RetryFailed = time.Hour
		}
		if s.Export == nil {
			s.Export = WriteJSONLines
		}
		if s.Owner == "" {
			s.Owner = defaultOwner()
		}
		if s.Lease <= 0 {
			s.Lease = DefaultSweepLease
		}
		if s.UnitWorkers <= 0 {
			s.UnitWorkers = 2
		}
		if s.Poll <= 0 {
			s.Poll = 250 * time.Millisecond
		}
		if s.Progress == nil {
			s.Progress = func(ctx context.Context, report erasure.SweepProgressFunc) context.Context {
				return erasure.ContextWithSweepProgress(ctx, report)
			}
		}
		s.live = map[string]*liveSweep{}
		if s.ctx == nil {
			s.ctx = context.Background()
		}
	})
}

// Start sets the lifetime of the sweeps run in the background: when ctx is cancelled they stop
// where they are, stay running in the store, and are resumed by the next Resume. Call it once,
// before anything else.
func (s *Sweeper) Start(ctx context.Context) {
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()
	s.init()
}

func (s *Sweeper) now() time.Time {
	s.init()
	return s.Now()
}

// Wait waits for the background sweeps to end.
func (s *Sweeper) Wait() { s.wg.Wait() }

// NewSweepID returns "s_" and 26 characters: 48 bits of milliseconds then 80 random bits.
func NewSweepID(now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	rand.Read(b[6:])
	return "s_" + strings.ToLower(idEncoding.EncodeToString(b[:]))
}

// dataset returns an offline dataset; ENOTFOUND, EINVALID when it is not offline.
func (s *Sweeper) dataset(name string) (*erasure.Dataset, error) {
	d := s.Datasets[name]
	if d == nil {
		return nil, erasure.Errorf(erasure.ENOTFOUND, "dataset %s is not registered", name)
	}
	if d.Method != erasure.MethodOffline {
		return nil, erasure.Errorf(erasure.EINVALID, "dataset %s is %s, not offline: it is not swept", name, d.Method)
	}
	return d, nil
}

// sweeper returns the dataset's Sweeper; EINVALID when its connector cannot sweep.
func sweeperOf(d *erasure.Dataset) (erasure.Sweeper, error) {
	sw, ok := d.Conn.(erasure.Sweeper)
	if !ok {
		return nil, erasure.Errorf(erasure.EINVALID, "dataset %s cannot be swept here (its connector has no sweep): export it for an external job", d.Name)
	}
	return sw, nil
}

// Running returns the sweep of dataset running in this process, if any.
func (s *Sweeper) Running(dataset string) (*Live, bool) {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.live[dataset]
	if l == nil {
		return nil, false
	}
	return &Live{Sweep: l.sweep, Progress: l.progress}, true
}

// RunNow starts a sweep of dataset's queued tasks in the background and returns it as started
// (Tasks 0, not stored, when nothing is queued). ENOTFOUND for an unknown dataset, EINVALID for
// one that is not offline, cannot be swept here or is swept by an external job (sweep mode
// external), ECONFLICT when a sweep of it is open.
func (s *Sweeper) RunNow(ctx context.Context, dataset, actor string) (*erasure.Sweep, error) {
	s.init()
	sw, subjects, err := s.begin(ctx, dataset, actor)
	if err != nil || sw.Tasks == 0 {
		return sw, err
	}
	s.mu.Lock()
	bg := s.ctx
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.executeAgain(bg, sw, subjects, actor)
	}()
	return sw, nil
}

// SweepNow runs a sweep of dataset to its end and returns it as it ended (committed, failed,
// or still running when ctx was cancelled). Errors as RunNow.
func (s *Sweeper) SweepNow(ctx context.Context, dataset, actor string) (*erasure.Sweep, error) {
	s.init()
	sw, subjects, err := s.begin(ctx, dataset, actor)
	if err != nil || sw.Tasks == 0 {
		return sw, err
	}
	return s.executeAgain(ctx, sw, subjects, actor), nil
}

// executeAgain executes a registered sweep and, when it failed because some of its subjects
// exceed the dataset's max_removed (their tasks failed, the others returned to the queue),
// sweeps the others again at once rather than at the next retry: they must not wait for a
// subject that needs an operator. It returns the last sweep as it ended.
func (s *Sweeper) executeAgain(ctx context.Context, sw *erasure.Sweep, subjects []erasure.SweepSubject, actor string) *erasure.Sweep {
	final, err := s.execute(ctx, sw, subjects)
	if g, ok := erasure.AsGuardError(err); !ok || len(g.Tasks) == 0 || final.State != erasure.SweepFailed || ctx.Err() != nil {
		return final
	}
	again, subjects, err := s.begin(ctx, sw.Dataset, actor)
	if err != nil || again.Tasks == 0 {
		if err != nil {
			s.Logger.Warn("sweep after a guard trip not started; the schedule retries", "dataset", sw.Dataset, "err", err)
		}
		return final
	}
	final, _ = s.execute(ctx, again, subjects)
	return final
}

// WaitSweep waits until the sweep id running in this process ends and returns it as it
// ended; nil when no such sweep runs here.
func (s *Sweeper) WaitSweep(ctx context.Context, id string) (*erasure.Sweep, error) {
	s.init()
	s.mu.Lock()
	var l *liveSweep
	for _, x := range s.live {
		if x.sweep.ID == id {
			l = x
		}
	}
	s.mu.Unlock()
	if l == nil {
		return nil, nil
	}
	select {
	case <-l.done:
		return l.final, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// begin starts an internal sweep of dataset in the store and registers it as live.
func (s *Sweeper) begin(ctx context.Context, dataset, actor string) (*erasure.Sweep, []erasure.SweepSubject, error) {
	d, err := s.dataset(dataset)
	if err != nil {
		return nil, nil, err
	}
	if _, err := sweeperOf(d); err != nil {
		return nil, nil, err
	}
	if d.Policy.SweepMode == "external" {
		return nil, nil, erasure.Errorf(erasure.EINVALID, "dataset %s is swept by an external job (sweep mode external): export it", d.Name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.live[dataset]; l != nil {
		return nil, nil, erasure.Errorf(erasure.ECONFLICT, "dataset %s is being swept (sweep %s)", dataset, l.sweep.ID)
	}
	sw, subjects, err := s.Store.StartOwnedSweep(ctx, dataset, NewSweepID(s.Now()), actor, s.Owner, s.Lease)
	if err != nil || sw.Tasks == 0 {
		return sw, nil, err
	}
	s.live[dataset] = &liveSweep{sweep: *sw, done: make(chan struct{})}
	return sw, subjects, nil
}

// execute runs a registered sweep through the dataset's connector, under the dataset's guard,
// holding it, and ends it in the store. When ctx is cancelled (shutdown) the sweep is left
// running in the store and let go, for Resume; when another process took it over, its outcome
// is left to that process. It returns the sweep as it ended and the connector's error.
func (s *Sweeper) execute(ctx context.Context, sw *erasure.Sweep, subjects []erasure.SweepSubject) (*erasure.Sweep, error) {
	log := s.Logger.With("sweep", sw.ID, "dataset", sw.Dataset)
	s.mu.Lock()
	l := s.live[sw.Dataset]
	s.mu.Unlock()
	final := sw
	defer func() {
		s.mu.Lock()
		if s.live[sw.Dataset] == l {
			delete(s.live, sw.Dataset)
		}
		s.mu.Unlock()
		if l != nil {
			l.final = final
			close(l.done)
		}
	}()
	hctx, stopHold := context.WithCancel(ctx)
	var lost atomic.Bool
	held := make(chan struct{})
	go func() {
		defer close(held)
		s.hold(hctx, sw.ID, &lost, stopHold)
	}()
	release := func() {
		stopHold()
		<-held
	}
	var res erasure.SweepResult
	var err error
	d, derr := s.dataset(sw.Dataset)
	var conn erasure.Sweeper
	if derr == nil {
		conn, derr = sweeperOf(d)
	}
	start := s.Now()
	if derr != nil {
		err = derr
	} else {
		log.Info("sweep started", "tasks", len(subjects))
		sctx := erasure.ContextWithGuard(hctx, d.Policy.Guard)
		if l != nil {
			sctx = s.Progress(sctx, func(p erasure.SweepProgress) {
				s.mu.Lock()
				l.progress = &p
				s.mu.Unlock()
			})
		}
		if pc, ok := conn.(erasure.PartitionedSweeper); ok {
			res, err = s.sweepUnits(sctx, sw, pc, subjects, l)
		} else {
			res, err = conn.Sweep(sctx, subjects)
		}
	}
	if err != nil && hctx.Err() != nil {
		release()
		if lost.Load() {
			log.Warn("sweep taken over by another process; it goes on there", "err", err)
			return final, err
		}
		if _, rerr := s.Store.ClaimSweep(context.WithoutCancel(ctx), sw.ID, s.Owner, 0); rerr != nil {
			log.Warn("sweep not let go; it is taken over once its lease expires", "err", rerr)
		}
		log.Info("sweep interrupted; it resumes where it stopped", "err", err)
		return final, err
	}
	defer release()
	// The sweep's outcome is recorded even if ctx ends now: a sweep committed in the dataset
	// must complete its tasks. A store failure leaves the sweep running, for Resume.
	fctx := context.WithoutCancel(ctx)
	var ended *erasure.Sweep
	var ferr error
	for try := 0; try < 5; try++ {
		if ended, ferr = s.Store.FinishSweep(fctx, sw.ID, res, err, "sweep:"+sw.ID); ferr == nil || erasure.ErrorCode(ferr) == erasure.ECONFLICT || erasure.ErrorCode(ferr) == erasure.ENOTFOUND {
			break
		}
		time.Sleep(time.Duration(try+1) * 200 * time.Millisecond)
	}
	if ferr != nil {
		if erasure.ErrorCode(ferr) == erasure.ECONFLICT {
			log.Info("sweep ended by another process", "err", ferr)
		} else {
			log.Error("sweep outcome not recorded; the sweep is resumed at the next start", "err", ferr)
		}
		return final, err
	}
	final = ended
	took := s.Now().Sub(start).Round(time.Millisecond)
	if g, ok := erasure.AsGuardError(err); ok {
		// Loud: a sweep about to remove far more than it should is a broken key or dataset.
		log.Error("sweep stopped at the dataset's guard; nothing was swapped", "partition", g.Partition, "tasks_failed", g.Tasks, "err", ended.Error, "took", took)
		if s.Metrics != nil {
			s.Metrics.guardTrips.WithLabelValues(sw.Dataset).Inc()
		}
	} else if err != nil {
		log.Warn("sweep failed; its tasks wait for the next sweep", "tasks", sw.Tasks, "err", ended.Error, "took", took)
	} else {
		log.Info("sweep committed", "tasks", sw.Tasks, "partitions", res.Partitions, "rows_scanned", res.Scanned, "rows_removed", res.Removed, "bytes", res.Bytes, "took", took)
	}
	return final, err
}

// hold renews this process's lease of sweep id every Lease/3 until ctx ends. When the store
// says another process holds it (or the sweep ended), or no renewal got through for a whole
// lease, the sweep is lost: lost is set and cancel called.
func (s *Sweeper) hold(ctx context.Context, id string, lost *atomic.Bool, cancel context.CancelFunc) {
	t := time.NewTicker(s.Lease / 3)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, err := s.Store.ClaimSweep(ctx, id, s.Owner, s.Lease)
		switch {
		case err == nil:
			last = time.Now()
			continue
		case ctx.Err() != nil:
			return
		case erasure.ErrorCode(err) == erasure.ECONFLICT || erasure.ErrorCode(err) == erasure.ENOTFOUND:
		case time.Since(last) < s.Lease:
			s.Logger.Warn("sweep lease not renewed", "sweep", id, "err", err)
			continue
		}
		s.Logger.Warn("sweep lost", "sweep", id, "err", err)
		lost.Store(true)
		cancel()
		return
	}
}

// sweepUnits runs a sweep split into units: it plans the sweep once (the connector's plan, then
// the store's units), works units of it itself while other processes' SweepWorkers work the
// rest, and commits once every unit is done. A failed unit fails the sweep: the plan is
// abandoned and nothing changes in the dataset.
func (s *Sweeper) sweepUnits(ctx context.Context, sw *erasure.Sweep, conn erasure.PartitionedSweeper, subjects []erasure.SweepSubject, l *liveSweep) (erasure.SweepResult, error) {
	log := s.Logger.With("sweep", sw.ID, "dataset", sw.Dataset)
	units, err := s.Store.SweepUnits(ctx, sw.ID)
	if err != nil {
		return erasure.SweepResult{}, erasure.Transient(err, 0)
	}
	if len(units) == 0 {
		p, err := conn.PlanSweep(ctx, subjects)
		if err != nil {
			return erasure.SweepResult{}, err
		}
		if len(p.Units) == 0 {
			return conn.CommitSweep(ctx, p.ID, subjects)
		}
		if units, err = s.Store.PlanSweep(ctx, sw.ID, s.Owner, p); err != nil {
			return erasure.SweepResult{}, erasure.Transient(err, 0)
		}
		log.Info("sweep planned", "units", len(units))
	}
	plan := units[0].Plan
	runner := newUnitRunner(s.Store, s.Datasets, s.Owner, s.Lease, s.Now, s.Logger)
	// Units report nothing themselves: the sweep's progress is its units' in the store.
	uctx := erasure.ContextWithSweepProgress(ctx, nil)
	sem := make(chan struct{}, s.UnitWorkers)
	freed := make(chan struct{}, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		done := 0
		var failed *erasure.SweepUnit
		for i, u := range units {
			switch u.State {
			case erasure.UnitDone:
				done++
			case erasure.UnitFailed:
				failed = &units[i]
			}
		}
		if l != nil {
			p := unitProgress(units, sw.Started, s.Now())
			s.mu.Lock()
			l.progress = &p
			s.mu.Unlock()
		}
		switch {
		case failed != nil:
			wg.Wait()
			if err := conn.AbortSweep(context.WithoutCancel(ctx), plan); err != nil {
				log.Warn("plan of a failed sweep not abandoned", "err", err)
			}
			if g := failed.Guard; g != nil {
				// Stopped at the guard, here or in another process's worker: the sweep fails
				// with the guard itself (its message names the partition), so that the trip is
				// counted, logged and ended in the store as a whole sweep's would be.
				cp := *g
				return erasure.SweepResult{}, erasure.Permanent(&cp)
			}
			return erasure.SweepResult{}, erasure.Permanentf("partition %s: %s", failed.Name, failed.Error)
		case done == len(units):
			wg.Wait()
			return conn.CommitSweep(ctx, plan, subjects)
		}
		if free := cap(sem) - len(sem); free > 0 && ctx.Err() == nil {
			got, err := s.Store.LeaseSweepUnits(ctx, sw.ID, s.Owner, free, s.Lease)
			if err != nil && ctx.Err() == nil {
				log.Error("lease of sweep units failed", "err", err)
			}
			for _, u := range got {
				sem <- struct{}{}
				wg.Add(1)
				go func() {
					defer wg.Done()
					runner.work(uctx, u)
					<-sem
					select {
					case freed <- struct{}{}:
					default:
					}
				}()
			}
		}
		select {
		case <-ctx.Done():
			wg.Wait()
			return erasure.SweepResult{}, ctx.Err()
		case <-freed:
		case <-time.After(s.Poll):
		}
		if next, err := s.Store.SweepUnits(ctx, sw.ID); err == nil {
			units = next
		} else if ctx.Err() == nil {
			log.Warn("units not read", "err", err)
		}
	}
}

// Resume runs again, in the background, every internal sweep the store has running that no
// process holds (its holder stopped, or died and its lease expired), with the same subjects:
// the connectors' sweeps are idempotent and finish or redo the interrupted work, and a shared
// sweep goes on from the units already done. A sweep another process holds is left to it. A
// sweep whose dataset is no longer registered, or can no longer sweep, fails so that its tasks
// return to the queue. Exported sweeps wait for their acknowledgement. It returns how many
// sweeps it resumed.
func (s *Sweeper) Resume(ctx context.Context) (int, error) {
	s.init()
	open, err := s.Store.OpenSweeps(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, sw := range open {
		if sw.State != erasure.SweepRunning {
			continue
		}
		s.mu.Lock()
		live := s.live[sw.Dataset] != nil
		s.mu.Unlock()
		if live || (sw.Owner != "" && sw.Owner != s.Owner && sw.LeaseUntil != nil && sw.LeaseUntil.After(s.Now())) {
			continue
		}
		previous := sw.Owner
		claimed, err := s.Store.ClaimSweep(ctx, sw.ID, s.Owner, s.Lease)
		if erasure.ErrorCode(err) == erasure.ECONFLICT || erasure.ErrorCode(err) == erasure.ENOTFOUND {
			continue // another process holds it, or it just ended
		} else if err != nil {
			return n, err
		}
		sw := *claimed
		d, err := s.dataset(sw.Dataset)
		if err == nil {
			_, err = sweeperOf(d)
		}
		if err != nil {
			if _, err := s.Store.FinishSweep(ctx, sw.ID, erasure.SweepResult{}, fmt.Errorf("not resumed: %s", erasure.ErrorMessage(err)), "sweep:"+sw.ID); err != nil {
				return n, err
			}
			continue
		}
		subjects, err := s.Store.SweepSubjects(ctx, sw.ID)
		if err != nil {
			s.Store.ClaimSweep(context.WithoutCancel(ctx), sw.ID, s.Owner, 0)
			return n, err
		}
		s.mu.Lock()
		if s.live[sw.Dataset] != nil {
			s.mu.Unlock()
			s.Store.ClaimSweep(context.WithoutCancel(ctx), sw.ID, s.Owner, 0)
			continue
		}
		s.live[sw.Dataset] = &liveSweep{sweep: sw, done: make(chan struct{})}
		bg := s.ctx
		s.mu.Unlock()
		s.Logger.Info("resuming sweep", "sweep", sw.ID, "dataset", sw.Dataset, "tasks", len(subjects), "previous_owner", previous)
		n++
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.execute(bg, &sw, subjects)
		}()
	}
	return n, nil
}

// Due reports whether dataset should be swept now by the schedule (see Sweeper), and why.
func (s *Sweeper) Due(ctx context.Context, d *erasure.Dataset) (bool, string, error) {
	s.init()
	if d.Method != erasure.MethodOffline || (d.Policy.SweepMode != "" && d.Policy.SweepMode != "internal") {
		return false, "not swept internally", nil
	}
	if _, ok := d.Conn.(erasure.Sweeper); !ok {
		return false, "connector cannot sweep", nil
	}
	if _, running := s.Running(d.Name); running {
		return false, "a sweep is running", nil
	}
	n, earliest, err := s.Store.QueuedTasks(ctx, d.Name)
	if err != nil || n == 0 {
		return false, "nothing queued", err
	}
	last, err := s.Store.Sweeps(ctx, d.Name, 1)
	if err != nil {
		return false, "", err
	}
	if len(last) == 0 {
		return true, "first sweep", nil
	}
	prev, now, every := last[0], s.Now(), d.Policy.SweepEvery
	if every <= 0 {
		every = 24 * time.Hour
	}
	if prev.State == erasure.SweepRunning || prev.State == erasure.SweepExported {
		return false, "a sweep is open", nil
	}
	if prev.State == erasure.SweepFailed && prev.Finished != nil {
		if now.Sub(*prev.Finished) < min(s.RetryFailed, every) {
			return false, "last sweep failed recently", nil
		}
		return true, "retry after a failed sweep", nil
	}
	next := prev.Started.Add(every)
	switch {
	case !now.Before(next):
		return true, "sweep interval passed", nil
	case !earliest.IsZero() && earliest.Before(next.Add(s.UrgentMargin)):
		return true, "a deadline comes before the next regular sweep", nil
	}
	return false, "not due", nil
}

// Schedule sweeps the datasets that are due (see Sweeper) now and every Interval until ctx is
// cancelled, one dataset after another, each sweep to its end.
func (s *Sweeper) Schedule(ctx context.Context) {
	s.init()
	t := time.NewTicker(s.Interval)
	defer t.Stop()
	for {
		s.ScheduleOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ScheduleOnce sweeps each dataset that is due now, to its end, and returns the sweeps it ran.
func (s *Sweeper) ScheduleOnce(ctx context.Context) []erasure.Sweep {
	s.init()
	var out []erasure.Sweep
	for _, name := range sortedNames(s.Datasets) {
		if ctx.Err() != nil {
			break
		}
		d := s.Datasets[name]
		due, why, err := s.Due(ctx, d)
		if err != nil {
			s.Logger.Error("cannot tell whether a sweep is due", "dataset", name, "err", err)
			continue
		}
		if !due {
			continue
		}
		s.Logger.Info("scheduled sweep", "dataset", name, "why", why)
		sw, err := s.SweepNow(ctx, name, "scheduler")
		if err != nil {
			if erasure.ErrorCode(err) != erasure.ECONFLICT {
				s.Logger.Error("scheduled sweep not started", "dataset", name, "err", err)
			}
			continue
		}
		if sw.Tasks > 0 {
			out = append(out, *sw)
		}
	}
	return out
}

func sortedNames(m map[string]*erasure.Dataset) []string {
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// StartExport starts an external sweep of dataset (state exported) holding its queued tasks and
// returns it with a function writing its export in format to w (the identifiers of the
// dataset's key types, in clear: the caller decides where they go). When writing fails the
// sweep fails at once and its tasks return to the queue. A sweep with Tasks 0 (nothing queued)
// is not stored and its write function writes nothing. ENOTFOUND, EINVALID for a dataset that is
// not offline or an unknown format, ECONFLICT when a sweep of it is open.
func (s *Sweeper) StartExport(ctx context.Context, dataset, format, actor string) (*erasure.Sweep, func(io.Writer) (int, error), error) {
	s.init()
	d, err := s.dataset(dataset)
	if err != nil {
		return nil, nil, err
	}
	// Validate the format before anything changes.
	if _, err := s.Export(io.Discard, format, nil, d.Keys); err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	if l := s.live[dataset]; l != nil {
		s.mu.Unlock()
		return nil, nil, erasure.Errorf(erasure.ECONFLICT, "dataset %s is being swept (sweep %s)", dataset, l.sweep.ID)
	}
	sw, subjects, err := s.Store.StartSweep(ctx, dataset, NewSweepID(s.Now()), "external", actor)
	s.mu.Unlock()
	if err != nil {
		return nil, nil, err
	}
	write := func(w io.Writer) (int, error) {
		if sw.Tasks == 0 {
			return 0, nil
		}
		n, err := s.Export(w, format, subjects, d.Keys)
		if err != nil {
			if _, ferr := s.Store.FinishSweep(context.WithoutCancel(ctx), sw.ID, erasure.SweepResult{}, fmt.Errorf("export not delivered: %w", err), actor); ferr != nil {
				s.Logger.Error("failed export not recorded", "sweep", sw.ID, "err", ferr)
			}
			return n, err
		}
		s.Logger.Info("sweep exported", "sweep", sw.ID, "dataset", dataset, "tasks", sw.Tasks, "rows", n, "format", format)
		return n, nil
	}
	return sw, write, nil
}

// Ack ends an exported sweep of dataset as its external job reports: done commits it (its
// tasks become done, removed rows recorded), otherwise it fails with errMsg and its tasks
// return to the queue. ENOTFOUND for an unknown sweep or one of another dataset, ECONFLICT for
// a sweep that is not exported (internal, or already ended).
func (s *Sweeper) Ack(ctx context.Context, dataset, id string, done bool, removed int64, errMsg, actor string) (*erasure.Sweep, error) {
	s.init()
	sw, err := s.Store.Sweep(ctx, id)
	if err != nil || sw.Dataset != dataset {
		return nil, erasure.Errorf(erasure.ENOTFOUND, "sweep %s of dataset %s not found", id, dataset)
	}
	if sw.State != erasure.SweepExported {
		return nil, erasure.Errorf(erasure.ECONFLICT, "sweep %s is %s (%s): only an exported sweep is acknowledged", id, sw.State, sw.Mode)
	}
	if removed < 0 {
		return nil, erasure.Errorf(erasure.EINVALID, "removed must not be negative")
	}
	var sweepErr error
	if !done {
		if strings.TrimSpace(errMsg) == "" {
			errMsg = "the external job reported a failure"
		}
		sweepErr = errors.New(errMsg)
	}
	return s.Store.FinishSweep(ctx, id, erasure.SweepResult{Removed: removed}, sweepErr, actor)
}

// WriteJSONLines is the default ExportFunc: JSON lines only, one {"task_id","identifier","value"}
// per identifier of the given types, in the order of subjects.
func WriteJSONLines(w io.Writer, format string, subjects []erasure.SweepSubject, types []string) (int, error) {
	if format != "jsonl" {
		return 0, erasure.Errorf(erasure.EINVALID, "export format %q is not available: use jsonl", format)
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	n := 0
	for _, sub := range subjects {
		for _, id := range sub.Subject.Only(types) {
			row := struct {
				TaskID     int64  `json:"task_id"`
				Identifier string `json:"identifier"`
				Value      string `json:"value"`
			}{sub.TaskID, id.Type, id.Value}
			if err := enc.Encode(row); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}
