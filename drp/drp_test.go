package drp_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"erasure"
)

func TestKeySetup(t *testing.T) {
	h := newHarness(t)
	a := h.agent("AGENT_A")
	a.setup()

	t.Run("TheTokenAuthenticatesTheAgent", func(t *testing.T) {
		code, body := a.send("GET", "/v1/agent/AGENT_A", "", a.token)
		if code != http.StatusOK || strings.TrimSpace(string(body)) != "{}" {
			t.Fatalf("agent information: %d %s, want 200 {}", code, body)
		}
	})
	t.Run("TheTokenIsStoredOnlyAsAHash", func(t *testing.T) {
		var stored string
		if err := h.srv.Store.ReadSQL().QueryRow(`SELECT token_hash FROM drp_agents WHERE agent_id = 'AGENT_A'`).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if stored == a.token || len(stored) != 64 {
			t.Fatalf("token stored as %q", stored)
		}
		files, _ := filepath.Glob(filepath.Join(h.srv.Config.Server.DataDir, "*"))
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil && bytes.Contains(b, []byte(a.token)) {
				t.Errorf("the token is in clear in %s", f)
			}
		}
	})
	t.Run("AnotherAgentsTokenIsRefused", func(t *testing.T) {
		b := h.agent("AGENT_B")
		b.setup()
		if code, body := a.send("GET", "/v1/agent/AGENT_A", "", b.token); code != http.StatusForbidden {
			t.Fatalf("agent information with another agent's token: %d %s, want 403", code, body)
		}
	})
	t.Run("ANewSetUpRetiresTheOldToken", func(t *testing.T) {
		old := a.token
		a.setup()
		if a.token == old {
			t.Fatal("the same token twice")
		}
		if code, _ := a.send("GET", "/v1/agent/AGENT_A", "", old); code != http.StatusForbidden {
			t.Fatalf("the old token: %d, want 403", code)
		}
		if code, _ := a.send("GET", "/v1/agent/AGENT_A", "", a.token); code != http.StatusOK {
			t.Fatalf("the new token: %d, want 200", code)
		}
	})

	// Every failure of the key set-up is a 403 with no body (section 2.05.1).
	replayed := a.sign(a.envelope(nil))
	code, body := a.send("POST", "/v1/agent/AGENT_A", replayed, "")
	var answer struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(body, &answer); code != http.StatusOK || err != nil {
		t.Fatalf("first use of a message: %d %s", code, body)
	}
	a.token = answer.Token
	now := time.Now().UTC()
	for name, tc := range map[string]struct{ path, body string }{
		"UnknownAgent":          {"/v1/agent/NOBODY", h.agent("NOBODY").sign(h.agent("NOBODY").envelope(nil))},
		"BadSignature":          {"/v1/agent/AGENT_A", tamper(a.sign(a.envelope(nil)))},
		"SignedByAnotherAgent":  {"/v1/agent/AGENT_A", h.agent("AGENT_B").sign(a.envelope(nil))},
		"AgentIDOfAnotherAgent": {"/v1/agent/AGENT_A", a.sign(a.envelope(map[string]any{"agent-id": "AGENT_B"}))},
		"AnotherBusiness":       {"/v1/agent/AGENT_A", a.sign(a.envelope(map[string]any{"business-id": "OTHER_CORP"}))},
		"Expired": {"/v1/agent/AGENT_A", a.sign(a.envelope(map[string]any{
			"issued-at": now.Add(-20 * time.Minute).Format(time.RFC3339), "expires-at": now.Add(-10 * time.Minute).Format(time.RFC3339)}))},
		"IssuedInTheFuture": {"/v1/agent/AGENT_A", a.sign(a.envelope(map[string]any{
			"issued-at": now.Add(10 * time.Minute).Format(time.RFC3339), "expires-at": now.Add(15 * time.Minute).Format(time.RFC3339)}))},
		"Replayed":      {"/v1/agent/AGENT_A", replayed},
		"NotBase64":     {"/v1/agent/AGENT_A", "{\"agent-id\":\"AGENT_A\"}"},
		"NotSignedJSON": {"/v1/agent/AGENT_A", base64.StdEncoding.EncodeToString(make([]byte, 80))},
	} {
		t.Run("Refused/"+name, func(t *testing.T) {
			before := a.token
			code, body := a.send("POST", tc.path, tc.body, "")
			if code != http.StatusForbidden || len(body) != 0 {
				t.Fatalf("%d %q, want 403 with no body", code, body)
			}
			if code, _ := a.send("GET", "/v1/agent/AGENT_A", "", before); code != http.StatusOK {
				t.Fatalf("a refused set-up changed the token: %d", code)
			}
		})
	}
}

