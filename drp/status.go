package drp

import (
	"context"
	"encoding/json"
	"time"

	"erasure"
)

// Status is a request state of section 3.02.
type Status string

const (
	StatusOpen       Status = "open"
	StatusInProgress Status = "in_progress"
	StatusFulfilled  Status = "fulfilled"
	StatusRevoked    Status = "revoked"
	StatusDenied     Status = "denied"
	StatusExpired    Status = "expired"
)

// Reason is a reason of section 3.02, given with some states.
type Reason string

const (
	ReasonNeedUserVerification Reason = "need_user_verification"
	ReasonSuspectedFraud       Reason = "suspected_fraud"
	ReasonInsufVerification    Reason = "insuf_verification"
	ReasonNoMatch              Reason = "no_match"
	ReasonClaimNotCovered      Reason = "claim_not_covered"
	ReasonOutsideJurisdiction  Reason = "outside_jurisdiction"
	ReasonTooManyRequests      Reason = "too_many_requests"
	ReasonOther                Reason = "other"
)

// ExerciseStatus is the Exercise Status object of section 3.03: the answer of every data
// rights request endpoint and the body of status callbacks.
type ExerciseStatus struct {
	RequestID      string `json:"request_id"`
	AgentRequestID string `json:"agent_request_id,omitempty"`
	Status         Status `json:"status"`
	Reason         Reason `json:"reason,omitempty"`
	// ReceivedAt is when the request was received; ExpectedBy when it is expected done (set
	// from in_progress on).
	ReceivedAt        time.Time  `json:"received_at"`
	ExpectedBy        *time.Time `json:"expected_by,omitempty"`
	ProcessingDetails string     `json:"processing_details,omitempty"`
}

// Exercises are the rights of section 3.01 (and the older spelling sale:opt-out).
var Exercises = []string{"deletion", "access", "access:categories", "access:specific", "sale:opt_out", "sale:opt_in", "sale:opt-out", "sale:opt-in"}

// What processing_details say, for a person: no identifier, no internal detail.
const (
	detailsFulfilled     = "The business has deleted the personal data it held about you."
	detailsNoMatch       = "The business found no personal data matching the identity provided."
	detailsNoClaim       = "The request carries no identity this business can look for: it acts on %s."
	detailsUnverified    = "The identity provided was not verified, and this business acts only on verified identities."
	detailsNotCovered    = "This business answers only deletion requests through this channel."
	detailsFailed        = "The deletion could not be completed everywhere yet. The business has been alerted and is working on it."
	detailsCancelled     = "The business stopped processing this request."
	detailsRevokedBefore = "The request was revoked before processing started."
)

// base returns the status fields every answer about r has.
func base(r *erasure.DRPRequest) ExerciseStatus {
	return ExerciseStatus{RequestID: r.ID, AgentRequestID: r.AgentRequestID, ReceivedAt: r.ReceivedAt.UTC()}
}

// withDeadline returns st with expected_by, from in_progress on.
func withDeadline(st ExerciseStatus, r *erasure.DRPRequest, req *erasure.Request) ExerciseStatus {
	e := r.ExpectedBy.UTC()
	if req != nil && !req.Deadline.IsZero() {
		e = req.Deadline.UTC()
	}
	st.ExpectedBy = &e
	return st
}

// statusOf returns the current status of r: its own when it was answered without an erasure,
// open before its erasure request exists, else derived from the erasure request.
func (s *Server) statusOf(ctx context.Context, r *erasure.DRPRequest) (ExerciseStatus, error) {
	st := base(r)
	if r.Status != "" {
		st.Status, st.Reason, st.ProcessingDetails = Status(r.Status), Reason(r.Reason), r.Details
		return st, nil
	}
	req, err := s.cfg.Service.Request(ctx, r.ID)
	if erasure.ErrorCode(err) == erasure.ENOTFOUND {
		st.Status = StatusOpen
		return st, nil
	} else if err != nil {
		return ExerciseStatus{}, err
	}
	switch req.Status {
	case erasure.RequestCompleted:
		return s.completed(ctx, r, req)
	case erasure.RequestFailed:
		return failed(r, req), nil
	case erasure.RequestCancelled:
		by, err := s.cancelledBy(ctx, r.ID)
		if err != nil {
			return ExerciseStatus{}, err
		}
		return cancelled(r, req, by), nil
	}
	return inProgress(r, req), nil
}

