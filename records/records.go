package records

import (
	"encoding/json"
	"regexp"
	"time"
	"unicode"
	"unicode/utf8"

	"erasure"
	"erasure/internal/strictjson"
)

// Audit event types written by a record store.
const (
	EventArchived   = "records.archived"
	EventRestored   = "records.restored"
	EventReconciled = "records.reconciled"
	// EventResurrected is a forced write that brought back records an erasure had tombstoned
	// or purged (see Write.Force). Its data names the records by keyed hash only.
	EventResurrected = "records.resurrected"
)

// Partition names.
const (
	Live    = "live"
	Deleted = "deleted"
)

// Limits.
const (
	// MaxIDBytes is the longest record id accepted.
	MaxIDBytes = 512
	// MaxReasonBytes is the longest deletion reason accepted.
	MaxReasonBytes = 256
	// MaxBatch is the largest number of writes one WriteBatch accepts.
	MaxBatch = 10000
	// DefaultBatch is the number of records one move transaction carries unless told
	// otherwise; MaxBatchSize is the largest a caller may ask for.
	DefaultBatch = 1000
	MaxBatchSize = 10000
	// MaxRestoreIDs is the largest number of ids one Restore call takes.
	MaxRestoreIDs = 100000
)

var sourceRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ValidSource returns an EINVALID error unless source matches ^[a-z0-9][a-z0-9._-]{0,63}$.
func ValidSource(source string) error {
	if !sourceRE.MatchString(source) {
		return erasure.Errorf(erasure.EINVALID, "source %q is not valid: use 1-64 lower case letters, digits, '.', '_' or '-'", Clip(source))
	}
	return nil
}

// ValidID returns an EINVALID error unless id is 1-512 bytes of printable UTF-8.
func ValidID(id string) error {
	switch {
	case id == "":
		return erasure.Errorf(erasure.EINVALID, "record id is empty")
	case len(id) > MaxIDBytes:
		return erasure.Errorf(erasure.EINVALID, "record id is longer than %d bytes", MaxIDBytes)
	case !utf8.ValidString(id):
		return erasure.Errorf(erasure.EINVALID, "record id is not valid UTF-8")
	}
	for _, r := range id {
		if !unicode.IsPrint(r) {
			return erasure.Errorf(erasure.EINVALID, "record id holds a non-printable character")
		}
	}
	return nil
}

// ValidPartition returns an EINVALID error unless p is Live or Deleted.
func ValidPartition(p string) error {
	if p != Live && p != Deleted {
		return erasure.Errorf(erasure.EINVALID, "partition must be live or deleted")
	}
	return nil
}

// Clip shortens s to 64 bytes for an error message.
func Clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// Record is one source record. A tombstone has Deleted set, a DeletedAt and a Reason; its
// Payload is nil once purged.
type Record struct {
	Source    string          `json:"source"`
	ID        string          `json:"id"`
	Version   int64           `json:"version"`
	Payload   json.RawMessage `json:"payload,omitempty"`
	Deleted   bool            `json:"deleted,omitempty"`
	DeletedAt *time.Time      `json:"deleted_at,omitempty"`
	Reason    string          `json:"reason,omitempty"`
	UpdatedAt time.Time       `json:"updated_at"`
	// Partition is where the record sits: live or deleted.
	Partition string `json:"partition"`
}

// Write is one change of a record.
type Write struct {
	ID string `json:"id"`
	// Version is the record's new version; 0 means one more than the current one (counting
	// the deleted partition, so a returning id never restarts at 1).
	Version int64 `json:"version,omitempty"`
	// Payload is the record's JSON, required unless Deleted.
	Payload json.RawMessage `json:"payload,omitempty"`
	// Deleted makes a tombstone; Reason says why (default "deleted").
	Deleted bool   `json:"deleted,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// Purge drops the payload of the tombstone (id-only tombstone).
	Purge bool `json:"purge,omitempty"`
	// Force lets a write with a payload bring back a record that an erasure tombstoned or
	// purged; without it such a write is refused with ECONFLICT. Only an operator may force
	// (the API asks for the operate role), and every such write is an audit event
	// (EventResurrected) naming Actor.
	Force bool `json:"force,omitempty"`
	// Actor is who forced the write, for the audit event (set by the API, never read from a
	// body).
	Actor string `json:"-"`
	// ErasedAs, on a deletion, marks the tombstone as made by an erasure of the record's id
	// as an identifier of this type (set by the records connector, never read from a body).
	ErasedAs string `json:"-"`
}

// Validate returns an EINVALID error when w cannot be applied to any record: a bad id, a
// negative version, a deletion with a payload or a reason over 256 bytes, a write without a
// JSON payload, or purge or reason without deletion.
func (w *Write) Validate() error {
	if err := ValidID(w.ID); err != nil {
		return err
	}
	if w.Version < 0 {
		return erasure.Errorf(erasure.EINVALID, "record %s: version must be positive", Clip(w.ID))
	}
	if w.Deleted {
		if w.Force {
			return erasure.Errorf(erasure.EINVALID, "record %s: force goes with a write that has a payload", Clip(w.ID))
		}
		if w.Payload != nil {
			return erasure.Errorf(erasure.EINVALID, "record %s: a deletion carries no payload", Clip(w.ID))
		}
		if len(w.Reason) > MaxReasonBytes {
			return erasure.Errorf(erasure.EINVALID, "record %s: reason is longer than %d bytes", Clip(w.ID), MaxReasonBytes)
		}
		return nil
	}
	if w.Purge || w.Reason != "" || w.ErasedAs != "" {
		return erasure.Errorf(erasure.EINVALID, "record %s: purge and reason go with deleted", Clip(w.ID))
	}
	if len(w.Payload) == 0 || string(w.Payload) == "null" {
		return erasure.Errorf(erasure.EINVALID, "record %s: payload is required", Clip(w.ID))
	}
	// The payload is checked as strictly as any JSON erasure accepts: valid UTF-8 without
	// lone surrogates, no key twice (a reader would pick either value).
	if err := strictjson.Valid(w.Payload); err != nil {
		return erasure.Errorf(erasure.EINVALID, "record %s: payload is not valid JSON: %s", Clip(w.ID), erasure.ErrorMessage(err))
	}
	return nil
}

// Write outcomes.
const (
	StatusCreated   = "created"   // a new record
	StatusUpdated   = "updated"   // a higher version replaced the record
	StatusUnchanged = "unchanged" // the same version and payload: nothing to do
	StatusDeleted   = "deleted"   // a tombstone was made (or purged)
)

// WriteResult is what one Write did; Err is set when it was refused (the rest of a batch
// still applies).
type WriteResult struct {
	ID      string         `json:"id"`
	Version int64          `json:"version,omitempty"`
	Status  string         `json:"status,omitempty"`
	Err     *erasure.Error `json:"-"`
	Record  *Record        `json:"-"`
}

// DeleteOptions qualify a Delete.
type DeleteOptions struct {
	// Version is the tombstone's version; 0 means the next one.
	Version int64
	Reason  string
	// Purge drops the payload.
	Purge bool
	// ErasedAs marks the tombstone as made by an erasure of the id as an identifier of this
	// type: a later write with a payload is refused unless forced (Write.Force).
	ErasedAs string
}

// DefaultReason is the reason of a tombstone made without one.
const DefaultReason = "deleted"

// ReasonOr returns r, or DefaultReason when r is empty.
func ReasonOr(r string) string {
	if r == "" {
		return DefaultReason
	}
	return r
}
