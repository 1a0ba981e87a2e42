package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"erasure"
)

// CanaryStore is the store the canaries need.
type CanaryStore interface {
	erasure.Store
	erasure.CanaryStore
}

// Canaries runs the canaries of the datasets that declare one (erasure.Canary): on their
// schedule (Schedule, which one process runs: a leader) and on demand (RunCanaries, the API's
// and `erasure canary run`'s).
//
// One canary run of a dataset:
//
//  1. plant: a fresh synthetic subject is planted through the connector (erasure.Planter) and
//     read back with Remains, which must see it (else the canary could prove nothing); whether
//     the dataset's own Verifier sees it too is noted for the failure's reason. Async datasets
//     plant nothing.
//  2. erase: its erasure is submitted through the normal pipeline as a canary request (one
//     erase task of this dataset; kept out of user statistics), and waited for until the
//     canary's timeout; an offline dataset's canary is swept at once (one swept by an external
//     job waits for that job). A failed, cancelled or late erasure fails the canary, and the
//     canary request is cancelled.
//  3. check: once the request completed, Remains must no longer see the subject.
//
// Every run is recorded (erasure.CanaryStore: the result with its canary.passed or
// canary.failed audit event), exported (erasure_canary_ok{dataset}, the last run's time, runs
// by result) and logged; a failure is logged as an error. A run interrupted by shutdown is not
// recorded.
type Canaries struct {
	Store CanaryStore
	// Datasets are the registered datasets; those with a Canary have canaries.
	Datasets []*erasure.Dataset
	// Hasher keys the canary requests' fingerprints (required).
	Hasher erasure.Hasher
	// Engine, when set, is woken once a canary request is stored.
	Engine *Engine
	// Sweeper, when set, sweeps an offline dataset as soon as its canary's task is queued;
	// without it the canary waits for the dataset's regular sweep (within its timeout).
	Sweeper *Sweeper
	Now     func() time.Time
	Logger  *slog.Logger
	Metrics *Metrics
	// Poll is how often a running canary reads its request (default 250ms).
	Poll time.Duration
	// Interval is how often Schedule looks for canaries that are due (default 1 minute).
	Interval time.Duration

	once    sync.Once
	mu      sync.Mutex
	running map[string]*canaryRun
	wg      sync.WaitGroup
}

// canaryRun is a canary running in this process: done is closed once res is set.
type canaryRun struct {
	done chan struct{}
	res  erasure.CanaryResult
}

var _ erasure.CanaryService = (*Canaries)(nil)

func (c *Canaries) init() {
	c.once.Do(func() {
		if c.Now == nil {
			c.Now = time.Now
		}
		if c.Logger == nil {
			c.Logger = slog.New(slog.DiscardHandler)
		}
		c.Logger = c.Logger.WithGroup("canary")
		if c.Poll <= 0 {
			c.Poll = 250 * time.Millisecond
		}
		if c.Interval <= 0 {
			c.Interval = time.Minute
		}
		c.running = map[string]*canaryRun{}
	})
}

// Any reports whether some dataset declares a canary.
func (c *Canaries) Any() bool {
	for _, d := range c.Datasets {
		if d.Canary != nil {
			return true
		}
	}
	return false
}

// acquire marks dataset's canary running and returns its run; when it is running already it
// returns that run and false.
func (c *Canaries) acquire(dataset string) (*canaryRun, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.running[dataset]; r != nil {
		return r, false
	}
	r := &canaryRun{done: make(chan struct{})}
	c.running[dataset] = r
	return r, true
}

// release ends run r of dataset with its result.
func (c *Canaries) release(dataset string, r *canaryRun, res erasure.CanaryResult) {
	c.mu.Lock()
	delete(c.running, dataset)
	c.mu.Unlock()
	r.res = res
	close(r.done)
}

