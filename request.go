package erasure

import (
	"context"
	"time"
)

// RequestStatus is where a request stands. It is derived from its tasks (see TaskState):
//
//	scheduled  its erase tasks wait for the end of its grace window; the subject may still
//	           withdraw it (hide tasks and lookups run meanwhile)
//	pending    no task has started yet
//	running    some task is active, blocked behind another, or done while others are not
//	held       nothing can progress but tasks held by a legal hold (the rest is done)
//	completed  every task is done or skipped                                  (final)
//	failed     a task failed and nothing else can progress; an operator may retry it
//	cancelled  an operator cancelled it, or its submitter withdrew it in its grace window;
//	           its unfinished tasks were cancelled                          (final)
//
// A request is open until it is completed or cancelled. While open its identifiers are kept
// in clear; when it ends they are replaced by keyed hashes. A failed request stays open so
// that retry can still erase. A held request stays open too, and is overdue once past its
// deadline like any other (Request.OverdueReason names the holds).
type RequestStatus string

const (
	RequestScheduled RequestStatus = "scheduled"
	RequestPending   RequestStatus = "pending"
	RequestRunning   RequestStatus = "running"
	RequestHeld      RequestStatus = "held"
	RequestCompleted RequestStatus = "completed"
	RequestFailed    RequestStatus = "failed"
	RequestCancelled RequestStatus = "cancelled"
)

// RequestStatuses lists the request statuses, for messages.
var RequestStatuses = []RequestStatus{RequestScheduled, RequestPending, RequestRunning, RequestHeld, RequestCompleted, RequestFailed, RequestCancelled}

// Valid reports whether s is a known request status.
func (s RequestStatus) Valid() bool {
	switch s {
	case RequestScheduled, RequestPending, RequestRunning, RequestHeld, RequestCompleted, RequestFailed, RequestCancelled:
		return true
	}
	return false
}

// Ended reports whether the request is completed or cancelled.
func (s RequestStatus) Ended() bool { return s == RequestCompleted || s == RequestCancelled }

// TaskKind says what a task does to its dataset.
type TaskKind string

const (
	// TaskLookup reads further identifiers of the subject from the dataset (Resolver).
	TaskLookup TaskKind = "lookup"
	// TaskErase erases the subject from the dataset, then verifies where it can.
	TaskErase TaskKind = "erase"
	// TaskHide hides the subject's data at once, while the erasure waits for the request's
	// grace window to end (Hider). Planned only for requests with a grace window.
	TaskHide TaskKind = "hide"
)

// TaskState is the state of one task (one request × one dataset × one kind).
//
//	                 plan
//	   ┌──────────────┼─────────────────────┐
//	   ▼              ▼                     ▼
//	scheduled      blocked ──deps done──► pending ◄──── retry (operator), backoff, ack timeout
//	(grace window)    ▲                     │ lease                 ▲
//	   │ window ends  │                     ▼                       │
//	   └──────────────┘                  running ──transient error──┘ (attempts left)
//	                           ┌────────────┼──────────────┬─────────────┬───────────────┐
//	                           ▼            ▼              ▼             ▼               ▼
//	                       dispatched     queued          done        skipped          failed
//	                      (async: waits  (offline: waits (erased,    (no identifier   (permanent error,
//	                       for its ack)   for a sweep)    verified)   for its keys)    attempts used up)
//	                           │ ack        │ sweep commits
//	                           └─► done     └─► done
//
//	blocked, pending, scheduled, queued (not yet in a sweep) ──legal hold──► held
//	held ──every hold covering it released──► blocked (scheduled while the window lasts)
//	any state but done and skipped ──cancel (operator; the submitter while scheduled)──► cancelled
//
// Erase tasks start blocked until every lookup task of their request is done or skipped and
// every erase task of the datasets named in `after:` is done or skipped; lookup tasks start
// pending; hide tasks wait for the lookups only. A request with a grace window plans its erase
// tasks scheduled until the window ends (Machine.EndGrace makes them blocked, and skips the
// hide tasks that have not run: the erasure supersedes them); its submitter may withdraw it
// meanwhile. An erase task of a dataset a legal hold covers, for a request whose subject has
// the hold's identifier, waits held (from blocked, pending, scheduled, or queued and not yet
// in a sweep; a task already running finishes its attempt) until the hold is released; the
// rest of the request goes on, and so do its audit events and its deadline. A running task
// holds a lease (owner, expiry); an expired lease makes it due again, so a crashed worker's
// task is executed again (at least once) while the store accepts only the result of the lease
// holder (completed exactly once). Every transition is written in one transaction together
// with its audit event. done, skipped and cancelled are final; failed re-opens on retry; a
// late acknowledgement still completes a dispatched, pending or failed async task.
type TaskState string

