package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"erasure"
)

// Engine executes due tasks: it leases them from the store, runs each through its dataset's
// connector with the dataset's policy, and writes the results back in batches (one transaction
// per batch, which also leases the next batch; each result is still atomic with its audit
// event). Several engines may share a store that supports it (PostgreSQL); each must have its
// own Owner.
//
// Each dataset has its own lane (bulkhead): Policy.Concurrency workers (Workers when unset) and
// a queue of up to Batch leased tasks. A task leased while its dataset's queue is full, or that
// waited in it for so long that its lease would run out before it ends, is given back
// unexecuted (TaskResult.Deferred: not an attempt) to be leased again a little later, so that a
// slow or hung dataset holds only its own slots and never the other datasets' tasks.
type Engine struct {
	Store    erasure.Store
	Datasets map[string]*erasure.Dataset
	// Owner names this engine in leases and audit events (default host:pid).
	Owner string
	// Workers is how many tasks of one dataset run at once when its Policy.Concurrency is unset
	// (default 16).
	Workers int
	// Poll is how often to look for due tasks when idle (default 250ms); Wake shortens it.
	Poll time.Duration
	// Batch caps how many results are committed in one transaction (default 256).
	Batch int
	// Grace is how long Run, once stopped, lets the tasks in hand finish before it cancels
	// their calls (default 10s).
	Grace time.Duration
	// LeaseMargin is how long past its dataset's timeout a task's lease lasts (default 1
	// minute): how soon another engine takes over the tasks of one that died.
	LeaseMargin time.Duration
	// Hasher computes the dispatch ids of async commands (erasure.DispatchID); required when a
	// dataset is async. The deployment id is read from the store on first use.
	Hasher  erasure.Hasher
	Now     func() time.Time
	Rand    *rand.Rand
	Logger  *slog.Logger
	Metrics *Metrics
	// Health, when set, is told of every attempt (the datasets' health, one log line per
	// failed attempt).
	Health *Health

	depMu      sync.Mutex
	deployment string

	randMu sync.Mutex
	wake   chan struct{}
	once   sync.Once
	// inflight counts leased tasks whose result is not yet committed; capacity bounds it.
	inflight atomic.Int64
	capacity int64
	// leasedAt is when either loop last leased (unix nanoseconds).
	leasedAt atomic.Int64
	stopping atomic.Bool

	laneMu sync.Mutex
	lanes  map[string]*lane
	closed bool
}

// lane is a dataset's queue of leased tasks and the last time one of its workers took a task
// from it: a lane that moves is busy, one that stopped moving is hung.
type lane struct {
	queue chan queued
	moved atomic.Int64 // unix nanoseconds
}

// busyPause is how long a task given back because its dataset's lane was full waits before it
// is leased again while the lane moves (a backlog: room comes soon). A lane that did not move
// for laneStill is taken for hung, and its tasks wait about half their timeout (deferred).
const (
	busyPause = 500 * time.Millisecond
	laneStill = 2 * time.Second
)

func (e *Engine) init() {
	e.once.Do(func() {
		if e.Owner == "" {
			host, _ := os.Hostname()
			e.Owner = fmt.Sprintf("%s:%d", host, os.Getpid())
		}
		if e.Workers <= 0 {
			e.Workers = 16
		}
		if e.Poll <= 0 {
			e.Poll = 250 * time.Millisecond
		}
		if e.Batch <= 0 {
			e.Batch = 256
		}
		if e.Grace <= 0 {
			e.Grace = 10 * time.Second
		}
		if e.Now == nil {
			e.Now = time.Now
		}
		if e.Rand == nil {
			e.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
		}
		if e.Logger == nil {
			e.Logger = slog.New(slog.DiscardHandler)
		}
		e.Logger = e.Logger.WithGroup("executor")
		e.wake = make(chan struct{}, 1)
	})
}

