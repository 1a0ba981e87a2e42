package drp_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"erasure"
)

// messagesOf returns what sub makes of every audit event of request id, by event type.
func messagesOf(t *testing.T, h *harness, id string) map[string][]erasure.OutboxMessage {
	t.Helper()
	evs, err := h.srv.Store.Audit(h.ctx, erasure.AuditFilter{RequestID: id})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]erasure.OutboxMessage{}
	for _, ev := range evs {
		msgs, err := h.srv.DRP.Subscriber().Messages(h.ctx, ev)
		if err != nil {
			t.Fatalf("Messages(%s): %v", ev.Type, err)
		}
		for _, m := range msgs {
			if m.AuditSeq != ev.Seq || m.Event != ev.Type {
				t.Errorf("message of event %d %s names event %d %s", ev.Seq, ev.Type, m.AuditSeq, m.Event)
			}
		}
		if len(msgs) > 0 {
			out[ev.Type] = append(out[ev.Type], msgs...)
		}
	}
	return out
}

func bodyOf(t *testing.T, m erasure.OutboxMessage) exerciseStatus {
	t.Helper()
	var st exerciseStatus
	if err := json.Unmarshal(m.Body, &st); err != nil {
		t.Fatalf("body %s: %v", m.Body, err)
	}
	return st
}

func TestSubscriber(t *testing.T) {
	h := newHarness(t)
	h.startExecutor()
	a := h.agent("AGENT_A")
	a.setup()
	sub := h.srv.DRP.Subscriber()
	if sub.Name() != "drp" {
		t.Errorf("Name = %q", sub.Name())
	}
	const callbackURL = "http://127.0.0.1:1/status"
	_, st, _ := a.exercise(deletion("alice@example.com", map[string]any{"status_callback": callbackURL, "agent-request-id": "sub-1"}))
	a.waitStatus(st.RequestID, "fulfilled", "")

	t.Run("ACallbackPerStatusChange", func(t *testing.T) {
		got := messagesOf(t, h, st.RequestID)
		submitted, completed := got[erasure.EventRequestSubmitted], got[erasure.EventRequestCompleted]
		if len(submitted) != 1 || len(completed) != 1 {
			t.Fatalf("messages by event: %v, want one for request.submitted and one for request.completed", got)
		}
		n := 0
		for _, msgs := range got {
			n += len(msgs)
		}
		if n != 2 {
			t.Errorf("%d messages in all, want 2 (task events, the DRP record and subject.hashed cause none)", n)
		}
		for _, m := range append(submitted, completed...) {
			if m.Subscriber != "drp:AGENT_A" || m.Key != st.RequestID || m.URL != callbackURL || m.State != erasure.OutboxPending {
				t.Errorf("message %+v", m)
			}
			if strings.Contains(string(m.Body), "alice") {
				t.Errorf("a callback holds an identifier: %s", m.Body)
			}
		}
		if b := bodyOf(t, submitted[0]); b.Status != "in_progress" || b.RequestID != st.RequestID || b.AgentRequestID != "sub-1" || b.ExpectedBy == "" {
			t.Errorf("request.submitted → %+v, want in_progress", b)
		}
		if b := bodyOf(t, completed[0]); b.Status != "fulfilled" || b.Reason != "" {
			t.Errorf("request.completed → %+v, want fulfilled", b)
		}
	})
	t.Run("StatusFollowsTheEvent", func(t *testing.T) {
		evs, _ := h.srv.Store.Audit(h.ctx, erasure.AuditFilter{RequestID: st.RequestID})
		base := evs[0]
		for _, tc := range []struct{ typ, actor, want string }{
			{erasure.EventRequestFailed, "pipeline", "denied/other"},
			{erasure.EventRequestRetried, "operator", "in_progress"},
			{erasure.EventRequestCancelled, "drp:AGENT_A", "revoked"},
			{erasure.EventRequestCancelled, "operator", "denied/other"},
		} {
			ev := base
			ev.Type, ev.Actor = tc.typ, tc.actor
			msgs, err := sub.Messages(h.ctx, ev)
			if err != nil || len(msgs) != 1 {
				t.Fatalf("%s by %s: %d messages, %v", tc.typ, tc.actor, len(msgs), err)
			}
			b := bodyOf(t, msgs[0])
			got := b.Status
			if b.Reason != "" {
				got += "/" + b.Reason
			}
			if got != tc.want {
				t.Errorf("%s by %s → %s, want %s", tc.typ, tc.actor, got, tc.want)
			}
			if strings.HasPrefix(tc.want, "denied") && b.ProcessingDetails == "" {
				t.Errorf("%s → no processing_details", tc.typ)
			}
		}
	})
	t.Run("NoneForOtherRequests", func(t *testing.T) {
		r, _, err := h.srv.Service.Submit(h.ctx, erasure.Submission{Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: "8"}), Reason: "user_request", Actor: "intake"})
		if err != nil {
			t.Fatal(err)
		}
		_, noCallback, _ := a.exercise(deletion("bob@example.com", nil))
		for _, id := range []string{r.ID, noCallback.RequestID} {
			if got := messagesOf(t, h, id); len(got) != 0 {
				t.Errorf("request %s: messages %v, want none", id, got)
			}
		}
	})
	t.Run("HeadersSignTheBody", func(t *testing.T) {
		m := messagesOf(t, h, st.RequestID)[erasure.EventRequestCompleted][0]
		hdr, err := sub.Headers(m, time.Now())
		if err != nil || hdr["Content-Type"] != "application/json" {
			t.Fatalf("Headers = %v, %v", hdr, err)
		}
		verifySignature(t, a.token, callback{body: m.Body, signature: hdr["X-DRP-Signature"]})
		m.Body = []byte(`{"request_id":"` + st.RequestID + `","status":"revoked"}`)
		if signatureValid(a.token, callback{body: m.Body, signature: hdr["X-DRP-Signature"]}) {
			t.Error("the signature verifies over another body")
		}
		m.Subscriber = "drp:AGENT_B" // no token set up
		if hdr, err := sub.Headers(m, time.Now()); err != nil || len(hdr) != 1 {
			t.Errorf("an agent without a token: %v, %v; want the content type alone", hdr, err)
		}
		m.Subscriber = "webhook:x"
		if _, err := sub.Headers(m, time.Now()); err == nil {
			t.Error("a message of another subscriber was given headers")
		}
	})
}

