package drp

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"erasure"
)

// SubscriberName is the name of the DRP subscriber; its messages' Subscriber is
// "drp:<agent-id>".
const SubscriberName = "drp"

// SignatureHeader is the header that signs a status callback (see the package documentation).
const SignatureHeader = "X-DRP-Signature"

// Subscriber turns the audit events of DRP requests into status callbacks (erasure.Subscriber):
// one message per status change of a request that has a status_callback, whose body is the
// Exercise Status the event leads to.
type Subscriber struct{ s *Server }

var _ erasure.Subscriber = (*Subscriber)(nil)

// Subscriber returns the status callbacks' subscriber, for the outbox's notifier.
func (s *Server) Subscriber() *Subscriber { return &Subscriber{s: s} }

// Name implements erasure.Subscriber.
func (sub *Subscriber) Name() string { return SubscriberName }

// Messages implements erasure.Subscriber. The status is the one the event leads to (not the
// request's status when the notifier reads it, which may be later), so that an agent sees
// every change, in order: request.submitted and request.retried → in_progress,
// request.completed → fulfilled or denied / no_match, request.failed → denied / other,
// request.cancelled → revoked (by the agent) or denied / other (by the business). Events of
// requests that did not come from DRP, or have no status_callback, cause none.
func (sub *Subscriber) Messages(ctx context.Context, ev erasure.AuditEvent) ([]erasure.OutboxMessage, error) {
	switch ev.Type {
	case erasure.EventRequestSubmitted, erasure.EventRequestRetried, erasure.EventRequestCompleted,
		erasure.EventRequestFailed, erasure.EventRequestCancelled:
	default:
		return nil, nil
	}
	if ev.RequestID == "" {
		return nil, nil
	}
	s := sub.s
	rec, err := s.cfg.Store.DRPRequest(ctx, ev.RequestID)
	if erasure.ErrorCode(err) == erasure.ENOTFOUND {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	if rec.StatusCallback == "" || rec.Status != "" {
		return nil, nil
	}
	var st ExerciseStatus
	switch ev.Type {
	case erasure.EventRequestSubmitted, erasure.EventRequestRetried:
		st = inProgress(rec, nil)
	case erasure.EventRequestFailed:
		st = failed(rec, nil)
	case erasure.EventRequestCancelled:
		st = cancelled(rec, nil, ev.Actor)
	case erasure.EventRequestCompleted:
		// Completed is final: the request read now is the request that completed.
		req, err := s.cfg.Service.Request(ctx, rec.ID)
		if err != nil {
			return nil, err
		}
		if st, err = s.completed(ctx, rec, req); err != nil {
			return nil, err
		}
	}
	body, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	return []erasure.OutboxMessage{{
		Subscriber: SubscriberName + ":" + rec.AgentID, Key: rec.ID, Event: ev.Type, URL: rec.StatusCallback, Body: body,
		State: erasure.OutboxPending, NextAt: ev.Time, CreatedAt: ev.Time, AuditSeq: ev.Seq,
	}}, nil
}

// Headers implements erasure.Subscriber: the body is JSON, signed with the agent's callback
// key (derived from its current token) over the time of the attempt and the body. An agent
// without a token any more gets its callbacks unsigned.
func (sub *Subscriber) Headers(m erasure.OutboxMessage, now time.Time) (map[string]string, error) {
	h := map[string]string{"Content-Type": "application/json"}
	agent, ok := strings.CutPrefix(m.Subscriber, SubscriberName+":")
	if !ok {
		return nil, erasure.Errorf(erasure.EINVALID, "message %d is not a DRP callback (subscriber %q)", m.ID, m.Subscriber)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	k, err := sub.s.cfg.Store.DRPAgentKey(ctx, agent)
	if erasure.ErrorCode(err) == erasure.ENOTFOUND {
		return h, nil
	} else if err != nil {
		return nil, err
	}
	key, err := hex.DecodeString(k.CallbackKey)
	if err != nil {
		return nil, erasure.Errorf(erasure.EINTERNAL, "agent %s: callback key is not hex", agent)
	}
	h[SignatureHeader] = signCallback(key, now.Unix(), m.Body)
	return h, nil
}

// signCallback returns the signature header's value for body at unix time t.
func signCallback(key []byte, t int64, body []byte) string {
	ts := strconv.FormatInt(t, 10)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}
