// Package records is the source-record store: one versioned record per (source, id), kept in a
// `live` partition written by adapters and read by the API and by reindexes, and a `deleted`
// partition of identical shape that holds tombstones moved out of the way.
//
// # Records and tombstones
//
// A write carries a version: a higher one replaces, the same one with an identical payload
// (compared after JSON compaction) is a no-op, a lower or conflicting one is ECONFLICT. A write
// without a version takes the next one, counting the deleted partition, so an id that comes
// back never restarts at 1; a write to an archived id brings it back to live in the same
// transaction. A delete makes a tombstone (next version, deletion time, reason) and keeps the
// payload unless it purges. GET answers 200 for a record, 410 for a tombstone in either
// partition and 404 for an id never seen: one statement, two primary-key lookups, no scan.
//
// # Moves: archive and restore
//
// Archive moves a source's tombstones deleted before a date to deleted; restore moves records
// back by id or by deletion date. Both run in batches (default 1000) that each copy, delete,
// write a manifest row (count, checksum, id range) and an audit event carrying the manifest, in
// one transaction, so a crash at any point loses and duplicates nothing and running again
// finishes the job. Batches walk the primary key in id order: with no secondary index, each
// batch writes contiguous pages (a deletion-time index made archives several times slower,
// every batch scattering its writes over the index). A guard refuses an archive of more than
// MaxArchiveShare of the source's records unless forced; a dry run reports records and bytes
// by year of deletion.
//
// Deleting 44% of a B-tree's rows leaves its pages part empty; SQLite merges a page only when
// it is under a third full and PostgreSQL never does, so a reindex still reads as many pages.
// Compact (archive --compact) rebuilds the partition in id order; the benchmark shows its effect.
//
// # Proof: ledger, checksums, verify
//
// Each record hashes (SHA-256, first 8 bytes) over its source, id, version, deletion and
// payload; a checksum is the sum of these modulo 2^64, so it does not depend on order or on
// the partition. Every write updates its source's ledger row (count and checksum of live ∪
// deleted, and the count of each partition) in the same transaction; moves only shift the
// partition counts. Verify recomputes both partitions and checks them against the ledger
// (nothing lost, nothing twice), that no id is in both
// partitions, that deleted holds only tombstones, and that each manifest still matches the
// records attributed to it (moved_in). The ledger row also serialises a source's writers: its
// upsert is each write transaction's first statement, which on SQLite takes the write lock up
// front (no lock-upgrade deadlocks) and on PostgreSQL is followed by SELECT … FOR UPDATE.
//
// # Reindex
//
// Reindex streams the live partition (tombstones not yet archived included, so that the
// index drops them; archived ones are never read) to a Sink: JSON lines (stdout, a file), a
// NATS subject (one message per batch) or an HTTP endpoint (NDJSON POSTs, retried). Batches
// are bounded by records and bytes. Sources are split into id-range segments (the total from
// the ledger, boundaries interpolated between the smallest and largest id and snapped to real
// ids: no pass over the records before the read) read in parallel; a
// checkpoint file records each segment's last id sent, so an interrupted reindex resumes;
// delivery is at least once. Modes: complete, partial (Limit) and specific (IDs, warning about
// ids not in live). IncludeDeleted also streams the deleted partition. The Reader is the Store
// itself or RemoteReader, which reads the API's NDJSON export.
//
// # Reconcile
//
// For sources that delete hard, Reconcile tombstones the live records absent from the
// source's current id list, unless more than MaxReconcileShare of its live records would go
// (without force) or an id of a control list is missing from the list (never forced: the list
// is then incomplete).
//
// # SQL dialects
//
// The SQL runs on SQLite and PostgreSQL (TestStore_Postgres runs the property test on both).
// Differences: placeholders (? rewritten to $n), WITHOUT ROWID on SQLite (the table is then
// clustered on (source, id)), FOR UPDATE on the ledger on PostgreSQL, and Compact's DDL. Times
// are INTEGER unix milliseconds. Move ids are MAX(id)+1 under the source's lock, so two
// concurrent moves of different sources on PostgreSQL may collide on the primary key and one
// fails (and can be run again); SQLite serialises all writers.
package records
