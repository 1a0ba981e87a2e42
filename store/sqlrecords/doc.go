// Package sqlrecords is the record store (records.Service) on SQLite and PostgreSQL, in the
// database of the server's store or one of its own. Its tables are records_live and
// records_deleted (identical shape, primary key (source, id)), records_ledger and
// records_moves; the contract is the records package's, this page is how it is kept.
//
// # Writes
//
// Every write transaction's first statement is the upsert of its source's ledger row, which
// on SQLite takes the write lock up front (no lock-upgrade deadlocks) and on PostgreSQL is
// followed by SELECT … FOR UPDATE: the ledger row serialises a source's writers. The write then
// updates the ledger (count and checksum of live ∪ deleted, and each partition's count) in the
// same transaction; moves only shift the partition counts. GET is one statement, two
// primary-key lookups (UNION ALL of both partitions), no scan.
//
// # Moves
//
// Archive and restore batches walk the primary key in id order: with no secondary index, each
// batch writes contiguous pages (a deletion-time index made archives several times slower,
// every batch scattering its writes over the index). Each batch copies, deletes, writes its
// records_moves row and appends its audit event (Options.AppendAudit, in the same
// transaction); a record carries the move that put it where it is (moved_in), which Verify
// checks against the manifest. Move ids are MAX(id)+1 under the source's lock, so two
// concurrent moves of different sources on PostgreSQL may collide on the primary key and one
// fails (and can be run again); SQLite serialises all writers.
//
// Deleting 44% of a B-tree's rows leaves its pages part empty; SQLite merges a page only when
// it is under a third full and PostgreSQL never does, so a reindex still reads as many pages.
// Compact (archive --compact) rebuilds the partition in id order; bench/records shows its
// effect.
//
// # Reads for reindexes
//
// Segments plans id ranges from the ledger's count, interpolating boundaries between the
// smallest and largest id and snapping them to real ids (each an index seek in the database's
// own collation), so planning never walks the records. Reads go to Options.ReadDB when set (the
// server's read pool), so that they do not queue behind writes.
//
// # SQL dialects and migrations
//
// The SQL runs on SQLite and PostgreSQL (TestStore_Postgres runs the property test on both).
// Differences: placeholders (? rewritten to $n by migrate.Dialect.Rebind), WITHOUT ROWID on
// SQLite (each partition is then clustered on (source, id)), FOR UPDATE on the ledger and a
// REPEATABLE READ snapshot for Verify on PostgreSQL, and Compact's DDL. Times are INTEGER unix
// milliseconds.
//
// The schema is in migrations/sqlite and migrations/postgres (the same file names in both),
// applied by store/migrate as the set "records" into schema_migrations, which it shares with
// the server's store. Databases migrated before that were tracked in records_schema_migrations
// (version, applied_at): Open adopts what it records, and leaves the table unused.
package sqlrecords
