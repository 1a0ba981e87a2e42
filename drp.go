package erasure

import (
	"context"
	"time"
)

// The Data Rights Protocol (DRP) lets authorized agents submit data rights requests on behalf
// of consumers (package drp speaks it; docs/drp.md). What the protocol needs kept is here: each
// agent's pair-wise token (as a hash), the data rights requests agents made (a deletion is an
// erasure request of the same id), and the signed messages already accepted, so that none is
// accepted twice.

// Audit event types of the protocol.
const (
	// EventDRPAgentKey: an authorized agent set up a new pair-wise token (the previous one no
	// longer works).
	EventDRPAgentKey = "drp.agent_key"
	// EventDRPRequest: an authorized agent's data rights request was received; a deletion's
	// request.submitted follows under the same request id.
	EventDRPRequest = "drp.request"
)

// DRPAgentKey is an authorized agent's current pair-wise token, as stored: never the token.
type DRPAgentKey struct {
	AgentID string
	// TokenHash is the hex SHA-256 of the token (a random 256-bit value, so an unkeyed hash is
	// enough to keep it from anyone reading the store).
	TokenHash string
	// CallbackKey (hex) signs the agent's status callbacks; it is derived from the token, so
	// that the agent can derive it too and the store does not hold the token.
	CallbackKey string
	CreatedAt   time.Time
}

// DRPMessage is a signed message being accepted: its keyed hash, refused again until ExpiresAt.
type DRPMessage struct {
	Hash      string
	ExpiresAt time.Time
}

// DRPRequest is a data rights request an authorized agent made. A deletion's ID is the id of
// the erasure request that carries it out, which is created after this record (with the same
// id) and gives it its status; a request answered at once without an erasure (a right other
// than deletion, no identity to match) carries its own final Status and Reason.
type DRPRequest struct {
	ID      string
	AgentID string
	// AgentKey identifies the request among the agent's: its agent-request-id when it gave one,
	// else the hash of the message. The same agent and key name the same request.
	AgentKey string
	// AgentRequestID is the agent's agent-request-id as given ("" when none).
	AgentRequestID string
	Exercise       string
	Regime         string
	// StatusCallback is the URL status changes are POSTed to ("" when none).
	StatusCallback string
	ReceivedAt     time.Time
	ExpectedBy     time.Time
	// Status, Reason and Details are set when the request was answered or closed without an
	// erasure request; "" when the erasure request gives its status.
	Status  string
	Reason  string
	Details string
}

// DRPStore keeps the protocol's state. Implementation: store/sqlstore (migration 009_drp).
type DRPStore interface {
	// SetDRPAgentKey accepts m and makes k the agent's pair-wise token, replacing the one
	// before, with an EventDRPAgentKey audit event, in one transaction. ECONFLICT when m was
	// accepted before (and has not expired); nothing changes then.
	SetDRPAgentKey(ctx context.Context, k DRPAgentKey, m DRPMessage) error
	// DRPAgentByToken returns the agent whose current token hashes to tokenHash; ENOTFOUND.
	DRPAgentByToken(ctx context.Context, tokenHash string) (*DRPAgentKey, error)
	// DRPAgentKey returns an agent's current token record; ENOTFOUND when it has none.
	DRPAgentKey(ctx context.Context, agentID string) (*DRPAgentKey, error)
	// AcceptDRPMessage records m as accepted; ECONFLICT when it was accepted before and has not
	// expired. Expired messages are forgotten on the way.
	AcceptDRPMessage(ctx context.Context, m DRPMessage) error
	// CreateDRPRequest accepts m and records r with an EventDRPRequest audit event, in one
	// transaction, or, when the agent already has a request under r.AgentKey, accepts m and
	// returns that request with created false. ECONFLICT when m was accepted before (nothing
	// changes); EINVALID when r lacks its id, agent or key.
	CreateDRPRequest(ctx context.Context, r DRPRequest, m DRPMessage) (req *DRPRequest, created bool, err error)
	// DRPRequest returns a request; ENOTFOUND.
	DRPRequest(ctx context.Context, id string) (*DRPRequest, error)
	// CloseDRPRequest gives a request that has no erasure request (yet) its final status,
	// reason and details, so that none will be created for it; ENOTFOUND, ECONFLICT when an
	// erasure request of its id exists or it already has a status.
	CloseDRPRequest(ctx context.Context, id, status, reason, details string) (*DRPRequest, error)
}
