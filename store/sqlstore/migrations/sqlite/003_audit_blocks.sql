-- The audit trail becomes a chain of blocks, each holding the events of one transaction and
-- sealed with a keyed hash (see erasure.AuditBlock). audit_events keeps the events written
-- before: the legacy part of the trail, after which the first block chains.
CREATE TABLE audit_blocks (
    seq         INTEGER PRIMARY KEY,
    first_event INTEGER NOT NULL,
    events      INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    body        TEXT    NOT NULL,
    prev_hash   TEXT    NOT NULL,
    hash        TEXT    NOT NULL
);

-- Which blocks hold events of which request.
CREATE TABLE audit_index (
    request_id TEXT    NOT NULL,
    block      INTEGER NOT NULL,
    PRIMARY KEY (request_id, block)
) WITHOUT ROWID;

-- The chain's head: the last block (0 before the first), the number of events up to it, and
-- its hash (the last legacy event's, or the genesis, before the first block).
CREATE TABLE audit_head (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    block  INTEGER NOT NULL,
    events INTEGER NOT NULL,
    hash   TEXT    NOT NULL
);
INSERT INTO audit_head (id, block, events, hash)
SELECT 1, 0, coalesce(max(seq), 0),
       coalesce((SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1), '0000000000000000000000000000000000000000000000000000000000000000')
FROM audit_events;

CREATE TRIGGER audit_blocks_no_update BEFORE UPDATE ON audit_blocks
BEGIN SELECT RAISE(ABORT, 'audit blocks are append-only'); END;
CREATE TRIGGER audit_blocks_no_delete BEFORE DELETE ON audit_blocks
BEGIN SELECT RAISE(ABORT, 'audit blocks are append-only'); END;
CREATE TRIGGER audit_index_no_update BEFORE UPDATE ON audit_index
BEGIN SELECT RAISE(ABORT, 'audit blocks are append-only'); END;
CREATE TRIGGER audit_index_no_delete BEFORE DELETE ON audit_index
BEGIN SELECT RAISE(ABORT, 'audit blocks are append-only'); END;
-- No more legacy events are written.
CREATE TRIGGER audit_events_no_insert BEFORE INSERT ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only: new events are appended as blocks'); END;
