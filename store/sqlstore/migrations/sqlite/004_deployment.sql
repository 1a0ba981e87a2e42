-- The id of this deployment, generated once with the database: it scopes the wire identity of
-- async commands (erasure.DispatchID), so that deployments sharing a NATS server or a Kafka
-- cluster never take each other's commands or acknowledgements for their own.
CREATE TABLE deployment (
    id         TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
INSERT INTO deployment (id, created_at) VALUES (lower(hex(randomblob(16))), CAST(unixepoch('subsec') * 1000 AS INTEGER));
