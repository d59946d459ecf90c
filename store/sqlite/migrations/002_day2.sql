-- The attempt-bound callback nonce, where the server ended up, the server
-- being replaced, and what the last drift check found (drift_at: Unix
-- microseconds, UTC, NULL when never). Existing rows get the empty values.
ALTER TABLE hatchery_records ADD COLUMN callback_nonce     TEXT NOT NULL DEFAULT '';
ALTER TABLE hatchery_records ADD COLUMN server_type        TEXT NOT NULL DEFAULT '';
ALTER TABLE hatchery_records ADD COLUMN location           TEXT NOT NULL DEFAULT '';
ALTER TABLE hatchery_records ADD COLUMN retiring_server_id TEXT NOT NULL DEFAULT '';
ALTER TABLE hatchery_records ADD COLUMN drift              TEXT NOT NULL DEFAULT '';
ALTER TABLE hatchery_records ADD COLUMN drift_at           INTEGER;

-- Purge finds deleted records by the time they were last written.
CREATE INDEX hatchery_records_deleted ON hatchery_records (updated_at, id) WHERE status = 'deleted';
