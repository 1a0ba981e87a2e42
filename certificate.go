package erasure

import (
	"context"
	"time"
)

// CertificateVersion is the version of the certificate format this build issues.
const CertificateVersion = 1

// Certificate is an erasure certificate: a statement, signed by the deployment (Ed25519, see
// audit.SignCertificate), of what was erased for one completed request, where, how and when, and
// which point of the audit trail holds the events that tell it. It holds the subject only as
// keyed hashes: whoever holds an identifier can ask the deployment whether it matches, nobody
// can read it from the certificate.
type Certificate struct {
	Version int    `json:"version"`
	Kind    string `json:"kind"` // always "erasure-certificate"
	// Deployment is the id of the deployment that erased (Store.Deployment).
	Deployment string             `json:"deployment"`
	Request    CertifiedRequest   `json:"request"`
	Subject    []string           `json:"subject_hashes"`
	Datasets   []CertifiedDataset `json:"datasets"`
	Audit      CertifiedAudit     `json:"audit"`
	IssuedAt   time.Time          `json:"issued_at"`
}

// CertificateKind is the Kind of every certificate.
const CertificateKind = "erasure-certificate"

// CertifiedRequest is the request a certificate is about.
type CertifiedRequest struct {
	ID          string        `json:"id"`
	Status      RequestStatus `json:"status"`
	Reason      string        `json:"reason"`
	SubmittedBy string        `json:"submitted_by"`
	SubmittedAt time.Time     `json:"submitted_at"`
	Deadline    time.Time     `json:"deadline"`
	CompletedAt time.Time     `json:"completed_at"`
	// Late is true when the request completed after its deadline.
	Late bool `json:"late"`
}

// CertifiedDataset is what was done in one dataset: its erase task (and lookup task, when the
// dataset provided identifiers) as they ended.
type CertifiedDataset struct {
	Dataset string    `json:"dataset"`
	Kind    TaskKind  `json:"kind"`
	Method  Method    `json:"method"`
	Outcome TaskState `json:"outcome"` // done or skipped
	// Removed is how many rows, keys, records or files the connector (or the acknowledgement,
	// or the sweep) reported removed.
	Removed    int64      `json:"removed"`
	Attempts   int        `json:"attempts"`
	VerifiedAt *time.Time `json:"verified_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Note       string     `json:"note,omitempty"`
	// Sweep is the sweep that erased an offline dataset.
	Sweep *CertifiedSweep `json:"sweep,omitempty"`
	// Ack is the acknowledgement that completed an async dataset.
	Ack *CertifiedAck `json:"ack,omitempty"`
}

// CertifiedSweep names the sweep that erased an offline dataset's rows.
type CertifiedSweep struct {
	ID       string     `json:"id"`
	Mode     SweepMode  `json:"mode,omitempty"`
	Finished *time.Time `json:"finished,omitempty"`
}

// CertifiedAck is the acknowledgement of an async dataset's owner.
type CertifiedAck struct {
	At      time.Time `json:"at"`
	By      string    `json:"by"`
	Status  AckStatus `json:"status"`
	Removed int64     `json:"removed"`
	Attempt int       `json:"attempt"`
	// AuditEvent is the sequence number of the task.acked event.
	AuditEvent int64 `json:"audit_event"`
}

// CertifiedAudit is where the certificate's facts are in the audit trail: the request's events
// (their count, first and last) and the chain's head when the certificate was issued, which
// follows them. Verifying the trail up to Head (erasure audit verify) proves those events are
// as they were written.
type CertifiedAudit struct {
	Events     int       `json:"request_events"`
	FirstEvent int64     `json:"first_event"`
	LastEvent  int64     `json:"last_event"`
	LastBlock  int64     `json:"last_block"`
	Head       AuditHead `json:"head"`
}

// SignedCertificate is a certificate and the signed document that carries it (the JSON served
// by GET /v1/requests/{id}/certificate, checked by `erasure certificate verify`).
type SignedCertificate struct {
	Certificate Certificate
	Document    []byte
}

// CertificateKey is the public half of the key certificates are signed with.
type CertificateKey struct {
	Algorithm string `json:"algorithm"` // "ed25519"
	// KeyID is the first 16 hex digits of the SHA-256 of the public key.
	KeyID string `json:"key_id"`
	// PublicKey is the 32-byte public key, base64 (standard encoding).
	PublicKey string `json:"public_key"`
}

// Certifier issues erasure certificates.
type Certifier interface {
	// Certificate returns the signed certificate of a completed request: ENOTFOUND, ECONFLICT
	// when the request has not completed (a cancelled or open request gets none).
	Certificate(ctx context.Context, id string) (*SignedCertificate, error)
	// CertificateKey returns the public key the certificates are signed with.
	CertificateKey() CertificateKey
}
