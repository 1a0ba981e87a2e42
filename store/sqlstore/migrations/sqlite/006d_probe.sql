-- One row that readiness probes write (erasure.WriteProbe): a store that answers reads but
-- cannot commit (a full disk, a lost lock) is not ready to take requests.
CREATE TABLE store_probe (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    at     INTEGER NOT NULL,
    writes INTEGER NOT NULL
);
INSERT INTO store_probe (id, at, writes) VALUES (1, 0, 0);