// tamper flips a bit of a signed body's signature.
func tamper(body string) string {
	b, _ := base64.StdEncoding.DecodeString(body)
	b[10] ^= 1
	return base64.StdEncoding.EncodeToString(b)
}

func TestDeletion(t *testing.T) {
	h := newHarness(t)
	cbs := newCallbacks(t)
	deliverCallbacks(t, h)
	h.startExecutor()
	a := h.agent("AGENT_A")
	a.setup()

	t.Run("CompletesAndIsFulfilled", func(t *testing.T) {
		before := time.Now().UTC().Add(-time.Second)
		code, st, es := a.exercise(deletion("Alice@Example.com", map[string]any{"agent-request-id": "req-1", "status_callback": cbs.url}))
		if code != http.StatusOK {
			t.Fatalf("exercise: %d %s", code, es.Message)
		}
		if st.RequestID == "" || st.AgentRequestID != "req-1" || (st.Status != "in_progress" && st.Status != "fulfilled") {
			t.Fatalf("answer %+v, want in_progress for req-1", st)
		}
		received, err := time.Parse(time.RFC3339, st.ReceivedAt)
		if err != nil || received.Before(before) || received.After(time.Now()) {
			t.Fatalf("received_at %q (%v)", st.ReceivedAt, err)
		}
		expected, err := time.Parse(time.RFC3339, st.ExpectedBy)
		if err != nil || expected.Sub(received) != 45*24*time.Hour {
			t.Fatalf("expected_by %q, want received_at + 45 days (%v)", st.ExpectedBy, err)
		}
		done := a.waitStatus(st.RequestID, "fulfilled", "")
		if done.ExpectedBy != st.ExpectedBy || done.ProcessingDetails == "" {
			t.Errorf("fulfilled status %+v", done)
		}
		if account, profile := h.estate.has("alice@example.com", "7"); account || profile {
			t.Errorf("alice is still held: account %v, profile %v", account, profile)
		}
		if account, profile := h.estate.has("bob@example.com", "8"); !account || !profile {
			t.Errorf("bob was erased too: account %v, profile %v", account, profile)
		}
		got := cbs.wait(t, st.RequestID, "in_progress", "fulfilled")
		for _, cb := range got {
			verifySignature(t, a.token, cb)
			if cb.status.AgentRequestID != "req-1" || cb.status.ReceivedAt != st.ReceivedAt || cb.status.ExpectedBy != st.ExpectedBy {
				t.Errorf("callback %+v does not describe the request", cb.status)
			}
		}
		r, err := h.srv.Service.Request(h.ctx, st.RequestID)
		if err != nil || r.SubmittedBy != "drp:AGENT_A" || r.Reason != "drp ccpa" {
			t.Fatalf("the erasure request: %+v, %v", r, err)
		}
	})
	t.Run("ARetryWithTheSameAgentRequestIDFindsTheRequest", func(t *testing.T) {
		n := len(h.requests())
		_, first, _ := a.status(firstRequest(t, h))
		code, st, es := a.exercise(deletion("alice@example.com", map[string]any{"agent-request-id": "req-1", "status_callback": cbs.url}))
		if code != http.StatusOK || st.RequestID != first.RequestID || st.Status != "fulfilled" {
			t.Fatalf("retry: %d %+v %s, want request %s fulfilled", code, st, es.Message, first.RequestID)
		}
		if len(h.requests()) != n {
			t.Fatalf("a retry made a new erasure request")
		}
		code, _, es = a.exercise(deletion("bob@example.com", map[string]any{"agent-request-id": "req-1"}))
		if code != http.StatusConflict {
			t.Fatalf("the same agent-request-id with other claims: %d %s, want 409", code, es.Message)
		}
	})
	t.Run("NothingMatchesIsDeniedNoMatch", func(t *testing.T) {
		code, st, es := a.exercise(deletion("nobody@example.com", map[string]any{"status_callback": cbs.url}))
		if code != http.StatusOK {
			t.Fatalf("exercise: %d %s", code, es.Message)
		}
		denied := a.waitStatus(st.RequestID, "denied", "no_match")
		if denied.ProcessingDetails == "" || strings.Contains(denied.ProcessingDetails, "nobody") {
			t.Errorf("processing_details %q", denied.ProcessingDetails)
		}
		cbs.wait(t, st.RequestID, "in_progress", "denied/no_match")
		if account, profile := h.estate.has("bob@example.com", "8"); !account || !profile {
			t.Errorf("bob was erased: account %v, profile %v", account, profile)
		}
	})
	t.Run("OtherRightsAreNotCovered", func(t *testing.T) {
		n := len(h.requests())
		code, st, es := a.exercise(map[string]any{"exercise": "sale:opt_out", "email": "bob@example.com", "email_verified": true, "status_callback": cbs.url})
		if code != http.StatusOK || st.Status != "denied" || st.Reason != "claim_not_covered" {
			t.Fatalf("sale:opt_out: %d %+v %s, want denied/claim_not_covered", code, st, es.Message)
		}
		if _, again, _ := a.status(st.RequestID); again != st {
			t.Fatalf("status %+v, want %+v", again, st)
		}
		if len(h.requests()) != n {
			t.Fatal("an opt-out made an erasure request")
		}
	})
	t.Run("UnverifiedClaimsAreNotActedOn", func(t *testing.T) {
		n := len(h.requests())
		code, st, _ := a.exercise(map[string]any{"exercise": "deletion", "email": "bob@example.com"})
		if code != http.StatusOK || st.Status != "denied" || st.Reason != "insuf_verification" {
			t.Fatalf("unverified e-mail: %d %+v, want denied/insuf_verification", code, st)
		}
		code, st, _ = a.exercise(map[string]any{"exercise": "deletion", "name": "Bob"})
		if code != http.StatusOK || st.Status != "denied" || st.Reason != "no_match" {
			t.Fatalf("no claim to match: %d %+v, want denied/no_match", code, st)
		}
		if len(h.requests()) != n {
			t.Fatal("a request without a verified claim made an erasure request")
		}
		if account, _ := h.estate.has("bob@example.com", "8"); !account {
			t.Fatal("bob was erased")
		}
	})
}

