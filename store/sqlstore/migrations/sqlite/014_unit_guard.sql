-- sweep_units.guard is the guard that stopped a failed unit (erasure.GuardError as JSON: counts,
-- the dataset's and the partition's names, task ids; never a subject's identifier), '' for a
-- unit the guard did not stop. The process running the sweep fails it with that guard, so that
-- a trip in another process's worker is counted as one.
ALTER TABLE sweep_units ADD COLUMN guard TEXT NOT NULL DEFAULT '';
