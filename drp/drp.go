package drp

import (
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"time"

	"erasure"
)

// Version is the version of the protocol spoken.
const Version = "0.9.4"

// Defaults of Config.
const (
	DefaultDeadline           = 45 * 24 * time.Hour
	DefaultClockSkew          = time.Minute
	DefaultMaxMessageLifetime = time.Hour
	DefaultMaxBodyBytes       = 64 << 10
)

// Agent is one trusted authorized agent.
type Agent struct {
	// ID is the agent-id it signs with.
	ID string
	// VerifyKey is its Ed25519 public key.
	VerifyKey ed25519.PublicKey
	// Claims maps identity claims (email, phone_number…) to identifier types.
	Claims map[string]string
	// Unverified lists the claims used without their _verified flag.
	Unverified []string
}

// Config is what New needs.
type Config struct {
	// BusinessID is the business-id agents address (required).
	BusinessID string
	Agents     []Agent
	// Deadline is how long after its receipt a deletion is expected done: the erasure
	// request's deadline and the status's expected_by (default 45 days, the CCPA's).
	Deadline time.Duration
	// ClockSkew is the tolerance on issued-at and expires-at, either way (default 1 minute).
	ClockSkew time.Duration
	// MaxMessageLifetime is the longest expires-at − issued-at accepted (default 1 hour).
	MaxMessageLifetime time.Duration
	// AllowHTTPCallbacks accepts status_callback URLs with http (default: https only).
	AllowHTTPCallbacks bool

	// Service is where deletions are submitted and followed (required).
	Service erasure.Service
	// Store keeps tokens, requests and accepted messages (required).
	Store erasure.DRPStore
	// Hasher keys the hashes of accepted messages, which hold identifiers (required).
	Hasher erasure.Hasher
	// IdentifierTypes say how identifier values are put in canonical form, to refuse bad
	// claims before anything is recorded.
	IdentifierTypes []erasure.IdentifierType
	// NewID returns a new request id (pipeline.NewRequestID; required).
	NewID func(time.Time) string
	// MaxBodyBytes limits signed messages (default 64 KiB).
	MaxBodyBytes int64
	// Now is the clock (default time.Now); Random the source of tokens (default crypto/rand).
	Now    func() time.Time
	Random io.Reader
	Logger *slog.Logger
}

// Server serves the protocol's endpoints. It is safe for concurrent use.
type Server struct {
	cfg    Config
	agents map[string]*Agent
	log    *slog.Logger
}

// New returns a Server for cfg; EINVALID when something required is missing or an agent's
// key is not an Ed25519 public key.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.BusinessID == "":
		return nil, erasure.Errorf(erasure.EINVALID, "drp: a business id is required")
	case cfg.Service == nil || cfg.Store == nil || cfg.Hasher == nil || cfg.NewID == nil:
		return nil, erasure.Errorf(erasure.EINVALID, "drp: Service, Store, Hasher and NewID are required")
	}
	if cfg.Deadline <= 0 {
		cfg.Deadline = DefaultDeadline
	}
	if cfg.ClockSkew <= 0 {
		cfg.ClockSkew = DefaultClockSkew
	}
	if cfg.MaxMessageLifetime <= 0 {
		cfg.MaxMessageLifetime = DefaultMaxMessageLifetime
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Random == nil {
		cfg.Random = rand.Reader
	}
	s := &Server{cfg: cfg, agents: map[string]*Agent{}, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.WithGroup("drp")
	for i := range cfg.Agents {
		a := &cfg.Agents[i]
		if len(a.VerifyKey) != ed25519.PublicKeySize || a.ID == "" {
			return nil, erasure.Errorf(erasure.EINVALID, "drp: agent %q needs an id and a 32-byte Ed25519 verify key", a.ID)
		}
		if s.agents[a.ID] != nil {
			return nil, erasure.Errorf(erasure.EINVALID, "drp: agent %q is given twice", a.ID)
		}
		s.agents[a.ID] = a
	}
	return s, nil
}

// Routes returns the protocol's routes by ServeMux pattern, for api.Server.Mount.
func (s *Server) Routes() map[string]http.Handler {
	return map[string]http.Handler{
		"POST /v1/agent/{agent}":              http.HandlerFunc(s.setupKey),
		"GET /v1/agent/{agent}":               http.HandlerFunc(s.agentInfo),
		"POST /v1/data-rights-request":        http.HandlerFunc(s.exercise),
		"POST /v1/data-rights-request/{$}":    http.HandlerFunc(s.exercise),
		"GET /v1/data-rights-request/{id}":    http.HandlerFunc(s.status),
		"DELETE /v1/data-rights-request/{id}": http.HandlerFunc(s.revoke),
	}
}

// actor is the audit actor of an agent.
func actor(agentID string) string { return "drp:" + agentID }
