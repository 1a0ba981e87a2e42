-- The guard that stopped a failed unit (see the SQLite migration of the same name).
ALTER TABLE sweep_units ADD COLUMN guard TEXT NOT NULL DEFAULT '';
