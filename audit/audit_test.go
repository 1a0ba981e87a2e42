package audit_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"erasure"
	"erasure/audit"
)

func legacyChain(n int) []erasure.AuditEvent {
	evs := make([]erasure.AuditEvent, n)
	prev := audit.Genesis
	for i := range evs {
		evs[i] = erasure.AuditEvent{Seq: int64(i + 1), Time: time.UnixMilli(int64(1_700_000_000_000 + i)), Actor: "w1", Type: erasure.EventTaskAttempt,
			RequestID: "r_1", TaskID: int64(i), Dataset: "ds", Data: json.RawMessage(`{"outcome":"done"}`)}
		audit.LegacySeal(prev, &evs[i])
		prev = evs[i].Hash
	}
	return evs
}

func verifyLegacy(evs []erasure.AuditEvent) error {
	var v audit.LegacyVerifier
	for i := range evs {
		if err := v.Add(&evs[i]); err != nil {
			return err
		}
	}
	return nil
}

func TestLegacyVerifier(t *testing.T) {
	if err := verifyLegacy(legacyChain(5)); err != nil {
		t.Fatalf("intact chain: %v", err)
	}
	tests := []struct {
		name   string
		tamper func([]erasure.AuditEvent) []erasure.AuditEvent
		want   string
	}{
		{"AlteredDataIsCaught", func(e []erasure.AuditEvent) []erasure.AuditEvent {
			e[2].Data = json.RawMessage(`{"outcome":"failed"}`)
			return e
		}, "event 3: hash does not match"},
		{"AlteredActorIsCaught", func(e []erasure.AuditEvent) []erasure.AuditEvent { e[1].Actor = "mallory"; return e }, "event 2: hash"},
		{"AlteredTimeIsCaught", func(e []erasure.AuditEvent) []erasure.AuditEvent { e[4].Time = e[4].Time.Add(time.Second); return e }, "event 5: hash"},
		{"RemovedEventIsCaught", func(e []erasure.AuditEvent) []erasure.AuditEvent { return append(e[:2], e[3:]...) }, "events are missing"},
		{"ReorderedEventsAreCaught", func(e []erasure.AuditEvent) []erasure.AuditEvent { e[1], e[2] = e[2], e[1]; return e }, "missing or reordered"},
		{"ResealedEventBreaksTheNext", func(e []erasure.AuditEvent) []erasure.AuditEvent {
			e[1].Actor = "mallory"
			audit.LegacySeal(e[0].Hash, &e[1]) // a forger recomputes one hash...
			return e                           // ...but the next event still points at the old one
		}, "event 3: previous hash"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := verifyLegacy(tc.tamper(legacyChain(5)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

// blocks returns a chain of n blocks of two events each, after legacy events.
func blocks(c *audit.Chain, legacy []erasure.AuditEvent, n int) []erasure.AuditBlock {
	prev, events := audit.Genesis, int64(0)
	if len(legacy) > 0 {
		prev, events = legacy[len(legacy)-1].Hash, legacy[len(legacy)-1].Seq
	}
	out := make([]erasure.AuditBlock, n)
	for i := range out {
		evs := []erasure.AuditEvent{
			{Time: time.UnixMilli(1_700_000_100_000), Actor: "w1", Type: erasure.EventTaskAttempt, RequestID: "r_1", TaskID: int64(i), Data: json.RawMessage(`{"outcome":"done"}`)},
			{Time: time.UnixMilli(1_700_000_100_001), Actor: "pipeline", Type: erasure.EventRequestCompleted, RequestID: "r_1"},
		}
		out[i] = audit.NewBlock(int64(i+1), events+1, time.UnixMilli(1_700_000_100_002), evs)
		c.Seal(prev, &out[i])
		prev, events = out[i].Hash, events+2
	}
	return out
}

func verify(c *audit.Chain, legacy []erasure.AuditEvent, bs []erasure.AuditBlock) (erasure.AuditHead, error) {
	v := audit.NewVerifier(c)
	for i := range legacy {
		if err := v.AddLegacy(&legacy[i]); err != nil {
			return v.Head(), err
		}
	}
	for i := range bs {
		if err := v.Add(&bs[i]); err != nil {
			return v.Head(), err
		}
	}
	return v.Head(), nil
}

func TestVerifier_Blocks(t *testing.T) {
	c, _ := audit.NewChain([]byte("chain-key-0123456789"))
	legacy := legacyChain(3)
	head, err := verify(c, legacy, blocks(c, legacy, 4))
	if err != nil || head.Block != 4 || head.Events != 3+8 {
		t.Fatalf("intact chain: head %+v err %v", head, err)
	}
	t.Run("EventsDecodeWithTheirNumbers", func(t *testing.T) {
		b := blocks(c, legacy, 2)[1]
		evs, err := audit.Events(&b)
		if err != nil || len(evs) != 2 || evs[0].Seq != 6 || evs[1].Seq != 7 || evs[0].Block != 2 || evs[1].Type != erasure.EventRequestCompleted {
			t.Fatalf("events %+v err %v", evs, err)
		}
	})
	other, _ := audit.NewChain([]byte("another-deployment-key"))
	tests := []struct {
		name   string
		tamper func([]erasure.AuditBlock) []erasure.AuditBlock
		want   string
	}{
		{"AlteredBodyIsCaught", func(b []erasure.AuditBlock) []erasure.AuditBlock {
			b[1].Body = json.RawMessage(strings.Replace(string(b[1].Body), "done", "fail", 1))
			return b
		}, "block 2: hash does not match"},
		{"RecomputedWithoutTheKeyIsCaught", func(b []erasure.AuditBlock) []erasure.AuditBlock {
			b[1].Body = json.RawMessage(strings.Replace(string(b[1].Body), "done", "fail", 1))
			other.Seal(b[0].Hash, &b[1]) // a forger seals with a key of their own...
			for i := 2; i < len(b); i++ {
				other.Seal(b[i-1].Hash, &b[i]) // ...and re-chains everything after
			}
			return b
		}, "block 2: hash does not match"},
		{"RemovedBlockIsCaught", func(b []erasure.AuditBlock) []erasure.AuditBlock { return append(b[:1], b[2:]...) }, "blocks are missing"},
		{"RenumberedBlockIsCaught", func(b []erasure.AuditBlock) []erasure.AuditBlock {
			b = append(b[:1], b[2:]...)
			b[1].Seq = 2
			return b
		}, "events are missing or renumbered"},
		{"ReorderedBlocksAreCaught", func(b []erasure.AuditBlock) []erasure.AuditBlock { b[1], b[2] = b[2], b[1]; return b }, "missing or reordered"},
		{"MiscountedEventsAreCaught", func(b []erasure.AuditBlock) []erasure.AuditBlock { b[3].Events = 1; return b }, "block 4"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := verify(c, legacy, tc.tamper(blocks(c, legacy, 4)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("AlteredLegacyEventIsCaught", func(t *testing.T) {
		l := legacyChain(3)
		bs := blocks(c, l, 2)
		l[1].Actor = "mallory"
		if _, err := verify(c, l, bs); err == nil {
			t.Fatal("accepted")
		}
	})
}

func TestHasher(t *testing.T) {
	h1, _ := audit.NewHasher([]byte("key-one-0123456789"))
	h2, _ := audit.NewHasher([]byte("key-two-0123456789"))
	id := erasure.Identifier{Type: "email", Value: "a@example.com"}
	a, b := h1.Identifier(id), h2.Identifier(id)
	if a == b || !strings.HasPrefix(a, "email:") || strings.Contains(a, "example") {
		t.Fatalf("hashes %q %q", a, b)
	}
	if h1.Identifier(id) != a {
		t.Fatal("hash is not stable")
	}
	if h1.Identifier(erasure.Identifier{Type: "user_id", Value: "a@example.com"}) == a {
		t.Fatal("the type is not part of the hash")
	}
	if _, err := audit.NewHasher([]byte("short")); err == nil {
		t.Fatal("short key accepted")
	}
}

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	k1, err := audit.LoadKey("", dir)
	if err != nil || len(k1) != 32 {
		t.Fatalf("generate: %v %d", err, len(k1))
	}
	st, _ := os.Stat(filepath.Join(dir, "audit.key"))
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", st.Mode())
	}
	k2, err := audit.LoadKey("", dir)
	if err != nil || string(k1) != string(k2) {
		t.Fatal("key not reused")
	}
	if _, err := audit.LoadKey("not-hex", dir); err == nil {
		t.Fatal("bad configured key accepted")
	}
	if k, err := audit.LoadKey(strings.Repeat("ab", 16), dir); err != nil || len(k) != 16 {
		t.Fatalf("configured key: %v", err)
	}
}
