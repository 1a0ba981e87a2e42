// Package apitest is an in-memory erasure.Service for testing the HTTP layer (api), the Go
// client and the CLI's client commands. It is a test double, not a pipeline: it plans one
// erase task per dataset and moves tasks only when a test tells it to (Finish, or an ack).
// It follows the Service contract's error codes so that the API's mapping is exercised.
package apitest

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"erasure"
	"erasure/audit"
)

// Service is the in-memory erasure.Service. The zero value is not usable: use New.
type Service struct {
	mu          sync.Mutex
	identifiers []string
	datasets    []erasure.DatasetInfo
	requests    []*erasure.Request // in submission order
	byID        map[string]*erasure.Request
	keys        map[string]idem
	tasks       map[int64]*erasure.Task
	taskIDs     map[string][]int64 // by request, in plan order
	events      []erasure.AuditEvent
	nextTask    int64
	hasher      *audit.Hasher

	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// ReadyErr is returned by Ready.
	ReadyErr error
	// AfterRequest, when set, is called (without the lock held) after each Request call with
	// the id and how many times that request was read so far; tests use it to move a request
	// along while a client polls it.
	AfterRequest func(id string, reads int)
	reads        map[string]int
}

type idem struct{ fingerprint, id string }

var _ erasure.Service = (*Service)(nil)

// New returns a Service whose registry declares identifiers and datasets.
func New(identifiers []string, datasets ...erasure.DatasetInfo) *Service {
	h, err := audit.NewHasher([]byte("apitest-audit-key-0123456789abcdef"))
	if err != nil {
		panic(err)
	}
	return &Service{
		identifiers: identifiers, datasets: datasets, hasher: h,
		byID: map[string]*erasure.Request{}, keys: map[string]idem{}, tasks: map[int64]*erasure.Task{},
		taskIDs: map[string][]int64{}, reads: map[string]int{},
	}
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) declared(typ string) bool {
	for _, t := range s.identifiers {
		if t == typ {
			return true
		}
	}
	return false
}

// VerifyAudit implements erasure.Service: the fake's trail is a legacy chain of events.
func (s *Service) VerifyAudit(ctx context.Context) (*erasure.AuditReport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var v audit.LegacyVerifier
	for i := range s.events {
		if err := v.Add(&s.events[i]); err != nil {
			seq, h := v.Head()
			return &erasure.AuditReport{Head: erasure.AuditHead{Events: seq, Hash: h}, Error: err.Error()}, nil
		}
	}
	seq, h := v.Head()
	return &erasure.AuditReport{OK: true, Head: erasure.AuditHead{Events: seq, Hash: h}}, nil
}

// event appends a sealed audit event; s.mu is held.
func (s *Service) event(actor, typ, requestID string, taskID int64, dataset string, data any) {
	ev := erasure.AuditEvent{Seq: int64(len(s.events)) + 1, Time: s.now().Truncate(time.Millisecond), Actor: actor, Type: typ, RequestID: requestID, TaskID: taskID, Dataset: dataset}
	if data != nil {
		ev.Data, _ = json.Marshal(data)
	}
	prev := audit.Genesis
	if len(s.events) > 0 {
		prev = s.events[len(s.events)-1].Hash
	}
	audit.LegacySeal(prev, &ev)
	s.events = append(s.events, ev)
}

// SubmitBatch implements erasure.Service: each submission as Submit answers it (the fake has
// no transactions to share).
func (s *Service) SubmitBatch(ctx context.Context, subs []erasure.Submission) ([]erasure.SubmitResult, error) {
	if len(subs) == 0 || len(subs) > erasure.MaxBatchSubmissions {
		return nil, erasure.Errorf(erasure.EINVALID, "a batch holds 1 to %d submissions", erasure.MaxBatchSubmissions)
	}
	out := make([]erasure.SubmitResult, len(subs))
	for i, sub := range subs {
		r, created, err := s.Submit(ctx, sub)
		out[i] = erasure.SubmitResult{Request: r, Created: created, Err: err}
	}
	return out, nil
}

