-- Signed checkpoints of the audit chain's head (erasure.AuditCheckpoint), written by the server
-- periodically and on demand, append-only like the trail. They are also meant to be exported
-- and kept elsewhere: one kept here only catches a rewrite that forgot it.
CREATE TABLE audit_checkpoints (
    seq        INTEGER PRIMARY KEY,
    format     TEXT    NOT NULL,
    deployment TEXT    NOT NULL,
    block      INTEGER NOT NULL,
    events     INTEGER NOT NULL,
    hash       TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    public_key TEXT    NOT NULL,
    signature  TEXT    NOT NULL
);

CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
