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
// per batch; each result is still atomic with its audit event). Several engines may share a
// store that supports it (PostgreSQL); each must have its own Owner.
type Engine struct {
	Store    erasure.Store
	Datasets map[string]*erasure.Dataset
	// Owner names this engine in leases and audit events (default host:pid).
	Owner string
	// Workers is how many tasks run at once (default 16).
	Workers int
	// Poll is how often to look for due tasks when idle (default 250ms); Wake shortens it.
	Poll time.Duration
	// Batch caps how many results are committed in one transaction (default 256).
	Batch int
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

	depMu      sync.Mutex
	deployment string

	randMu sync.Mutex
	wake   chan struct{}
	once   sync.Once
	// inflight counts leased tasks whose result is not yet committed.
	inflight atomic.Int64
}

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

// Run executes tasks until ctx is cancelled, then finishes and commits the tasks in hand.
func (e *Engine) Run(ctx context.Context) error {
	e.init()
	tasks := make(chan erasure.Task)
	results := make(chan erasure.TaskResult, e.Workers*2)
	committed := make(chan struct{}, 1)
	var workers sync.WaitGroup
	// Tasks in hand are finished with a context that outlives ctx a little, so that a
	// shutdown does not turn into a wave of timeouts.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	for range e.Workers {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for t := range tasks {
				results <- e.Execute(workCtx, t)
			}
		}()
	}
	commitDone := make(chan struct{})
	go func() {
		defer close(commitDone)
		e.commit(results, committed)
	}()

	capacity := int64(e.Workers + e.Batch)
	leaseFor := e.leaseFor()
	var err error
	for ctx.Err() == nil {
		free := capacity - e.inflight.Load()
		var got []erasure.Task
		if free > 0 {
			got, err = e.Store.LeaseTasks(ctx, e.Owner, int(min(free, int64(e.Batch))), leaseFor)
			if err != nil && ctx.Err() == nil {
				e.Logger.Error("lease failed", "err", err)
			}
			e.inflight.Add(int64(len(got)))
			for _, t := range got {
				tasks <- t
			}
		}
		if free > 0 && len(got) == int(min(free, int64(e.Batch))) {
			continue // more may be due
		}
		select {
		case <-ctx.Done():
		case <-e.wake:
		case <-committed:
		case <-time.After(e.Poll):
		}
	}
	close(tasks)
	done := make(chan struct{})
	go func() { workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cancelWork() // connectors honour ctx; their results are then transient errors
		<-done
	}
	close(results)
	<-commitDone
	return nil
}

// commit writes results in batches: it takes every result already waiting, up to Batch.
func (e *Engine) commit(results <-chan erasure.TaskResult, committed chan<- struct{}) {
	batch := make([]erasure.TaskResult, 0, e.Batch)
	for r := range results {
		batch = append(batch[:0], r)
		// Linger briefly so that results finishing together share one commit (and one fsync);
		// a lone result waits at most the linger.
		linger := time.NewTimer(2 * time.Millisecond)
	fill:
		for len(batch) < e.Batch {
			select {
			case r, ok := <-results:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			case <-linger.C:
				break fill
			}
		}
		linger.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		var err error
		for try := 0; try < 5; try++ {
			var dropped []int64
			dropped, err = e.Store.FinishTasks(ctx, batch)
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
				e.Metrics.finished.WithLabelValues(string(r.State)).Inc()
			}
		}
		e.inflight.Add(-int64(len(batch)))
		select {
		case committed <- struct{}{}:
		default:
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
			Identifiers: subject, Deadline: t.Deadline})
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
