package audit

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"regexp"
	"strconv"
	"strings"
	"time"

	"erasure"
	"erasure/internal/strictjson"
)

// Signer signs checkpoints of one deployment's audit chain.
type Signer struct {
	key        ed25519.PrivateKey
	deployment string
}

// NewSigner returns the signer of deployment with key (LoadSigningKey).
func NewSigner(key ed25519.PrivateKey, deployment string) *Signer {
	return &Signer{key: key, deployment: deployment}
}

// PublicKey returns the hex public key checkpoints are verified with.
func (s *Signer) PublicKey() string { return hex.EncodeToString(s.key.Public().(ed25519.PublicKey)) }

// Checkpoint returns the signed checkpoint of head at time at (millisecond precision).
func (s *Signer) Checkpoint(head erasure.AuditHead, at time.Time) erasure.AuditCheckpoint {
	cp := erasure.AuditCheckpoint{Format: erasure.AuditCheckpointFormat, Deployment: s.deployment, Block: head.Block, Events: head.Events,
		Hash: head.Hash, Time: at.UTC().Truncate(time.Millisecond), PublicKey: s.PublicKey()}
	cp.Signature = hex.EncodeToString(ed25519.Sign(s.key, CheckpointMessage(cp)))
	return cp
}

// CheckpointMessage is what a checkpoint's signature covers: its format, deployment, block,
// events, hash and time (unix milliseconds) and public key, one per line.
func CheckpointMessage(cp erasure.AuditCheckpoint) []byte {
	var b bytes.Buffer
	for _, f := range []string{cp.Format, cp.Deployment, strconv.FormatInt(cp.Block, 10), strconv.FormatInt(cp.Events, 10), cp.Hash,
		strconv.FormatInt(cp.Time.UnixMilli(), 10), cp.PublicKey} {
		b.WriteString(f)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// VerifyCheckpoint checks that cp is well formed and its signature valid under its own public
// key, and, when publicKey is not empty, that this key is publicKey (the deployment's). It
// returns an EINVALID error saying what is wrong.
func VerifyCheckpoint(cp erasure.AuditCheckpoint, publicKey string) error {
	switch {
	case cp.Format != erasure.AuditCheckpointFormat:
		return erasure.Errorf(erasure.EINVALID, "checkpoint format %q is not %s", clip(cp.Format), erasure.AuditCheckpointFormat)
	case cp.Block < 0 || cp.Events < 0:
		return erasure.Errorf(erasure.EINVALID, "checkpoint block and events must not be negative")
	case !hex64.MatchString(cp.Hash):
		return erasure.Errorf(erasure.EINVALID, "checkpoint hash must be 64 hex digits")
	case !hex64.MatchString(cp.PublicKey):
		return erasure.Errorf(erasure.EINVALID, "checkpoint public_key must be 64 hex digits (an Ed25519 public key)")
	}
	sig, err := hex.DecodeString(cp.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return erasure.Errorf(erasure.EINVALID, "checkpoint signature must be %d hex digits", 2*ed25519.SignatureSize)
	}
	pub, _ := hex.DecodeString(cp.PublicKey)
	if !ed25519.Verify(ed25519.PublicKey(pub), CheckpointMessage(cp), sig) {
		return erasure.Errorf(erasure.EINVALID, "checkpoint of block %d: the signature does not match its content: it was altered or forged", cp.Block)
	}
	if publicKey != "" && cp.PublicKey != publicKey {
		return erasure.Errorf(erasure.EINVALID, "checkpoint of block %d is signed with key %s…, this deployment signs with %s…: the signing key was replaced, or the checkpoint is another deployment's", cp.Block, cp.PublicKey[:16], clip(publicKey))
	}
	return nil
}

// ParseCheckpoint reads a checkpoint file (the JSON of erasure.AuditCheckpoint, strictly) and
// verifies its signature under its own key (VerifyCheckpoint). Errors are EINVALID.
func ParseCheckpoint(data []byte) (erasure.AuditCheckpoint, error) {
	var cp erasure.AuditCheckpoint
	if err := strictjson.Unmarshal(data, &cp); err != nil {
		return cp, erasure.Errorf(erasure.EINVALID, "not a checkpoint: %s", erasure.ErrorMessage(err))
	}
	return cp, VerifyCheckpoint(cp, "")
}

// ParseAnchor parses an expected head "BLOCK:HASH" (a block number and its 64-digit hash).
func ParseAnchor(s string) (erasure.AuditAnchor, error) {
	block, hash, ok := strings.Cut(strings.TrimSpace(s), ":")
	n, err := strconv.ParseInt(block, 10, 64)
	if !ok || err != nil || n < 0 || !hex64.MatchString(hash) {
		return erasure.AuditAnchor{}, erasure.Errorf(erasure.EINVALID, "an expected head is BLOCK:HASH, a block number and its 64-digit hex hash (as `erasure audit verify` prints the head)")
	}
	return erasure.AuditAnchor{Block: n, Hash: hash}, nil
}

// FormatAnchor writes a as ParseAnchor reads it, BLOCK:HASH.
func FormatAnchor(a erasure.AuditAnchor) string { return strconv.FormatInt(a.Block, 10) + ":" + a.Hash }

func clip(s string) string {
	if len(s) > 16 {
		return s[:16]
	}
	return s
}
