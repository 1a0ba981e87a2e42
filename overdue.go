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