// firstRequest returns the id of the oldest erasure request.
func firstRequest(t *testing.T, h *harness) string {
	rs := h.requests()
	if len(rs) == 0 {
		t.Fatal("no request")
	}
	return rs[len(rs)-1].ID
}

func TestRevoke(t *testing.T) {
	h := newHarness(t)
	cbs := newCallbacks(t)
	deliverCallbacks(t, h)
	a := h.agent("AGENT_A")
	a.setup()

	// The executor is not running: the erasure cannot complete before the revoke.
	code, st, es := a.exercise(deletion("alice@example.com", map[string]any{"status_callback": cbs.url}))
	if code != http.StatusOK || st.Status != "in_progress" {
		t.Fatalf("exercise: %d %+v %s", code, st, es.Message)
	}
	code, revoked, es := a.revoke(st.RequestID)
	if code != http.StatusOK || revoked.Status != "revoked" || revoked.RequestID != st.RequestID {
		t.Fatalf("revoke: %d %+v %s, want revoked", code, revoked, es.Message)
	}
	a.waitStatus(st.RequestID, "revoked", "")
	cbs.wait(t, st.RequestID, "in_progress", "revoked")

	t.Run("NothingIsErased", func(t *testing.T) {
		h.startExecutor()
		code, other, _ := a.exercise(deletion("bob@example.com", nil))
		if code != http.StatusOK {
			t.Fatalf("exercise: %d", code)
		}
		a.waitStatus(other.RequestID, "fulfilled", "") // the executor runs
		if account, profile := h.estate.has("alice@example.com", "7"); !account || !profile {
			t.Fatalf("alice was erased after the revoke: account %v, profile %v", !account, !profile)
		}
		r, err := h.srv.Service.Request(h.ctx, st.RequestID)
		if err != nil || r.Status != erasure.RequestCancelled {
			t.Fatalf("the erasure request: %v %v, want cancelled", r, err)
		}
		t.Run("AFulfilledRequestCannotBeRevoked", func(t *testing.T) {
			code, _, es := a.revoke(other.RequestID)
			if code != http.StatusConflict {
				t.Fatalf("revoke of a fulfilled request: %d %s, want 409", code, es.Message)
			}
			a.waitStatus(other.RequestID, "fulfilled", "")
		})
	})
	t.Run("RevokingAgainAnswersRevoked", func(t *testing.T) {
		if code, st, es := a.revoke(st.RequestID); code != http.StatusOK || st.Status != "revoked" {
			t.Fatalf("second revoke: %d %+v %s", code, st, es.Message)
		}
	})
}

