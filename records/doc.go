// Package records is the domain of the source-record store: one versioned record per (source,
// id), kept in a `live` partition written by adapters and read by the API and by reindexes, and
// a `deleted` partition of identical shape that holds tombstones moved out of the way. It holds
// the types (records, writes, tombstones, move reports and manifests, verify and reindex
// types), the Service interface with its contract, checksums and validation; it imports only
// the root package. Implementations and adapters live around it:
//
//	store/sqlrecords   the Service on SQLite and PostgreSQL, with its conformance tests
//	api                its HTTP routes under /v1/records/
//	client             RecordsReader, a Reader over the API's NDJSON export
//	reindex            Run (a reindex from a Reader to a Sink) and the sinks: stdout, file, NATS, HTTP
//	connector/records  the records connector, which erases a subject's records through a Service
//
// # Records and tombstones
//
// A write carries a version: a higher one replaces, the same one with an identical payload
// (compared after JSON compaction) is a no-op, a lower or conflicting one is ECONFLICT. A write
// without a version takes the next one, counting the deleted partition, so an id that comes
// back never restarts at 1; a write to an archived id brings it back to live in the same
// transaction. A delete makes a tombstone (next version, deletion time, reason) and keeps the
// payload unless it purges. Get answers a record, a tombstone from either partition (the API's
// 410), or ENOTFOUND for an id never seen (404).
//
// # Moves: archive and restore
//
// Archive moves a source's tombstones deleted before a date to deleted; restore moves records
// back by id or by deletion date. Both run in batches (default 1000) that each copy, delete,
// write a Manifest (count, checksum, id range) and an audit event carrying it, in one
// transaction, so a crash at any point loses and duplicates nothing and running again finishes
// the job. A guard refuses an archive of more than a configured share of the source's records
// unless forced; a dry run reports records and bytes by year of deletion.
//
// # Proof: checksums and verify
//
// Each record hashes (SHA-256, first 8 bytes) over its source, id, version, deletion and
// payload (RawRecord.Checksum); a Checksum is the sum of these modulo 2^64, so it depends
// neither on order nor on the partition. A store keeps, per source, the count and checksum of
// live ∪ deleted as its writes made them; moves never change them, so Verify finds any loss
// or duplication, and checks every manifest against the records it moved.
//
// # Reindex
//
// A reindex streams the live partition (tombstones not yet archived included, so that the
// index drops them; archived ones are never read) from a Reader to a Sink in batches bounded by
// records and bytes, reading each source in id-range Segments in parallel, with a checkpoint
// file to resume from; delivery is at least once. Modes: complete, partial (Limit) and specific
// (IDs, warning about ids not in live); IncludeDeleted also streams the deleted partition. The
// types are here; package reindex runs it.
//
// # Reconcile
//
// For sources that delete hard, Reconcile tombstones the live records absent from the
// source's current id list, unless more than a configured share of its live records would go
// (without force) or an id of a control list is missing from the list (never forced: the list
// is then incomplete).
package records
