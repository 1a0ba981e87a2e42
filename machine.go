package erasure

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// This file is the task and request state machine (the diagram is on TaskState). Every rule of
// it is here, as pure functions over domain values: a store loads a RequestState inside its
// transaction, applies events to a Machine, and writes the Machine's Changes with their audit
// events in the same transaction. Stores decide nothing themselves; the pipeline decides the
// outcome of an attempt (TaskResult) and of an acknowledgement (AckDecision) before it calls
// the store.

// LeaseStates are the states a task may be leased from when its DueAt has passed: pending
// (due to run), running (its lease expired: the holder died) and dispatched (its
// acknowledgement is overdue: the command is published again). A store's lease query selects
// exactly these.
var LeaseStates = []TaskState{TaskPending, TaskRunning, TaskDispatched}

// Leasable reports whether a task in state s may be leased once due (see LeaseStates).
func (s TaskState) Leasable() bool {
	return s == TaskPending || s == TaskRunning || s == TaskDispatched
}

// Sweepable reports whether t joins the next sweep of its dataset: an erase task queued for a
// sweep and in none yet. A store's StartSweep selects exactly these.
func (t *Task) Sweepable() bool {
	return t.Kind == TaskErase && t.State == TaskQueued && t.SweepID == ""
}

// Hasher computes the keyed hashes under which identifiers and other submitted values are kept
// once they may no longer be kept in clear. audit.Hasher implements it.
type Hasher interface {
	// Identifier returns "type:hex", the keyed hash of one identifier.
	Identifier(id Identifier) string
	// Sum returns the keyed hash (hex) of b, for fingerprints and idempotency keys.
	Sum(b []byte) string
}

// RequestState is one request as the state machine needs it: its status, its tasks and the
// keyed hashes of the identifiers it knows. Stores load it inside the transaction that writes
// the Machine's changes.
type RequestState struct {
	ID        string
	Status    RequestStatus
	Cancelled bool
	// Tasks are every task of the request, in id order.
	Tasks []Task
	// Identifiers are the keyed hashes of the identifiers the request knows ("type:hex").
	Identifiers []string
}

// NewIdentifier is an identifier found by a lookup and not known to its request before.
type NewIdentifier struct {
	Identifier
	Hash    string
	FoundBy string
}

// Changes is what a Machine decided: the tasks to write (their new values, each guarded by the
// state and attempt it was loaded with), the request's new status, the identifiers to add, and
// the audit events, in order. A store writes all of it in one transaction.
type Changes struct {
	// Tasks holds the new value of every task that changed; Guard holds, at the same index, the
	// state and attempts it had when loaded (a store may refuse to write over anything else).
	Tasks []Task
	Guard []TaskGuard
	// Status is the request's new status; "" when unchanged.
	Status RequestStatus
	// Cancelled is set when the request was cancelled.
	Cancelled bool
	// FinishedAt is set when the request ended: its identifiers must be kept as keyed hashes
	// only from now on (the clear values are dropped in the same transaction).
	FinishedAt *time.Time
	// Identifiers are identifiers new to the request.
	Identifiers []NewIdentifier
	Events      []AuditEvent
}

// TaskGuard is the state and attempts of a task when it was loaded.
type TaskGuard struct {
	State    TaskState
	Attempts int
}

// Empty reports whether nothing changed.
func (c *Changes) Empty() bool {
	return len(c.Tasks) == 0 && c.Status == "" && len(c.Identifiers) == 0 && len(c.Events) == 0
}

// Machine applies events to one request. Create one per request and transaction with
// NewMachine; it changes its RequestState in memory and records the Changes.
type Machine struct {
	r       *RequestState
	hasher  Hasher
	now     time.Time
	changed map[int]bool // indexes into r.Tasks
	order   []int
	guard   map[int]TaskGuard
	known   map[string]bool
	out     Changes
}

// NewMachine returns a Machine over r at time now. hasher computes the keyed hashes of found
// identifiers (to tell new ones from known ones).
func NewMachine(r *RequestState, hasher Hasher, now time.Time) *Machine {
	m := &Machine{r: r, hasher: hasher, now: now.UTC().Truncate(time.Millisecond), changed: map[int]bool{}, guard: map[int]TaskGuard{}, known: map[string]bool{}}
	for _, h := range r.Identifiers {
		m.known[h] = true
	}
	return m
}

