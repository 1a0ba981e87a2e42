-- The Data Rights Protocol (package drp): authorized agents' pair-wise tokens, the data rights
-- requests they made, and the signed messages already accepted. Times are unix milliseconds.

-- One current token per agent, kept as its SHA-256 (the token is random: 256 bits); a new key
-- set-up replaces it. callback_key signs the agent's status callbacks (derived from the token).
CREATE TABLE drp_agents (
    agent_id     TEXT    PRIMARY KEY,
    token_hash   TEXT    NOT NULL UNIQUE,
    callback_key TEXT    NOT NULL,
    created_at   INTEGER NOT NULL
);

-- A deletion's id is its erasure request's id (requests.id), created after this row. status,
-- reason and details are set only for a request answered without an erasure.
CREATE TABLE drp_requests (
    id               TEXT    PRIMARY KEY,
    agent_id         TEXT    NOT NULL,
    agent_key        TEXT    NOT NULL,
    agent_request_id TEXT    NOT NULL DEFAULT '',
    exercise         TEXT    NOT NULL,
    regime           TEXT    NOT NULL DEFAULT '',
    status_callback  TEXT    NOT NULL DEFAULT '',
    received_at      INTEGER NOT NULL,
    expected_by      INTEGER NOT NULL,
    status           TEXT    NOT NULL DEFAULT '',
    reason           TEXT    NOT NULL DEFAULT '',
    details          TEXT    NOT NULL DEFAULT '',
    UNIQUE (agent_id, agent_key)
);

-- Signed messages accepted, by keyed hash, each refused again until it expires.
CREATE TABLE drp_messages (
    hash       TEXT    PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
CREATE INDEX drp_messages_expiry ON drp_messages (expires_at);
