package erasure

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Method says how a dataset is erased.
type Method string

const (
	// MethodRealtime datasets are erased inside a call (an HTTP DELETE, a SQL statement, a Redis
	// UNLINK) and verified right after.
	MethodRealtime Method = "realtime"
	// MethodAsync datasets get a command on a queue; the owning service acknowledges it later.
	MethodAsync Method = "async"
	// MethodOffline datasets are erased in batches by a sweep over every queued subject.
	MethodOffline Method = "offline"
)

// Valid reports whether m is one of the known methods.
func (m Method) Valid() bool {
	return m == MethodRealtime || m == MethodAsync || m == MethodOffline
}

// Backoff is an exponential retry curve: the n-th retry waits about Initial·2^(n-1), capped at
// Max, with jitter (see pipeline.Backoff for the exact curve).
type Backoff struct {
	Initial time.Duration `json:"initial"`
	Max     time.Duration `json:"max"`
}

// Policy is how the pipeline carries a dataset's tasks: deadline of a request, attempts,
// backoff between them, and for async datasets how long to wait for an acknowledgement.
type Policy struct {
	Deadline    time.Duration `json:"deadline"`
	MaxAttempts int           `json:"max_attempts"`
	Backoff     Backoff       `json:"backoff"`
	// Timeout bounds one attempt of a realtime task (erase plus verify).
	Timeout time.Duration `json:"timeout"`
	// Concurrency bounds how many of the dataset's tasks one executor runs at once (its
	// bulkhead): a slow or hung dataset holds only its own slots. 0: the executor's default.
	Concurrency int `json:"concurrency,omitempty"`
	// AckTimeout is how long an async task waits for its acknowledgement before the command is
	// published again.
	AckTimeout time.Duration `json:"ack_timeout,omitempty"`
	// SweepEvery is how often an offline dataset is swept.
	SweepEvery time.Duration `json:"sweep_every,omitempty"`
	// SweepMode is "internal" (the connector's Sweeper erases) or "external" (an exported job
	// run elsewhere acknowledges the sweep).
	SweepMode SweepMode `json:"sweep_mode,omitempty"`
	// Guard bounds what one erasure may remove (see Guard).
	Guard Guard `json:"guard"`
	// Grace is the default grace window of requests (defaults.grace; requests only).
	Grace time.Duration `json:"grace,omitempty"`
}

// Provide declares that a dataset can look up identifiers of type Identifier, read from
// Field (a column, a JSON field, a response field) of what it holds for a subject.
type Provide struct {
	Identifier string `json:"identifier"`
	Field      string `json:"field"`
}

// Dataset is a registered place that may hold subject data.
type Dataset struct {
	Name      string `json:"name"`
	Owner     string `json:"owner"`
	Connector string `json:"connector"`
	Method    Method `json:"method"`
	// Keys are the identifier types the connector needs to find a subject's data. A subject
	// with none of them cannot be erased here ("skipped: no identifier").
	Keys []string `json:"keys"`
	// Provides are the lookups this dataset offers (identity expansion).
	Provides []Provide `json:"provides,omitempty"`
	// After names datasets whose erase task must end before this one's starts.
	After  []string `json:"after,omitempty"`
	Policy Policy   `json:"policy"`
	// Canary, when set, is the dataset's synthetic erasure (see Canary).
	Canary *Canary `json:"canary,omitempty"`
	// Retention removes the dataset's old rows on a schedule (nil: none).
	Retention *Retention `json:"retention,omitempty"`
	// Escrow keeps the identifiers of the dataset's erasures encrypted this long, for a replay
	// after a backup restore where the dataset cannot be scanned by keyed hash (0: none).
	Escrow time.Duration `json:"escrow,omitempty"`

	// File and Line locate the declaration, for messages.
	File string `json:"-"`
	Line int    `json:"-"`

	// Conn is the dataset's connector instance. It implements one or more of Eraser, Verifier,
	// Resolver, Dispatcher and Sweeper, and Checker where it can.
	Conn Connector `json:"-"`
}

// Connector is the code that talks to one system for one dataset. Besides Close it implements
// the optional interfaces that fit its method. Building a connector performs no I/O; the first
// call connects.
type Connector interface {
	Close() error
}

// Outcome is what an erase removed.
type Outcome struct {
	// Removed counts what was erased: rows, keys, objects. Zero is success when nothing was there.
	Removed int64
	// Detail is a short note for people (no identifier values).
	Detail string
}

