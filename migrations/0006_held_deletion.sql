-- What a run the deletion guard held back would have deleted, and from when
-- the same deletion on a scheduled sync is applied by itself (docs/storage.md,
-- "The deletion guard"). NULL on runs that were not held.
ALTER TABLE sync_runs ADD COLUMN deletion_contacts INTEGER;      -- contacts it would mark deleted
ALTER TABLE sync_runs ADD COLUMN deletion_memberships INTEGER;   -- membership rows it would drop
ALTER TABLE sync_runs ADD COLUMN deletion_applies_from TEXT;     -- NULL: only `wxsync sync --force` applies it
