// Package sqlconn is the `sql` connector: it erases a subject's rows from a table in
// PostgreSQL (driver pgx), MySQL or MariaDB (go-sql-driver/mysql) or SQLite (modernc.org/sqlite),
// verifies they are gone, looks up further identifiers in them, checks the table against its
// declaration, and sweeps warehouse tables in bulk. It registers itself as connector "sql".
//
// # Block
//
//	datasets:
//	  - name: accounts.users
//	    owner: accounts-team
//	    connector: sql
//	    sql:
//	      driver: postgres            # postgres | mysql (or mariadb) | sqlite
//	      dsn: ${ACCOUNTS_DSN}        # a pgx URL or key=value string, a MySQL DSN, a SQLite file
//	      schema: public              # optional: PostgreSQL schema, MySQL database, SQLite attached db
//	      table: users
//	      key: { column: id, identifier: user_id }
//	      # or, all of which must match:
//	      # keys: [ { column: tenant, identifier: tenant_id }, { column: id, identifier: user_id } ]
//	      action: delete              # default; or redact
//	      columns: [email, name]      # redact: set these to NULL...
//	      set: { name: "[erased]" }   # ...and/or these to a replacement (bound as a parameter)
//	      where:                      # optional restriction, every condition ANDed
//	        - { column: status, equals: "active" }
//	        - { column: region, in: [eu, uk] }
//	        - { column: archived_at, is_null: true }   # false: IS NOT NULL
//	      batch: 1000                 # rows per statement (1 to 100000); sweep: keys per statement
//	      hide: { set: { status: hidden }, columns: [avatar] }  # optional: the grace window's hide action
//	    provides: [ { identifier: email, column: email } ]   # lookups
//	    retention: { older_than: 400d, column: created_at }  # optional: rows removed on a schedule
//
// Schema, table and column names must match ^[A-Za-z_][A-Za-z0-9_]{0,62}$ and are quoted in
// statements ("x" in PostgreSQL and SQLite, `x` in MySQL), so they are case-sensitive in
// PostgreSQL. Every value (identifier values, where values, replacements) is a bound
// parameter. Building a dataset does no I/O; the connection pool is opened on first use and
// shared by every dataset with the same driver and DSN, then closed with the last of them.
// The dataset's Keys are the key identifier types.
//
// # Erase
//
// The subject's rows are those whose key columns hold one of the subject's values (every key
// column for composite keys) and that satisfy every where condition. Erase deletes them, or
// for redact sets the columns, in statements of at most batch rows, each its own short
// statement (and transaction), until one erases fewer rows than batch:
//
//	PostgreSQL  DELETE FROM t WHERE ctid = ANY(ARRAY(SELECT ctid FROM t WHERE p LIMIT n)) AND p
//	MySQL       DELETE FROM t WHERE p LIMIT n
//	SQLite      DELETE FROM t WHERE rowid IN (SELECT rowid FROM t WHERE p LIMIT n)
//
// (UPDATE ... SET for redact.) The table must therefore be a table, not a view, and in SQLite
// not a WITHOUT ROWID table. Many values of one key are bound in chunks of 500. A redaction
// only touches rows some redacted column of which still differs from its redacted value, so a
// second run reports Removed 0. Zero rows is success. A subject lacking a key type is skipped
// (Removed 0, Detail says why).
//
// Values are bound with the type of their column, read once from the catalogue on first use:
// a value that the column cannot hold matches nothing instead of failing the statement or
// being converted. In particular an integer column gets only integers (MySQL would compare
// '42abc' as 42; SQLite would read "42\x00" as 42), a PostgreSQL uuid column only UUIDs, and
// PostgreSQL text never NUL bytes or invalid UTF-8 (PostgreSQL text cannot hold them, so such a
// value cannot match and is dropped, without error). Where values and replacements come from
// the registry, not from subjects: they are bound as text and converted by the database to the
// column's type (a where value PostgreSQL cannot convert is a permanent error). MySQL compares
// text by the column's collation, as the owning application's own queries do: usually without case and ignoring
// trailing spaces.
//
// # Guard
//
// Under a guard (erasure.GuardFrom: the executor sets the dataset's guard: max_removed, unless
// an operator forced the task past it), Erase runs in one transaction: it first counts the
// subject's rows still to erase inside it, and rolls back, having erased nothing, with a
// permanent *erasure.GuardError naming the count and the limit when they exceed max_removed;
// otherwise the same bounded statements run in that transaction, which is rolled back too should
// they remove more than the limit (rows inserted meanwhile). On PostgreSQL, for a subject with
// one value per key column, the same is one statement (its count and its erasure see one
// snapshot, and the erasure's predicate is false unless the count is within the limit): one round
// trip instead of four. Without a guard the statements run
// each in its own short transaction, as above. A sweep counts, inside its transaction, the rows
// of each queued subject (by key tuple, joined to the temporary key table) and fails the sweep,
// naming the tasks whose subjects exceed max_removed (not those forced past it), before erasing
// anything; with max_removed_share it counts the dataset's rows (where conditions applied) and
// rolls back a sweep that would remove more than that share of them ("table NAME" is the
// partition named).
//
// # Canary
//
// With a canary, the plant block says where the canary's row goes:
//
//	canary:
//	  plant:
//	    table: users                 # default: the dataset's table (schema: its schema)
//	    values: { name: canary }     # the columns the row needs besides the keys
//
// Plant inserts one row: the canary subject's value in each key column, the where conditions'
// values (equals, the first of in) and values, each bound as a parameter. Remains counts the
// plant table's rows holding the subject's key values, without the where conditions, as the
// application reads them. A table that moved fails the plant, naming the table.
//
// # Verify, Resolve, Check
//
// Holds reports whether rows of the subject remain (for redact: not yet redacted); Remaining
// counts them. Resolve returns, for each provides entry, the distinct non-NULL, non-empty
// values of its column in the subject's rows (where conditions apply) as identifiers; values
// that are not valid identifiers are left out, and more than MaxResolved values for one
// subject is a permanent error (the key is wrong). Check connects and verifies that the table
// exists and has every configured column (keys, redacted, where and provides columns), reading
// pg_catalog (PostgreSQL, resolving the table through search_path as statements do),
// information_schema (MySQL) or pragma_table_info (SQLite); it erases nothing.
//
// # Errors
//
// Errors are classified by type and code, never by message: connection failures, deadlocks
// and serialization failures (PostgreSQL 40001, 40P01, 55P03, classes 08, 53, 57; MySQL 1205,
// 1213, 2006, 2013...) and SQLITE_BUSY/LOCKED are transient. Undefined tables and columns,
// denied privileges, syntax and data errors are permanent. A foreign-key violation
// (PostgreSQL 23503, MySQL 1451, SQLite SQLITE_CONSTRAINT_FOREIGNKEY) is a permanent
// *ForeignKeyError naming the constraint and the referencing table when the database says them
// (SQLite does not: the tables whose foreign keys reference ours are listed instead) and the
// fix: "add `after: [dataset erasing that table]` to dataset X", or, when no dataset erases
// the referencing table, that one must be declared. Messages never quote values: database
// messages that do (data errors) are replaced by their code.
//
// # Hide, retention, replay
//
// hide declares the dataset's hide action: while a request waits for its grace window, the
// subject's rows (as Erase selects them) get one UPDATE setting columns to NULL and each set
// column to its value (bound as a parameter); the erasure follows when the window ends.
//
// retention (a dataset key, see the registry) removes the rows whose column is before now −
// older_than, with the dataset's where conditions: Expire counts them, has the count approved
// (a dry run or a guard stops there), then deletes them in statements of at most batch rows,
// addressed as Erase addresses rows, until one deletes fewer; rows whose column is NULL stay.
// The cutoff is bound as the column compares: a time for date and time types, Unix seconds
// for integer columns, text otherwise (RFC 3339; in SQLite, whose DATETIME columns hold text,
// "2006-01-02 15:04:05"); retention.format (unix, unix_ms, rfc3339) says otherwise.
//
// Replay re-applies erasures to a table restored from a backup without any identifier in
// clear: the distinct key values are read in key order, batch at a time (each page after the
// last value of the one before), the caller matches each with the keyed hashes of the
// identifiers erased since the backup, and the matching values' rows are erased as Erase does.
// It needs a table keyed by one column.
//
// # Sweep
//
// A dataset declared with method: offline (a warehouse table) is erased by Sweep: the queued
// subjects' key values are loaded into a temporary table (COPY in PostgreSQL, multi-row
// INSERTs elsewhere) and the rows erased by set-based statements joined to it, in bounded
// chunks of queued keys, all in one transaction, so that readers see the table before or
// after the sweep and a crash leaves it as it was.
package sqlconn
