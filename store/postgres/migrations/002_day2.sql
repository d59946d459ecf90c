-- The attempt-bound callback nonce, where the server ended up, the server
-- being replaced, and what the last drift check found (drift_at NULL when
-- never). Existing rows get the empty values; adding a column with a
-- constant default rewrites no row.
ALTER TABLE hatchery_records
	ADD COLUMN callback_nonce     text NOT NULL DEFAULT '',
	ADD COLUMN server_type        text NOT NULL DEFAULT '',
	ADD COLUMN location           text NOT NULL DEFAULT '',
	ADD COLUMN retiring_server_id text NOT NULL DEFAULT '',
	ADD COLUMN drift              text NOT NULL DEFAULT '',
	ADD COLUMN drift_at           timestamptz;

-- Purge finds deleted records by the time they were last written.
CREATE INDEX hatchery_records_deleted ON hatchery_records (updated_at, id) WHERE status = 'deleted';
