-- Sweeps of offline datasets (see erasure.SweepState). Times are unix milliseconds.
CREATE TABLE sweeps (
    id           TEXT    PRIMARY KEY,
    dataset      TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    mode         TEXT    NOT NULL,
    actor        TEXT    NOT NULL,
    tasks        INTEGER NOT NULL,
    started      BIGINT  NOT NULL,
    finished     BIGINT,
    partitions   INTEGER NOT NULL DEFAULT 0,
    rows_scanned BIGINT  NOT NULL DEFAULT 0,
    rows_removed BIGINT  NOT NULL DEFAULT 0,
    bytes        BIGINT  NOT NULL DEFAULT 0,
    error        TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX sweeps_dataset ON sweeps (dataset, started DESC, id DESC);
CREATE UNIQUE INDEX sweeps_open ON sweeps (dataset) WHERE state IN ('running', 'exported');
CREATE INDEX tasks_sweep ON tasks (sweep_id) WHERE sweep_id <> '';
