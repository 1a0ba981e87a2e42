-- The record store: two partitions of identical shape. `live` is written by adapters and read
-- by the API and by reindexes; `deleted` holds tombstones moved out of the way by archive.
-- Times are unix milliseconds. payload is the record's JSON (NULL once purged).
-- PostgreSQL: the same schema as sqlite/001_records.sql, without SQLite's WITHOUT ROWID.
CREATE TABLE records_live (
    source     TEXT   NOT NULL,
    id         TEXT   NOT NULL,
    version    BIGINT NOT NULL,
    deleted_at BIGINT,
    reason     TEXT,
    updated_at BIGINT NOT NULL,
    moved_in   BIGINT,
    payload    TEXT,
    PRIMARY KEY (source, id)
);

-- No secondary index on either partition, on purpose: archive and restore walk the primary key
-- in id order, so that each batch deletes from and inserts into contiguous pages. An index on
-- deletion time would scatter every batch's writes over the whole index (measured: several
-- times slower archives), and it would only speed up dry runs, which scan one source.

CREATE TABLE records_deleted (
    source     TEXT   NOT NULL,
    id         TEXT   NOT NULL,
    version    BIGINT NOT NULL,
    deleted_at BIGINT,
    reason     TEXT,
    updated_at BIGINT NOT NULL,
    moved_in   BIGINT,
    payload    TEXT,
    PRIMARY KEY (source, id)
);

-- The ledger holds, per source, the count and checksum of live ∪ deleted as the writes made
-- them. Moves never change them, so `records verify` detects any loss or duplication. It also
-- counts each partition (moves shift records between the two), so that a reindex knows its
-- total without counting.
CREATE TABLE records_ledger (
    source        TEXT   NOT NULL PRIMARY KEY,
    count         BIGINT NOT NULL,
    checksum      BIGINT NOT NULL,
    live_count    BIGINT NOT NULL,
    deleted_count BIGINT NOT NULL
);

-- One row per committed move batch (archive, restore): its manifest.
CREATE TABLE records_moves (
    id       BIGINT NOT NULL PRIMARY KEY,
    source   TEXT   NOT NULL,
    kind     TEXT   NOT NULL,
    target   TEXT   NOT NULL,
    count    BIGINT NOT NULL,
    checksum BIGINT NOT NULL,
    first_id TEXT   NOT NULL,
    last_id  TEXT   NOT NULL,
    at       BIGINT NOT NULL,
    actor    TEXT   NOT NULL
);
