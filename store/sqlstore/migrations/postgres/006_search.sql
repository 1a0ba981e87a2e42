-- Indexes of the operator dashboard and of the search by identifier: every page reads through
-- one, so that it costs about the same with a thousand requests or a million.

-- Requests by the keyed hash of an identifier of their subject (kept for ever, also once the
-- request ended and its clear values are gone).
CREATE INDEX identifiers_hash ON identifiers (hash, request_id);

-- Open requests newest first: the overdue listing walks them by id.
CREATE INDEX requests_open_id ON requests (id) WHERE status NOT IN ('completed', 'cancelled');

-- Requests that ended, by when (completions over time); failed requests by their last change.
CREATE INDEX requests_finished ON requests (finished_at, status) WHERE finished_at IS NOT NULL;
CREATE INDEX requests_failed_updated ON requests (updated_at) WHERE status = 'failed';

-- The unfinished tasks of a dataset (its backlog and failures) by request, newest first: the
-- requests a dataset holds up, and its oldest waiting request.
CREATE INDEX tasks_dataset_open ON tasks (dataset, request_id) WHERE state NOT IN ('done', 'skipped', 'cancelled');

-- Sweeps of every dataset, newest first.
CREATE INDEX sweeps_started ON sweeps (started, id);