func TestStatusOfFailedAndCancelledErasures(t *testing.T) {
	h := newHarness(t)
	h.estate.failProfiles = true
	h.startExecutor()
	a := h.agent("AGENT_A")
	a.setup()
	_, st, _ := a.exercise(deletion("alice@example.com", nil))
	failed := a.waitStatus(st.RequestID, "denied", "other")
	if failed.ProcessingDetails == "" || strings.Contains(failed.ProcessingDetails, "read-only") {
		t.Errorf("processing_details %q: want words for a person, not the dataset's error", failed.ProcessingDetails)
	}
	h.estate.mu.Lock()
	h.estate.failProfiles = false
	h.estate.mu.Unlock()
	if _, err := h.srv.Service.Retry(h.ctx, st.RequestID, "operator", erasure.RetryOptions{}); err != nil {
		t.Fatal(err)
	}
	a.waitStatus(st.RequestID, "fulfilled", "")

}

func TestStatusOfAnErasureTheBusinessCancelled(t *testing.T) {
	h := newHarness(t) // no executor: the request stays in progress until cancelled
	a := h.agent("AGENT_A")
	a.setup()
	_, st, _ := a.exercise(deletion("bob@example.com", nil))
	if _, err := h.srv.Service.Cancel(h.ctx, st.RequestID, "operator"); err != nil {
		t.Fatal(err)
	}
	cancelled := a.waitStatus(st.RequestID, "denied", "other")
	if cancelled.ProcessingDetails == "" {
		t.Error("no processing_details")
	}
	if code, _, _ := a.revoke(st.RequestID); code != 409 {
		t.Errorf("revoke of a request the business cancelled: %d, want 409", code)
	}
}
