-- Signed checkpoints of the audit chain's head (erasure.AuditCheckpoint), written by the server
-- periodically and on demand, append-only like the trail. They are also meant to be exported
-- and kept elsewhere: one kept here only catches a rewrite that forgot it.
CREATE TABLE audit_checkpoints (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    format     TEXT   NOT NULL,
    deployment TEXT   NOT NULL,
    block      BIGINT NOT NULL,
    events     BIGINT NOT NULL,
    hash       TEXT   NOT NULL,
    at         BIGINT NOT NULL,
    public_key TEXT   NOT NULL,
    signature  TEXT   NOT NULL
);

CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE OR DELETE ON audit_checkpoints
FOR EACH ROW EXECUTE FUNCTION erasure_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
FOR EACH STATEMENT EXECUTE FUNCTION erasure_append_only();
-- The index of the trail could be emptied at once; not any more.
CREATE TRIGGER audit_index_no_truncate BEFORE TRUNCATE ON audit_index
FOR EACH STATEMENT EXECUTE FUNCTION erasure_append_only();