// Eraser erases a subject from a dataset. Erase must be idempotent: erasing what is already gone
// succeeds with Removed 0. It returns a *TransientError for failures worth retrying (timeouts,
// 5xx, 429, lock conflicts) and a *PermanentError for those that need an operator (bad
// credentials, a schema mismatch, a 4xx); any other error is treated as transient.
type Eraser interface {
	Erase(ctx context.Context, s Subject) (Outcome, error)
}

// Verifier checks after an erase that a dataset no longer holds the subject. Holds returns true
// when something of the subject remains. Errors are classified as for Eraser.
type Verifier interface {
	Holds(ctx context.Context, s Subject) (bool, error)
}

// Resolver looks up further identifiers of a subject in a dataset (email → user_id). It returns
// only identifiers of the types the dataset provides; an empty result is not an error.
type Resolver interface {
	Resolve(ctx context.Context, s Subject) ([]Identifier, error)
}

// Dispatcher starts the erasure of an async dataset: it sends a command and returns once the
// command is durably accepted. It must be idempotent per dispatch (Command.Dispatch): sending
// the same dispatch again, after a timeout whose outcome is unknown, delivers it at most once
// more to the owner's consumer within the transport's de-duplication window.
type Dispatcher interface {
	Dispatch(ctx context.Context, c Command) error
}

// Command is what an async dataset's owner receives (see docs/async.md). Dispatch is its wire
// identity (DispatchID of the task and attempt): transports de-duplicate on it, and the
// acknowledgement must carry it back.
type Command struct {
	TaskID    int64  `json:"task_id"`
	RequestID string `json:"request_id"`
	Dataset   string `json:"dataset"`
	Attempt   int    `json:"attempt"`
	Dispatch  string `json:"dispatch"`
	// SubjectKey is a keyed hash of Identifiers (SubjectKey), the same for every command about
	// one subject: transports that partition (Kafka) key records by it, so that one subject's
	// commands stay in order, without the identifiers in clear.
	SubjectKey  string    `json:"-"`
	Identifiers Subject   `json:"-"`
	Deadline    time.Time `json:"deadline"`
	AckSubject  string    `json:"ack_subject,omitempty"`
	// Canary marks the command of a canary (a synthetic subject): the owner's service must
	// treat it like any other command.
	Canary bool `json:"canary,omitempty"`
}

// SweepSubject is one queued subject of a sweep.
type SweepSubject struct {
	TaskID  int64
	Subject Subject
	// OverrideGuard is set when an operator forced the task past its guard: the sweep does
	// not hold this subject to max_removed.
	OverrideGuard bool
}

// SweepResult is what a sweep did.
type SweepResult struct {
	Partitions int   `json:"partitions"`
	Scanned    int64 `json:"rows_scanned"`
	Removed    int64 `json:"rows_removed"`
	Bytes      int64 `json:"bytes"`
	// PerTask, when the sweeper counts them, is the rows removed for each task's subject (by
	// task id): what the task reports as removed once the sweep commits. A row of two
	// subjects counts for both.
	PerTask map[int64]int64 `json:"-"`
}

// Sweeper erases many subjects from an offline dataset in one pass. It must commit atomically
// (readers see the old or the new data) and be safe to run again after a crash.
type Sweeper interface {
	Sweep(ctx context.Context, batch []SweepSubject) (SweepResult, error)
}

// Checker reports, without erasing anything, whether the dataset is reachable and configured
// as declared (table and columns exist, keys patterns valid...).
type Checker interface {
	Check(ctx context.Context) error
}

// TransientError is a failure worth retrying, after at least RetryAfter when it is set.
type TransientError struct {
	Err        error
	RetryAfter time.Duration
}

func (e *TransientError) Error() string { return e.Err.Error() }
func (e *TransientError) Unwrap() error { return e.Err }

// PermanentError is a failure that retrying will not fix; the task fails at once.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Transient wraps err as a *TransientError.
func Transient(err error, retryAfter time.Duration) error {
	return &TransientError{Err: err, RetryAfter: retryAfter}
}

// Transientf returns a *TransientError with a formatted message.
func Transientf(format string, args ...any) error {
	return &TransientError{Err: fmt.Errorf(format, args...)}
}

// Permanent wraps err as a *PermanentError.
func Permanent(err error) error { return &PermanentError{Err: err} }

// Permanentf returns a *PermanentError with a formatted message.
func Permanentf(format string, args ...any) error {
	return &PermanentError{Err: fmt.Errorf(format, args...)}
}

// IsPermanent reports whether err is, or wraps, a *PermanentError.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// RetryAfter returns the RetryAfter of the *TransientError in err's chain, or 0.
func RetryAfter(err error) time.Duration {
	var t *TransientError
	if errors.As(err, &t) {
		return t.RetryAfter
	}
	return 0
}