// Request returns the request's state as changed so far.
func (m *Machine) Request() *RequestState { return m.r }

// Changes returns what was decided. The Machine must not be used afterwards.
func (m *Machine) Changes() Changes {
	for _, i := range m.order {
		m.out.Tasks = append(m.out.Tasks, m.r.Tasks[i])
		m.out.Guard = append(m.out.Guard, m.guard[i])
	}
	return m.out
}

func (m *Machine) task(id int64) (int, *Task) {
	for i := range m.r.Tasks {
		if m.r.Tasks[i].ID == id {
			return i, &m.r.Tasks[i]
		}
	}
	return -1, nil
}

// touch records that task i is about to change (keeping the guard of its loaded value).
func (m *Machine) touch(i int) *Task {
	if !m.changed[i] {
		m.changed[i] = true
		m.order = append(m.order, i)
		t := m.r.Tasks[i]
		m.guard[i] = TaskGuard{State: t.State, Attempts: t.Attempts}
	}
	t := &m.r.Tasks[i]
	t.UpdatedAt = m.now
	return t
}

func (m *Machine) event(actor, typ string, taskID int64, dataset string, data any) {
	m.out.Events = append(m.out.Events, AuditEvent{Time: m.now, Actor: actor, Type: typ, RequestID: m.r.ID, TaskID: taskID, Dataset: dataset, Data: EventData(data)})
}

