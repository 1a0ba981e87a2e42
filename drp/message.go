package drp

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"erasure"
)

// refusal is why a request is refused: the HTTP status and a message for the agent's
// engineers (never holding a claim's value).
type refusal struct {
	status int
	msg    string
	// fatal marks an error the specification calls fatal (an expired message).
	fatal bool
}

func (r *refusal) Error() string { return r.msg }

func refuse(status int, format string, args ...any) *refusal {
	return &refusal{status: status, msg: fmt.Sprintf(format, args...)}
}

// message is a signed message that passed the checks of section 3.07.
type message struct {
	// raw is the JSON that was signed.
	raw    []byte
	fields map[string]json.RawMessage
	agent  *Agent
	// issuedAt and expiresAt are the message's claims.
	issuedAt, expiresAt time.Time
}

// decodeSigned decodes a body: base64 of the signature followed by the message.
func decodeSigned(body []byte) ([]byte, bool) {
	text := strings.TrimSpace(string(body))
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(text); err == nil {
			return b, true
		}
	}
	return nil, false
}

// open validates a signed message for agent at now, in the order of section 3.07: it decodes,
// its signature verifies with the agent's key, agent-id is the agent, business-id is ours,
// issued-at is not in the future, expires-at has not passed (both within the clock skew);
// then its lifetime and drp.version. Every failure is a 403 (the signature, the claims), or
// a 400 for a message that is not what the protocol sends at all.
func (s *Server) open(body []byte, agent *Agent, now time.Time) (*message, *refusal) {
	signed, ok := decodeSigned(body)
	if !ok {
		return nil, refuse(http.StatusBadRequest, "the body is not base64: send the signed message (signature then JSON) base64-encoded, as text/plain")
	}
	if len(signed) <= ed25519.SignatureSize {
		return nil, refuse(http.StatusForbidden, "the signed message is shorter than a signature")
	}
	sig, raw := signed[:ed25519.SignatureSize], signed[ed25519.SignatureSize:]
	if !ed25519.Verify(agent.VerifyKey, raw, sig) {
		return nil, refuse(http.StatusForbidden, "the signature does not verify with the key of agent %s", agent.ID)
	}
	m := &message{raw: raw, agent: agent}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&m.fields); err != nil || m.fields == nil || dec.More() {
		return nil, refuse(http.StatusBadRequest, "the signed message is not one JSON object")
	}
	if id, _ := m.str("agent-id"); id != agent.ID {
		return nil, refuse(http.StatusForbidden, "agent-id %q is not the agent %s this message is authenticated as", clip(id), agent.ID)
	}
	if b, _ := m.str("business-id"); b != s.cfg.BusinessID {
		return nil, refuse(http.StatusForbidden, "business-id %q is not this business (%s)", clip(b), s.cfg.BusinessID)
	}
	skew := s.cfg.ClockSkew
	var err error
	if m.issuedAt, err = m.time("issued-at"); err != nil {
		return nil, refuse(http.StatusForbidden, "issued-at: %v", err)
	}
	if m.issuedAt.After(now.Add(skew)) {
		return nil, refuse(http.StatusForbidden, "issued-at %s is in the future (this server's time is %s; tolerance %s)",
			m.issuedAt.Format(time.RFC3339), now.UTC().Format(time.RFC3339), skew)
	}
	if m.expiresAt, err = m.time("expires-at"); err != nil {
		return nil, refuse(http.StatusForbidden, "expires-at: %v", err)
	}
	if !now.Before(m.expiresAt.Add(skew)) {
		r := refuse(http.StatusForbidden, "the message expired at %s (this server's time is %s; tolerance %s): sign a new one",
			m.expiresAt.Format(time.RFC3339), now.UTC().Format(time.RFC3339), skew)
		r.fatal = true
		return nil, r
	}
	if life := m.expiresAt.Sub(m.issuedAt); life <= 0 || life > s.cfg.MaxMessageLifetime {
		return nil, refuse(http.StatusForbidden, "expires-at must be after issued-at by at most %s (the specification recommends 10 minutes)", s.cfg.MaxMessageLifetime)
	}
	if _, present := m.fields["drp.version"]; present {
		v, ok := m.str("drp.version")
		if !ok || !strings.HasPrefix(v, "0.9") {
			return nil, refuse(http.StatusBadRequest, "drp.version %q is not supported: this business speaks %s", clip(v), Version)
		}
	}
	return m, nil
}

// accepted is the record of m for replay protection: its keyed hash (the message holds
// identifiers), kept until it can no longer be accepted.
func (s *Server) accepted(m *message) erasure.DRPMessage {
	return erasure.DRPMessage{
		Hash:      s.cfg.Hasher.Sum(append([]byte("drp-message/1\x00"), m.raw...)),
		ExpiresAt: m.expiresAt.Add(s.cfg.ClockSkew),
	}
}

// str returns a string field; false when it is absent or not a string.
func (m *message) str(key string) (string, bool) {
	raw, ok := m.fields[key]
	if !ok {
		return "", false
	}
	var v string
	if json.Unmarshal(raw, &v) != nil {
		return "", false
	}
	return v, true
}

// optionalStr returns a string field, "" when absent or null; a refusal when it is another type.
func (m *message) optionalStr(key string) (string, *refusal) {
	raw, ok := m.fields[key]
	if !ok || string(raw) == "null" {
		return "", nil
	}
	v, ok := m.str(key)
	if !ok {
		return "", refuse(http.StatusBadRequest, "%s must be a string", key)
	}
	return v, nil
}

// flag returns a boolean field, false when absent or not a boolean.
func (m *message) flag(key string) bool {
	var v bool
	raw, ok := m.fields[key]
	return ok && json.Unmarshal(raw, &v) == nil && v
}

// time parses an ISO 8601 timestamp field.
func (m *message) time(key string) (time.Time, error) {
	v, ok := m.str(key)
	if !ok {
		return time.Time{}, fmt.Errorf("required: an ISO 8601 timestamp string")
	}
	t, err := ParseTime(v)
	if err != nil {
		return time.Time{}, err
	}
	return t, nil
}

// ParseTime parses an ISO 8601 timestamp as agents write them: RFC 3339 (with a zone, and any
// fraction of a second), or the same without a zone, taken as UTC.
func ParseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700", "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an ISO 8601 timestamp such as 2026-03-01T12:00:00Z", clip(s))
}

// clip shortens a value from a message for an error message.
func clip(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}

// printable reports whether s is valid UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}
