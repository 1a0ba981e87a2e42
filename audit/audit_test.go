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

func chain(n int) []erasure.AuditEvent {
	evs := make([]erasure.AuditEvent, n)
	prev := audit.Genesis
	for i := range evs {
		evs[i] = erasure.AuditEvent{Seq: int64(i + 1), Time: time.UnixMilli(int64(1_700_000_000_000 + i)), Actor: "w1", Type: erasure.EventTaskAttempt,
			RequestID: "r_1", TaskID: int64(i), Dataset: "ds", Data: json.RawMessage(`{"outcome":"done"}`)}
		audit.Seal(prev, &evs[i])
		prev = evs[i].Hash
	}
	return evs
}

func verify(evs []erasure.AuditEvent) error {
	var v audit.Verifier
	for i := range evs {
		if err := v.Add(&evs[i]); err != nil {
			return err
		}
	}
	return nil
}

func TestVerifier(t *testing.T) {
	if err := verify(chain(5)); err != nil {
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
			audit.Seal(e[0].Hash, &e[1]) // a forger recomputes one hash...
			return e                     // ...but the next event still points at the old one
		}, "event 3: previous hash"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := verify(tc.tamper(chain(5)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
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