func TestRefusals(t *testing.T) {
	h := newHarness(t)
	a, b := h.agent("AGENT_A"), h.agent("AGENT_B")
	a.setup()
	b.setup()
	code, mine, _ := a.exercise(deletion("alice@example.com", nil))
	if code != http.StatusOK {
		t.Fatalf("exercise: %d", code)
	}
	requests := len(h.requests())
	now := time.Now().UTC()
	post := func(ag *agent, body, token string) (int, errorState) {
		code, _, es := decodeAnswer(t)(ag.send("POST", "/v1/data-rights-request", body, token))
		return code, es
	}
	replayed := a.sign(a.envelope(deletion("bob@example.com", nil)))
	if code, es := post(a, replayed, a.token); code != http.StatusOK {
		t.Fatalf("first use: %d %s", code, es.Message)
	}
	requests++
	for name, tc := range map[string]struct {
		body, token string
		want        int
		fatal       bool
	}{
		"BadSignature":       {tamper(a.sign(a.envelope(deletion("bob@example.com", nil)))), a.token, http.StatusForbidden, false},
		"AnotherAgentsToken": {b.sign(b.envelope(deletion("bob@example.com", nil))), a.token, http.StatusForbidden, false},
		"AgentIDOfAnother":   {a.sign(a.envelope(deletion("bob@example.com", map[string]any{"agent-id": "AGENT_B"}))), a.token, http.StatusForbidden, false},
		"Expired": {a.sign(a.envelope(deletion("bob@example.com", map[string]any{
			"issued-at": now.Add(-20 * time.Minute).Format(time.RFC3339), "expires-at": now.Add(-10 * time.Minute).Format(time.RFC3339)}))), a.token, http.StatusForbidden, true},
		"IssuedInTheFuture": {a.sign(a.envelope(deletion("bob@example.com", map[string]any{
			"issued-at": now.Add(10 * time.Minute).Format(time.RFC3339), "expires-at": now.Add(15 * time.Minute).Format(time.RFC3339)}))), a.token, http.StatusForbidden, false},
		"LivesTooLong": {a.sign(a.envelope(deletion("bob@example.com", map[string]any{
			"expires-at": now.Add(48 * time.Hour).Format(time.RFC3339)}))), a.token, http.StatusForbidden, false},
		"Replayed":               {replayed, a.token, http.StatusConflict, false},
		"AnotherBusinessID":      {a.sign(a.envelope(deletion("bob@example.com", map[string]any{"business-id": "OTHER_CORP"}))), a.token, http.StatusForbidden, false},
		"UnknownAgent":           {h.agent("NOBODY").sign(h.agent("NOBODY").envelope(deletion("bob@example.com", nil))), "made-up-token-0123456789abcdef0123456789", http.StatusForbidden, false},
		"NoToken":                {a.sign(a.envelope(deletion("bob@example.com", nil))), "", http.StatusForbidden, false},
		"UnsupportedRight":       {a.sign(a.envelope(map[string]any{"exercise": "teleport"})), a.token, http.StatusBadRequest, false},
		"NoExercise":             {a.sign(a.envelope(map[string]any{"email": "bob@example.com"})), a.token, http.StatusBadRequest, false},
		"CallbackNotHTTP":        {a.sign(a.envelope(deletion("bob@example.com", map[string]any{"status_callback": "ftp://agent.example/x"}))), a.token, http.StatusBadRequest, false},
		"ClaimNotAString":        {a.sign(a.envelope(map[string]any{"exercise": "deletion", "email": 42, "email_verified": true})), a.token, http.StatusBadRequest, false},
		"UnsupportedDRPVersion":  {a.sign(a.envelope(deletion("bob@example.com", map[string]any{"drp.version": "2.0"}))), a.token, http.StatusBadRequest, false},
		"NotBase64":              {`{"exercise":"deletion"}`, a.token, http.StatusBadRequest, false},
		"MissingExpiry":          {a.sign(a.envelope(deletion("bob@example.com", map[string]any{"expires-at": nil}))), a.token, http.StatusForbidden, false},
		"TimestampNotISO8601":    {a.sign(a.envelope(deletion("bob@example.com", map[string]any{"issued-at": "yesterday"}))), a.token, http.StatusForbidden, false},
		"AgentRequestIDTooLong":  {a.sign(a.envelope(deletion("bob@example.com", map[string]any{"agent-request-id": strings.Repeat("x", 201)}))), a.token, http.StatusBadRequest, false},
		"PhoneThatIsNoNumber":    {a.sign(a.envelope(map[string]any{"exercise": "deletion", "phone_number": "call me", "phone_number_verified": true})), a.token, http.StatusBadRequest, false},
		"AnOversizedMessageBody": {strings.Repeat("A", 70<<10), a.token, http.StatusRequestEntityTooLarge, false},
	} {
		t.Run(name, func(t *testing.T) {
			code, es := post(a, tc.body, tc.token)
			if code != tc.want || es.Fatal != tc.fatal {
				t.Fatalf("%d %+v, want %d (fatal %v)", code, es, tc.want, tc.fatal)
			}
			if strings.Contains(es.Message, "bob@example.com") {
				t.Errorf("the message holds a claim: %s", es.Message)
			}
		})
	}
	if got := len(h.requests()); got != requests {
		t.Errorf("%d erasure requests after the refusals, want %d", got, requests)
	}
	t.Run("AnotherAgentsRequestIsForbidden", func(t *testing.T) {
		if code, _, _ := b.status(mine.RequestID); code != http.StatusForbidden {
			t.Fatalf("status of another agent's request: %d, want 403", code)
		}
		if code, _, _ := b.status("r_00000000000000000000000000"); code != http.StatusForbidden {
			t.Fatalf("status of no request: %d, want 403", code)
		}
		if code, _, _ := b.revoke(mine.RequestID); code != http.StatusForbidden {
			t.Fatalf("revoke of another agent's request: %d, want 403", code)
		}
		a.waitStatus(mine.RequestID, "in_progress", "")
	})
	t.Run("RevokeRefusals", func(t *testing.T) {
		for name, body := range map[string]string{
			"BadSignature":    tamper(a.sign(a.envelope(nil))),
			"Expired":         a.sign(a.envelope(map[string]any{"issued-at": now.Add(-20 * time.Minute).Format(time.RFC3339), "expires-at": now.Add(-10 * time.Minute).Format(time.RFC3339)})),
			"AnotherBusiness": a.sign(a.envelope(map[string]any{"business-id": "OTHER_CORP"})),
			"OnlyAReason":     a.sign(map[string]any{"reason": "I changed my mind"}),
			"OtherRequestID":  a.sign(a.envelope(map[string]any{"request_id": "r_other"})),
		} {
			t.Run(name, func(t *testing.T) {
				code, _, es := decodeAnswer(t)(a.send("DELETE", "/v1/data-rights-request/"+mine.RequestID, body, a.token))
				if code/100 != 4 {
					t.Fatalf("%d %s, want a refusal", code, es.Message)
				}
			})
		}
		a.waitStatus(mine.RequestID, "in_progress", "")
		body := a.sign(a.envelope(nil))
		if code, _, es := decodeAnswer(t)(a.send("DELETE", "/v1/data-rights-request/"+mine.RequestID, body, a.token)); code != http.StatusOK {
			t.Fatalf("revoke: %d %s", code, es.Message)
		}
		if code, _, _ := decodeAnswer(t)(a.send("DELETE", "/v1/data-rights-request/"+mine.RequestID, body, a.token)); code != http.StatusConflict {
			t.Fatalf("replayed revoke: %d, want 409", code)
		}
	})
}