// RunCanaries implements erasure.CanaryService: it runs the canary of dataset (of every
// dataset with a canary, at once, when dataset is ""), to its end, records each run and
// returns the results in registry order. A dataset whose canary is running already in this
// process (its schedule) is not run twice: the running canary's result is returned once it
// ends. ENOTFOUND for an unknown dataset, EINVALID for one without a canary.
func (c *Canaries) RunCanaries(ctx context.Context, dataset, actor string) ([]erasure.CanaryResult, error) {
	c.init()
	var todo []*erasure.Dataset
	if dataset != "" {
		d := c.dataset(dataset)
		switch {
		case d == nil:
			return nil, erasure.Errorf(erasure.ENOTFOUND, "dataset %q not found", truncateID(dataset))
		case d.Canary == nil:
			return nil, erasure.Errorf(erasure.EINVALID, "dataset %s declares no canary (add canary: { every: 24h, plant: ... } to it)", d.Name)
		}
		todo = append(todo, d)
	} else {
		for _, d := range c.Datasets {
			if d.Canary != nil {
				todo = append(todo, d)
			}
		}
	}
	out := make([]erasure.CanaryResult, len(todo))
	var wg sync.WaitGroup
	for i, d := range todo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, mine := c.acquire(d.Name)
			if !mine {
				select {
				case <-r.done:
					out[i] = r.res
				case <-ctx.Done():
				}
				return
			}
			out[i] = c.run(ctx, d, actor)
			c.release(d.Name, r, out[i])
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *Canaries) dataset(name string) *erasure.Dataset {
	for _, d := range c.Datasets {
		if d.Name == name {
			return d
		}
	}
	return nil
}

// Canaries implements erasure.CanaryService.
func (c *Canaries) Canaries(ctx context.Context) ([]erasure.CanaryResult, error) {
	last, err := c.Store.LastCanaries(ctx)
	if err != nil {
		return nil, err
	}
	by := map[string]erasure.CanaryResult{}
	for _, r := range last {
		by[r.Dataset] = r
	}
	out := []erasure.CanaryResult{}
	for _, d := range c.Datasets {
		if d.Canary == nil {
			continue
		}
		r, ok := by[d.Name]
		if !ok {
			r = erasure.CanaryResult{Dataset: d.Name}
		}
		out = append(out, r)
	}
	return out, nil
}

// Schedule runs, every Interval until ctx is cancelled, the canaries that are due: those that
// never ran and those whose last run started Every ago or more (the store's results, so a
// restart or a new leader keeps the schedule). Each runs in its own goroutine; Schedule returns
// once they have stopped. The metrics start from the stored results.
func (c *Canaries) Schedule(ctx context.Context) {
	c.init()
	if last, err := c.Store.LastCanaries(ctx); err == nil {
		for _, r := range last {
			if d := c.dataset(r.Dataset); d != nil && d.Canary != nil {
				c.export(r)
			}
		}
	}
	t := time.NewTicker(c.Interval)
	defer t.Stop()
	for {
		c.ScheduleOnce(ctx)
		select {
		case <-ctx.Done():
			c.wg.Wait()
			return
		case <-t.C:
		}
	}
}

// ScheduleOnce starts, in the background, the canaries due now and returns their datasets.
func (c *Canaries) ScheduleOnce(ctx context.Context) []string {
	c.init()
	last, err := c.Store.LastCanaries(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.Logger.Error("cannot tell which canaries are due", "err", err)
		}
		return nil
	}
	started := map[string]time.Time{}
	for _, r := range last {
		started[r.Dataset] = r.Started
	}
	var out []string
	now := c.Now()
	for _, d := range c.Datasets {
		if d.Canary == nil || ctx.Err() != nil {
			continue
		}
		if s, ok := started[d.Name]; ok && now.Sub(s) < d.Canary.Every {
			continue
		}
		r, mine := c.acquire(d.Name)
		if !mine {
			continue
		}
		out = append(out, d.Name)
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.release(d.Name, r, c.run(ctx, d, "canary"))
		}()
	}
	return out
}

// Wait waits for the canaries started by the schedule.
func (c *Canaries) Wait() { c.wg.Wait() }

// run runs one canary of d and records it (unless ctx ended meanwhile).
func (c *Canaries) run(ctx context.Context, d *erasure.Dataset, actor string) erasure.CanaryResult {
	res := c.Run(ctx, d, actor)
	if ctx.Err() != nil {
		c.Logger.Info("canary interrupted; not recorded", "dataset", d.Name, "request", res.RequestID)
		return res
	}
	if err := c.Store.RecordCanary(context.WithoutCancel(ctx), res); err != nil {
		c.Logger.Error("canary result not recorded", "dataset", d.Name, "err", err)
	}
	c.export(res)
	if res.OK {
		c.Logger.Info("canary passed", "dataset", d.Name, "request", res.RequestID, "took", res.Finished.Sub(res.Started).Round(time.Millisecond))
	} else {
		// Loud: the dataset's erasure is broken for real subjects too.
		c.Logger.Error("canary failed", "dataset", d.Name, "stage", res.Stage, "reason", res.Reason, "request", res.RequestID)
	}
	return res
}

