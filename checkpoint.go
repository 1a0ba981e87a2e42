package erasure

import (
	"context"
	"time"
)

// EventAuditTriggersRestored is the audit event of a store that found the append-only
// triggers of its audit trail missing or disabled when it opened, and restored them: someone
// with access to the database changed it. Its data names the triggers.
const EventAuditTriggersRestored = "audit.triggers_restored"

// AuditCheckpoint is a signed statement of the audit chain's head: at Time, the chain of
// deployment Deployment ended at block Block, holding Events events, with hash Hash. It is
// signed with the deployment's Ed25519 signing key (audit.Signer), whose public key it
// carries, and is meant to be kept away from the server (exported with `erasure audit
// checkpoint`): a trail rewritten by someone who holds the audit key, or cut short, no longer
// passes through the block and hash a checkpoint names. The file format is in docs/audit.md.
type AuditCheckpoint struct {
	// Format is the checkpoint format, AuditCheckpointFormat.
	Format     string    `json:"format"`
	Deployment string    `json:"deployment"`
	Block      int64     `json:"block"`
	Events     int64     `json:"events"`
	Hash       string    `json:"hash"`
	Time       time.Time `json:"time"`
	// PublicKey is the hex Ed25519 public key the checkpoint is signed with.
	PublicKey string `json:"public_key"`
	// Signature is the hex Ed25519 signature of the fields above (audit.CheckpointMessage).
	Signature string `json:"signature"`
}

// AuditCheckpointFormat is the format of the checkpoints this build writes.
const AuditCheckpointFormat = "erasure-audit-checkpoint/1"

// AuditAnchor is a point the audit chain must pass through: its block Block has hash Hash
// (an expected head, `--expect-head BLOCK:HASH`, or a checkpoint's head).
type AuditAnchor struct {
	Block int64  `json:"block"`
	Hash  string `json:"hash"`
}

// AuditService is what the API's audit routes act on beyond Service.VerifyAudit: signed
// checkpoints of the chain's head and verification against anchors kept elsewhere.
type AuditService interface {
	// Checkpoint verifies the trail, signs its head as it is now, keeps the checkpoint in the
	// store and returns it. ECONFLICT when the trail does not verify (a broken chain is not
	// signed); EUNAVAILABLE.
	Checkpoint(ctx context.Context) (*AuditCheckpoint, error)
	// Checkpoints returns the checkpoints kept in the store, newest first, at most limit.
	Checkpoints(ctx context.Context, limit int) ([]AuditCheckpoint, error)
	// VerifyAuditFrom verifies the whole trail as VerifyAudit does, and that it passes through
	// every anchor and the head of every checkpoint given (whose signatures must be valid and
	// made with this deployment's signing key). A trail that does not is a report with OK
	// false saying where; EINVALID for a malformed anchor or checkpoint.
	VerifyAuditFrom(ctx context.Context, anchors []AuditAnchor, checkpoints []AuditCheckpoint) (*AuditReport, error)
}

// CheckpointStore keeps signed checkpoints of the audit chain, append-only (store/sqlstore).
type CheckpointStore interface {
	// SaveAuditCheckpoint keeps cp.
	SaveAuditCheckpoint(ctx context.Context, cp AuditCheckpoint) error
	// AuditCheckpoints returns the checkpoints kept, newest first, at most limit (0: all).
	AuditCheckpoints(ctx context.Context, limit int) ([]AuditCheckpoint, error)
}
