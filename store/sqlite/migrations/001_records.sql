-- One row per tenant. Times are Unix microseconds, UTC; lease_until is NULL
-- when there is no lease. host_keys is a JSON array of strings, NULL when
-- there are none.
CREATE TABLE hatchery_records (
	id          TEXT    NOT NULL PRIMARY KEY,
	status      TEXT    NOT NULL,
	server_id   TEXT    NOT NULL DEFAULT '',
	server_name TEXT    NOT NULL DEFAULT '',
	ipv4        TEXT    NOT NULL DEFAULT '',
	ipv6        TEXT    NOT NULL DEFAULT '',
	hostname    TEXT    NOT NULL DEFAULT '',
	instance_id TEXT    NOT NULL DEFAULT '',
	host_keys   TEXT,
	error       TEXT    NOT NULL DEFAULT '',
	attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
	lease_owner TEXT    NOT NULL DEFAULT '',
	lease_until INTEGER,
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL
) STRICT;

CREATE INDEX hatchery_records_created ON hatchery_records (created_at, id);
CREATE INDEX hatchery_records_status_created ON hatchery_records (status, created_at, id);
