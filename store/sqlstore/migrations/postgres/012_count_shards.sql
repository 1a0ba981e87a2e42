-- The task counts by dataset and state (011) are kept in shards: each transaction adds its
-- changes to one shard row of its own choosing, so that concurrent writers (submissions and
-- the results of several workers) no longer queue on the same rows until each other's commit.
-- Readers sum the shards.
ALTER TABLE dataset_tasks ADD COLUMN shard SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE dataset_tasks DROP CONSTRAINT dataset_tasks_pkey;
ALTER TABLE dataset_tasks ADD PRIMARY KEY (dataset, state, shard);
-- identifiers (hash) is the prefix of identifiers_hash (hash, request_id): one index less to
-- write at every submission.
DROP INDEX identifiers_by_hash;
