-- The audit trail as a chain of blocks (see the SQLite migration of the same name).
CREATE TABLE audit_blocks (
    seq         BIGINT PRIMARY KEY,
    first_event BIGINT NOT NULL,
    events      INTEGER NOT NULL,
    at          BIGINT NOT NULL,
    body        TEXT   NOT NULL,
    prev_hash   TEXT   NOT NULL,
    hash        TEXT   NOT NULL
);
CREATE TABLE audit_index (
    request_id TEXT   NOT NULL,
    block      BIGINT NOT NULL,
    PRIMARY KEY (request_id, block)
);
CREATE TABLE audit_head (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    block  BIGINT NOT NULL,
    events BIGINT NOT NULL,
    hash   TEXT   NOT NULL
);
INSERT INTO audit_head (id, block, events, hash)
SELECT 1, 0, coalesce(max(seq), 0),
       coalesce((SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1), '0000000000000000000000000000000000000000000000000000000000000000')
FROM audit_events;

CREATE TRIGGER audit_blocks_no_update BEFORE UPDATE OR DELETE ON audit_blocks
FOR EACH ROW EXECUTE FUNCTION erasure_append_only();
CREATE TRIGGER audit_blocks_no_truncate BEFORE TRUNCATE ON audit_blocks
FOR EACH STATEMENT EXECUTE FUNCTION erasure_append_only();
CREATE TRIGGER audit_index_no_update BEFORE UPDATE OR DELETE ON audit_index
FOR EACH ROW EXECUTE FUNCTION erasure_append_only();
CREATE TRIGGER audit_events_no_insert BEFORE INSERT ON audit_events
FOR EACH ROW EXECUTE FUNCTION erasure_append_only();
