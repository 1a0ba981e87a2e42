-- Several processes sharing one store (see erasure.SweepUnitStore). Times are unix milliseconds.
--
-- A running internal sweep is owned by the process running it until lease_until; another
-- process claims it only once that has passed. plan names the connector's plan of a sweep
-- split into units.
ALTER TABLE sweeps ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE sweeps ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sweeps ADD COLUMN plan TEXT NOT NULL DEFAULT '';

-- The units of shared sweeps, one per partition, leased to workers like tasks: due_at is when
-- a pending unit may run and when a running unit's lease expires.
CREATE TABLE sweep_units (
    id           INTEGER PRIMARY KEY,
    sweep_id     TEXT    NOT NULL REFERENCES sweeps (id),
    name         TEXT    NOT NULL,
    size         INTEGER NOT NULL DEFAULT 0,
    state        TEXT    NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    lease_owner  TEXT    NOT NULL DEFAULT '',
    due_at       INTEGER NOT NULL,
    rows_scanned INTEGER NOT NULL DEFAULT 0,
    rows_removed INTEGER NOT NULL DEFAULT 0,
    bytes        INTEGER NOT NULL DEFAULT 0,
    error        TEXT    NOT NULL DEFAULT '',
    finished_at  INTEGER,
    UNIQUE (sweep_id, name)
);
CREATE INDEX sweep_units_due ON sweep_units (due_at) WHERE state IN ('pending', 'running');
