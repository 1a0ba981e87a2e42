-- The task counts by dataset and state (011) are kept in shards: each transaction adds its
-- changes to one shard row of its own choosing, so that concurrent writers (submissions and
-- the results of several workers) no longer queue on the same rows until each other's commit
-- (on PostgreSQL; SQLite has one writer and uses shard 0). Readers sum the shards.
CREATE TABLE dataset_tasks_sharded (
    dataset TEXT    NOT NULL,
    state   TEXT    NOT NULL,
    shard   INTEGER NOT NULL DEFAULT 0,
    n       BIGINT  NOT NULL,
    last_at BIGINT  NOT NULL,
    PRIMARY KEY (dataset, state, shard)
);
INSERT INTO dataset_tasks_sharded (dataset, state, shard, n, last_at) SELECT dataset, state, 0, n, last_at FROM dataset_tasks;
DROP TABLE dataset_tasks;
ALTER TABLE dataset_tasks_sharded RENAME TO dataset_tasks;
-- identifiers (hash) is the prefix of identifiers_hash (hash, request_id): one index less to
-- write at every submission.
DROP INDEX identifiers_by_hash;
