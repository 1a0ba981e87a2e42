package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"erasure"
)

// DRPStore is a store that also keeps the Data Rights Protocol's state.
type DRPStore interface {
	erasure.Store
	erasure.DRPStore
}

// DRPOpener opens a fresh empty DRP store whose clock is now.
type DRPOpener func(t *testing.T, now func() time.Time) DRPStore

// RunDRP runs the conformance cases of erasure.DRPStore.
func RunDRP(t *testing.T, open DRPOpener) {
	t.Run("AgentKeyReplacesTheOneBefore", func(t *testing.T) { testDRPAgentKey(t, open) })
	t.Run("MessageAcceptedOnceUntilItExpires", func(t *testing.T) { testDRPMessages(t, open) })
	t.Run("RequestOncePerAgentAndKey", func(t *testing.T) { testDRPCreate(t, open) })
	t.Run("RacingCreatesMakeOneRequest", func(t *testing.T) { testDRPCreateRace(t, open) })
	t.Run("CloseOnlyWithoutErasure", func(t *testing.T) { testDRPClose(t, open) })
}

var drpMsgSeq int

// drpMessage returns a message never used before, expiring in ten minutes.
func drpMessage(c *Clock) erasure.DRPMessage {
	drpMsgSeq++
	return erasure.DRPMessage{Hash: fmt.Sprintf("msg-%d-%d", c.Now().UnixNano(), drpMsgSeq), ExpiresAt: c.Now().Add(10 * time.Minute)}
}

// auditTypes returns the types of the events of request id (every event when id is "").
func auditTypes(t *testing.T, s erasure.Store, id string) []string {
	t.Helper()
	evs, err := s.Audit(context.Background(), erasure.AuditFilter{RequestID: id})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Type)
	}
	return out
}

