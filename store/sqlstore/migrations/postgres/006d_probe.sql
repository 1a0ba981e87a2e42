-- One row that readiness probes write (see the SQLite migration of the same name).
CREATE TABLE store_probe (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    at     BIGINT  NOT NULL,
    writes BIGINT  NOT NULL
);
INSERT INTO store_probe (id, at, writes) VALUES (1, 0, 0);