func (c *Canaries) export(r erasure.CanaryResult) {
	if c.Metrics == nil || r.Started.IsZero() {
		return
	}
	ok, result := 0.0, "failed"
	if r.OK {
		ok, result = 1, "ok"
	}
	c.Metrics.canaryOK.WithLabelValues(r.Dataset).Set(ok)
	c.Metrics.canaryLast.WithLabelValues(r.Dataset).Set(float64(r.Finished.Unix()))
	if r.Actor != "" { // a run of this process, not a result read back at start
		c.Metrics.canaryRuns.WithLabelValues(r.Dataset, result).Inc()
	}
}

// Run runs one canary of d to its end and returns its result, without recording it (see
// Canaries for the stages). It never returns an error: failures are the result.
func (c *Canaries) Run(ctx context.Context, d *erasure.Dataset, actor string) erasure.CanaryResult {
	c.init()
	res := erasure.CanaryResult{Dataset: d.Name, Started: c.Now().UTC().Truncate(time.Millisecond), Actor: actor}
	fail := func(stage erasure.CanaryStage, format string, args ...any) erasure.CanaryResult {
		res.Stage, res.Reason = stage, fmt.Sprintf(format, args...)
		res.Finished = c.Now().UTC().Truncate(time.Millisecond)
		return res
	}
	if d.Canary == nil {
		return fail(erasure.CanaryPlant, "dataset %s declares no canary", d.Name)
	}
	subject, err := erasure.NewCanarySubject(d)
	if err != nil {
		return fail(erasure.CanaryPlant, "%s", erasure.ErrorMessage(err))
	}
	stepTimeout := d.Policy.Timeout
	if stepTimeout <= 0 {
		stepTimeout = 30 * time.Second
	}

	// 1. Plant, and read it back.
	planter, plants := d.Conn.(erasure.Planter)
	plants = plants && d.Method != erasure.MethodAsync
	verifySaw, verifies := false, false
	if plants {
		if err := c.plant(ctx, planter, subject, stepTimeout); err != nil {
			return fail(erasure.CanaryPlant, "planting the canary subject failed: %s", erasure.OneLine(err, 500))
		}
		there, err := remains(ctx, planter, subject, stepTimeout)
		switch {
		case err != nil:
			return fail(erasure.CanaryPlant, "reading the planted canary subject back failed: %s", erasure.OneLine(err, 500))
		case !there:
			return fail(erasure.CanaryPlant, "the planted canary subject cannot be read back: the plant and its check do not agree, so the canary cannot prove anything")
		}
		if v, ok := d.Conn.(erasure.Verifier); ok && d.Method == erasure.MethodRealtime {
			verifies = true
			vctx, cancel := context.WithTimeout(ctx, stepTimeout)
			verifySaw, _ = v.Holds(vctx, subject)
			cancel()
		}
	}

	// 2. Erase it through the pipeline.
	now := c.Now()
	sub := erasure.Submission{Subject: subject, Reason: "canary", Deadline: now.Add(d.Canary.Timeout + time.Hour)}
	r, _, err := c.Store.CreateRequest(ctx, erasure.NewRequest{
		ID: NewRequestID(now), Subject: subject, Reason: "canary", Deadline: sub.Deadline.UTC(), SubmittedBy: actor,
		Fingerprint: c.Hasher.Sum(sub.Canonical()), Canary: d.Name,
		Tasks: []erasure.TaskSpec{{Dataset: d.Name, Kind: erasure.TaskErase, Method: d.Method, Keys: d.Keys}},
	})
	if err != nil {
		return fail(erasure.CanaryErase, "submitting the canary's erasure failed: %s", erasure.OneLine(err, 500))
	}
	res.RequestID = r.ID
	if c.Engine != nil {
		c.Engine.Wake()
	}
	end := c.wait(ctx, d, r.ID)
	if end.reason != "" {
		c.cancel(ctx, r.ID, actor)
		return fail(erasure.CanaryErase, "%s", end.reason)
	}

	// 3. Check that it is gone.
	if plants {
		there, err := remains(ctx, planter, subject, stepTimeout)
		switch {
		case err != nil:
			return fail(erasure.CanaryCheck, "reading the canary subject back after its erasure failed: %s", erasure.OneLine(err, 500))
		case there && verifies && !verifySaw:
			return fail(erasure.CanaryCheck, "the planted canary subject is still there after its erasure completed, and the dataset's own verify did not see it even before: the dataset's keys or patterns do not match the data as it is written")
		case there && verifies:
			return fail(erasure.CanaryCheck, "the planted canary subject is still there after its erasure completed, although the dataset's verify reported it gone")
		case there:
			return fail(erasure.CanaryCheck, "the planted canary subject is still there after its erasure completed (which reported %d removed)", end.removed)
		}
	}
	res.OK = true
	res.Finished = c.Now().UTC().Truncate(time.Millisecond)
	return res
}

