package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"erasure"
)

// Roles a token may hold. RoleAck is a prefix: "ack:DATASET" acknowledges tasks of one async
// dataset, "ack:*" of every dataset.
const (
	RoleSubmit  = "submit"  // submit erasure requests
	RoleRead    = "read"    // read requests, datasets and the audit trail
	RoleOperate = "operate" // cancel and retry requests; implies read
	RoleWrite   = "write"   // write records of the record store
	RoleAck     = "ack:"
)

// Token is one bearer token the API accepts: its name (the actor written in the audit trail),
// its secret and its roles (RoleSubmit, RoleRead, RoleOperate, RoleWrite, RoleAck+DATASET or
// RoleAck+"*"). A token without a secret never authenticates. The configuration's tokens are
// converted into these by whoever wires the server (cmd/erasure).
type Token struct {
	Name   string
	Secret string
	Roles  []string
}

// token is a configured token with its secret hashed, so that comparisons take the same time
// whatever the lengths.
type token struct {
	name  string
	hash  [32]byte
	roles []string
}

func newTokens(ts []Token) []token {
	out := make([]token, 0, len(ts))
	for _, t := range ts {
		if t.Secret == "" {
			continue // a token without a secret never authenticates
		}
		out = append(out, token{name: t.Name, hash: sha256.Sum256([]byte(t.Secret)), roles: t.Roles})
	}
	return out
}

// Authorize authenticates r's bearer token and checks that it holds role. It returns the
// token's name (the actor written in the audit trail), or an *erasure.Error: EUNAUTHORIZED when
// the Authorization header is missing, malformed or names no configured token, EFORBIDDEN when
// the token lacks the role. "operate" grants "read"; "ack:*" grants every "ack:DATASET".
func (s *Server) Authorize(r *http.Request, role string) (string, error) {
	t, err := s.authenticate(r)
	if err != nil {
		return "", err
	}
	if !t.has(role) {
		return t.name, erasure.Errorf(erasure.EFORBIDDEN, "token %q lacks the %s role", t.name, role)
	}
	return t.name, nil
}

func (s *Server) authenticate(r *http.Request) (*token, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, erasure.Errorf(erasure.EUNAUTHORIZED, "missing bearer token: send Authorization: Bearer TOKEN")
	}
	scheme, secret, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(secret) == "" {
		return nil, erasure.Errorf(erasure.EUNAUTHORIZED, "malformed Authorization header: expected Bearer TOKEN")
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(secret)))
	var found *token
	// Compare with every token, without stopping early, in constant time.
	for i := range s.tokens {
		if subtle.ConstantTimeCompare(sum[:], s.tokens[i].hash[:]) == 1 && found == nil {
			found = &s.tokens[i]
		}
	}
	if found == nil {
		return nil, erasure.Errorf(erasure.EUNAUTHORIZED, "invalid bearer token")
	}
	if info := infoOf(r); info != nil {
		info.actor = found.name
	}
	return found, nil
}

func (t *token) has(role string) bool {
	for _, r := range t.roles {
		switch {
		case r == role:
			return true
		case r == RoleOperate && role == RoleRead:
			return true
		case r == RoleAck+"*" && strings.HasPrefix(role, RoleAck):
			return true
		}
	}
	return false
}

// hasAny reports whether t holds any role starting with prefix.
func (t *token) hasAny(prefix string) bool {
	for _, r := range t.roles {
		if strings.HasPrefix(r, prefix) {
			return true
		}
	}
	return false
}
