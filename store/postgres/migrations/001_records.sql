-- One row per tenant. lease_until is NULL when there is no lease; host_keys
-- is NULL when there are none. IDs sort bytewise (COLLATE "C"), as in Go.
CREATE TABLE hatchery_records (
	id          text COLLATE "C" NOT NULL PRIMARY KEY,
	status      text        NOT NULL,
	server_id   text        NOT NULL DEFAULT '',
	server_name text        NOT NULL DEFAULT '',
	ipv4        text        NOT NULL DEFAULT '',
	ipv6        text        NOT NULL DEFAULT '',
	hostname    text        NOT NULL DEFAULT '',
	instance_id text        NOT NULL DEFAULT '',
	host_keys   text[],
	error       text        NOT NULL DEFAULT '',
	attempts    integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
	lease_owner text        NOT NULL DEFAULT '',
	lease_until timestamptz,
	created_at  timestamptz NOT NULL,
	updated_at  timestamptz NOT NULL
);

CREATE INDEX hatchery_records_created ON hatchery_records (created_at, id);
CREATE INDEX hatchery_records_status_created ON hatchery_records (status, created_at, id);
