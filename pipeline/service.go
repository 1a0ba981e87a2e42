package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"erasure"
	"erasure/audit"
)

// Service implements erasure.Service over a store and the registered datasets.
type Service struct {
	Store      erasure.Store
	Registered []*erasure.Dataset
	// Identifiers are the declared identifier types.
	Identifiers []string
	// IdentifierTypes say how the values of declared types are put in canonical form at intake
	// (trimmed, lower-cased...); a declared type absent from it is taken as submitted.
	IdentifierTypes []erasure.IdentifierType
	// DefaultDeadline applies when a submission sets none.
	DefaultDeadline time.Duration
	// DefaultGrace is the grace window of a submission that sets none (defaults.grace): its
	// erase tasks wait that long, and hide tasks run meanwhile.
	DefaultGrace time.Duration
	// MaxDeadline bounds how far ahead a submission's deadline may be (default one year).
	MaxDeadline time.Duration
	// Hasher keys the fingerprints and idempotency keys of submissions (required).
	Hasher erasure.Hasher
	// Chain verifies the audit trail (required by VerifyAudit).
	Chain erasure.AuditChain
	// Signer signs checkpoints of the audit chain (required by Checkpoint; without it
	// checkpoints are verified under their own key only).
	Signer *audit.Signer
	// Engine, when set, is woken after submissions and acknowledgements.
	Engine *Engine
	// Ended, when set, is called after a cancellation or an acknowledgement was applied:
	// commands that no longer wait can be removed from their transport (CommandPending).
	Ended func()
	// Deployment is the store's deployment id (Store.Deployment), read from the store on first
	// use when empty.
	Deployment string
	Now        func() time.Time
	Logger     *slog.Logger
	Metrics    *Metrics
	// Health, when set, adds the executor's view of recent attempts to the datasets' health.
	Health *Health

	mu       sync.Mutex
	rand     *rand.Rand
	readyAt  time.Time
	readyErr error
	probe    chan struct{} // closed when the readiness probe in flight ends
}

var _ erasure.Service = (*Service)(nil)

// DefaultMaxDeadline bounds a submission's deadline when Service.MaxDeadline is zero.
const DefaultMaxDeadline = 366 * 24 * time.Hour

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) wake() {
	if s.Engine != nil {
		s.Engine.Wake()
	}
}

func (s *Service) dataset(name string) *erasure.Dataset {
	for _, d := range s.Registered {
		if d.Name == name {
			return d
		}
	}
	return nil
}

// Submit implements erasure.Service. The submission's fingerprint (what it asks for) and its
// idempotency key (scoped to the submitter, so that two clients choosing the same key never
// see each other's requests) are stored only as keyed hashes.
func (s *Service) Submit(ctx context.Context, sub erasure.Submission) (*erasure.Request, bool, error) {
	if len(s.Registered) == 0 {
		return nil, false, erasure.Errorf(erasure.ECONFLICT, "no dataset is registered")
	}
	nr, err := s.prepare(sub, s.now())
	if err != nil {
		return nil, false, err
	}
	r, created, err := s.Store.CreateRequest(ctx, nr)
	if err != nil {
		return nil, false, err
	}
	if err := stored(sub, r); err != nil {
		return nil, false, err
	}
	if created {
		s.submitted(r, sub.Actor)
		s.wake()
	}
	return r, created, nil
}

