-- Blast-radius guards and canaries. Times are unix milliseconds.
--
-- tasks.guard is what the guard did to a task (erasure.GuardStatus): '' (it applies), 'tripped'
-- (the last attempt stopped at it), 'overridden' (an operator's forced retry lifted it).
ALTER TABLE tasks ADD COLUMN guard TEXT NOT NULL DEFAULT '';

-- requests.canary names the dataset whose canary (a synthetic erasure) the request is; '' for
-- the requests of real subjects, which are the only ones statistics and listings count.
ALTER TABLE requests ADD COLUMN canary TEXT NOT NULL DEFAULT '';
CREATE INDEX requests_canary ON requests (canary, id) WHERE canary <> '';

-- One row per canary run.
CREATE TABLE canary_runs (
    id         INTEGER PRIMARY KEY,
    dataset    TEXT    NOT NULL,
    request_id TEXT    NOT NULL DEFAULT '',
    started    INTEGER NOT NULL,
    finished   INTEGER NOT NULL,
    ok         INTEGER NOT NULL,
    stage      TEXT    NOT NULL DEFAULT '',
    reason     TEXT    NOT NULL DEFAULT '',
    actor      TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX canary_runs_dataset ON canary_runs (dataset, id);