// EventData encodes an audit event's data. Only the domain's own plain values are encoded.
func EventData(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// AttemptData is the data of a task.attempt event: one attempt's outcome.
type AttemptData struct {
	Attempt  int        `json:"attempt"`
	Outcome  TaskState  `json:"outcome"`
	Removed  int64      `json:"removed,omitempty"`
	Verified bool       `json:"verified,omitempty"`
	Error    string     `json:"error,omitempty"`
	Note     string     `json:"note,omitempty"`
	Sweep    string     `json:"sweep,omitempty"`
	Started  time.Time  `json:"started"`
	Finished time.Time  `json:"finished"`
	DueAt    *time.Time `json:"due_at,omitempty"`
	Found    []string   `json:"found,omitempty"`
}

// PlanTasks returns the tasks of a new request from its plan, in their first states: lookups
// pending, erase tasks blocked unless runnable from the start (no lookup in the plan and no
// `after:`). Their IDs are their indexes in specs until a store assigns real ones.
func PlanTasks(requestID string, specs []TaskSpec, now time.Time) []Task {
	now = now.UTC().Truncate(time.Millisecond)
	tasks := make([]Task, len(specs))
	for i, ts := range specs {
		state := TaskBlocked
		if ts.Kind == TaskLookup {
			state = TaskPending
		}
		tasks[i] = Task{ID: int64(i), RequestID: requestID, Dataset: ts.Dataset, Kind: ts.Kind, Method: ts.Method, State: state,
			Keys: ts.Keys, After: ts.After, DueAt: now, CreatedAt: now, UpdatedAt: now}
	}
	for _, i := range Runnable(tasks) {
		tasks[i].State = TaskPending
	}
	return tasks
}

// SubmittedEvent is the request.submitted event of a new request: reason, deadline, the keyed
// hashes of its subject and its plan.
func SubmittedEvent(nr NewRequest, hashes []string, tasks []Task, now time.Time) AuditEvent {
	type planned struct {
		Dataset string   `json:"dataset"`
		Kind    TaskKind `json:"kind"`
		Method  Method   `json:"method"`
	}
	plan := make([]planned, len(tasks))
	for i, t := range tasks {
		plan[i] = planned{t.Dataset, t.Kind, t.Method}
	}
	return AuditEvent{Time: now.UTC().Truncate(time.Millisecond), Actor: nr.SubmittedBy, Type: EventRequestSubmitted, RequestID: nr.ID,
		Data: EventData(map[string]any{"reason": nr.Reason, "deadline": nr.Deadline.UTC(), "subject": hashes, "tasks": plan})}
}

// Finish applies the result of one leased attempt. It returns false, changing nothing, when the
// lease was lost: the task is no longer running under r.Owner with attempt r.Attempt (another
// worker took it over after the lease expired, or the request was cancelled). The result of an
// attempt during which an acknowledgement completed the task (the owner answered before the
// dispatch was written) is accepted and changes nothing but the lease: a dispatched result
// records its task.attempt event, so that each dispatch is audited once. Otherwise the
// task takes r.State; a lookup's new identifiers are added and re-open the finished lookups
// that take their types; a lookup that ended with fewer inputs than the request now knows of
// its key types runs again. Call Settle afterwards.
func (m *Machine) Finish(r TaskResult) bool {
	i, t := m.task(r.TaskID)
	if t != nil && t.State == TaskDone && r.Owner != "" && t.LeaseOwner == r.Owner && t.Attempts == r.Attempt {
		// An acknowledgement completed the task while this attempt ran (Ack kept the lease
		// owner to recognise it). The task stays done. A dispatch is recorded, so that every
		// published command is audited however early its acknowledgement came; any other
		// outcome of the attempt is moot.
		t = m.touch(i)
		t.LeaseOwner = ""
		if r.State == TaskDispatched {
			m.event(r.Owner, EventTaskAttempt, t.ID, t.Dataset, AttemptData{Attempt: r.Attempt, Outcome: TaskDispatched, Error: r.Error,
				Note: "acknowledged before the dispatch was recorded", Started: r.StartedAt.UTC(), Finished: r.FinishedAt.UTC()})
		}
		return true
	}
	if t == nil || t.State != TaskRunning || t.LeaseOwner != r.Owner || t.Attempts != r.Attempt {
		return false
	}
	t = m.touch(i)
	due := r.DueAt
	if due.IsZero() {
		due = m.now
	}
	t.State, t.DueAt, t.LeaseOwner = r.State, due.UTC().Truncate(time.Millisecond), ""
	t.Removed += r.Removed
	t.LastError, t.Note = r.Error, r.Note
	if r.Verified {
		v := r.FinishedAt.UTC().Truncate(time.Millisecond)
		t.VerifiedAt = &v
	}
	if r.State.Final() || r.State == TaskFailed {
		f := r.FinishedAt.UTC().Truncate(time.Millisecond)
		t.FinishedAt = &f
	}
	d := AttemptData{Attempt: r.Attempt, Outcome: r.State, Removed: r.Removed, Verified: r.Verified, Error: r.Error, Note: r.Note,
		Started: r.StartedAt.UTC(), Finished: r.FinishedAt.UTC()}
	if r.State == TaskPending || r.State == TaskDispatched {
		d.DueAt = &t.DueAt
	}
	if len(r.Found) > 0 {
		d.Found = m.addIdentifiers(r.Found, t.Dataset, t.ID)
	}
	m.event(r.Owner, EventTaskAttempt, t.ID, t.Dataset, d)
	if t.Kind == TaskLookup && t.State.Succeeded() && m.knownOf(t.Keys) > r.Inputs {
		// Another lookup found identifiers of this one's key types while it ran.
		m.reopen(i)
	}
	return true
}

// addIdentifiers adds the identifiers new to the request and re-opens the finished lookups
// (other than the finder) that take their types. It returns the new identifiers' hashes.
func (m *Machine) addIdentifiers(found []Identifier, foundBy string, finder int64) []string {
	var added []string
	types := map[string]bool{}
	for _, id := range found {
		h := m.hasher.Identifier(id)
		if m.known[h] {
			continue
		}
		m.known[h] = true
		m.r.Identifiers = append(m.r.Identifiers, h)
		m.out.Identifiers = append(m.out.Identifiers, NewIdentifier{Identifier: id, Hash: h, FoundBy: foundBy})
		added = append(added, h)
		types[id.Type] = true
	}
	for i := range m.r.Tasks {
		t := &m.r.Tasks[i]
		if t.Kind != TaskLookup || t.ID == finder || !t.State.Succeeded() {
			continue
		}
		for _, k := range t.Keys {
			if types[k] {
				m.reopen(i)
				break
			}
		}
	}
	return added
}

// knownOf counts the request's identifiers of the given types.
func (m *Machine) knownOf(types []string) int {
	n := 0
	for _, h := range m.r.Identifiers {
		typ, _, _ := strings.Cut(h, ":")
		for _, k := range types {
			if typ == k {
				n++
				break
			}
		}
	}
	return n
}

// reopen makes a finished lookup pending again, with fresh attempts.
func (m *Machine) reopen(i int) {
	t := m.touch(i)
	t.State, t.Attempts, t.DueAt, t.FinishedAt = TaskPending, 0, m.now, nil
}

// AckDecision is the pipeline's decision on an async acknowledgement, made before the store
// is called (see DecideAck).
type AckDecision struct {
	Ack Ack
	// Dispatched is the attempt whose command the acknowledgement answers, found by the
	// pipeline from the ack's dispatch id (DispatchAttempt).
	Dispatched int
	// Attempt is the task's attempt count the decision was made for. A "failed" ack applies
	// only when the task is still dispatched with this attempt count; otherwise the store
	// returns ErrStale and the pipeline decides again.
	Attempt int
	// Next and DueAt are what a "failed" ack leads to: pending until DueAt (the command is
	// published again then), or failed when the attempts are used up.
	Next  TaskState
	DueAt time.Time
}

// ErrStale is returned when a decision was made on a task that changed before it was applied;
// the caller reads the task again and decides again.
var ErrStale = &Error{Code: ECONFLICT, Message: "the task changed while the decision was made; decide again"}

// DecideAck decides what an acknowledgement of the command of attempt dispatched (found from
// its dispatch id, see DispatchAttempt) does to task t: a "done" ack completes it; a "failed"
// ack of the latest dispatch retries it at retryAt, or fails it once maxAttempts are used up.
// EINVALID for an unknown status or a negative count; ENOTFOUND when dispatched is not an
// attempt of t (1 to t.Attempts).
func DecideAck(t *Task, a Ack, dispatched, maxAttempts int, retryAt time.Time) (AckDecision, error) {
	if err := a.Validate(); err != nil {
		return AckDecision{}, err
	}
	if dispatched < 1 || dispatched > t.Attempts {
		return AckDecision{}, Errorf(ENOTFOUND, "task %d has no dispatch of attempt %d", t.ID, dispatched)
	}
	d := AckDecision{Ack: a, Dispatched: dispatched, Attempt: t.Attempts, Next: TaskPending, DueAt: retryAt}
	if t.Attempts >= maxAttempts {
		d.Next = TaskFailed
	}
	return d, nil
}

// ErrDispatchUnrecorded is returned for a "failed" acknowledgement of the attempt that is
// still running: the owner answered before the dispatch was written. It is a passing
// condition: the same acknowledgement applies once the dispatch is recorded.
var ErrDispatchUnrecorded = &Error{Code: EUNAVAILABLE, Message: "the acknowledged dispatch is not recorded yet; deliver the acknowledgement again"}

// Ack applies an acknowledgement decision for a task of dataset. ENOTFOUND for an unknown task
// or one of another dataset (the same answer, so that an acknowledger learns nothing of other
// datasets' tasks); ECONFLICT for a task that is not async or was cancelled; ErrStale when the
// decision was made on another attempt count (a "failed" ack), or names an attempt the task no
// longer has (an operator retry started its attempts again). An ack of a done or skipped task
// changes nothing (acks are delivered at least once). A "done" ack of any attempt completes a
// dispatched, pending, running or failed task (a late ack still counts: the owner did erase);
// completing a running task keeps its lease owner, so that the dispatch result still to come
// is recorded (Finish). A "failed" ack counts only for the latest dispatch of a dispatched task:
// it is ignored when a newer attempt is under way, and ErrDispatchUnrecorded while the attempt
// it answers is still running. Call Settle afterwards.
func (m *Machine) Ack(dataset string, d AckDecision, actor string) (*Task, error) {
	i, t := m.task(d.Ack.TaskID)
	if t == nil || t.Dataset != dataset {
		return nil, Errorf(ENOTFOUND, "task %d of dataset %s not found", d.Ack.TaskID, dataset)
	}
	if err := d.Ack.Validate(); err != nil {
		return nil, err
	}
	if t.Method != MethodAsync {
		return nil, Errorf(ECONFLICT, "task %d is not an async task", t.ID)
	}
	switch t.State {
	case TaskCancelled:
		return nil, Errorf(ECONFLICT, "task %d was cancelled", t.ID)
	case TaskDone, TaskSkipped:
		return t, nil
	}
	if d.Dispatched < 1 || d.Dispatched > t.Attempts {
		return nil, ErrStale
	}
	from := t.State
	next, due, removed := TaskDone, m.now, d.Ack.Removed
	if d.Ack.Status == AckFailed {
		switch {
		case d.Dispatched != t.Attempts:
			return t, nil // a newer attempt is under way
		case t.State == TaskRunning:
			return nil, ErrDispatchUnrecorded
		case t.State != TaskDispatched:
			return t, nil
		case t.Attempts != d.Attempt:
			return nil, ErrStale
		}
		next, due, removed = d.Next, d.DueAt, 0
	}
	owner := ""
	if t.State == TaskRunning && next == TaskDone {
		owner = t.LeaseOwner
	}
	t = m.touch(i)
	t.State, t.DueAt, t.LeaseOwner = next, due.UTC().Truncate(time.Millisecond), owner
	t.Removed += removed
	t.LastError = truncateValid(d.Ack.Error, 1000)
	if next == TaskDone || next == TaskFailed {
		f := m.now
		t.FinishedAt = &f
	}
	m.event(actor, EventTaskAcked, t.ID, t.Dataset, map[string]any{"status": d.Ack.Status, "removed": d.Ack.Removed,
		"error": truncateValid(d.Ack.Error, 1000), "from": from, "outcome": next, "attempt": t.Attempts, "dispatched": d.Dispatched})
	return t, nil
}

// Cancel stops every unfinished task of the request; ECONFLICT when it already ended. Call
// Settle afterwards.
func (m *Machine) Cancel(actor string) error {
	if m.r.Status.Ended() {
		return Errorf(ECONFLICT, "request %s is already %s", m.r.ID, m.r.Status)
	}
	for i := range m.r.Tasks {
		if m.r.Tasks[i].State.Final() {
			continue
		}
		from := m.r.Tasks[i].State
		t := m.touch(i)
		t.State, t.LeaseOwner = TaskCancelled, ""
		f := m.now
		t.FinishedAt = &f
		m.event(actor, EventTaskCancelled, t.ID, t.Dataset, map[string]any{"from": from})
	}
	m.r.Cancelled, m.out.Cancelled = true, true
	return nil
}

// Retry re-opens the request's failed tasks with fresh attempts; ECONFLICT when the request
// ended or has no failed task. Call Settle afterwards.
func (m *Machine) Retry(actor string) error {
	if m.r.Status.Ended() {
		return Errorf(ECONFLICT, "request %s is already %s", m.r.ID, m.r.Status)
	}
	n := 0
	for i := range m.r.Tasks {
		if m.r.Tasks[i].State != TaskFailed {
			continue
		}
		t := m.touch(i)
		t.State, t.Attempts, t.DueAt, t.FinishedAt = TaskPending, 0, m.now, nil
		n++
	}
	if n == 0 {
		return Errorf(ECONFLICT, "request %s has no failed task to retry", m.r.ID)
	}
	m.event(actor, EventRequestRetried, 0, "", map[string]any{"tasks": n})
	return nil
}

// CommitSweep completes the request's tasks that wait, queued, in sweep sw: each becomes done
// and verified (a committed sweep leaves no row of its subjects), with the rows the sweep
// removed for its subject (sw.PerTask) and a task.attempt event naming the sweep. Call Settle
// afterwards.
func (m *Machine) CommitSweep(sw *Sweep, actor string) {
	note := "sweep " + sw.ID
	for i := range m.r.Tasks {
		if m.r.Tasks[i].SweepID != sw.ID || m.r.Tasks[i].State != TaskQueued {
			continue
		}
		t := m.touch(i)
		v := m.now
		removed := sw.PerTask[t.ID]
		t.State, t.LastError, t.Note, t.VerifiedAt, t.LeaseOwner, t.FinishedAt = TaskDone, "", note, &v, "", &v
		t.Removed += removed
		m.event(actor, EventTaskAttempt, t.ID, t.Dataset, AttemptData{Attempt: t.Attempts, Outcome: TaskDone, Removed: removed, Verified: true, Note: note,
			Sweep: sw.ID, Started: sw.Started, Finished: m.now})
	}
}

// FailSweep returns the request's tasks that wait, queued, in failed sweep sw to the queue of
// the next sweep, with the sweep's error as their last error. Their state does not change.
func (m *Machine) FailSweep(sw *Sweep) {
	for i := range m.r.Tasks {
		if m.r.Tasks[i].SweepID != sw.ID || m.r.Tasks[i].State != TaskQueued {
			continue
		}
		t := m.touch(i)
		t.SweepID, t.LastError = "", truncateValid("sweep "+sw.ID+" failed: "+sw.Error, 1000)
	}
}

// Settle brings the request up to date after its tasks changed: blocked tasks that became
// runnable turn pending, the status is derived again (a change is audited), and a request that
// ended drops its identifiers in clear (a subject.hashed event).
func (m *Machine) Settle(actor string) {
	if !m.r.Cancelled {
		for _, id := range Runnable(m.r.Tasks) {
			i, _ := m.task(id)
			t := m.touch(i)
			t.State, t.DueAt = TaskPending, m.now
		}
	}
	next := RequestStatusOf(m.r.Cancelled, m.r.Tasks)
	if next == m.r.Status {
		return
	}
	from := m.r.Status
	m.r.Status, m.out.Status = next, next
	ev := map[RequestStatus]string{RequestCompleted: EventRequestCompleted, RequestFailed: EventRequestFailed, RequestCancelled: EventRequestCancelled}[next]
	if ev != "" {
		counts := map[TaskState]int{}
		var removed int64
		for _, t := range m.r.Tasks {
			counts[t.State]++
			removed += t.Removed
		}
		m.event(actor, ev, 0, "", map[string]any{"from": from, "tasks": counts, "removed": removed})
	}
	if next.Ended() {
		f := m.now
		m.out.FinishedAt = &f
		m.event("pipeline", EventSubjectHashed, 0, "", map[string]any{"identifiers": len(m.r.Identifiers)})
	}
}

// Validate returns EINVALID for an acknowledgement with an unknown status or a negative count.
func (a Ack) Validate() error {
	switch {
	case a.Status != AckDone && a.Status != AckFailed:
		return Errorf(EINVALID, `ack status must be "done" or "failed"`)
	case a.Removed < 0:
		return Errorf(EINVALID, "ack removed must not be negative")
	}
	return nil
}

// Finish ends a running or exported sweep at now: committed when sweepErr is nil, failed
// (keeping a one-line message) otherwise. ECONFLICT when the sweep already ended.
func (sw *Sweep) Finish(res SweepResult, sweepErr error, now time.Time) error {
	if sw.State != SweepRunning && sw.State != SweepExported {
		return Errorf(ECONFLICT, "sweep %s already ended: %s", sw.ID, sw.State)
	}
	now = now.UTC().Truncate(time.Millisecond)
	sw.SweepResult, sw.Finished = res, &now
	if sweepErr == nil {
		sw.State, sw.Error = SweepCommitted, ""
		return nil
	}
	sw.State, sw.Error = SweepFailed, OneLine(sweepErr, 1000)
	return nil
}

// OneLine renders err for a task's or sweep's last error: the message of an *Error (without
// its code) or the error's text, on one line, at most n bytes of valid UTF-8.
func OneLine(err error, n int) string {
	s := err.Error()
	var e *Error
	if errors.As(err, &e) {
		s = e.Message
	}
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		s = "failed"
	}
	return truncateValid(s, n)
}

func truncateValid(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// String names a task for messages.
func (t *Task) String() string { return fmt.Sprintf("task %d (%s %s)", t.ID, t.Dataset, t.Kind) }
