// Package audit holds the audit trail's cryptography: the keyed hash chain that makes the
// trail tamper-evident (Chain, NewBlock, Verifier), signed checkpoints of its head, and the keyed
// hashing of subject identifiers (Hasher).
//
// The trail is a chain of blocks, each holding the events one store transaction appended, each
// sealed with an HMAC under a key that is not in the store (see erasure.AuditBlock). Trails
// started before blocks existed begin with events chained one by one with plain SHA-256 (the
// legacy part, LegacyVerifier); the first block chains after the last of them.
package audit

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"erasure"
)

// Genesis is the PrevHash of the first event or block of a trail.
const Genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// LegacyHash returns the hash of a legacy event given the previous event's hash (ev.PrevHash is
// ignored): SHA-256 over the fields, length-prefixed, time at millisecond precision.
func LegacyHash(prev string, ev *erasure.AuditEvent) string {
	h := sha256.New()
	var n [8]byte
	field := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	field(prev)
	field(strconv.FormatInt(ev.Seq, 10))
	field(strconv.FormatInt(ev.Time.UnixMilli(), 10))
	field(ev.Actor)
	field(ev.Type)
	field(ev.RequestID)
	field(strconv.FormatInt(ev.TaskID, 10))
	field(ev.Dataset)
	field(string(ev.Data))
	return hex.EncodeToString(h.Sum(nil))
}

// LegacySeal sets ev.PrevHash and ev.Hash as legacy events were sealed (tests build legacy
// trails with it).
func LegacySeal(prev string, ev *erasure.AuditEvent) {
	ev.PrevHash = prev
	ev.Hash = LegacyHash(prev, ev)
}

// LegacyVerifier checks the legacy part of a trail event by event, in sequence order. The zero
// value expects it to start at the genesis.
type LegacyVerifier struct {
	last    string
	lastSeq int64
	Count   int64
}

// Add checks the next event. It returns an error naming the first event that is altered, out
// of order, or after a gap.
func (v *LegacyVerifier) Add(ev *erasure.AuditEvent) error {
	if v.last == "" {
		v.last = Genesis
	}
	if ev.Seq != v.lastSeq+1 {
		return fmt.Errorf("audit event %d follows %d: events are missing or reordered", ev.Seq, v.lastSeq)
	}
	if ev.PrevHash != v.last {
		return fmt.Errorf("audit event %d: previous hash does not match event %d: the trail was altered", ev.Seq, v.lastSeq)
	}
	if want := LegacyHash(v.last, ev); ev.Hash != want {
		return fmt.Errorf("audit event %d: hash does not match its content: the event was altered", ev.Seq)
	}
	v.last, v.lastSeq = ev.Hash, ev.Seq
	v.Count++
	return nil
}

// Head returns the sequence and hash of the last verified event.
func (v *LegacyVerifier) Head() (int64, string) {
	if v.last == "" {
		return 0, Genesis
	}
	return v.lastSeq, v.last
}

// Hasher computes keyed hashes (HMAC-SHA-256) of identifiers, so that the audit trail can
// prove which subject a request concerned to someone who holds the identifier, without holding
// it in clear.
type Hasher struct{ key []byte }

// NewHasher returns a Hasher with key, which must be at least 16 bytes.
func NewHasher(key []byte) (*Hasher, error) {
	if len(key) < 16 {
		return nil, errors.New("audit key must be at least 16 bytes")
	}
	return &Hasher{key: append([]byte(nil), key...)}, nil
}

// Identifier returns "type:hex" where hex is the HMAC of the type and value.
func (h *Hasher) Identifier(id erasure.Identifier) string {
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte(id.Type))
	m.Write([]byte{0})
	m.Write([]byte(id.Value))
	return id.Type + ":" + hex.EncodeToString(m.Sum(nil))[:32]
}

// Sum returns the keyed hash (HMAC-SHA-256, hex) of b, for values that must not be kept in
// clear such as submission fingerprints and idempotency keys. Its input starts with a byte no
// identifier encoding starts with, so a Sum never equals an identifier's hash.
func (h *Hasher) Sum(b []byte) string {
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte{1})
	m.Write(b)
	return hex.EncodeToString(m.Sum(nil))
}

var _ erasure.Hasher = (*Hasher)(nil)

// Subject returns the keyed hashes of every identifier of s.
func (h *Hasher) Subject(s erasure.Subject) []string {
	out := make([]string, len(s))
	for i, id := range s {
		out[i] = h.Identifier(id)
	}
	return out
}

// LoadKey returns the audit key: hexKey when set (at least 32 hex digits), else the key in
// dir/audit.key, generating it (32 random bytes, mode 0600) the first time.
func LoadKey(hexKey, dir string) ([]byte, error) {
	if hexKey != "" {
		k, err := hex.DecodeString(strings.TrimSpace(hexKey))
		if err != nil || len(k) < 16 {
			return nil, errors.New("audit.key must be at least 32 hex digits")
		}
		return k, nil
	}
	path := filepath.Join(dir, "audit.key")
	if b, err := os.ReadFile(path); err == nil {
		k, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(k) < 16 {
			return nil, fmt.Errorf("%s: not a valid audit key", path)
		}
		return k, nil
	} else if !os.IsNotExist(err) {
		return nil, err
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.WriteString(hex.EncodeToString(k) + "\n"); err != nil {
		return nil, err
	}
	return k, f.Sync()
}
