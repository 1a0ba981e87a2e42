package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"strings"

	"erasure"
)

// Principal is an authenticated token, for handlers that authenticate otherwise than with a
// bearer header (the dashboard's sessions): its name (the actor of the audit trail) and roles.
type Principal struct {
	Name  string
	Roles []string
	hash  [32]byte
}

// Has reports whether the principal holds role, with the API's rules ("operate" grants "read",
// "ack:*" every "ack:DATASET").
func (p *Principal) Has(role string) bool { return (&token{roles: p.Roles}).has(role) }

// Binding is the SHA-256 of the token's secret: a session that keeps a keyed hash of it ends
// when the secret changes.
func (p *Principal) Binding() [32]byte { return p.hash }

// Authenticate returns the principal of a token secret, comparing with every token in constant
// time; EUNAUTHORIZED when no token has it.
func (s *Server) Authenticate(secret string) (*Principal, error) {
	secret = strings.TrimSpace(secret)
	if secret == "" {
		return nil, erasure.Errorf(erasure.EUNAUTHORIZED, "missing token")
	}
	sum := sha256.Sum256([]byte(secret))
	var found *token
	for i := range s.tokens {
		if subtle.ConstantTimeCompare(sum[:], s.tokens[i].hash[:]) == 1 && found == nil {
			found = &s.tokens[i]
		}
	}
	if found == nil {
		return nil, erasure.Errorf(erasure.EUNAUTHORIZED, "invalid token")
	}
	return &Principal{Name: found.name, Roles: found.roles, hash: found.hash}, nil
}

// PrincipalNamed returns the principal of the configured token named name (a session names its
// token); false when none is configured with a secret.
func (s *Server) PrincipalNamed(name string) (*Principal, bool) {
	for i := range s.tokens {
		if s.tokens[i].name == name {
			t := s.tokens[i]
			return &Principal{Name: t.name, Roles: t.roles, hash: t.hash}, true
		}
	}
	return nil, false
}
