package erasure

import (
	"encoding/json"
	"time"
)

// Audit event types.
const (
	EventRequestSubmitted = "request.submitted"
	EventRequestCompleted = "request.completed"
	EventRequestFailed    = "request.failed"
	EventRequestCancelled = "request.cancelled"
	EventRequestRetried   = "request.retried"
	EventRequestOverdue   = "request.overdue" // an open request passed its deadline (once per request)
	EventTaskAttempt      = "task.attempt"    // one attempt's outcome (done, retry, failed, skipped, dispatched, queued)
	EventTaskAcked        = "task.acked"      // an async acknowledgement
	EventTaskCancelled    = "task.cancelled"  // a task stopped by a cancel
	EventIdentifiersFound = "identifiers.found"
	EventSubjectHashed    = "subject.hashed"  // clear identifiers replaced by keyed hashes
	EventSweepStarted     = "sweep.started"   // an offline dataset's sweep took its queued tasks
	EventSweepCommitted   = "sweep.committed" // a sweep committed: its tasks are done
	EventSweepFailed      = "sweep.failed"    // a sweep failed: its tasks wait for the next

	EventTaskHeld           = "task.held"           // a legal hold stopped a task
	EventTaskReleased       = "task.released"       // no hold covers a held task any more
	EventHoldAdded          = "hold.added"          // an operator placed a legal hold
	EventHoldReleased       = "hold.released"       // an operator released a legal hold
	EventGraceEnded         = "request.grace_ended" // the grace window ended: the erasure starts
	EventRequestWithdrawn   = "request.withdrawn"   // the submitter withdrew it in its grace window
	EventSubjectSuppressed  = "subject.suppressed"  // a completed request's identifiers joined the suppression list
	EventSuppressionRemoved = "suppression.removed" // an operator took identifiers off the suppression list
	EventEscrowSealed       = "escrow.sealed"       // a completed request's identifiers went into the replay escrow
	EventEscrowDestroyed    = "escrow.destroyed"    // an escrow key and what it sealed were destroyed
	EventRetentionRun       = "retention.run"       // a retention run of a dataset, with its counts
	EventReplayRun          = "replay.run"          // erasures replayed onto a restored dataset, with counts
)

// AuditEvent is one entry of the append-only audit trail. Data never holds a subject
// identifier in clear: identifiers appear as keyed hashes ("type:hex"). Events are numbered
// (Seq) in the order they were appended, and each belongs to a Block of the chain (the events
// one store transaction appended together), which is what the chain's hashes cover. Events of a
// trail started before blocks existed have Block 0 and their own PrevHash and Hash (see
// audit.VerifyLegacy).
type AuditEvent struct {
	Seq       int64           `json:"seq"`
	Block     int64           `json:"block,omitempty"`
	Time      time.Time       `json:"time"`
	Actor     string          `json:"actor"`
	Type      string          `json:"type"`
	RequestID string          `json:"request_id,omitempty"`
	TaskID    int64           `json:"task_id,omitempty"`
	Dataset   string          `json:"dataset,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
	PrevHash  string          `json:"prev_hash,omitempty"`
	Hash      string          `json:"hash,omitempty"`
}

// AuditBlock is one link of the audit chain: the events one store transaction appended, in
// order, encoded in Body exactly as they were sealed. Hash is a keyed hash (HMAC, see
// audit.Chain) over the previous block's hash and the block's own fields, so that altering,
// removing, inserting or reordering anything changes every later hash, and nobody without the
// key can compute a chain that verifies. Signed checkpoints of the head, kept elsewhere,
// catch a truncated tail.
type AuditBlock struct {
	Seq        int64           `json:"seq"`
	FirstEvent int64           `json:"first_event"`
	Events     int             `json:"events"`
	Time       time.Time       `json:"time"`
	Body       json.RawMessage `json:"body"`
	PrevHash   string          `json:"prev_hash"`
	Hash       string          `json:"hash"`
}

// AuditHead names a point of the chain: the last block verified, its hash, and how many
// events the chain holds up to it.
type AuditHead struct {
	Block  int64  `json:"block"`
	Hash   string `json:"hash"`
	Events int64  `json:"events"`
}

// AuditChain seals and checks audit blocks with a key (audit.Chain implements it).
type AuditChain interface {
	// Seal sets b.PrevHash to prev and b.Hash to the block's keyed hash.
	Seal(prev string, b *AuditBlock)
	// Valid reports whether b.Hash is the keyed hash of b chained after prev.
	Valid(prev string, b *AuditBlock) bool
}

// AuditFilter selects audit events: of one request when RequestID is set, from sequence After
// (exclusive), at most Limit (0: all).
type AuditFilter struct {
	RequestID string
	After     int64
	Limit     int
}