// plant plants s, trying again a few times on transient failures (a sweep holding a
// snapshot's lock, a busy database) within the step's time.
func (c *Canaries) plant(ctx context.Context, p erasure.Planter, s erasure.Subject, timeout time.Duration) error {
	var err error
	for try := 1; try <= 3; try++ {
		pctx, cancel := context.WithTimeout(ctx, timeout)
		err = p.Plant(pctx, s)
		cancel()
		if err == nil || erasure.IsPermanent(err) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(try) * 500 * time.Millisecond):
		}
	}
	return err
}

func remains(ctx context.Context, p erasure.Planter, s erasure.Subject, timeout time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return p.Remains(ctx, s)
}

// waited is how a canary's erasure ended: reason is empty when it completed, and removed is
// what its task reported removing.
type waited struct {
	reason  string
	removed int64
}

// wait reads the canary request until it ends or the canary's timeout passes, sweeping an
// offline dataset as soon as the canary's task is queued.
func (c *Canaries) wait(ctx context.Context, d *erasure.Dataset, id string) waited {
	deadline := c.Now().Add(d.Canary.Timeout)
	var last *erasure.Request
	for {
		r, err := c.Store.Request(ctx, id)
		if err == nil {
			last = r
			switch r.Status {
			case erasure.RequestCompleted:
				var removed int64
				for _, t := range r.Tasks {
					removed += t.Removed
				}
				return waited{removed: removed}
			case erasure.RequestCancelled:
				return waited{reason: "the canary's erasure was cancelled"}
			case erasure.RequestFailed:
				return waited{reason: "the canary's erasure failed: " + taskState(r)}
			}
			if d.Method == erasure.MethodOffline && d.Policy.SweepMode != erasure.SweepExternal && c.Sweeper != nil && queuedUnswept(r) {
				// A sweep of the dataset already running (without this task) makes SweepNow
				// answer ECONFLICT: the next round tries again.
				if sw, err := c.Sweeper.SweepNow(ctx, d.Name, "canary"); err != nil && erasure.ErrorCode(err) != erasure.ECONFLICT && ctx.Err() == nil {
					c.Logger.Warn("the canary's sweep did not start; waiting for the next", "dataset", d.Name, "err", err)
				} else if err == nil && sw.Tasks > 0 {
					continue // read the request again at once
				}
			}
		} else if ctx.Err() == nil {
			c.Logger.Warn("cannot read the canary's request", "dataset", d.Name, "request", id, "err", err)
		}
		if !c.Now().Before(deadline) {
			state := "unknown"
			if last != nil {
				state = taskState(last)
			}
			return waited{reason: fmt.Sprintf("the canary's erasure did not end within %s (%s)", d.Canary.Timeout, state)}
		}
		select {
		case <-ctx.Done():
			return waited{reason: "interrupted: " + ctx.Err().Error()}
		case <-time.After(c.Poll):
		}
	}
}

// queuedUnswept reports whether the request's task waits, queued, for a sweep not started yet.
func queuedUnswept(r *erasure.Request) bool {
	for _, t := range r.Tasks {
		if t.State == erasure.TaskQueued && t.SweepID == "" {
			return true
		}
	}
	return false
}

// taskState describes the canary's task for a failure's reason: its state, attempts and last
// error (which never holds an identifier value).
func taskState(r *erasure.Request) string {
	var parts []string
	for _, t := range r.Tasks {
		s := fmt.Sprintf("task %s after %d attempts", t.State, t.Attempts)
		if t.LastError != "" {
			s += ": " + t.LastError
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// cancel ends a canary request that failed or did not end (it must not go on retrying).
func (c *Canaries) cancel(ctx context.Context, id, actor string) {
	cctx, stop := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer stop()
	if _, err := c.Store.CancelRequest(cctx, id, actor); err != nil && erasure.ErrorCode(err) != erasure.ECONFLICT {
		c.Logger.Warn("the canary request could not be cancelled", "request", id, "err", err)
	}
}