func inProgress(r *erasure.DRPRequest, req *erasure.Request) ExerciseStatus {
	st := withDeadline(base(r), r, req)
	st.Status = StatusInProgress
	return st
}

func failed(r *erasure.DRPRequest, req *erasure.Request) ExerciseStatus {
	st := withDeadline(base(r), r, req)
	st.Status, st.Reason, st.ProcessingDetails = StatusDenied, ReasonOther, detailsFailed
	return st
}

// cancelled is the status of a cancelled erasure: revoked when the agent revoked it, denied
// when the business cancelled it.
func cancelled(r *erasure.DRPRequest, req *erasure.Request, by string) ExerciseStatus {
	st := withDeadline(base(r), r, req)
	if by == actor(r.AgentID) {
		st.Status = StatusRevoked
		return st
	}
	st.Status, st.Reason, st.ProcessingDetails = StatusDenied, ReasonOther, detailsCancelled
	return st
}

// completed is the status of a completed erasure: fulfilled, or denied / no_match when
// nothing of the subject was found (see the package documentation).
func (s *Server) completed(ctx context.Context, r *erasure.DRPRequest, req *erasure.Request) (ExerciseStatus, error) {
	st := withDeadline(base(r), r, req)
	st.Status, st.ProcessingDetails = StatusFulfilled, detailsFulfilled
	if !erasedNothing(req) {
		return st, nil
	}
	grew, err := s.subjectGrew(ctx, req)
	if err != nil || grew {
		return st, err
	}
	st.Status, st.Reason, st.ProcessingDetails = StatusDenied, ReasonNoMatch, detailsNoMatch
	return st, nil
}

// erasedNothing reports whether no erase task of req erased anything it counts: each was
// skipped, or done with nothing removed by a dataset that counts per subject (not offline:
// a sweep counts its rows for every subject at once).
func erasedNothing(req *erasure.Request) bool {
	for _, t := range req.Tasks {
		if t.Kind != erasure.TaskErase {
			continue
		}
		switch {
		case t.State == erasure.TaskSkipped:
		case t.State == erasure.TaskDone && t.Removed == 0 && t.Method != erasure.MethodOffline:
		default:
			return false
		}
	}
	return true
}

// subjectGrew reports whether lookups found identifiers of req's subject beyond those
// submitted (the submission's audit event lists those).
func (s *Server) subjectGrew(ctx context.Context, req *erasure.Request) (bool, error) {
	ev, err := s.event(ctx, req.ID, erasure.EventRequestSubmitted)
	if err != nil {
		return false, err
	} else if ev == nil {
		return false, erasure.Errorf(erasure.EINTERNAL, "request %s has no submission event", req.ID)
	}
	var d struct {
		Subject []string `json:"subject"`
	}
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		return false, err
	}
	return len(req.SubjectHashes) > len(d.Subject), nil
}

// cancelledBy returns the actor of the request.cancelled event of request id ("" when none).
func (s *Server) cancelledBy(ctx context.Context, id string) (string, error) {
	ev, err := s.event(ctx, id, erasure.EventRequestCancelled)
	if err != nil || ev == nil {
		return "", err
	}
	return ev.Actor, nil
}

// event returns the first audit event of type typ of request id, nil when there is none.
func (s *Server) event(ctx context.Context, id, typ string) (*erasure.AuditEvent, error) {
	const page = 1000
	after := int64(0)
	for {
		evs, err := s.cfg.Service.Audit(ctx, erasure.AuditFilter{RequestID: id, After: after, Limit: page})
		if err != nil {
			return nil, err
		}
		for i := range evs {
			if evs[i].Type == typ {
				return &evs[i], nil
			}
		}
		if len(evs) < page {
			return nil, nil
		}
		after = evs[len(evs)-1].Seq
	}
}
