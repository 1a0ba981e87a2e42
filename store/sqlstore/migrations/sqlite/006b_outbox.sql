-- The outbox of notifications (see erasure.OutboxMessage and erasure.OutboxStore): messages a
-- notifier derived from the audit trail, delivered by POSTs retried until accepted. Times are
-- unix milliseconds. A message is leased (lease_owner until lease_until) while one delivery
-- attempt runs; state stays pending until the attempt's outcome is written.
CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY,
    subscriber   TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    event        TEXT    NOT NULL,
    url          TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      INTEGER NOT NULL,
    last_error   TEXT    NOT NULL DEFAULT '',
    lease_owner  TEXT    NOT NULL DEFAULT '',
    lease_until  INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    delivered_at INTEGER,
    audit_seq    INTEGER NOT NULL
);
-- Due messages, for the lease.
CREATE INDEX outbox_due ON outbox (next_at, id) WHERE state = 'pending';
-- The undelivered messages of a subscriber and key, oldest first: only the oldest is sent.
CREATE INDEX outbox_undelivered ON outbox (subscriber, key, id) WHERE state <> 'delivered';
-- Listings by state and by key (a request's id).
CREATE INDEX outbox_state ON outbox (state, id);
CREATE INDEX outbox_key ON outbox (key, id);

-- The notifier reads the audit trail from an event on: the block holding it is found by its
-- first event.
CREATE INDEX audit_blocks_first_event ON audit_blocks (first_event);

-- How far the notifier has read the audit trail: the sequence of the last event it turned
-- into messages. It moves in the same transaction as the messages it wrote.
CREATE TABLE notify_cursor (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    seq        INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
INSERT INTO notify_cursor (id, seq, updated_at) VALUES (1, 0, 0);
