-- Requests, their identifiers, their tasks and the audit trail. Times are unix milliseconds.
CREATE TABLE requests (
    id              TEXT    PRIMARY KEY,
    status          TEXT    NOT NULL,
    reason          TEXT    NOT NULL,
    deadline        INTEGER NOT NULL,
    submitted_by    TEXT    NOT NULL,
    idempotency_key TEXT    UNIQUE,
    fingerprint     TEXT    NOT NULL DEFAULT '',
    cancelled       INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    finished_at     INTEGER
);
CREATE INDEX requests_status ON requests (status, id);
CREATE INDEX requests_open_deadline ON requests (deadline) WHERE status NOT IN ('completed', 'cancelled');

-- value is the identifier in clear while its request is open, NULL once it ended; hash is the
-- keyed hash "type:hex", kept for ever.
CREATE TABLE identifiers (
    request_id TEXT    NOT NULL REFERENCES requests (id),
    type       TEXT    NOT NULL,
    value      TEXT,
    hash       TEXT    NOT NULL,
    found_by   TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (request_id, hash)
);

CREATE TABLE tasks (
    id          INTEGER PRIMARY KEY,
    request_id  TEXT    NOT NULL REFERENCES requests (id),
    dataset     TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    method      TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    keys        TEXT    NOT NULL DEFAULT '',
    after       TEXT    NOT NULL DEFAULT '',
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT    NOT NULL DEFAULT '',
    removed     INTEGER NOT NULL DEFAULT 0,
    note        TEXT    NOT NULL DEFAULT '',
    verified_at INTEGER,
    due_at      INTEGER NOT NULL,
    lease_owner TEXT    NOT NULL DEFAULT '',
    leased_from TEXT    NOT NULL DEFAULT '',
    sweep_id    TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX tasks_due ON tasks (due_at) WHERE state IN ('pending', 'running', 'dispatched');
CREATE INDEX tasks_request ON tasks (request_id);
CREATE INDEX tasks_dataset_state ON tasks (dataset, state);

CREATE TABLE audit_events (
    seq        INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    actor      TEXT    NOT NULL,
    type       TEXT    NOT NULL,
    request_id TEXT    NOT NULL DEFAULT '',
    task_id    INTEGER NOT NULL DEFAULT 0,
    dataset    TEXT    NOT NULL DEFAULT '',
    data       TEXT    NOT NULL DEFAULT '',
    prev_hash  TEXT    NOT NULL,
    hash       TEXT    NOT NULL
);
CREATE INDEX audit_request ON audit_events (request_id, seq) WHERE request_id <> '';

-- The trail is append-only: the database refuses to change or remove an event.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
