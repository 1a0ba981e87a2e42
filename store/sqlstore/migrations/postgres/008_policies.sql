-- Policies around erasure (see policy.go in the root package): a grace window and the
-- suppression opt-out per request, legal holds, the suppression list, retention runs and the
-- replay escrow. Times are unix milliseconds. The same tables as the SQLite schema, in PostgreSQL's types.

-- not_before ends a request's grace window (NULL: none); suppress is 0 when its submitter
-- opted out of the suppression list.
ALTER TABLE requests ADD COLUMN not_before BIGINT;
ALTER TABLE requests ADD COLUMN suppress INTEGER NOT NULL DEFAULT 1;
-- Grace windows that end are found by their scheduled tasks.
CREATE INDEX tasks_scheduled ON tasks (due_at) WHERE state = 'scheduled';
-- Holds find the open requests of their identifier; replays the completed requests since a date.
CREATE INDEX identifiers_by_hash ON identifiers (hash);
CREATE INDEX requests_completed ON requests (finished_at) WHERE status = 'completed';

-- identifier is the keyed hash of the identifier held; datasets the names covered, comma
-- separated, unless all_datasets.
CREATE TABLE holds (
    id           TEXT    PRIMARY KEY,
    identifier   TEXT    NOT NULL,
    all_datasets INTEGER NOT NULL,
    datasets     TEXT    NOT NULL DEFAULT '',
    reason       TEXT    NOT NULL,
    created_by   TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    released_by  TEXT    NOT NULL DEFAULT '',
    released_at  BIGINT
);
CREATE INDEX holds_active ON holds (identifier) WHERE released_at IS NULL;

-- hash is the keyed hash "type:hex" of a completed request's identifier under the suppression
-- key; removed_at is set by an operator's unsuppress.
CREATE TABLE suppressions (
    hash       TEXT    PRIMARY KEY,
    type       TEXT    NOT NULL,
    request_id TEXT    NOT NULL,
    added_at   BIGINT  NOT NULL,
    removed_at BIGINT,
    removed_by TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX suppressions_type ON suppressions (type, hash) WHERE removed_at IS NULL;

CREATE TABLE retention_runs (
    id       TEXT    PRIMARY KEY,
    dataset  TEXT    NOT NULL,
    cutoff   BIGINT  NOT NULL,
    dry_run  INTEGER NOT NULL,
    state    TEXT    NOT NULL,
    actor    TEXT    NOT NULL,
    started  BIGINT  NOT NULL,
    finished BIGINT,
    expired  INTEGER NOT NULL DEFAULT 0,
    removed  INTEGER NOT NULL DEFAULT 0,
    error    TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX retention_runs_dataset ON retention_runs (dataset, started DESC, id DESC);
-- At most one running run per dataset.
CREATE UNIQUE INDEX retention_running ON retention_runs (dataset) WHERE state = 'running';

-- The replay escrow: a data key per dataset and month, stored wrapped under a key that is not
-- in the database, and destroyed (with what it sealed) once destroy_after has passed.
CREATE TABLE escrow_keys (
    dataset       TEXT    NOT NULL,
    month         TEXT    NOT NULL,
    wrapped       BYTEA   NOT NULL,
    created_at    BIGINT  NOT NULL,
    destroy_after BIGINT  NOT NULL,
    PRIMARY KEY (dataset, month)
);
CREATE INDEX escrow_keys_destroy ON escrow_keys (destroy_after);
CREATE TABLE escrow (
    request_id   TEXT    NOT NULL,
    dataset      TEXT    NOT NULL,
    month        TEXT    NOT NULL,
    sealed       BYTEA   NOT NULL,
    completed_at BIGINT  NOT NULL,
    PRIMARY KEY (request_id, dataset)
);
CREATE INDEX escrow_dataset ON escrow (dataset, completed_at);
CREATE INDEX escrow_month ON escrow (dataset, month);