// Wake makes an idle engine look for due tasks now (called after a submission or an ack).
func (e *Engine) Wake() {
	e.init()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// leaseFor is the lease taken for a batch: long enough for the slowest dataset, plus the margin.
func (e *Engine) leaseFor() time.Duration {
	margin := e.LeaseMargin
	if margin <= 0 {
		margin = time.Minute
	}
	l := margin
	for _, d := range e.Datasets {
		l = max(l, d.Policy.Timeout+margin)
	}
	return l
}

// queued is a leased task waiting in its dataset's lane.
type queued struct {
	task  erasure.Task
	since time.Time
}

// maxQueueWait is how long a leased task may wait in its lane before it is given back: it must
// start early enough to end, within its dataset's timeout, before its lease runs out (the lease
// is the timeout plus a minute, see lease).
const maxQueueWait = 40 * time.Second

// concurrency is how many tasks of d run at once.
func (e *Engine) concurrency(d *erasure.Dataset) int {
	if d.Policy.Concurrency > 0 {
		return d.Policy.Concurrency
	}
	return e.Workers
}

// Run executes tasks until ctx is cancelled, then finishes and commits the tasks in hand.
func (e *Engine) Run(ctx context.Context) error {
	e.init()
	// Tasks in hand are finished with a context that outlives ctx a little, so that a
	// shutdown does not turn into a wave of timeouts.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	slots := 0
	for _, d := range e.Datasets {
		slots += e.concurrency(d)
	}
	// Room for every dataset's running tasks, a batch queued and a batch being committed.
	e.capacity = int64(slots + 2*e.Batch)
	// Every leased task yields exactly one result and at most capacity are leased, so sends
	// on results never block, whoever sends.
	results := make(chan erasure.TaskResult, e.capacity+int64(e.Batch))
	committed := make(chan struct{}, 1)
	var workers sync.WaitGroup
	e.lanes = map[string]*lane{}
	for name, d := range e.Datasets {
		n := e.concurrency(d)
		l := &lane{queue: make(chan queued, e.Batch)}
		l.moved.Store(e.Now().UnixNano())
		e.lanes[name] = l
		for range n {
			workers.Add(1)
			go func() {
				defer workers.Done()
				for q := range l.queue {
					l.moved.Store(e.Now().UnixNano())
					if e.Now().Sub(q.since) > maxQueueWait {
						results <- e.deferred(q.task, false)
						continue
					}
					r := e.Execute(workCtx, q.task)
					e.Health.Record(q.task, r)
					results <- r
				}
			}()
		}
	}
	e.stopping.Store(false)
	commitDone := make(chan struct{})
	go func() {
		defer close(commitDone)
		e.commit(results, committed)
	}()

	leaseFor := e.leaseFor()
	// While the store fails, one line when it starts, one a minute, one when it is back.
	var failingSince, loggedAt time.Time
	deferred := false // a wake-up left to the commit loop's lease
	for ctx.Err() == nil {
		n := 0
		if !deferred {
			n = e.reserve(e.Batch)
		}
		deferred = false
		if n > 0 {
			got, err := e.Store.LeaseTasks(ctx, e.Owner, n, leaseFor)
			e.leasedAt.Store(time.Now().UnixNano())
			switch now := time.Now(); {
			case err != nil && ctx.Err() == nil && (failingSince.IsZero() || now.Sub(loggedAt) >= time.Minute):
				if failingSince.IsZero() {
					failingSince = now
				}
				loggedAt = now
				e.Logger.Error("cannot lease tasks: the store fails", "err", err.Error(), "failing_for", erasure.FormatDuration(now.Sub(failingSince).Round(time.Second)))
			case err == nil && !failingSince.IsZero():
				e.Logger.Info("leasing tasks again", "failed_for", erasure.FormatDuration(now.Sub(failingSince).Round(time.Second)))
				failingSince = time.Time{}
			}
			e.inflight.Add(int64(len(got) - n))
			e.dispatch(got, results)
			if len(got) == n {
				continue // more may be due
			}
		}
		select {
		case <-ctx.Done():
		case <-e.wake:
			if e.inflight.Load() > 0 && time.Since(time.Unix(0, e.leasedAt.Load())) < e.Poll {
				// Results are on their way, and the transaction that commits them leases
				// what is due by then (FinishAndLease): a lease of its own now would be one
				// transaction more for the same tasks. Leases do not stop for longer than Poll.
				deferred = true
				break
			}
			// Submissions and acknowledgements come in bursts: gather a burst's wake-ups into
			// one lease instead of leasing one task per wake-up.
			time.Sleep(2 * time.Millisecond)
		case <-committed:
		case <-time.After(e.Poll):
		}
	}
	e.stopping.Store(true)
	e.laneMu.Lock()
	e.closed = true
	for _, l := range e.lanes {
		close(l.queue)
	}
	e.laneMu.Unlock()
	done := make(chan struct{})
	go func() { workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(e.Grace):
		cancelWork() // connectors honour ctx; their results are then transient errors
		<-done
	}
	<-commitDone
	return nil
}

// reserve claims up to n of the free capacity for a lease and returns how much it claimed;
// the caller gives back what the lease did not use.
func (e *Engine) reserve(n int) int {
	for {
		cur := e.inflight.Load()
		free := int(e.capacity - cur)
		if free <= 0 || e.stopping.Load() {
			return 0
		}
		take := min(free, n)
		if e.inflight.CompareAndSwap(cur, cur+int64(take)) {
			return take
		}
	}
}

// dispatch hands leased tasks to their datasets' lanes. A task whose lane is full (or closed,
// at shutdown) is given back unexecuted, due again after a pause: a short one while the lane
// moves (a backlog of a healthy dataset), about half the dataset's timeout once it stopped
// moving (a hung one, whose tasks must not be leased again and again).
func (e *Engine) dispatch(ts []erasure.Task, results chan<- erasure.TaskResult) {
	if len(ts) == 0 {
		return
	}
	e.laneMu.Lock()
	defer e.laneMu.Unlock()
	now := e.Now()
	for _, t := range ts {
		l := e.lanes[t.Dataset]
		if l == nil {
			results <- e.Execute(context.Background(), t) // no longer registered: fails at once
			continue
		}
		if !e.closed {
			select {
			case l.queue <- queued{t, now}:
				continue
			default:
			}
		}
		results <- e.deferred(t, !e.closed && now.Sub(time.Unix(0, l.moved.Load())) < laneStill)
	}
}

// deferred is the result of a task given back unexecuted, not counted as an attempt: due
// again after busyPause when its lane is busy, else after about half its dataset's timeout
// (between 1s and 1 minute).
func (e *Engine) deferred(t erasure.Task, busy bool) erasure.TaskResult {
	pause := time.Second
	if d := e.Datasets[t.Dataset]; d != nil {
		pause = min(max(d.Policy.Timeout/2, time.Second), time.Minute)
	}
	if busy {
		pause = busyPause
	}
	now := e.Now()
	if e.Metrics != nil {
		e.Metrics.deferred.WithLabelValues(t.Dataset).Inc()
	}
	return erasure.TaskResult{TaskID: t.ID, RequestID: t.RequestID, Dataset: t.Dataset, Kind: t.Kind, Owner: e.Owner, Attempt: t.Attempts,
		Deferred: true, DueAt: now.Add(pause), StartedAt: now, FinishedAt: now}
}

// commit writes results in batches: it takes every result already waiting, up to Batch, and
// leases the next tasks in the same transaction while the engine runs. It returns once the
// engine is stopping and every leased task's result is committed.
func (e *Engine) commit(results chan erasure.TaskResult, committed chan<- struct{}) {
	batch := make([]erasure.TaskResult, 0, e.Batch)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	leaseFor := e.leaseFor()
	for {
		var r erasure.TaskResult
		select {
		case r = <-results:
		case <-tick.C:
			if e.stopping.Load() && e.inflight.Load() <= 0 {
				return
			}
			continue
		}
		batch = append(batch[:0], r)
		// Linger briefly so that results finishing together share one commit (and one fsync);
		// a lone result waits at most the linger.
		linger := time.NewTimer(2 * time.Millisecond)
	fill:
		for len(batch) < e.Batch {
			select {
			case r := <-results:
				batch = append(batch, r)
			case <-linger.C:
				break fill
			}
		}
		linger.Stop()
		// The batch's own slots are free once it is committed: lease into them.
		e.inflight.Add(-int64(len(batch)))
		n := e.reserve(e.Batch)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		var err error
		var dropped []int64
		var leased []erasure.Task
		reserved := n
		for try := 0; try < 5; try++ {
			var got []erasure.Task
			dropped, got, err = e.Store.FinishAndLease(ctx, batch, e.Owner, n, leaseFor)
			if n > 0 {
				e.leasedAt.Store(time.Now().UnixNano())
			}
			// A call that failed may still have leased (a shared store commits the lease with
			// the results it could apply, and fails on the rest): those tasks are ours, and
			// the tries that follow lease nothing more.
			leased = append(leased, got...)
			n -= len(got)
			if err == nil {
				if len(dropped) > 0 {
					e.Logger.Warn("results dropped: lease lost", "tasks", dropped)
				}
				break
			}
			time.Sleep(time.Duration(try+1) * 100 * time.Millisecond)
		}
		cancel()
		if err != nil {
			// The leases will expire and the tasks run again: at least once, never lost.
			e.Logger.Error("results not committed; tasks will run again", "tasks", len(batch), "err", err)
		}
		if e.Metrics != nil {
			for _, r := range batch {
				if !r.Deferred {
					e.Metrics.finished.WithLabelValues(r.Dataset, string(r.State)).Inc()
				}
			}
		}
		e.inflight.Add(int64(len(leased) - reserved))
		e.dispatch(leased, results)
		if reserved > 0 && len(leased) == reserved {
			// The lease was full: more may be due, and the main loop leases on. A lease that
			// took less found nothing more due, and another lease now would be a transaction
			// for nothing.
			select {
			case committed <- struct{}{}:
			default:
			}
		}
	}
}

func (e *Engine) backoff(p erasure.Policy, attempt int, retryAfter time.Duration) time.Duration {
	e.randMu.Lock()
	defer e.randMu.Unlock()
	return Backoff(p.Backoff, attempt, retryAfter, e.Rand)
}

// Execute runs one leased task and returns its result. It never returns an error: failures
// are part of the result (a retry, or failed).
func (e *Engine) Execute(ctx context.Context, t erasure.Task) erasure.TaskResult {
	e.init()
	start := e.Now()
	r := erasure.TaskResult{TaskID: t.ID, RequestID: t.RequestID, Dataset: t.Dataset, Kind: t.Kind, Owner: e.Owner, Attempt: t.Attempts, StartedAt: start}
	finish := func(state erasure.TaskState, err error) erasure.TaskResult {
		r.State, r.FinishedAt = state, e.Now()
		if err != nil {
			r.Error = cleanError(err)
		}
		if g, ok := erasure.AsGuardError(err); ok {
			// Loud: an erasure that would remove far more than one subject's data is a broken
			// key or a service gone wrong, for a person to look at.
			r.GuardTripped = true
			e.Logger.Error("erasure stopped at its dataset's guard", "request", t.RequestID, "task", t.ID, "dataset", t.Dataset,
				"count", g.Count, "limit", g.Limit, "reported", g.Reported)
			if e.Metrics != nil {
				e.Metrics.guardTrips.WithLabelValues(t.Dataset).Inc()
			}
		}
		if e.Metrics != nil {
			e.Metrics.duration.WithLabelValues(t.Dataset).Observe(r.FinishedAt.Sub(start).Seconds())
		}
		return r
	}
	d := e.Datasets[t.Dataset]
	if d == nil {
		return finish(erasure.TaskFailed, fmt.Errorf("dataset %s is no longer registered", t.Dataset))
	}
	p := d.Policy
	// fail decides between a retry and giving up after a failed attempt.
	fail := func(err error) erasure.TaskResult {
		if erasure.IsPermanent(err) {
			return finish(erasure.TaskFailed, err)
		}
		if t.Attempts >= p.MaxAttempts {
			return finish(erasure.TaskFailed, fmt.Errorf("gave up after %d attempts: %w", t.Attempts, err))
		}
		r.DueAt = e.Now().Add(e.backoff(p, t.Attempts, erasure.RetryAfter(err)))
		return finish(erasure.TaskPending, err)
	}
	var republish error
	if t.PrevState == erasure.TaskDispatched {
		// The acknowledgement did not come in time: this attempt publishes the command again.
		republish = fmt.Errorf("no acknowledgement of attempt %d within %s", t.Attempts-1, p.AckTimeout)
		if t.Attempts > p.MaxAttempts {
			return finish(erasure.TaskFailed, fmt.Errorf("gave up after %d attempts: %w", t.Attempts-1, republish))
		}
	} else if t.Attempts > p.MaxAttempts {
		// The previous holder of the lease died during the last attempt.
		return finish(erasure.TaskFailed, fmt.Errorf("gave up after %d attempts; the last one did not finish (lease expired)", t.Attempts-1))
	}
	subject := t.Subject.Only(t.Keys)
	if len(t.Keys) > 0 && len(subject) == 0 {
		r.Note = "skipped: no identifier (needs " + strings.Join(t.Keys, " or ") + ")"
		return finish(erasure.TaskSkipped, nil)
	}
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	// The connector enforces the dataset's guard, unless an operator forced this task past it.
	if t.Guard != erasure.GuardOverridden {
		ctx = erasure.ContextWithGuard(ctx, p.Guard)
	}

	if t.Kind == erasure.TaskLookup {
		res, ok := d.Conn.(erasure.Resolver)
		if !ok {
			return finish(erasure.TaskFailed, fmt.Errorf("dataset %s cannot look up identifiers", d.Name))
		}
		r.Inputs = len(subject)
		found, err := res.Resolve(ctx, subject)
		if err != nil {
			return fail(err)
		}
		for _, id := range found {
			if id.Validate() == nil && provides(d, id.Type) {
				r.Found = append(r.Found, id)
			}
		}
		return finish(erasure.TaskDone, nil)
	}

	if t.Kind == erasure.TaskHide {
		h, ok := d.Conn.(erasure.Hider)
		if !ok || !h.Hides() {
			return finish(erasure.TaskFailed, fmt.Errorf("dataset %s declares no hide action", d.Name))
		}
		out, err := h.Hide(ctx, subject)
		if err != nil {
			return fail(err)
		}
		r.Removed, r.Note = out.Removed, out.Detail
		return finish(erasure.TaskDone, nil)
	}

	switch d.Method {
	case erasure.MethodAsync:
		disp, ok := d.Conn.(erasure.Dispatcher)
		if !ok {
			return finish(erasure.TaskFailed, fmt.Errorf("dataset %s cannot dispatch commands", d.Name))
		}
		if e.Hasher == nil {
			return finish(erasure.TaskFailed, fmt.Errorf("the executor has no Hasher to name the commands of async dataset %s", d.Name))
		}
		deployment, err := e.deploymentID(ctx)
		if err != nil {
			return fail(erasure.Transient(err, 0))
		}
		err = disp.Dispatch(ctx, erasure.Command{TaskID: t.ID, RequestID: t.RequestID, Dataset: d.Name, Attempt: t.Attempts,
			Dispatch: erasure.DispatchID(e.Hasher, deployment, t.ID, t.Attempts), SubjectKey: erasure.SubjectKey(e.Hasher, subject),
			Identifiers: subject, Deadline: t.Deadline, Canary: t.Canary})
		if err != nil {
			return fail(err)
		}
		// The next attempt, if no acknowledgement comes, waits the ack timeout plus the backoff.
		r.DueAt = e.Now().Add(p.AckTimeout + e.backoff(p, t.Attempts, 0))
		return finish(erasure.TaskDispatched, republish)
	case erasure.MethodOffline:
		return finish(erasure.TaskQueued, nil)
	}
	er, ok := d.Conn.(erasure.Eraser)
	if !ok {
		return finish(erasure.TaskFailed, fmt.Errorf("dataset %s cannot erase", d.Name))
	}
	out, err := er.Erase(ctx, subject)
	if err != nil {
		return fail(err)
	}
	r.Removed, r.Note = out.Removed, out.Detail
	if v, ok := d.Conn.(erasure.Verifier); ok {
		holds, err := v.Holds(ctx, subject)
		if err != nil {
			return fail(fmt.Errorf("verify: %w", err))
		}
		if holds {
			return fail(erasure.Transientf("verify: the dataset still holds the subject after the erase"))
		}
		r.Verified = true
	}
	return finish(erasure.TaskDone, nil)
}

// deploymentID returns the store's deployment id, read once.
func (e *Engine) deploymentID(ctx context.Context) (string, error) {
	e.depMu.Lock()
	defer e.depMu.Unlock()
	if e.deployment == "" {
		id, err := e.Store.Deployment(ctx)
		if err != nil {
			return "", err
		}
		e.deployment = id
	}
	return e.deployment, nil
}

func provides(d *erasure.Dataset, typ string) bool {
	for _, p := range d.Provides {
		if p.Identifier == typ {
			return true
		}
	}
	return false
}

// cleanError renders err for the task's last_error: one line, bounded.
func cleanError(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if errors.Is(err, context.DeadlineExceeded) {
		s = "timed out: " + s
	}
	if len(s) > 500 {
		s = strings.ToValidUTF8(s[:500], "") + "…"
	}
	return s
}
