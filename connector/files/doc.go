// Package files is the connector for offline snapshots: a directory of partition files in JSON
// lines, CSV or Parquet (JSON lines and CSV optionally gzip-compressed), erased in sweeps.
//
// # Registry
//
//   - name: warehouse.events
//     connector: files                      # method offline
//     files: { path: /data/events, format: jsonl, compression: auto, pattern: "*.jsonl.gz",
//     key: { field: user.id, identifier: user_id }, index: true, workers: 0,
//     state_dir: "" }
//
// key.field is a dotted path into nested JSON objects, a CSV header name, or a dotted Parquet
// column path (through optional and nested groups; repeated columns cannot be keys). Keys are
// compared as strings: JSON numbers in canonical form (42, 42.0 and 4.2e1 all match "42"),
// Parquet integers in decimal, booleans as true/false. Rows whose key is missing or null are
// never erased. workers is how many partitions are rewritten at once; 0 means two per core,
// so that a worker waiting for its fsync does not leave a core idle.
//
// # Partitions
//
// Every regular file under path (recursively, symbolic links not followed) whose base name
// matches the pattern is a partition. Names starting with "." or "_" are never partitions:
// the state directory (.erasure by default), temporary files (.<name>.erasure-<sweep>.tmp),
// and markers such as _SUCCESS.
//
// # Sweeps
//
// Sweep(ctx, batch) erases every row keyed by any of the batch subjects' values of the key's
// identifier type, from every partition, with Config.Workers partitions at a time. The same
// work is split into units for workers that share a sweep:
//
//	plan, _ := c.Begin(ctx, keys)            // journal + partition list; plan.ID names the sweep
//	c.RewritePartition(ctx, plan, p)         // any worker, any process, once per partition
//	c.Commit(ctx, plan)                      // one worker, once all units are done
//
// (a worker that did not begin the sweep uses OpenPlan(ctx, plan.ID)).
//
// A partition is read as a stream; rows are copied byte for byte (JSON lines and CSV: the
// original bytes of each kept line or record, quoted line breaks included; gzip partitions are
// recompressed, their decompressed bytes unchanged) or value for value (Parquet: same schema,
// key/value metadata, codec, row order and row groups, row groups without a match copied whole).
// A partition without a match is never written: its mtime and bytes stay as they were.
//
// A sweep commits in two phases. Every partition that holds a queued key is first rewritten
// into a temporary file beside it and synced; only when every partition is ready is each
// renamed over its original and the directories synced. Readers see each file whole, old or
// new, and the swap itself takes only renames. A sweep that fails before the swap (a corrupt
// Parquet file, a truncated gzip stream, malformed JSON — each reported with the file's name
// as a *erasure.PermanentError — or a full disk, a cancelled context) swaps nothing: its
// temporary files and journal are deleted, and the caller leaves its tasks queued. The price
// is disk space: a sweep needs room for the rewritten copies of every partition it changes.
//
// # Crashes
//
// The journal (<state>/sweeps/<id>/, see journal.go) records the sweep's key set and each
// partition's state. After a crash at any point, Resume or a Sweep with the same key set (how
// a restarted server resumes it) finishes the sweep: partitions are read again unless the
// journal shows them handled and unchanged, prepared copies whose originals are unchanged are
// reused, and the swap is completed. Rewriting is idempotent — a partition already swapped has
// no match left and is left alone — so correctness never rests on the journal being up to
// date, only on each rename being atomic. The journal holds the keys in clear (mode 0600) until
// the sweep commits. A sweep that commits also drops the journals of interrupted sweeps whose
// keys it covered. Journal files are sealed under the index key; a journal that is not (one an
// older version left, one sealed under another key, or a malformed one) is not believed, since
// its key set may not be the sweep's. Resume, CommitSweep and any sweep that commits discard
// it themselves, with the sweep's temporary files, and log a warning (Resume also reports it,
// Report.Discarded): nothing needs removing by hand. That is safe because a journal only saves
// work; the next sweep of its subjects reads every partition again. Sweep, Resume and BuildIndex take a lock
// file in the state directory, so two processes never run them at once on one snapshot; the
// snapshot must not be rewritten by anyone else during a sweep.
//
// # Guard
//
// Under a guard (erasure.GuardFrom: the sweeper sets the dataset's), RewritePartition refuses
// a partition of at least share_min_rows rows whose sweep would remove more than
// max_removed_share of them, with a permanent *erasure.GuardError naming the partition, before
// preparing it; the sweep then swaps nothing. The rows each key matches are recorded in the
// journal, and before the swap Sweep (or CheckSubjects, for a shared sweep) sums them per
// subject and refuses the sweep, naming the tasks, when a subject not forced past the guard
// (SweepSubject.OverrideGuard) exceeds max_removed. Either way no partition changes.
//
// # Canary
//
//	canary: { plant: { partition: canary/erasure-canary.jsonl, fields: { event: canary } } }
//
// Plant appends a row to the canary partition (default erasure-canary.jsonl or .csv, .gz with
// compression gzip), created when absent and which must be a partition of the snapshot: for
// JSON lines an object with the canary's key value at the key's path and the fields; for CSV a
// record under the header "key field, fields in name order". It takes the snapshot's lock.
// Remains reads the canary partition for the planted key. Parquet snapshots take no canary.
//
// # Skip index
//
// With index: true, a sweep keeps a sidecar per partition (<state>/index/<partition>.idx) with
// the hashes of the keys it holds, built for every partition a sweep reads or rewrites, or by
// BuildIndex. A sweep then reads only partitions whose sidecar may hold a queued key. A sidecar
// is tied to its partition's size, mtime and a checksum of its first and last 4 KiB; a stale,
// torn or missing sidecar means the partition is read. The hashes are keyed (HighwayHash under
// the index key, which the server derives from the audit key and hands every connector:
// SetIndexKey), so that a sidecar tests no value for whoever lacks the key, and each sidecar
// is sealed under that key, so that nobody without it can make a sweep skip a partition; a
// sidecar made under another key, or changed, is not used. A commit removes the sidecars of partitions that are gone,
// of an earlier format, or rewritten while the index is off.
//
// # Progress and export
//
// ContextWithProgress makes a sweep report Progress (partitions and bytes done, rows scanned
// and removed, bytes read) after each partition and every 32 MiB. WriteExport writes the queued
// identifiers as JSON lines or Parquet for a sweep run by an external engine.
package files