const (
	TaskBlocked    TaskState = "blocked"
	TaskPending    TaskState = "pending"
	TaskRunning    TaskState = "running"
	TaskDispatched TaskState = "dispatched"
	TaskQueued     TaskState = "queued"
	TaskDone       TaskState = "done"
	TaskSkipped    TaskState = "skipped"
	TaskFailed     TaskState = "failed"
	TaskCancelled  TaskState = "cancelled"
	TaskHeld       TaskState = "held"
	TaskScheduled  TaskState = "scheduled"
)

// Final reports whether no further transition can happen (done, skipped, cancelled).
func (s TaskState) Final() bool { return s == TaskDone || s == TaskSkipped || s == TaskCancelled }

// Succeeded reports whether the task reached its goal (done or skipped).
func (s TaskState) Succeeded() bool { return s == TaskDone || s == TaskSkipped }

// Active reports whether the task is making progress by itself (pending, running, dispatched
// or queued).
func (s TaskState) Active() bool {
	return s == TaskPending || s == TaskRunning || s == TaskDispatched || s == TaskQueued
}

// Task is one request × one dataset × one kind.
type Task struct {
	ID        int64     `json:"id"`
	RequestID string    `json:"request_id"`
	Dataset   string    `json:"dataset"`
	Kind      TaskKind  `json:"kind"`
	Method    Method    `json:"method"`
	State     TaskState `json:"status"`
	// After are the datasets whose erase tasks must succeed first.
	After []string `json:"after,omitempty"`
	// Keys are the identifier types the task needs (copied from the dataset at plan time).
	Keys []string `json:"keys,omitempty"`
	// Attempts counts started attempts (leases), including one running now.
	Attempts   int        `json:"attempts"`
	LastError  string     `json:"last_error,omitempty"`
	Removed    int64      `json:"removed"`
	Note       string     `json:"note,omitempty"`
	VerifiedAt *time.Time `json:"verified_at,omitempty"`
	// DueAt is when a pending task may run, when a running task's lease expires, and when a
	// dispatched task's acknowledgement is overdue.
	DueAt      time.Time  `json:"due_at"`
	LeaseOwner string     `json:"-"`
	SweepID    string     `json:"sweep_id,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	// Guard is what the blast-radius guard did to the task (tripped, overridden by an
	// operator's forced retry); empty while it simply applies.
	Guard GuardStatus `json:"guard,omitempty"`

	// Filled on lease: the request's subject as known now, its deadline, and whether the
	// request is a canary (a synthetic erasure, see Canary).
	Subject  Subject   `json:"-"`
	Deadline time.Time `json:"-"`
	Canary   bool      `json:"-"`
	// PrevState is the state the task was leased from (pending, running or dispatched).
	PrevState TaskState `json:"-"`
	// HeldBy names the legal holds a held task waits on (filled when a request is read).
	HeldBy []string `json:"held_by,omitempty"`
}

// Request is one erasure of one subject.
type Request struct {
	ID     string        `json:"id"`
	Status RequestStatus `json:"status"`
	Reason string        `json:"reason"`
	// Subject is in clear while the request is open, nil after it ended.
	Subject Subject `json:"-"`
	// SubjectHashes are the keyed hashes of the subject's identifiers ("type:hmac"), always set.
	SubjectHashes []string  `json:"subject_hashes"`
	Deadline      time.Time `json:"deadline"`
	Overdue       bool      `json:"overdue"`
	// OverdueReason says why an overdue request is still open when legal holds are why.
	OverdueReason string `json:"overdue_reason,omitempty"`
	// NotBefore is the end of the request's grace window, when it has one.
	NotBefore   *time.Time `json:"not_before,omitempty"`
	SubmittedBy string     `json:"submitted_by"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
	// Canary names the dataset whose canary (a synthetic erasure) this request is; empty for
	// the requests of real subjects. Canary requests stay out of user statistics and listings.
	Canary string `json:"canary,omitempty"`
	// Found says, once the request has ended, whether anything of the subject was found and
	// erased anywhere (some task removed something): a request completed with found false
	// erased nothing, its tasks' notes say why. Unset while the request is open.
	Found *bool  `json:"found,omitempty"`
	Tasks []Task `json:"tasks,omitempty"`
}