// Submit plans one erase task per dataset. EINVALID for an undeclared identifier type,
// ECONFLICT for a reused idempotency key with another fingerprint.
func (s *Service) Submit(ctx context.Context, sub erasure.Submission) (*erasure.Request, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range sub.Subject {
		if err := id.Validate(); err != nil {
			return nil, false, err
		}
		if !s.declared(id.Type) {
			return nil, false, erasure.Errorf(erasure.EINVALID, "identifier type %s is not declared in the registry", id.Type)
		}
	}
	if sub.IdempotencyKey != "" {
		if k, ok := s.keys[sub.IdempotencyKey]; ok {
			if k.fingerprint != string(sub.Canonical()) {
				return nil, false, erasure.Errorf(erasure.ECONFLICT, "idempotency key already used for another submission")
			}
			return s.copyOf(s.byID[k.id]), false, nil
		}
	}
	now := s.now()
	r := &erasure.Request{
		ID: fmt.Sprintf("req-%04d", len(s.requests)+1), Status: erasure.RequestPending, Reason: sub.Reason,
		Subject: sub.Subject, SubjectHashes: s.hasher.Subject(sub.Subject), Deadline: sub.Deadline,
		SubmittedBy: sub.Actor, CreatedAt: now, UpdatedAt: now,
	}
	if r.Deadline.IsZero() {
		r.Deadline = now.Add(720 * time.Hour)
	}
	for _, d := range s.datasets {
		s.nextTask++
		t := &erasure.Task{ID: s.nextTask, RequestID: r.ID, Dataset: d.Name, Kind: erasure.TaskErase, Method: d.Method, State: erasure.TaskPending, Keys: d.Keys, CreatedAt: now, UpdatedAt: now, DueAt: now}
		s.tasks[t.ID] = t
		s.taskIDs[r.ID] = append(s.taskIDs[r.ID], t.ID)
	}
	s.requests = append(s.requests, r)
	s.byID[r.ID] = r
	if sub.IdempotencyKey != "" {
		s.keys[sub.IdempotencyKey] = idem{string(sub.Canonical()), r.ID}
	}
	s.event(sub.Actor, erasure.EventRequestSubmitted, r.ID, 0, "", map[string]any{"subject": r.SubjectHashes, "reason": r.Reason})
	return s.copyOf(r), true, nil
}

// copyOf returns a copy of r with its tasks and derived status; s.mu is held.
func (s *Service) copyOf(r *erasure.Request) *erasure.Request {
	c := *r
	c.Tasks = nil
	for _, id := range s.taskIDs[r.ID] {
		c.Tasks = append(c.Tasks, *s.tasks[id])
	}
	c.Status = erasure.RequestStatusOf(r.Status == erasure.RequestCancelled, c.Tasks)
	c.Overdue = !c.Status.Ended() && s.now().After(c.Deadline)
	c.Subject = nil
	return &c
}

// Request returns a request with its tasks; ENOTFOUND.
func (s *Service) Request(ctx context.Context, id string) (*erasure.Request, error) {
	s.mu.Lock()
	r, ok := s.byID[id]
	var c *erasure.Request
	if ok {
		c = s.copyOf(r)
		s.reads[id]++
	}
	n, hook := s.reads[id], s.AfterRequest
	s.mu.Unlock()
	if !ok {
		return nil, erasure.Errorf(erasure.ENOTFOUND, "request %s not found", id)
	}
	if hook != nil {
		hook(id, n)
	}
	return c, nil
}

