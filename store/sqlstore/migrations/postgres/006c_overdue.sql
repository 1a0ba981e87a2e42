-- When an open request was found past its deadline (see the SQLite migration of the same name).
ALTER TABLE requests ADD COLUMN overdue_at BIGINT;
CREATE INDEX requests_overdue_unmarked ON requests (deadline) WHERE overdue_at IS NULL AND status NOT IN ('completed', 'cancelled');