// SetFound sets r.Found from its tasks when r has ended, and leaves it unset otherwise.
func (r *Request) SetFound() {
	r.Found = nil
	if !r.Status.Ended() {
		return
	}
	found := false
	for _, t := range r.Tasks {
		found = found || t.Removed > 0
	}
	r.Found = &found
}

// TaskCounts summarises the tasks of one request.
type TaskCounts struct {
	Total     int
	Succeeded int // done or skipped
	Failed    int
	Active    int // pending, running, dispatched or queued
	Blocked   int
	Held      int
	Scheduled int
	Started   int // attempted at least once, or succeeded
}

// CountTasks counts tasks by what matters to their request.
func CountTasks(tasks []Task) TaskCounts {
	c := TaskCounts{Total: len(tasks)}
	for _, t := range tasks {
		switch {
		case t.State.Succeeded():
			c.Succeeded++
		case t.State == TaskFailed:
			c.Failed++
		case t.State.Active():
			c.Active++
		case t.State == TaskBlocked:
			c.Blocked++
		case t.State == TaskHeld:
			c.Held++
		case t.State == TaskScheduled:
			c.Scheduled++
		}
		if t.Attempts > 0 || t.LastError != "" || t.Removed > 0 || t.State.Succeeded() {
			c.Started++
		}
	}
	return c
}

// Status derives the request's status (see RequestStatus).
func (c TaskCounts) Status(cancelled bool) RequestStatus {
	switch {
	case cancelled:
		return RequestCancelled
	case c.Succeeded == c.Total:
		return RequestCompleted
	case c.Active == 0 && c.Failed > 0:
		return RequestFailed
	case c.Scheduled > 0:
		return RequestScheduled
	case c.Active == 0 && c.Held > 0:
		return RequestHeld
	case c.Started == 0:
		return RequestPending
	}
	return RequestRunning
}

// RequestStatusOf derives a request's status from its tasks' states.
func RequestStatusOf(cancelled bool, tasks []Task) RequestStatus {
	return CountTasks(tasks).Status(cancelled)
}

// Runnable returns the ids of blocked tasks that may now become pending: erase tasks whose
// request has no unfinished lookup and whose `after:` datasets' erase tasks all succeeded, and
// hide tasks whose request has no unfinished lookup. Tasks of one request are given.
func Runnable(tasks []Task) []int64 {
	erased := map[string]bool{}
	lookupsDone := true
	for _, t := range tasks {
		if t.Kind == TaskLookup && !t.State.Succeeded() {
			lookupsDone = false
		}
		if t.Kind == TaskErase && t.State.Succeeded() {
			erased[t.Dataset] = true
		}
	}
	if !lookupsDone {
		return nil
	}
	var out []int64
	for _, t := range tasks {
		if t.State != TaskBlocked {
			continue
		}
		ok := true
		for _, a := range t.After {
			if t.Kind == TaskHide {
				break // a hide task waits for the lookups only
			}
			if !erased[a] {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, t.ID)
		}
	}
	return out
}

// TaskSpec is one planned task.
type TaskSpec struct {
	Dataset string
	Kind    TaskKind
	Method  Method
	Keys    []string
	After   []string
}

// NewRequest is a request about to be stored.
type NewRequest struct {
	ID             string
	Subject        Subject
	Reason         string
	Deadline       time.Time
	SubmittedBy    string
	IdempotencyKey string
	// Fingerprint identifies the submitted content; the same key with another fingerprint
	// is a conflict.
	Fingerprint string
	Tasks       []TaskSpec
	// Canary names the dataset whose canary this request is ("" for a real subject).
	Canary string
	// NotBefore ends the request's grace window (zero: none): its erase tasks wait until then.
	NotBefore time.Time
	// NoSuppress keeps the request's identifiers off the suppression list once it completes.
	NoSuppress bool
}

// CreateResult is the outcome of one request of a batch: the request (only its ID when it
// existed already), whether it was created, or the error that concerns this request alone.
type CreateResult struct {
	Request *Request
	Created bool
	Err     error
}

