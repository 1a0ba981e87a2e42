-- Sweeps of offline datasets (see erasure.SweepState). Times are unix milliseconds. A task
-- belongs to the sweep named by its sweep_id while it waits, queued, for that sweep to end.
CREATE TABLE sweeps (
    id           TEXT    PRIMARY KEY,
    dataset      TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    mode         TEXT    NOT NULL,
    actor        TEXT    NOT NULL,
    tasks        INTEGER NOT NULL,
    started      INTEGER NOT NULL,
    finished     INTEGER,
    partitions   INTEGER NOT NULL DEFAULT 0,
    rows_scanned INTEGER NOT NULL DEFAULT 0,
    rows_removed INTEGER NOT NULL DEFAULT 0,
    bytes        INTEGER NOT NULL DEFAULT 0,
    error        TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX sweeps_dataset ON sweeps (dataset, started DESC, id DESC);
-- At most one open (running or exported) sweep per dataset.
CREATE UNIQUE INDEX sweeps_open ON sweeps (dataset) WHERE state IN ('running', 'exported');
CREATE INDEX tasks_sweep ON tasks (sweep_id) WHERE sweep_id <> '';