// SubmitBatch implements erasure.Service: every submission is checked as Submit checks it,
// and the valid ones are stored with one Store.CreateRequests (one transaction).
func (s *Service) SubmitBatch(ctx context.Context, subs []erasure.Submission) ([]erasure.SubmitResult, error) {
	switch {
	case len(subs) == 0:
		return nil, erasure.Errorf(erasure.EINVALID, "the batch is empty: give at least one submission")
	case len(subs) > erasure.MaxBatchSubmissions:
		return nil, erasure.Errorf(erasure.EINVALID, "the batch has %d submissions: at most %d", len(subs), erasure.MaxBatchSubmissions)
	case len(s.Registered) == 0:
		return nil, erasure.Errorf(erasure.ECONFLICT, "no dataset is registered")
	}
	out := make([]erasure.SubmitResult, len(subs))
	nrs := make([]erasure.NewRequest, 0, len(subs))
	at := make([]int, 0, len(subs))
	now := s.now()
	for i, sub := range subs {
		nr, err := s.prepare(sub, now)
		if err != nil {
			out[i].Err = err
			continue
		}
		nrs = append(nrs, nr)
		at = append(at, i)
	}
	if len(nrs) == 0 {
		return out, nil
	}
	res, err := s.Store.CreateRequests(ctx, nrs)
	if err != nil {
		return nil, err
	}
	created := 0
	for j, r := range res {
		i := at[j]
		out[i] = erasure.SubmitResult{Request: r.Request, Created: r.Created, Err: r.Err}
		if r.Err == nil {
			if err := stored(subs[i], r.Request); err != nil {
				out[i] = erasure.SubmitResult{Err: err}
				continue
			}
		}
		if r.Created {
			created++
			if s.Metrics != nil {
				s.Metrics.submitted.Inc()
			}
		}
	}
	if created > 0 {
		if s.Logger != nil {
			s.Logger.Info("batch submitted", "submissions", len(subs), "created", created, "actor", subs[0].Actor)
		}
		s.wake()
	}
	return out, nil
}

// prepare validates a submission, puts its identifiers in canonical form, bounds its deadline
// and plans it: the request to store. Errors are EINVALID and never hold an identifier value.
func (s *Service) prepare(sub erasure.Submission, now time.Time) (erasure.NewRequest, error) {
	if err := sub.Validate(); err != nil {
		return erasure.NewRequest{}, err
	}
	canonical := make([]erasure.Identifier, len(sub.Subject))
	for i, id := range sub.Subject {
		if !contains(s.Identifiers, id.Type) {
			return erasure.NewRequest{}, erasure.Errorf(erasure.EINVALID, "identifier type %q is not declared in the registry (declared: %v)", id.Type, s.Identifiers)
		}
		canonical[i] = id
		for _, t := range s.IdentifierTypes {
			if t.Name == id.Type {
				v, err := t.Canonical(id.Value)
				if err != nil {
					return erasure.NewRequest{}, err
				}
				canonical[i].Value = v
			}
		}
	}
	// Normalised once, here: everything downstream (hashes, fingerprints, connectors) sees the
	// canonical values only.
	sub.Subject = erasure.NewSubject(canonical...)
	deadline := sub.Deadline
	maxDeadline := s.MaxDeadline
	if maxDeadline <= 0 {
		maxDeadline = DefaultMaxDeadline
	}
	switch {
	case deadline.IsZero():
		deadline = now.Add(s.DefaultDeadline)
	case !deadline.After(now):
		return erasure.NewRequest{}, erasure.Errorf(erasure.EINVALID, "deadline %s is in the past", deadline.Format(time.RFC3339))
	case deadline.After(now.Add(maxDeadline)):
		return erasure.NewRequest{}, erasure.Errorf(erasure.EINVALID, "deadline %s is more than %s ahead", deadline.Format(time.RFC3339), maxDeadline)
	}
	id := sub.ID
	if id == "" {
		id = NewRequestID(now)
	} else if !ValidRequestID(id) {
		return erasure.NewRequest{}, erasure.Errorf(erasure.EINVALID, "request id %q does not have the shape of a request id", truncateID(id))
	}
	grace := s.DefaultGrace
	if sub.Grace != nil {
		grace = *sub.Grace
	}
	var notBefore time.Time
	tasks := Plan(s.Registered)
	if grace > 0 {
		notBefore = now.Add(grace).UTC()
		if !notBefore.Before(deadline) {
			return erasure.NewRequest{}, erasure.Errorf(erasure.EINVALID, "the grace window (%s) must end before the deadline %s", grace, deadline.Format(time.RFC3339))
		}
		tasks = append(tasks, HideTasks(s.Registered)...)
	}
	key := ""
	if sub.IdempotencyKey != "" {
		key = s.Hasher.Sum([]byte("idempotency/1\x00" + sub.Actor + "\x00" + sub.IdempotencyKey))
	}
	return erasure.NewRequest{
		ID: id, Subject: erasure.NewSubject(sub.Subject...), Reason: sub.Reason, Deadline: deadline.UTC(),
		SubmittedBy: sub.Actor, IdempotencyKey: key, Fingerprint: s.Hasher.Sum(sub.Canonical()), Tasks: tasks,
		NotBefore: notBefore, NoSuppress: sub.NoSuppress,
	}, nil
}

