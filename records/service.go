package records

import (
	"context"
	"time"
)

// Service is a record store. It is safe for concurrent use. Every method returns
// *erasure.Error values with the codes its comment names, EUNAVAILABLE when the store's
// database does not answer (try again), and the context's error when ctx ends. A source is
// checked with ValidSource and an id with ValidID (EINVALID) before anything is read.
//
// store/sqlrecords implements it on SQLite and PostgreSQL.
type Service interface {
	// Get returns the record (source, id) from live or, failing that, deleted: ENOTFOUND when
	// it was never seen. A tombstone, live or archived, is a record with Deleted set; the API
	// answers it 410.
	Get(ctx context.Context, source, id string) (*Record, error)

	// Put applies one write and returns the record and what happened (Status…): a higher
	// version replaces, the same version with an identical payload (compared after JSON
	// compaction) is StatusUnchanged, a lower or conflicting one is ECONFLICT; a write without
	// a version takes the next one, counting the deleted partition; a write to an id in
	// deleted brings it back to live in the same transaction. EINVALID for a bad write
	// (Write.Validate), ENOTFOUND for a deletion of an id never seen.
	Put(ctx context.Context, source string, w Write) (*Record, string, error)

	// Delete makes (source, id) a tombstone with the next version (or o.Version), the current
	// time and o.Reason (default "deleted"), keeping the payload unless o.Purge. On a
	// tombstone it is StatusUnchanged, except that Purge drops a payload still there.
	// ENOTFOUND when the id was never seen, ECONFLICT for a stale o.Version.
	Delete(ctx context.Context, source, id string, o DeleteOptions) (*Record, string, error)

	// WriteBatch applies writes in one transaction, in order; each write's refusal (the codes
	// of Put) is reported in its result and does not stop the others. EINVALID for a bad
	// source, ETOOLARGE for more than MaxBatch writes.
	WriteBatch(ctx context.Context, source string, writes []Write) ([]WriteResult, error)

	// Import inserts records that the store has never seen, as they are (version, tombstone,
	// payload), into live in one transaction: the initial load of a source. EINVALID for a bad
	// record, ECONFLICT when an id already exists in either partition (nothing is then
	// imported).
	Import(ctx context.Context, source string, recs []Record) error

	// Archive moves every tombstone of o.Source deleted before o.DeletedBefore from live to
	// deleted, in batches that each commit the copy, the delete, the batch's Manifest and an
	// EventArchived audit event carrying it, together. A crash loses and duplicates nothing
	// and calling again finishes the job. A dry run reports candidates, bytes and years and
	// moves nothing. EINVALID for bad options; ECONFLICT, with the report, when the move
	// would exceed the store's share guard and o.Force is not set.
	Archive(ctx context.Context, o ArchiveOptions) (*MoveReport, error)

	// Restore moves records from deleted back to live, by id or by deletion date, with the
	// same batches, manifests and audit (EventRestored) as Archive. Ids not in deleted are
	// counted as AlreadyLive or NotFound. EINVALID for bad options (both or neither of IDs and
	// DeletedAfter, a bad id), ETOOLARGE for more than MaxRestoreIDs ids.
	Restore(ctx context.Context, o RestoreOptions) (*MoveReport, error)

	// Reconcile tombstones the live records of o.Source whose ids are absent from o.Present,
	// in batches each with an EventReconciled audit event. EINVALID when an id of o.Control is
	// absent from o.Present (the list is incomplete: never forced); ECONFLICT, with the
	// report, when more than the store's share of the source's live records would go and
	// o.Force is not set.
	Reconcile(ctx context.Context, o ReconcileOptions) (*MoveReport, error)

	// Verify checks one source (all when source is empty) from one snapshot: live ∪ deleted
	// matches the source's ledger in count and checksum, no id is in both partitions,
	// deleted holds only tombstones, and every move manifest agrees with the records still
	// attributed to it. Problems are reported in the result, not as an error.
	Verify(ctx context.Context, source string) (*VerifyReport, error)

	// Compact rebuilds a partition so that its storage is dense again after a large archive,
	// and returns how long it took. EINVALID for a bad partition.
	Compact(ctx context.Context, partition string) (time.Duration, error)

	// Scan calls fn with each record of seg in partition whose id is above after (when set),
	// in id order, at most limit (0: all), and returns how many it read. The record is only
	// valid during the call. EINVALID for a bad source or partition.
	Scan(ctx context.Context, partition string, seg Segment, after string, limit int64, fn func(*RawRecord) error) (int64, error)

	// Reader serves reindexes straight from the store.
	Reader

	// Ping returns nil when the store answers reads.
	Ping(ctx context.Context) error
}
