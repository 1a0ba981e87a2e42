// Package scan looks through an estate for personal data the registry does not know about and
// for data of erased subjects that is still there: the under-deletion an erasure cannot see,
// because it only ever touches what is registered.
//
//	erasure scan --config erasure.yaml [--dataset D] [--json] [--sample 1000] [--budget 30s]
//
// # What is read
//
// Sources are derived from the registry, read-only, each with its own time budget:
//
//   - every SQL database: each distinct driver and DSN of the `sql` datasets. Every base table
//     of the database's own schemas is read, registered or not: PostgreSQL the schemas of the
//     search path plus those the datasets name, MySQL/MariaDB the DSN's database plus those the
//     datasets name, SQLite the main database. Each table gives its first Sample rows
//     (SELECT … LIMIT), every column.
//   - every Redis database: each distinct URL of the `redis` datasets. SCAN (MATCH
//     Options.RedisMatch, "*" by default) collects up to Sample keys; keys are grouped in
//     families by replacing whole ":"-separated segments with placeholders: what a registered
//     key template's placeholder captures takes its name ({user_id}), a segment a declared
//     type's value pattern recognizes the type's ({email}), numbers {n}, uuids {uuid}, long
//     hex {hex}, long random strings {token}, and a segment that is an erased identifier its
//     type's name. So profile:a@example.com and profile:b@example.org are one family,
//     profile:{email}, and a family's pattern never prints an identifier. String values (their
//     first 64 KiB) and the first 100 fields of hashes, members of sets and sorted sets and
//     items of lists are read too.
//   - every `files` dataset's directory (once per path and format): up to Sample rows in all,
//     spread over its partitions, every field of JSON lines, CSV and Parquet, gzip or not.
//
// JSON found in a value (a jsonb column, a JSON string in Redis, a CSV cell) is read field by
// field, down to 8 levels (users.profile.contact.email); an object keyed by values (numbers,
// ids, addresses) is read as two places, its keys (scores[keys]) and their values
// (scores.{key}), so that no location prints a value. A source that cannot be reached is reported with its error and the
// others are still scanned; a source whose budget runs out is reported as partial, with what
// was sampled by then.
//
// # Unregistered personal data
//
// A place (a column, a field, a key family) holds values of a declared identifier type when at
// least half its sampled values match the type's value pattern (scan.values), or its name
// matches one of the type's name patterns (scan.names) and its values do not contradict it
// (the type has no value pattern, nothing was sampled, or at least one value matches: a column
// email_verified of booleans is not an e-mail column). Of several types, the one with the
// most matching values wins, then a name match.
//
// Such a place is covered when a dataset names it: a `sql` dataset its table's key columns,
// provides columns and redacted columns (columns and set), a `files` dataset its key field and
// provides fields, a `redis` dataset every key matching one of its key templates (keys,
// hash_fields, members), with the whole key's content. An uncovered place is an unregistered
// finding, with a registry entry to start from: provides for a column of a registered table, a
// new dataset otherwise. A Redis family gives at most one finding (its key, or else the field
// or value that matched best).
//
// # Residue
//
// With the store and the audit key, sampled values are compared with the identifiers of every
// completed request: the store keeps their keyed hashes (audit.Hasher, HMAC-SHA-256), and the
// scan hashes values the same way, as they are and in the type's canonical form
// (erasure.IdentifierType.Canonical). A value is checked against type T when it matches T's
// value pattern, or the registry says the place holds T, or T has no value pattern and the
// place's name matches T's name patterns; so the number 1001 in a price column is never taken
// for user 1001 (an object key or a Redis key segment that is an erased identifier counts too,
// unless it is a number). A match is residue: data that should be gone and is not, because it was never
// registered, or came back after the request completed. Findings show the keyed hash
// ("email:3f1c…"), never the value: the subject's identifiers are not kept in clear once their
// request ends, and the scan does not bring them back. A subject may rightly come back (a new
// sign-up with the same address): residue says where to look, not that a law was broken.
//
// # Bounds
//
// Everything is sampled and bounded: Sample rows per table, keys per Redis database and rows
// per snapshot directory, values of at most 64 KiB, 10 000 key families per Redis database,
// and Budget per source (a database, a Redis database, a directory), after which the source
// stops where it is. Nothing is written anywhere.
package scan
