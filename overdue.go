package erasure

import (
	"context"
	"time"
)

// OverdueStore marks the requests that passed their deadline while open, once each, so that
// the audit trail (and through it the notifications) tells of it: a request.overdue event.
type OverdueStore interface {
	// MarkOverdue finds up to limit open requests past their deadline that were never marked,
	// marks them and appends an OverdueEvent for each, in one transaction, and returns their
	// ids (none when every overdue request is marked). Safe with concurrent callers: a request
	// is marked once.
	MarkOverdue(ctx context.Context, limit int) ([]string, error)
}

// OverdueEvent is the request.overdue event of request id, open in status, whose deadline
// passed, seen at now.
func OverdueEvent(id string, status RequestStatus, deadline, now time.Time) AuditEvent {
	return AuditEvent{Time: now.UTC().Truncate(time.Millisecond), Actor: "pipeline", Type: EventRequestOverdue, RequestID: id,
		Data: EventData(map[string]any{"status": status, "deadline": deadline.UTC(), "late": FormatDuration(now.Sub(deadline).Truncate(time.Second))})}
}

// RequestIDStore finds requests by the first characters of their id, so that people may type
// a unique prefix of one.
type RequestIDStore interface {
	// RequestIDsWithPrefix returns up to limit ids starting with prefix, in id order.
	RequestIDsWithPrefix(ctx context.Context, prefix string, limit int) ([]string, error)
}

// WriteProbe is a store that can tell whether it can write: readiness means being able to
// take requests, which a store that answers reads but cannot commit cannot.
type WriteProbe interface {
	// ProbeWrite commits a small write; EUNAVAILABLE (or the driver's error) when it cannot.
	ProbeWrite(ctx context.Context) error
}
