-- The id of this deployment, generated once with the database (see the SQLite migration of the
-- same name).
CREATE TABLE deployment (
    id         TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);
INSERT INTO deployment (id, created_at) VALUES (replace(gen_random_uuid()::text, '-', ''), (extract(epoch FROM clock_timestamp()) * 1000)::bigint);