// TaskResult is the outcome of one leased attempt, written by Store.FinishTasks.
type TaskResult struct {
	TaskID int64
	// RequestID, Dataset and Kind must be the leased task's (the store does not read them back).
	RequestID string
	Dataset   string
	Kind      TaskKind
	// Owner and Attempt identify the lease; a result whose lease was lost is dropped.
	Owner   string
	Attempt int
	// State is the next state: done, skipped, pending (a retry at DueAt), failed, dispatched
	// (until DueAt) or queued.
	State      TaskState
	DueAt      time.Time
	Removed    int64
	Error      string
	Note       string
	Verified   bool
	StartedAt  time.Time
	FinishedAt time.Time
	// Found are identifiers a lookup found.
	Found []Identifier
	// GuardTripped is set when the attempt stopped at the dataset's guard (see GuardError).
	GuardTripped bool
	// Inputs is, for a lookup, how many identifiers of its key types it was given. When the
	// request has more by the time the result is written (another lookup found them while this
	// one ran), the lookup is run again instead of ending.
	Inputs int
	// Deferred is set when the executor gives a leased task back without running it (every
	// slot of its dataset is busy): the task waits pending until DueAt and the lease does not
	// count as an attempt. State is ignored.
	Deferred bool
}

// AckStatus is what an async dataset's owner reports of a command.
type AckStatus string

const (
	AckDone   AckStatus = "done"   // the subject is erased from the dataset
	AckFailed AckStatus = "failed" // the owner could not erase it; the pipeline retries
)

// Ack is an async dataset owner's report on a task. Dispatch is the dispatch id of the command
// it answers (Command.Dispatch): an acknowledgement whose Dispatch names no dispatch of this
// deployment's task TaskID is rejected, whatever its TaskID.
type Ack struct {
	TaskID   int64     `json:"task_id"`
	Dispatch string    `json:"dispatch"`
	Status   AckStatus `json:"status"`
	Removed  int64     `json:"removed"`
	Error    string    `json:"error,omitempty"`
}

// RequestFilter selects requests for a listing. Filters combine (AND).
type RequestFilter struct {
	Status  RequestStatus
	Overdue bool
	// Dataset selects the requests with an unfinished task on the dataset (blocked, pending,
	// running, dispatched, queued or failed): what the dataset holds up. Every request has a
	// task on every dataset registered when it was submitted, so "has a task" would select all.
	Dataset string
	// Identifier selects the requests whose subject holds it, ended ones included. It is given
	// in clear to a Service, which puts its value in canonical form and replaces it by its keyed
	// hash (SubjectHash): a store never receives it.
	Identifier *Identifier
	// SubjectHash selects the requests whose subject holds the identifier of this keyed hash
	// ("type:hex", see Hasher.Identifier).
	SubjectHash string
	// Canary lists canary requests (synthetic erasures) instead of real subjects' requests.
	Canary bool
	Cursor string
	Limit  int
}

// RequestPage is one page of a listing; Next is the cursor of the next page, empty at the end.
type RequestPage struct {
	Requests []Request `json:"requests"`
	Next     string    `json:"next_cursor,omitempty"`
}

// DatasetStats is the health of one dataset: its tasks as the store sees them, and its
// recent attempts as the executor saw them.
type DatasetStats struct {
	Dataset string         `json:"dataset"`
	ByState map[string]int `json:"tasks_by_status"`
	Backlog int            `json:"backlog"`
	// Failures counts the dataset's tasks that failed for good (an operator's retry re-opens
	// them); attempts that failed and will be retried are FailedAttempts.
	Failures int `json:"failures"`
	// LastDone is when a task of the dataset last finished.
	LastDone *time.Time `json:"last_done,omitempty"`

	// FailedAttempts counts the dataset's attempts that failed (to be retried, or for good) in
	// the last AttemptWindow, as this server's executor saw them.
	FailedAttempts int `json:"failed_attempts"`
	// LastError is the error of the latest failed attempt, LastErrorAt when it failed.
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
	// FailingSince is when the dataset's attempts began to fail: the first failed attempt
	// since the last one that succeeded; nil while its latest attempt succeeded.
	FailingSince *time.Time `json:"failing_since,omitempty"`
}

// AttemptWindow is how far back DatasetStats.FailedAttempts counts.
const AttemptWindow = 15 * time.Minute

