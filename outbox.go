package erasure

import (
	"context"
	"encoding/json"
	"time"
)

// Notifications leave erasure through a durable outbox. Nothing is sent from inside a state
// change: a notifier reads the audit trail after its own cursor (the trail is durable and
// ordered), asks every Subscriber which messages an event causes, and stores them in the outbox
// together with its new cursor, in one transaction; a deliverer then POSTs each message until
// its endpoint accepts it, retrying with backoff, in order per Subscriber and Key. So a message
// is delivered at least once, survives restarts, and never holds more than its subscriber put in
// it (never an identifier in clear).
//
// Order is strict: a message is never sent before an older message of its subscriber and key
// was delivered. A dead message holds its key (the later ones wait, pending) until an operator
// retries it (RetryOutbox); messages of other keys go on.

// OutboxState is where a message of the outbox stands.
//
//	pending ──POST accepted──► delivered
//	   │ ▲ POST failed (retried at NextAt)
//	   └─┘
//	   └──attempts used up──► dead   (an operator may retry it)
type OutboxState string

const (
	OutboxPending   OutboxState = "pending"
	OutboxDelivered OutboxState = "delivered"
	OutboxDead      OutboxState = "dead"
)

// OutboxMessage is one HTTP POST to make.
type OutboxMessage struct {
	ID int64 `json:"id"`
	// Subscriber names who asked for it ("webhook:ticketing", "drp:agent-1"); its deliverer
	// signs and sends it (see Subscriber).
	Subscriber string `json:"subscriber"`
	// Key orders delivery: messages of one subscriber and key are delivered one at a time,
	// oldest first (a request's id, so that a request's notifications arrive in order).
	Key string `json:"key"`
	// Event is the event type the message tells of (request.completed...).
	Event string `json:"event"`
	URL   string `json:"url"`
	// Body is the JSON to POST; it never holds an identifier in clear.
	Body        json.RawMessage `json:"body"`
	State       OutboxState     `json:"state"`
	Attempts    int             `json:"attempts"`
	NextAt      time.Time       `json:"next_at"`
	LastError   string          `json:"last_error,omitempty"`
	CreatedAt   time.Time       `json:"created_at"`
	DeliveredAt *time.Time      `json:"delivered_at,omitempty"`
	// AuditSeq is the audit event that caused the message.
	AuditSeq int64 `json:"audit_seq"`
}

// Subscriber turns audit events into outbox messages and signs them for delivery. Webhooks
// (notify: in the registry) and Data Rights Protocol status callbacks are subscribers.
type Subscriber interface {
	// Name is the subscriber's name, the prefix of its messages' Subscriber ("webhook:x").
	Name() string
	// Messages returns the messages ev causes (none for most events). It may read the store
	// (a request's DRP callback), but must not change anything.
	Messages(ctx context.Context, ev AuditEvent) ([]OutboxMessage, error)
	// Headers returns the headers of one delivery attempt of m at now (a signature over the
	// timestamp and body, for instance).
	Headers(m OutboxMessage, now time.Time) (map[string]string, error)
}

// OutboxFilter selects outbox messages for a listing (newest first): of one subscriber, key
// and state when set; After, when set, is the id of the last message of the previous page (the
// listing goes on with older ones); at most Limit (0: a default).
type OutboxFilter struct {
	Subscriber string
	Key        string
	State      OutboxState
	After      int64
	Limit      int
}

// OutboxStore keeps the outbox and the notifier's cursor.
type OutboxStore interface {
	// NotifyCursor returns the audit event sequence up to which the notifier has read.
	NotifyCursor(ctx context.Context) (int64, error)
	// EnqueueOutbox stores msgs and moves the notifier's cursor from `from` to `to`, in one
	// transaction; ECONFLICT when the cursor is no longer at `from` (another notifier ran).
	EnqueueOutbox(ctx context.Context, from, to int64, msgs []OutboxMessage) error
	// LeaseOutbox claims up to n pending messages due now, each the oldest undelivered (pending
	// or dead) of its subscriber and key, for owner until now+lease, and counts an attempt on
	// each. A message whose lease expired may be leased again. Safe with concurrent callers.
	LeaseOutbox(ctx context.Context, owner string, n int, lease time.Duration) ([]OutboxMessage, error)
	// FinishOutbox records one delivery attempt of a leased message: delivered, or pending
	// again at nextAt with errMsg, or dead when dead is set. ENOTFOUND when the lease was lost.
	FinishOutbox(ctx context.Context, id int64, owner string, delivered, dead bool, nextAt time.Time, errMsg string) error
	// OutboxMessages lists messages, newest first.
	OutboxMessages(ctx context.Context, f OutboxFilter) ([]OutboxMessage, error)
	// RetryOutbox makes a dead message pending again, due now with fresh attempts, and audits
	// it (an outbox.retried event by actor), in one transaction. ENOTFOUND; ECONFLICT when the
	// message is not dead.
	RetryOutbox(ctx context.Context, id int64, actor string) (*OutboxMessage, error)
}

// Notifications: the events subscribers are told of, each derived from the audit trail (see
// NotificationOf).
const (
	NotifyRequestCompleted = "request.completed"
	NotifyRequestFailed    = "request.failed"
	NotifyRequestOverdue   = "request.overdue"
	NotifyTaskFailed       = "task.failed"
	NotifySweepFailed      = "sweep.failed"
)

// Notifications lists every notification, in the order the documentation gives them.
var Notifications = []string{NotifyRequestCompleted, NotifyRequestFailed, NotifyRequestOverdue, NotifyTaskFailed, NotifySweepFailed}

// NotificationOf returns the notification an audit event is, if any: request.completed,
// request.failed and request.overdue are their events; task.failed is a task.attempt or a
// task.acked whose outcome is failed; sweep.failed is a sweep's failure.
func NotificationOf(ev AuditEvent) (string, bool) {
	switch ev.Type {
	case EventRequestCompleted:
		return NotifyRequestCompleted, true
	case EventRequestFailed:
		return NotifyRequestFailed, true
	case EventRequestOverdue:
		return NotifyRequestOverdue, true
	case EventSweepFailed:
		return NotifySweepFailed, true
	case EventTaskAttempt, EventTaskAcked:
		var d struct {
			Outcome TaskState `json:"outcome"`
		}
		if json.Unmarshal(ev.Data, &d) == nil && d.Outcome == TaskFailed {
			return NotifyTaskFailed, true
		}
	}
	return "", false
}

// EventOutboxRetried is the audit event of an operator's retry of a dead outbox message.
const EventOutboxRetried = "outbox.retried"

// OutboxService is what the API serves of the outbox: the messages and their delivery state,
// and an operator's retry of a dead one.
type OutboxService interface {
	// OutboxMessages lists messages, newest first; EINVALID for a bad filter.
	OutboxMessages(ctx context.Context, f OutboxFilter) ([]OutboxMessage, error)
	// RetryOutbox makes a dead message pending again; ENOTFOUND, ECONFLICT when it is not dead.
	RetryOutbox(ctx context.Context, id int64, actor string) (*OutboxMessage, error)
}