// Requests lists requests newest first; the cursor is the position after the last one shown.
// EINVALID for a bad cursor.
func (s *Service) Requests(ctx context.Context, f erasure.RequestFilter) (erasure.RequestPage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := 0
	if f.Cursor != "" {
		n, err := strconv.Atoi(f.Cursor)
		if err != nil || n < 0 || n > len(s.requests) {
			return erasure.RequestPage{}, erasure.Errorf(erasure.EINVALID, "cursor is not valid")
		}
		start = n
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	if f.Identifier != nil {
		if !s.declared(f.Identifier.Type) {
			return erasure.RequestPage{}, erasure.Errorf(erasure.EINVALID, "identifier type %q is not declared", f.Identifier.Type)
		}
		f.SubjectHash = s.hasher.Identifier(*f.Identifier)
	}
	var page erasure.RequestPage
	for i := start; i < len(s.requests); i++ {
		c := s.copyOf(s.requests[len(s.requests)-1-i])
		if (f.Status != "" && c.Status != f.Status) || (f.Overdue && !c.Overdue) || !holds(c, f.SubjectHash) || !holdsUp(c, f.Dataset) {
			continue
		}
		if len(page.Requests) == limit {
			page.Next = strconv.Itoa(i)
			break
		}
		page.Requests = append(page.Requests, *c)
	}
	return page, nil
}

// holds reports whether r's subject has the identifier of hash (any when hash is empty).
func holds(r *erasure.Request, hash string) bool {
	if hash == "" {
		return true
	}
	for _, h := range r.SubjectHashes {
		if h == hash {
			return true
		}
	}
	return false
}

// holdsUp reports whether r has an unfinished task on dataset (any when dataset is empty).
func holdsUp(r *erasure.Request, dataset string) bool {
	if dataset == "" {
		return true
	}
	for _, t := range r.Tasks {
		if t.Dataset == dataset && !t.State.Final() {
			return true
		}
	}
	return false
}

// Cancel cancels unfinished tasks; ENOTFOUND, ECONFLICT when the request ended.
func (s *Service) Cancel(ctx context.Context, id, actor string) (*erasure.Request, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.byID[id]
	if !ok {
		return nil, erasure.Errorf(erasure.ENOTFOUND, "request %s not found", id)
	}
	if st := s.copyOf(r).Status; st.Ended() {
		return nil, erasure.Errorf(erasure.ECONFLICT, "request %s already %s", id, st)
	}
	for _, t := range s.tasks {
		if t.RequestID == id && !t.State.Final() {
			t.State = erasure.TaskCancelled
			s.event(actor, erasure.EventTaskCancelled, id, t.ID, t.Dataset, nil)
		}
	}
	r.Status = erasure.RequestCancelled
	s.event(actor, erasure.EventRequestCancelled, id, 0, "", nil)
	return s.copyOf(r), nil
}

// Retry re-opens failed tasks (with o.OverrideGuard, those that tripped their guard become
// overridden); ENOTFOUND, ECONFLICT when none failed or, forced, none tripped.
func (s *Service) Retry(ctx context.Context, id, actor string, o erasure.RetryOptions) (*erasure.Request, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.byID[id]
	if !ok {
		return nil, erasure.Errorf(erasure.ENOTFOUND, "request %s not found", id)
	}
	var failed []*erasure.Task
	tripped := 0
	for _, t := range s.tasks {
		if t.RequestID == id && t.State == erasure.TaskFailed {
			failed = append(failed, t)
			if t.Guard == erasure.GuardTripped {
				tripped++
			}
		}
	}
	if len(failed) == 0 {
		return nil, erasure.Errorf(erasure.ECONFLICT, "request %s has no failed task to retry", id)
	}
	if o.OverrideGuard && tripped == 0 {
		return nil, erasure.Errorf(erasure.ECONFLICT, "no failed task of request %s stopped at its guard: retry it without --force", id)
	}
	for _, t := range failed {
		if o.OverrideGuard && t.Guard == erasure.GuardTripped {
			t.Guard = erasure.GuardOverridden
		}
		t.State, t.Attempts, t.LastError = erasure.TaskPending, 0, ""
	}
	s.event(actor, erasure.EventRequestRetried, id, 0, "", map[string]int{"tasks": len(failed)})
	return s.copyOf(r), nil
}

// Task returns one task; ENOTFOUND.
func (s *Service) Task(ctx context.Context, id int64) (*erasure.Task, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[id]
	if !ok {
		return nil, erasure.Errorf(erasure.ENOTFOUND, "task %d not found", id)
	}
	c := *t
	return &c, nil
}

// DispatchOf returns the dispatch id this fake accepts in acknowledgements of task id.
func DispatchOf(id int64) string { return fmt.Sprintf("%032x", id) }

// Ack applies an acknowledgement: EINVALID for a bad status, ENOTFOUND for an unknown task,
// one of another dataset, or a dispatch id other than DispatchOf(task), ECONFLICT for a
// cancelled task; a done task stays done.
func (s *Service) Ack(ctx context.Context, dataset string, a erasure.Ack, actor string) (*erasure.Task, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.Status != "done" && a.Status != "failed" {
		return nil, erasure.Errorf(erasure.EINVALID, "ack status must be done or failed")
	}
	t, ok := s.tasks[a.TaskID]
	if !ok || t.Dataset != dataset || a.Dispatch != DispatchOf(a.TaskID) {
		return nil, erasure.Errorf(erasure.ENOTFOUND, "task %d of dataset %s not found", a.TaskID, dataset)
	}
	switch {
	case t.State == erasure.TaskCancelled:
		return nil, erasure.Errorf(erasure.ECONFLICT, "task %d was cancelled", a.TaskID)
	case t.State == erasure.TaskDone:
	case a.Status == "done":
		t.State, t.Removed = erasure.TaskDone, a.Removed
	default:
		t.State, t.LastError = erasure.TaskFailed, a.Error
	}
	s.event(actor, erasure.EventTaskAcked, t.RequestID, t.ID, t.Dataset, map[string]any{"status": a.Status, "removed": a.Removed})
	c := *t
	return &c, nil
}

// Datasets returns the datasets given to New.
func (s *Service) Datasets(ctx context.Context) ([]erasure.DatasetInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]erasure.DatasetInfo(nil), s.datasets...), nil
}

