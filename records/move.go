package records

import (
	"encoding/json"
	"time"

	"erasure"
)

// Move kinds, the Kind of a MoveReport and of a Manifest.
const (
	KindArchive   = "archive"
	KindRestore   = "restore"
	KindReconcile = "reconcile"
)

// YearCount is how many records (and bytes of id, reason and payload) a move concerns in one
// year of deletion.
type YearCount struct {
	Year    int   `json:"year"`
	Records int64 `json:"records"`
	Bytes   int64 `json:"bytes"`
}

// MoveReport is what an archive, restore or reconcile did, or would do in a dry run.
type MoveReport struct {
	Source string `json:"source"`
	Kind   string `json:"kind"` // archive, restore, reconcile
	DryRun bool   `json:"dry_run"`
	// Candidates is how many records matched when the call started.
	Candidates int64       `json:"candidates"`
	Bytes      int64       `json:"bytes,omitempty"`
	ByYear     []YearCount `json:"by_year,omitempty"`
	// SourceRecords is the source's number of records (live and deleted; live only for
	// reconcile), and Share is Candidates/SourceRecords, the figure the guard checks.
	SourceRecords int64   `json:"source_records"`
	Share         float64 `json:"share"`
	// Moved is how many records this call moved (or tombstoned), in Batches transactions;
	// Checksum is their checksum.
	Moved    int64    `json:"moved"`
	Batches  int      `json:"batches"`
	Checksum Checksum `json:"checksum"`
	// Remaining is how many candidates are left (a call with a Limit stops early).
	Remaining int64 `json:"remaining"`
	// AlreadyLive and NotFound count restore ids that were not in deleted.
	AlreadyLive int64 `json:"already_live,omitempty"`
	NotFound    int64 `json:"not_found,omitempty"`
	// Compacted says the live partition was rebuilt after the archive, in CompactTime.
	Compacted   bool   `json:"compacted,omitempty"`
	CompactTime string `json:"compact_time,omitempty"`
}

// ArchiveOptions select the tombstones an archive moves.
type ArchiveOptions struct {
	Source        string
	DeletedBefore time.Time
	DryRun        bool
	// Force lifts the share guard.
	Force bool
	// BatchSize is the number of records per transaction (default 1000, at most 10000).
	BatchSize int
	// Limit stops after about this many records (0: all); a later call goes on.
	Limit int64
	Actor string
	// Progress, when set, is called after each batch.
	Progress func(moved, total int64)
	// Compact rebuilds the live partition once every candidate has moved (see
	// Service.Compact).
	Compact bool
}

// RestoreOptions select the records a restore moves back: IDs, or every record of the
// source deleted at or after DeletedAfter.
type RestoreOptions struct {
	Source       string
	IDs          []string
	DeletedAfter time.Time
	DryRun       bool
	BatchSize    int
	Limit        int64
	Actor        string
	Progress     func(moved, total int64)
}

// ReconcileOptions drive a reconcile of a hard-delete source.
type ReconcileOptions struct {
	Source string
	// Present are the ids the source holds now.
	Present map[string]bool
	// Control are ids known to exist at the source; any of them missing from Present means
	// the list is incomplete and nothing is done.
	Control []string
	DryRun  bool
	// Force lifts the share guard (never the control check).
	Force bool
	// Reason is the tombstones' reason (default DefaultReconcileReason).
	Reason    string
	BatchSize int
	Actor     string
	Progress  func(done, total int64)
}

// DefaultReconcileReason is the reason of the tombstones a reconcile makes unless told.
const DefaultReconcileReason = "absent at source"

// Manifest describes one committed move batch; it is the Data of its audit event.
type Manifest struct {
	Move     int64    `json:"move"`
	Source   string   `json:"source"`
	Kind     string   `json:"kind"`
	From     string   `json:"from"`
	To       string   `json:"to"`
	Count    int64    `json:"count"`
	Checksum Checksum `json:"checksum"`
	// FirstHash and LastHash are keyed hashes of the batch's first and last record ids (see
	// RecordHash), empty when the store has no key: a manifest is kept for ever, in the audit
	// trail too, and record ids may be identifiers of subjects.
	FirstHash string          `json:"first_hash,omitempty"`
	LastHash  string          `json:"last_hash,omitempty"`
	Criteria  json.RawMessage `json:"criteria,omitempty"`
}

// SourceReport is one source's figures in a VerifyReport.
type SourceReport struct {
	Source         string   `json:"source"`
	Live           int64    `json:"live"`
	LiveTombstones int64    `json:"live_tombstones"`
	Deleted        int64    `json:"deleted"`
	Checksum       Checksum `json:"checksum"`
	LedgerCount    int64    `json:"ledger_count"`
	LedgerChecksum Checksum `json:"ledger_checksum"`
	Moves          int      `json:"moves"`
	// MovesIntact counts manifests whose records are all still where the move put them and
	// were checked against their checksum.
	MovesIntact int `json:"moves_intact"`
}

// VerifyReport is the result of Verify; OK is false when Problems is not empty.
type VerifyReport struct {
	OK       bool           `json:"ok"`
	Sources  []SourceReport `json:"sources"`
	Problems []string       `json:"problems,omitempty"`
}

// RecordHash is the keyed hash under which manifests and audit events name the record id of
// source: h.Sum over a prefix, the source and the id.
func RecordHash(h erasure.Hasher, source, id string) string {
	return h.Sum([]byte("record/1\x00" + source + "\x00" + id))
}
