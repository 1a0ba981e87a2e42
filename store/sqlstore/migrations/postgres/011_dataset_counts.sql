-- Tasks by dataset and state, kept by every transaction that changes a task's state, so that
-- dataset health is read in a few rows instead of a scan of every task. The index of every
-- task by dataset and state goes: a dataset's open tasks are found through tasks_dataset_open
-- (006), which done, skipped and cancelled tasks leave and which a lease does not touch.
CREATE TABLE dataset_tasks (
    dataset TEXT   NOT NULL,
    state   TEXT   NOT NULL,
    n       BIGINT NOT NULL,
    last_at BIGINT NOT NULL,
    PRIMARY KEY (dataset, state)
);
INSERT INTO dataset_tasks (dataset, state, n, last_at)
SELECT dataset, state, count(*), coalesce(max(coalesce(finished_at, updated_at)), 0) FROM tasks GROUP BY dataset, state;
DROP INDEX tasks_dataset_state;