// Store keeps requests, identifiers, tasks and the audit trail. It decides nothing about
// tasks: every method that changes a request loads its RequestState in a transaction, applies
// the event to a Machine (machine.go), and writes the Machine's Changes and audit events in the
// same transaction. Implementations: store/sqlite (and any later one); store/storetest is the
// conformance suite every implementation must pass.
type Store interface {
	// CreateRequest stores a request, its identifiers and tasks. When IdempotencyKey is set and
	// already used it returns the existing request and created=false, or ECONFLICT if its
	// Fingerprint differs.
	CreateRequest(ctx context.Context, r NewRequest) (req *Request, created bool, err error)
	// CreateRequests stores a batch of requests in one transaction and returns a result per
	// request, in order: each as CreateRequest would answer it. The error is for the batch
	// as a whole (the store is unavailable).
	CreateRequests(ctx context.Context, rs []NewRequest) ([]CreateResult, error)
	// Request returns a request with its tasks, or ENOTFOUND.
	Request(ctx context.Context, id string) (*Request, error)
	// Requests lists requests, newest first.
	Requests(ctx context.Context, f RequestFilter) (RequestPage, error)
	// CancelRequest applies Machine.Cancel; ENOTFOUND, ECONFLICT when already ended.
	CancelRequest(ctx context.Context, id, actor string) (*Request, error)
	// RetryRequest applies Machine.Retry; ENOTFOUND, ECONFLICT when none failed (or, with
	// o.OverrideGuard, none failed at its guard).
	RetryRequest(ctx context.Context, id, actor string, o RetryOptions) (*Request, error)

	// LeaseTasks claims up to n due tasks for owner until now+lease: pending tasks whose DueAt
	// has passed, running tasks whose lease expired, dispatched tasks whose ack is overdue.
	// Each leased task's Attempts is incremented and its Subject filled. It must be safe with
	// concurrent callers (PostgreSQL: FOR UPDATE SKIP LOCKED).
	LeaseTasks(ctx context.Context, owner string, n int, lease time.Duration) ([]Task, error)
	// ExtendLease pushes the lease of running tasks held by owner to now+lease.
	ExtendLease(ctx context.Context, owner string, ids []int64, lease time.Duration) error
	// ReleaseLeases makes every running task due now (a single-node server starting up owns
	// every lease of the ones before it).
	ReleaseLeases(ctx context.Context) (int, error)
	// FinishTasks applies each result with Machine.Finish and settles each request touched,
	// writing the changes and events in one transaction. It returns the ids of the results
	// dropped because their lease was lost. A store shared by several processes applies the
	// results of a request another transaction holds in a second transaction, once it is let
	// go, rather than make the first wait with its own requests locked.
	FinishTasks(ctx context.Context, results []TaskResult) (dropped []int64, err error)
	// FinishAndLease is FinishTasks followed, in the same transaction, by LeaseTasks(owner, n,
	// lease): an executor's commit of one batch takes its next batch (one commit, not two).
	// On an error nothing is leased, except when only that second transaction failed: then
	// the tasks leased are returned with the error, and are the caller's.
	FinishAndLease(ctx context.Context, results []TaskResult, owner string, n int, lease time.Duration) (dropped []int64, leased []Task, err error)
	// Task returns one task (without its subject); ENOTFOUND.
	Task(ctx context.Context, id int64) (*Task, error)
	// Deployment returns the id of this deployment: random, generated once when the store was
	// created, the same for every process sharing the store. It scopes the wire identity of
	// async commands (DispatchID), so that two deployments sharing a transport never mistake
	// each other's commands or acknowledgements.
	Deployment(ctx context.Context) (string, error)
	// AckTask applies an acknowledgement decision (see DecideAck and Machine.Ack, which lists
	// the errors: ENOTFOUND, ECONFLICT, ErrStale) for a task of dataset, with its audit event,
	// and settles the request, in one transaction. It returns the task as it is now.
	AckTask(ctx context.Context, dataset string, d AckDecision, actor string) (*Task, error)

	// DatasetStats returns per-dataset task counts, canary requests left out.
	DatasetStats(ctx context.Context) ([]DatasetStats, error)
	// OverdueRequests counts open requests past their deadline, canary requests left out.
	OverdueRequests(ctx context.Context) (int, error)

	// Audit returns events in order.
	Audit(ctx context.Context, f AuditFilter) ([]AuditEvent, error)
	// AuditBlocks returns the blocks of the audit chain after block `after`, in order, at most
	// limit (0: a default).
	AuditBlocks(ctx context.Context, after int64, limit int) ([]AuditBlock, error)
	// AuditHead returns the chain's head as the store holds it (not verified).
	AuditHead(ctx context.Context) (AuditHead, error)

	Close() error
}