// stored checks what the store returned for a submission: a submission that chose its own id
// must not be answered with another request holding its idempotency key.
func stored(sub erasure.Submission, r *erasure.Request) error {
	if r != nil && sub.ID != "" && r.ID != sub.ID {
		return erasure.Errorf(erasure.ECONFLICT, "the idempotency key already names request %s", r.ID)
	}
	if r != nil {
		r.SetFound()
	}
	return nil
}

// submitted counts and logs a request created.
func (s *Service) submitted(r *erasure.Request, actor string) {
	if s.Metrics != nil {
		s.Metrics.submitted.Inc()
	}
	if s.Logger != nil {
		s.Logger.Info("request submitted", "request", r.ID, "tasks", len(r.Tasks), "actor", actor)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Request implements erasure.Service.
func (s *Service) Request(ctx context.Context, id string) (*erasure.Request, error) {
	if !ValidRequestID(id) {
		return nil, erasure.Errorf(erasure.ENOTFOUND, "request %q not found", truncateID(id))
	}
	return found(s.Store.Request(ctx, id))
}

// found sets the Found of a request read from the store.
func found(r *erasure.Request, err error) (*erasure.Request, error) {
	if r != nil {
		r.SetFound()
	}
	return r, err
}

func truncateID(id string) string {
	if len(id) > 40 {
		return id[:40] + "…"
	}
	return id
}

// Requests implements erasure.Service.
func (s *Service) Requests(ctx context.Context, f erasure.RequestFilter) (erasure.RequestPage, error) {
	if f.Status != "" && !f.Status.Valid() {
		return erasure.RequestPage{}, erasure.Errorf(erasure.EINVALID, "unknown status %q", truncateID(string(f.Status)))
	}
	if f.Cursor != "" && !ValidRequestID(f.Cursor) {
		return erasure.RequestPage{}, erasure.Errorf(erasure.EINVALID, "bad cursor")
	}
	if f.Limit < 0 || f.Limit > 500 {
		return erasure.RequestPage{}, erasure.Errorf(erasure.EINVALID, "limit must be between 1 and 500")
	}
	if f.Dataset != "" && s.dataset(f.Dataset) == nil {
		return erasure.RequestPage{}, erasure.Errorf(erasure.EINVALID, "dataset %q is not registered", truncateID(f.Dataset))
	}
	if f.Identifier != nil {
		h, err := s.SubjectHash(*f.Identifier)
		if err != nil {
			return erasure.RequestPage{}, err
		}
		f.Identifier, f.SubjectHash = nil, h
	}
	page, err := s.Store.Requests(ctx, f)
	for i := range page.Requests {
		page.Requests[i].SetFound()
	}
	return page, err
}

// SubjectHash returns the keyed hash the store keeps for id: of its value in canonical form, as
// a submission's would be. EINVALID for a malformed identifier or an undeclared type; the
// message never holds the value.
func (s *Service) SubjectHash(id erasure.Identifier) (string, error) {
	if err := id.Validate(); err != nil {
		return "", err
	}
	if !contains(s.Identifiers, id.Type) {
		return "", erasure.Errorf(erasure.EINVALID, "identifier type %q is not declared in the registry (declared: %v)", id.Type, s.Identifiers)
	}
	for _, t := range s.IdentifierTypes {
		if t.Name == id.Type {
			v, err := t.Canonical(id.Value)
			if err != nil {
				return "", err
			}
			id.Value = v
		}
	}
	return s.Hasher.Identifier(id), nil
}

// Cancel implements erasure.Service.
func (s *Service) Cancel(ctx context.Context, id, actor string) (*erasure.Request, error) {
	if !ValidRequestID(id) {
		return nil, erasure.Errorf(erasure.ENOTFOUND, "request %q not found", truncateID(id))
	}
	r, err := found(s.Store.CancelRequest(ctx, id, actor))
	if err == nil && s.Ended != nil {
		s.Ended()
	}
	return r, err
}

// Withdraw implements erasure.Withdrawer: the submitter's own cancel during the grace window.
// EINVALID when the store keeps no grace windows.
func (s *Service) Withdraw(ctx context.Context, id, actor string) (*erasure.Request, error) {
	if !ValidRequestID(id) {
		return nil, erasure.Errorf(erasure.ENOTFOUND, "request %q not found", truncateID(id))
	}
	gs, ok := s.Store.(erasure.GraceStore)
	if !ok {
		return nil, erasure.Errorf(erasure.EINVALID, "this store keeps no grace windows")
	}
	return gs.WithdrawRequest(ctx, id, actor)
}

var _ erasure.Withdrawer = (*Service)(nil)

// Retry implements erasure.Service. A forced retry (o.OverrideGuard) is logged as a warning:
// it lets an erasure remove more than its dataset's guard allows.
func (s *Service) Retry(ctx context.Context, id, actor string, o erasure.RetryOptions) (*erasure.Request, error) {
	if !ValidRequestID(id) {
		return nil, erasure.Errorf(erasure.ENOTFOUND, "request %q not found", truncateID(id))
	}
	r, err := found(s.Store.RetryRequest(ctx, id, actor, o))
	if err == nil {
		if o.OverrideGuard && s.Logger != nil {
			s.Logger.Warn("retry forced past the blast-radius guard", "request", id, "actor", actor)
		}
		s.wake()
	}
	return r, err
}

// Task implements erasure.Service.
func (s *Service) Task(ctx context.Context, id int64) (*erasure.Task, error) {
	return s.Store.Task(ctx, id)
}

// Ack implements erasure.Service. The acknowledgement must carry the dispatch id of a command
// this deployment published for the task (erasure.DispatchAttempt): one that names another
// deployment's command, a dispatch not made, or nothing at all is not found, with the same
// answer as an unknown task. The decision is made here, on the task as it is read, and applied
// by the store only if the task has not changed meanwhile (else it is made again): a failed
// acknowledgement follows the dataset's retry policy, the command being published again after
// the backoff, or the task failing after its last attempt.
func (s *Service) Ack(ctx context.Context, dataset string, a erasure.Ack, actor string) (*erasure.Task, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	d := s.dataset(dataset)
	if d == nil {
		return nil, erasure.Errorf(erasure.ENOTFOUND, "dataset %q not found", truncateID(dataset))
	}
	deployment, err := s.deployment(ctx)
	if err != nil {
		return nil, err
	}
	notFound := erasure.Errorf(erasure.ENOTFOUND, "task %d of dataset %s not found", a.TaskID, dataset)
	for try := 0; ; try++ {
		t, err := s.Store.Task(ctx, a.TaskID)
		if erasure.ErrorCode(err) == erasure.ENOTFOUND || (err == nil && t.Dataset != dataset) {
			return nil, notFound
		} else if err != nil {
			return nil, err
		}
		dispatched, ok := erasure.DispatchAttempt(s.Hasher, deployment, t, a.Dispatch)
		if !ok {
			return nil, notFound
		}
		dec, err := erasure.DecideAck(t, a, dispatched, d.Policy.MaxAttempts, s.now().Add(s.backoff(d.Policy, t.Attempts)))
		if err != nil {
			return nil, err
		}
		got, err := s.Store.AckTask(ctx, dataset, dec, actor)
		if errors.Is(err, erasure.ErrStale) && try < 5 {
			continue
		}
		if err == nil {
			s.wake()
			if s.Ended != nil {
				s.Ended()
			}
		}
		return got, err
	}
}

// AckByDispatch applies an acknowledgement whose transport does not name its dataset (Kafka's
// single ack topic): its dispatch id, which only the readers of the dataset's commands see,
// binds it to its task and so to the task's dataset. actor is suffixed with ":" and the
// dataset. Errors as Ack's; ENOTFOUND for an unknown task.
func (s *Service) AckByDispatch(ctx context.Context, a erasure.Ack, actor string) (*erasure.Task, error) {
	t, err := s.Store.Task(ctx, a.TaskID)
	if erasure.ErrorCode(err) == erasure.ENOTFOUND {
		return nil, erasure.Errorf(erasure.ENOTFOUND, "task %d not found", a.TaskID)
	} else if err != nil {
		return nil, err
	}
	return s.Ack(ctx, t.Dataset, a, actor+":"+t.Dataset)
}

// deployment returns the deployment id, reading it from the store the first time.
func (s *Service) deployment(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Deployment == "" {
		id, err := s.Store.Deployment(ctx)
		if err != nil {
			return "", err
		}
		s.Deployment = id
	}
	return s.Deployment, nil
}

func (s *Service) backoff(p erasure.Policy, attempt int) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rand == nil {
		s.rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return Backoff(p.Backoff, attempt, 0, s.rand)
}

// Datasets implements erasure.Service.
func (s *Service) Datasets(ctx context.Context) ([]erasure.DatasetInfo, error) {
	stats, err := s.Store.DatasetStats(ctx)
	if err != nil {
		return nil, err
	}
	by := map[string]erasure.DatasetStats{}
	for _, st := range stats {
		by[st.Dataset] = st
	}
	canaries := map[string]erasure.CanaryResult{}
	if cs, ok := s.Store.(erasure.CanaryStore); ok {
		last, err := cs.LastCanaries(ctx)
		if err != nil {
			return nil, err
		}
		for _, r := range last {
			canaries[r.Dataset] = r
		}
	}
	out := make([]erasure.DatasetInfo, 0, len(s.Registered))
	for _, d := range s.Registered {
		h, ok := by[d.Name]
		if !ok {
			h = erasure.DatasetStats{Dataset: d.Name, ByState: map[string]int{}}
		}
		s.Health.Apply(&h)
		info := erasure.DatasetInfo{Name: d.Name, Owner: d.Owner, Connector: d.Connector, Method: d.Method, Keys: d.Keys, Provides: d.Provides, After: d.After, Policy: d.Policy, Health: h,
			Retention: d.Retention, Escrow: d.Escrow}
		if d.Canary != nil {
			last, ok := canaries[d.Name]
			if !ok {
				last = erasure.CanaryResult{Dataset: d.Name}
			}
			info.Canary = &last
		}
		if ss, ok := s.Store.(erasure.SweepStore); ok && d.Method == erasure.MethodOffline {
			sweeps, err := ss.Sweeps(ctx, d.Name, 1)
			if err != nil {
				return nil, err
			}
			if len(sweeps) > 0 {
				info.LastSweep = &sweeps[0]
			}
		}
		out = append(out, info)
	}
	return out, nil
}

// Dataset implements erasure.Service.
func (s *Service) Dataset(ctx context.Context, name string) (*erasure.DatasetInfo, error) {
	all, err := s.Datasets(ctx)
	if err != nil {
		return nil, err
	}
	for i := range all {
		if all[i].Name == name {
			return &all[i], nil
		}
	}
	return nil, erasure.Errorf(erasure.ENOTFOUND, "dataset %q not found", truncateID(name))
}

// Audit implements erasure.Service.
func (s *Service) Audit(ctx context.Context, f erasure.AuditFilter) ([]erasure.AuditEvent, error) {
	if f.RequestID != "" && !ValidRequestID(f.RequestID) {
		return nil, erasure.Errorf(erasure.EINVALID, "bad request id")
	}
	if f.Limit <= 0 || f.Limit > 10000 {
		f.Limit = 1000
	}
	return s.Store.Audit(ctx, f)
}

// Ready implements erasure.Service: the store must take a write (erasure.WriteProbe), since a
// server whose store answers reads but cannot commit takes no request. The answer is reused
// for a second.
func (s *Service) Ready(ctx context.Context) error { return s.ready(ctx) }

// WatchOverdue, every interval until ctx ends, marks the requests that passed their deadline
// (a request.overdue event each, once: see erasure.OverdueStore) and logs and exports how
// many open requests are overdue: overdue work is loud.
func (s *Service) WatchOverdue(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := s.markOverdue(ctx); err != nil && ctx.Err() == nil && s.Logger != nil {
			s.Logger.Error("overdue requests not marked; trying again", "err", err.Error())
		}
		n, err := s.Store.OverdueRequests(ctx)
		if err == nil {
			if s.Metrics != nil {
				s.Metrics.overdue.Set(float64(n))
			}
			// A legal hold never silences the alarm: held requests are counted, and named as
			// the reason.
			held := 0
			if hs, ok := s.Store.(erasure.HoldStore); ok && n > 0 {
				held, _ = hs.OverdueHeld(ctx)
			}
			if s.Metrics != nil {
				s.Metrics.overdueHeld.Set(float64(held))
			}
			if n > 0 && s.Logger != nil {
				s.Logger.Warn("requests are past their deadline", "overdue", n, "held_by_legal_holds", held)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
