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
	// NotBefore ends the request's grace window (zero: none).
	NotBefore time.Time
	// Suppress is false when the submitter opted out of the suppression list.
	Suppress bool
	// SubmittedBy is the actor that submitted the request (who may withdraw it).
	SubmittedBy string
	// Holds are the legal holds in force: every one (a lookup may find a held identifier), so
	// that the Machine can match them against all the identifiers the request comes to know.
	Holds []Hold
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
	// Suppress are the keyed hashes of the identifiers that join the suppression list, and
	// Escrow the datasets whose identifiers go into the replay escrow, when the request
	// completed (see Completion). The store still holds the clear values then: it reads them
	// in the same transaction, before it drops them.
	Suppress []string
	Escrow   []EscrowSeal
	Events   []AuditEvent
}

// TaskGuard is the state and attempts of a task when it was loaded.
type TaskGuard struct {
	State    TaskState
	Attempts int
}

// Empty reports whether nothing changed.
func (c *Changes) Empty() bool {
	return len(c.Tasks) == 0 && c.Status == "" && len(c.Identifiers) == 0 && len(c.Events) == 0 && len(c.Suppress) == 0 && len(c.Escrow) == 0
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
	// completion is what a completed request leaves behind (SetCompletion).
	completion Completion
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

// SetCompletion sets what the request leaves behind if it completes in this Machine: which of
// its identifiers join the suppression list, which datasets' go into the replay escrow. The
// zero Completion leaves nothing.
func (m *Machine) SetCompletion(c Completion) { m.completion = c }

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
	// Guard is set when the attempt stopped at the dataset's guard ("tripped") or ran past it
	// because an operator forced it ("overridden").
	Guard GuardStatus `json:"guard,omitempty"`
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

// PlanRequest returns the tasks of a new request in their first states: those of PlanTasks,
// then, when the request has a grace window (nr.NotBefore after now), its erase tasks
// scheduled until the window ends, and the erase tasks of datasets a hold in force covers for
// one of the subject's identifiers (hashes) held. holds may hold every hold in force.
func PlanRequest(nr NewRequest, hashes []string, holds []Hold, now time.Time) []Task {
	tasks := PlanTasks(nr.ID, nr.Tasks, now)
	grace := nr.NotBefore.After(now)
	for i := range tasks {
		t := &tasks[i]
		if t.Kind != TaskErase {
			continue
		}
		if grace {
			t.State, t.DueAt = TaskScheduled, nr.NotBefore.UTC().Truncate(time.Millisecond)
		}
		if by := HoldsOf(hashes, holds, t.Dataset); len(by) > 0 {
			t.State, t.HeldBy = TaskHeld, by
		}
	}
	return tasks
}

// SubmittedEvent is the request.submitted event of a new request: reason, deadline, the keyed
// hashes of its subject and its plan, with the end of its grace window and the holds its
// tasks wait on when it has them.
func SubmittedEvent(nr NewRequest, hashes []string, tasks []Task, now time.Time) AuditEvent {
	type planned struct {
		Dataset string   `json:"dataset"`
		Kind    TaskKind `json:"kind"`
		Method  Method   `json:"method"`
	}
	plan := make([]planned, len(tasks))
	held := map[string][]string{}
	for i, t := range tasks {
		plan[i] = planned{t.Dataset, t.Kind, t.Method}
		if len(t.HeldBy) > 0 {
			held[t.Dataset] = t.HeldBy
		}
	}
	data := map[string]any{"reason": nr.Reason, "deadline": nr.Deadline.UTC(), "subject": hashes, "tasks": plan}
	if !nr.NotBefore.IsZero() {
		data["not_before"] = nr.NotBefore.UTC()
	}
	if len(held) > 0 {
		data["held"] = held
	}
	if nr.NoSuppress {
		data["suppress"] = false
	}
	return AuditEvent{Time: now.UTC().Truncate(time.Millisecond), Actor: nr.SubmittedBy, Type: EventRequestSubmitted, RequestID: nr.ID, Data: EventData(data)}
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
	if r.Deferred {
		// Given back unexecuted: not an attempt, nothing to audit.
		t.State, t.DueAt, t.LeaseOwner, t.Attempts = TaskPending, due.UTC().Truncate(time.Millisecond), "", t.Attempts-1
		return true
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
	// A tripped guard is remembered (an operator's forced retry lifts it); an override stays
	// for the task's life; a later attempt that passes clears the trip.
	switch {
	case t.Guard == GuardOverridden:
	case r.GuardTripped:
		t.Guard = GuardTripped
	default:
		t.Guard = GuardNone
	}
	d := AttemptData{Attempt: r.Attempt, Outcome: r.State, Removed: r.Removed, Verified: r.Verified, Error: r.Error, Note: r.Note,
		Started: r.StartedAt.UTC(), Finished: r.FinishedAt.UTC()}
	if r.GuardTripped || t.Guard == GuardOverridden {
		d.Guard = t.Guard
		if r.GuardTripped {
			d.Guard = GuardTripped
		}
	}
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
// ended or has no failed task. With o.OverrideGuard, the failed tasks that stopped at their
// guard (GuardTripped) become GuardOverridden and run without max_removed from then on; the
// request.retried event lists them. ECONFLICT, changing nothing, when o.OverrideGuard is set
// and no failed task stopped at its guard. Call Settle afterwards.
func (m *Machine) Retry(actor string, o RetryOptions) error {
	if m.r.Status.Ended() {
		return Errorf(ECONFLICT, "request %s is already %s", m.r.ID, m.r.Status)
	}
	var failed, overridden []int
	for i := range m.r.Tasks {
		if m.r.Tasks[i].State != TaskFailed {
			continue
		}
		failed = append(failed, i)
		if m.r.Tasks[i].Guard == GuardTripped {
			overridden = append(overridden, i)
		}
	}
	if len(failed) == 0 {
		return Errorf(ECONFLICT, "request %s has no failed task to retry", m.r.ID)
	}
	if o.OverrideGuard && len(overridden) == 0 {
		return Errorf(ECONFLICT, "no failed task of request %s stopped at its guard: retry it without --force", m.r.ID)
	}
	data := map[string]any{"tasks": len(failed)}
	if o.OverrideGuard {
		var ids []int64
		for _, i := range overridden {
			m.touch(i).Guard = GuardOverridden
			ids = append(ids, m.r.Tasks[i].ID)
		}
		data["override_guard"] = ids
	}
	for _, i := range failed {
		t := m.touch(i)
		t.State, t.Attempts, t.DueAt, t.FinishedAt = TaskPending, 0, m.now, nil
	}
	m.event(actor, EventRequestRetried, 0, "", data)
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
// the next sweep, with the sweep's error as their last error; their state does not change.
// When cause is a *GuardError naming tasks (their subjects exceed max_removed), those tasks
// fail instead, their guard tripped, with a task.attempt event: the other subjects of the
// sweep must not wait for them. Call Settle afterwards.
func (m *Machine) FailSweep(sw *Sweep, cause error) {
	tripped := map[int64]bool{}
	if g, ok := AsGuardError(cause); ok {
		for _, id := range g.Tasks {
			tripped[id] = true
		}
	}
	for i := range m.r.Tasks {
		if m.r.Tasks[i].SweepID != sw.ID || m.r.Tasks[i].State != TaskQueued {
			continue
		}
		t := m.touch(i)
		t.SweepID, t.LastError = "", truncateValid("sweep "+sw.ID+" failed: "+sw.Error, 1000)
		if tripped[t.ID] {
			f := m.now
			t.State, t.Guard, t.FinishedAt = TaskFailed, GuardTripped, &f
			m.event("sweep:"+sw.ID, EventTaskAttempt, t.ID, t.Dataset, AttemptData{Attempt: t.Attempts, Outcome: TaskFailed, Error: t.LastError,
				Sweep: sw.ID, Guard: GuardTripped, Started: sw.Started, Finished: m.now})
		}
	}
}

// Settle brings the request up to date after its tasks changed: the legal holds in force are
// applied (covered tasks become held, held tasks no hold covers any more are released), blocked
// tasks that became runnable turn pending, the status is derived again (a change is audited),
// and a request that ended drops its identifiers in clear (a subject.hashed event); one that
// completed leaves what its Completion says (suppression, escrow) first.
func (m *Machine) Settle(actor string) {
	if !m.r.Cancelled {
		m.applyHolds(actor)
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
	if next == RequestCompleted {
		m.leaveBehind()
	}
	if next.Ended() {
		f := m.now
		m.out.FinishedAt = &f
		m.event("pipeline", EventSubjectHashed, 0, "", map[string]any{"identifiers": len(m.r.Identifiers)})
	}
}

// holdable reports whether a legal hold stops task t now: an erase task that has not started
// its work (blocked, pending, scheduled, or queued and in no sweep yet). A running attempt,
// a dispatched command or a sweep under way is left to finish.
func holdable(t *Task) bool {
	if t.Kind != TaskErase {
		return false
	}
	switch t.State {
	case TaskBlocked, TaskPending, TaskScheduled:
		return true
	case TaskQueued:
		return t.SweepID == ""
	}
	return false
}

// applyHolds holds the tasks the holds in force cover (for the identifiers the request knows)
// and releases the held tasks none covers any more: back to scheduled while the grace window
// lasts, else to blocked (Settle then starts those that may run).
func (m *Machine) applyHolds(actor string) {
	for i := range m.r.Tasks {
		t := &m.r.Tasks[i]
		if t.Kind != TaskErase || (t.State != TaskHeld && !holdable(t)) {
			continue
		}
		by := HoldsOf(m.r.Identifiers, m.r.Holds, t.Dataset)
		switch {
		case len(by) > 0 && t.State != TaskHeld:
			from := t.State
			t = m.touch(i)
			t.State, t.HeldBy, t.LeaseOwner = TaskHeld, by, ""
			if from == TaskQueued {
				t.SweepID = ""
			}
			m.event(actor, EventTaskHeld, t.ID, t.Dataset, map[string]any{"from": from, "holds": by})
		case len(by) == 0 && t.State == TaskHeld:
			t = m.touch(i)
			t.State, t.HeldBy, t.DueAt = TaskBlocked, nil, m.now
			if m.r.NotBefore.After(m.now) {
				t.State, t.DueAt = TaskScheduled, m.r.NotBefore.UTC().Truncate(time.Millisecond)
			}
			m.event(actor, EventTaskReleased, t.ID, t.Dataset, map[string]any{"to": t.State})
		case len(by) > 0:
			t.HeldBy = by
		}
	}
}

// leaveBehind records what a completed request leaves (see Completion): the keyed hashes of
// its identifiers of suppressed types, unless its submitter opted out, and an escrow of the
// identifiers each escrowed dataset's done erase task used.
func (m *Machine) leaveBehind() {
	c := m.completion
	if m.r.Suppress {
		for _, h := range m.r.Identifiers {
			typ, _, _ := strings.Cut(h, ":")
			if c.Suppresses(typ) {
				m.out.Suppress = append(m.out.Suppress, h)
			}
		}
		if len(m.out.Suppress) > 0 {
			m.event("pipeline", EventSubjectSuppressed, 0, "", map[string]any{"identifiers": len(m.out.Suppress)})
		}
	}
	var datasets []string
	for _, t := range m.r.Tasks {
		period := c.Escrow[t.Dataset]
		if t.Kind != TaskErase || t.State != TaskDone || period <= 0 {
			continue
		}
		m.out.Escrow = append(m.out.Escrow, EscrowSeal{Dataset: t.Dataset, Types: t.Keys, Period: period})
		datasets = append(datasets, t.Dataset)
	}
	if len(datasets) > 0 {
		month, _ := EscrowMonth(m.now, 0)
		m.event("pipeline", EventEscrowSealed, 0, "", map[string]any{"datasets": datasets, "month": month})
	}
}

// EndGrace ends the request's grace window once it is over: its scheduled tasks become
// blocked (Settle then starts those whose lookups and `after:` datasets are done), and its
// hide tasks that have not run are skipped, the erasure superseding them. It returns false,
// changing nothing, while the window lasts or when no task is scheduled. Call Settle afterwards.
func (m *Machine) EndGrace(actor string) bool {
	if m.r.NotBefore.After(m.now) || m.r.Cancelled {
		return false
	}
	n := 0
	for i := range m.r.Tasks {
		if m.r.Tasks[i].State != TaskScheduled {
			continue
		}
		t := m.touch(i)
		t.State, t.DueAt = TaskBlocked, m.now
		n++
	}
	if n == 0 {
		return false
	}
	skipped := 0
	for i := range m.r.Tasks {
		t := &m.r.Tasks[i]
		if t.Kind != TaskHide || (t.State != TaskBlocked && t.State != TaskPending && t.State != TaskFailed) {
			continue
		}
		t = m.touch(i)
		f := m.now
		t.State, t.Note, t.FinishedAt = TaskSkipped, "skipped: the grace window ended before the hide action ran; the erasure follows", &f
		skipped++
	}
	m.event(actor, EventGraceEnded, 0, "", map[string]any{"tasks": n, "hides_skipped": skipped})
	return true
}

// Withdraw is the subject's own cancel through the channel that submitted the request: only
// its submitter (actor must be SubmittedBy) and only while it waits in its grace window (its
// erase tasks scheduled, or held). EFORBIDDEN for another actor, ECONFLICT once the window has
// ended or the request ended (an operator may still cancel an open one). Call Settle
// afterwards.
func (m *Machine) Withdraw(actor string) error {
	if actor == "" || actor != m.r.SubmittedBy {
		return Errorf(EFORBIDDEN, "only the channel that submitted request %s may withdraw it", m.r.ID)
	}
	if m.r.Status.Ended() || !m.r.NotBefore.After(m.now) {
		return Errorf(ECONFLICT, "request %s is %s: it can be withdrawn only during its grace window (an operator may still cancel it)", m.r.ID, m.r.Status)
	}
	m.event(actor, EventRequestWithdrawn, 0, "", map[string]any{"not_before": m.r.NotBefore.UTC()})
	return m.Cancel(actor)
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
