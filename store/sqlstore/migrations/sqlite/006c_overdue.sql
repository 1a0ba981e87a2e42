-- When an open request was found past its deadline (erasure.OverdueStore): NULL until then. The
-- overdue watcher marks each request once and audits it (request.overdue) in the same
-- transaction; the index holds only the open requests it has not marked.
ALTER TABLE requests ADD COLUMN overdue_at INTEGER;
CREATE INDEX requests_overdue_unmarked ON requests (deadline) WHERE overdue_at IS NULL AND status NOT IN ('completed', 'cancelled');
