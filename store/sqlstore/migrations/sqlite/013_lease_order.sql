-- Due tasks are leased oldest first and, among those due at the same moment, request by request
-- (ORDER BY due_at, request_id): the tasks of one request go to one worker's lease, so that
-- workers finishing their batches seldom lock the same requests.
DROP INDEX tasks_due;
CREATE INDEX tasks_due ON tasks (due_at, request_id) WHERE state IN ('pending', 'running', 'dispatched');
