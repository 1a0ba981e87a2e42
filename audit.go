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
	EventTaskAttempt      = "task.attempt"   // one attempt's outcome (done, retry, failed, skipped, dispatched, queued)
	EventTaskAcked        = "task.acked"     // an async acknowledgement
	EventTaskCancelled    = "task.cancelled" // a task stopped by a cancel
	EventIdentifiersFound = "identifiers.found"
	EventSubjectHashed    = "subject.hashed"  // clear identifiers replaced by keyed hashes
	EventSweepStarted     = "sweep.started"   // an offline dataset's sweep took its queued tasks
	EventSweepCommitted   = "sweep.committed" // a sweep committed: its tasks are done
	EventSweepFailed      = "sweep.failed"    // a sweep failed: its tasks wait for the next
)

// AuditEvent is one entry of the append-only, hash-chained audit trail. Data never holds a
// subject identifier in clear: identifiers appear as keyed hashes ("type:hex").
type AuditEvent struct {
	Seq       int64           `json:"seq"`
	Time      time.Time       `json:"time"`
	Actor     string          `json:"actor"`
	Type      string          `json:"type"`
	RequestID string          `json:"request_id,omitempty"`
	TaskID    int64           `json:"task_id,omitempty"`
	Dataset   string          `json:"dataset,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
	PrevHash  string          `json:"prev_hash"`
	Hash      string          `json:"hash"`
}

// AuditFilter selects audit events: of one request when RequestID is set, from sequence After
// (exclusive), at most Limit (0: all).
type AuditFilter struct {
	RequestID string
	After     int64
	Limit     int
}