// TestOpenRequest: a request recorded whose erasure request was never submitted (the server
// stopped between the two) is open; revoking it closes it, and the agent's retry then finds it
// revoked rather than submitting it.
func TestOpenRequest(t *testing.T) {
	h := newHarness(t)
	a := h.agent("AGENT_A")
	a.setup()
	now := time.Now().UTC()
	rec := erasure.DRPRequest{ID: "r_06h36gf6hch85xyh3r89547f99", AgentID: "AGENT_A", AgentKey: "id:crashed-1", AgentRequestID: "crashed-1",
		Exercise: "deletion", ReceivedAt: now, ExpectedBy: now.Add(45 * 24 * time.Hour)}
	if _, _, err := h.srv.Store.CreateDRPRequest(h.ctx, rec, erasure.DRPMessage{Hash: "crashed", ExpiresAt: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if _, st, _ := a.status(rec.ID); st.Status != "open" || st.AgentRequestID != "crashed-1" {
		t.Fatalf("status %+v, want open", st)
	}
	if code, st, es := a.revoke(rec.ID); code != http.StatusOK || st.Status != "revoked" {
		t.Fatalf("revoke: %d %+v %s", code, st, es.Message)
	}
	code, st, _ := a.exercise(deletion("alice@example.com", map[string]any{"agent-request-id": "crashed-1"}))
	if code != http.StatusOK || st.RequestID != rec.ID || st.Status != "revoked" {
		t.Fatalf("retry: %d %+v, want request %s revoked", code, st, rec.ID)
	}
	if n := len(h.requests()); n != 0 {
		t.Fatalf("%d erasure requests, want none", n)
	}
}

// TestRetryAfterAnInterruptedSubmission: the agent's retry submits the erasure of a request
// recorded before the server stopped.
func TestRetryAfterAnInterruptedSubmission(t *testing.T) {
	h := newHarness(t)
	h.startExecutor()
	a := h.agent("AGENT_A")
	a.setup()
	now := time.Now().UTC()
	rec := erasure.DRPRequest{ID: "r_06h36gf6hch85xyh3r89547f98", AgentID: "AGENT_A", AgentKey: "id:crashed-2", AgentRequestID: "crashed-2",
		Exercise: "deletion", ReceivedAt: now, ExpectedBy: now.Add(45 * 24 * time.Hour)}
	if _, _, err := h.srv.Store.CreateDRPRequest(h.ctx, rec, erasure.DRPMessage{Hash: "crashed", ExpiresAt: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	code, st, es := a.exercise(deletion("alice@example.com", map[string]any{"agent-request-id": "crashed-2"}))
	if code != http.StatusOK || st.RequestID != rec.ID {
		t.Fatalf("retry: %d %+v %s, want request %s", code, st, es.Message, rec.ID)
	}
	a.waitStatus(rec.ID, "fulfilled", "")
	if account, _ := h.estate.has("alice@example.com", "7"); account {
		t.Fatal("alice is still held")
	}
}