// Dataset returns one dataset; ENOTFOUND.
func (s *Service) Dataset(ctx context.Context, name string) (*erasure.DatasetInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.datasets {
		if d.Name == name {
			return &d, nil
		}
	}
	return nil, erasure.Errorf(erasure.ENOTFOUND, "dataset %s not found", name)
}

// Audit returns events in order, filtered as the contract says.
func (s *Service) Audit(ctx context.Context, f erasure.AuditFilter) ([]erasure.AuditEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []erasure.AuditEvent
	for _, ev := range s.events {
		if ev.Seq <= f.After || (f.RequestID != "" && ev.RequestID != f.RequestID) {
			continue
		}
		out = append(out, ev)
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	return out, nil
}

// Ready returns ReadyErr.
func (s *Service) Ready(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ReadyErr
}

// SetReady sets the error Ready returns.
func (s *Service) SetReady(err error) {
	s.mu.Lock()
	s.ReadyErr = err
	s.mu.Unlock()
}

// Finish moves every unfinished task of request id to state (done or failed), with lastError
// for failed ones, writing an audit event per task, as the pipeline would.
func (s *Service) Finish(id string, state erasure.TaskState, lastError string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for _, tid := range s.taskIDs[id] {
		t := s.tasks[tid]
		if t.State.Final() {
			continue
		}
		t.State, t.Attempts, t.UpdatedAt = state, t.Attempts+1, now
		if state == erasure.TaskFailed {
			t.LastError = lastError
		} else {
			t.Removed, t.VerifiedAt = 1, &now
		}
		s.event("pipeline", erasure.EventTaskAttempt, id, t.ID, t.Dataset, map[string]any{"status": state})
	}
}

// TripGuard fails the unfinished tasks of request id at their guard, as a connector that found
// far more than one subject's data would.
func (s *Service) TripGuard(id string) {
	s.Finish(id, erasure.TaskFailed, "guard: erasing this subject would remove 5000 rows, more than max_removed 100")
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, tid := range s.taskIDs[id] {
		if t := s.tasks[tid]; t.State == erasure.TaskFailed {
			t.Guard = erasure.GuardTripped
		}
	}
}

// TamperAudit changes the stored event seq with change, without resealing it, as an attacker
// editing the store would.
func (s *Service) TamperAudit(seq int64, change func(*erasure.AuditEvent)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	change(&s.events[seq-1])
}