func count(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

func testDRPAgentKey(t *testing.T, open DRPOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	if _, err := s.DRPAgentKey(ctx, "AGENT_A"); erasure.ErrorCode(err) != erasure.ENOTFOUND {
		t.Fatalf("agent without a key: %v, want not found", err)
	}
	first := erasure.DRPAgentKey{AgentID: "AGENT_A", TokenHash: "hash-1", CallbackKey: "cb-1"}
	m := drpMessage(c)
	if err := s.SetDRPAgentKey(ctx, first, m); err != nil {
		t.Fatal(err)
	}
	k, err := s.DRPAgentByToken(ctx, "hash-1")
	if err != nil || k.AgentID != "AGENT_A" || k.CallbackKey != "cb-1" || !k.CreatedAt.Equal(c.Now()) {
		t.Fatalf("DRPAgentByToken = %+v, %v", k, err)
	}
	t.Run("TheSameMessageChangesNothing", func(t *testing.T) {
		again := erasure.DRPAgentKey{AgentID: "AGENT_A", TokenHash: "hash-x", CallbackKey: "cb-x"}
		if err := s.SetDRPAgentKey(ctx, again, m); erasure.ErrorCode(err) != erasure.ECONFLICT {
			t.Fatalf("replayed message: %v, want conflict", err)
		}
		if _, err := s.DRPAgentByToken(ctx, "hash-x"); erasure.ErrorCode(err) != erasure.ENOTFOUND {
			t.Fatalf("a replayed set-up installed its token: %v", err)
		}
	})
	t.Run("ANewKeyRetiresTheOld", func(t *testing.T) {
		c.Add(time.Second)
		if err := s.SetDRPAgentKey(ctx, erasure.DRPAgentKey{AgentID: "AGENT_A", TokenHash: "hash-2", CallbackKey: "cb-2"}, drpMessage(c)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.DRPAgentByToken(ctx, "hash-1"); erasure.ErrorCode(err) != erasure.ENOTFOUND {
			t.Fatalf("the old token still works: %v", err)
		}
		k, err := s.DRPAgentKey(ctx, "AGENT_A")
		if err != nil || k.TokenHash != "hash-2" || k.CallbackKey != "cb-2" {
			t.Fatalf("DRPAgentKey = %+v, %v", k, err)
		}
	})
	t.Run("BadInputIsRefused", func(t *testing.T) {
		if err := s.SetDRPAgentKey(ctx, erasure.DRPAgentKey{AgentID: "AGENT_B"}, drpMessage(c)); erasure.ErrorCode(err) != erasure.EINVALID {
			t.Fatalf("key without hashes: %v, want invalid", err)
		}
	})
	if got := count(auditTypes(t, s, ""), erasure.EventDRPAgentKey); got != 2 {
		t.Errorf("%d %s events, want 2 (one per key set up)", got, erasure.EventDRPAgentKey)
	}
	VerifyTrail(t, s)
}

func testDRPMessages(t *testing.T, open DRPOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	m := drpMessage(c)
	if err := s.AcceptDRPMessage(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := s.AcceptDRPMessage(ctx, m); erasure.ErrorCode(err) != erasure.ECONFLICT {
		t.Fatalf("second acceptance: %v, want conflict", err)
	}
	c.Add(9 * time.Minute)
	if err := s.AcceptDRPMessage(ctx, m); erasure.ErrorCode(err) != erasure.ECONFLICT {
		t.Fatalf("before its expiry: %v, want conflict", err)
	}
	c.Add(2 * time.Minute)
	// Past its expiry the message is forgotten (the protocol refuses it by its expires-at
	// before it gets here); the table does not grow for ever.
	if err := s.AcceptDRPMessage(ctx, m); err != nil {
		t.Fatalf("after its expiry: %v, want accepted", err)
	}
	if err := s.AcceptDRPMessage(ctx, erasure.DRPMessage{ExpiresAt: c.Now()}); erasure.ErrorCode(err) != erasure.EINVALID {
		t.Fatalf("message without hash: %v, want invalid", err)
	}
}

func drpRequest(c *Clock, id, agent, key string) erasure.DRPRequest {
	return erasure.DRPRequest{ID: id, AgentID: agent, AgentKey: key, AgentRequestID: key, Exercise: "deletion", Regime: "ccpa",
		StatusCallback: "https://agent.example/cb", ReceivedAt: c.Now(), ExpectedBy: c.Now().Add(45 * 24 * time.Hour)}
}

func testDRPCreate(t *testing.T, open DRPOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	want := drpRequest(c, "r_drp1", "AGENT_A", "req-1")
	m := drpMessage(c)
	got, created, err := s.CreateDRPRequest(ctx, want, m)
	if err != nil || !created {
		t.Fatalf("CreateDRPRequest: created=%v err=%v", created, err)
	}
	if *got != want {
		t.Fatalf("created %+v\nwant %+v", *got, want)
	}
	if read, err := s.DRPRequest(ctx, "r_drp1"); err != nil || *read != want {
		t.Fatalf("DRPRequest = %+v, %v", read, err)
	}
	t.Run("SameAgentAndKeyReturnsTheRequest", func(t *testing.T) {
		c.Add(time.Second)
		again := drpRequest(c, "r_drp2", "AGENT_A", "req-1")
		got, created, err := s.CreateDRPRequest(ctx, again, drpMessage(c))
		if err != nil || created || got.ID != "r_drp1" || !got.ReceivedAt.Equal(want.ReceivedAt) {
			t.Fatalf("got %+v created=%v err=%v; want the first request", got, created, err)
		}
		if _, err := s.DRPRequest(ctx, "r_drp2"); erasure.ErrorCode(err) != erasure.ENOTFOUND {
			t.Fatalf("the second id was stored: %v", err)
		}
	})
	t.Run("SameMessageIsRefused", func(t *testing.T) {
		_, _, err := s.CreateDRPRequest(ctx, drpRequest(c, "r_drp3", "AGENT_A", "req-3"), m)
		if erasure.ErrorCode(err) != erasure.ECONFLICT {
			t.Fatalf("replayed message: %v, want conflict", err)
		}
		if _, err := s.DRPRequest(ctx, "r_drp3"); erasure.ErrorCode(err) != erasure.ENOTFOUND {
			t.Fatalf("a replayed message created a request: %v", err)
		}
	})
	t.Run("AnotherAgentsKeyIsItsOwn", func(t *testing.T) {
		got, created, err := s.CreateDRPRequest(ctx, drpRequest(c, "r_drp4", "AGENT_B", "req-1"), drpMessage(c))
		if err != nil || !created || got.ID != "r_drp4" {
			t.Fatalf("got %+v created=%v err=%v", got, created, err)
		}
	})
	t.Run("AnsweredRequestKeepsItsStatus", func(t *testing.T) {
		r := drpRequest(c, "r_drp5", "AGENT_A", "req-5")
		r.Exercise, r.Status, r.Reason, r.Details = "access", "denied", "claim_not_covered", "only deletion"
		if _, _, err := s.CreateDRPRequest(ctx, r, drpMessage(c)); err != nil {
			t.Fatal(err)
		}
		got, err := s.DRPRequest(ctx, "r_drp5")
		if err != nil || got.Status != "denied" || got.Reason != "claim_not_covered" || got.Details != "only deletion" {
			t.Fatalf("DRPRequest = %+v, %v", got, err)
		}
	})
	t.Run("BadInputIsRefused", func(t *testing.T) {
		if _, _, err := s.CreateDRPRequest(ctx, drpRequest(c, "", "AGENT_A", "req-6"), drpMessage(c)); erasure.ErrorCode(err) != erasure.EINVALID {
			t.Fatalf("request without id: %v, want invalid", err)
		}
		if _, err := s.DRPRequest(ctx, "r_missing"); erasure.ErrorCode(err) != erasure.ENOTFOUND {
			t.Fatalf("unknown request: %v, want not found", err)
		}
	})
	if got := auditTypes(t, s, "r_drp1"); len(got) != 1 || got[0] != erasure.EventDRPRequest {
		t.Errorf("events of r_drp1: %v, want one %s", got, erasure.EventDRPRequest)
	}
	VerifyTrail(t, s)
}

func testDRPCreateRace(t *testing.T, open DRPOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	const n = 8
	var wg sync.WaitGroup
	ids := make([]string, n)
	created := make([]bool, n)
	errs := make([]error, n)
	msgs := make([]erasure.DRPMessage, n)
	for i := range msgs {
		msgs[i] = drpMessage(c)
	}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, ok, err := s.CreateDRPRequest(ctx, drpRequest(c, fmt.Sprintf("r_race%d", i), "AGENT_A", "same-key"), msgs[i])
			if err == nil {
				ids[i], created[i] = r.ID, ok
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	first, made := "", 0
	for i := 0; i < n; i++ {
		if errs[i] != nil {
			t.Fatalf("call %d: %v", i, errs[i])
		}
		if created[i] {
			made++
		}
		if first == "" {
			first = ids[i]
		} else if ids[i] != first {
			t.Fatalf("calls returned requests %s and %s for one agent and key", first, ids[i])
		}
	}
	if made != 1 {
		t.Fatalf("%d calls created the request, want 1", made)
	}
}

func testDRPClose(t *testing.T, open DRPOpener) {
	c := NewClock()
	s := open(t, c.Now)
	ctx := context.Background()
	open1 := drpRequest(c, "r_open", "AGENT_A", "k-open")
	if _, _, err := s.CreateDRPRequest(ctx, open1, drpMessage(c)); err != nil {
		t.Fatal(err)
	}
	got, err := s.CloseDRPRequest(ctx, "r_open", "revoked", "", "revoked before it started")
	if err != nil || got.Status != "revoked" || got.Details != "revoked before it started" {
		t.Fatalf("CloseDRPRequest = %+v, %v", got, err)
	}
	if _, err := s.CloseDRPRequest(ctx, "r_open", "denied", "other", ""); erasure.ErrorCode(err) != erasure.ECONFLICT {
		t.Fatalf("closing again: %v, want conflict", err)
	}
	if read, _ := s.DRPRequest(ctx, "r_open"); read.Status != "revoked" {
		t.Fatalf("status %q after a refused close, want revoked", read.Status)
	}
	t.Run("NotWhenItsErasureExists", func(t *testing.T) {
		nr := newRequest(c, subject("user_id", "1"), erase("a"))
		nr.ID = "r_" + fmt.Sprintf("%026d", 42)
		if _, _, err := s.CreateDRPRequest(ctx, drpRequest(c, nr.ID, "AGENT_A", "k-erasure"), drpMessage(c)); err != nil {
			t.Fatal(err)
		}
		create(t, s, nr)
		if _, err := s.CloseDRPRequest(ctx, nr.ID, "revoked", "", ""); erasure.ErrorCode(err) != erasure.ECONFLICT {
			t.Fatalf("closing a request with its erasure: %v, want conflict", err)
		}
		if read, _ := s.DRPRequest(ctx, nr.ID); read.Status != "" {
			t.Fatalf("status %q, want none", read.Status)
		}
	})
	t.Run("UnknownIsNotFound", func(t *testing.T) {
		if _, err := s.CloseDRPRequest(ctx, "r_missing", "revoked", "", ""); erasure.ErrorCode(err) != erasure.ENOTFOUND {
			t.Fatalf("err %v, want not found", err)
		}
	})
	VerifyTrail(t, s)
}
