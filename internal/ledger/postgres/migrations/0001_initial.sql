-- The ledger's rows (see ledger.Store). No foreign keys: the verifier,
-- not the schema, decides whether the rows are consistent.
CREATE TABLE entries (
	idx   BIGINT PRIMARY KEY,
	batch BIGINT NOT NULL,
	body  BYTEA NOT NULL
);
CREATE TABLE hashes (
	id   BIGINT PRIMARY KEY,
	hash BYTEA NOT NULL
);
CREATE TABLE batches (
	id        BIGINT PRIMARY KEY,
	host      TEXT NOT NULL,
	first_idx BIGINT NOT NULL,
	count     BIGINT NOT NULL,
	root      BYTEA NOT NULL,
	sig       BYTEA NOT NULL
);
CREATE TABLE checkpoints (
	size BIGINT PRIMARY KEY,
	root BYTEA NOT NULL,
	note BYTEA NOT NULL,
	time TIMESTAMPTZ
);
CREATE TABLE hosts (
	name  TEXT PRIMARY KEY,
	key   TEXT NOT NULL,
	added TIMESTAMPTZ
);
CREATE TABLE leases (
	ip        TEXT NOT NULL,
	mac       TEXT NOT NULL,
	vm        TEXT NOT NULL,
	host      TEXT NOT NULL,
	from_ts   TIMESTAMPTZ NOT NULL,
	to_ts     TIMESTAMPTZ,
	start_idx BIGINT NOT NULL,
	end_idx   BIGINT NOT NULL DEFAULT -1
);
CREATE INDEX leases_ip_from ON leases (ip, from_ts);
CREATE INDEX leases_open ON leases (ip, mac, vm, host) WHERE end_idx = -1;
CREATE TABLE runs (
	vm        TEXT NOT NULL,
	name      TEXT NOT NULL,
	host      TEXT NOT NULL,
	owner     TEXT NOT NULL,
	image     TEXT NOT NULL,
	list      TEXT NOT NULL,
	endorser  TEXT NOT NULL,
	from_ts   TIMESTAMPTZ NOT NULL,
	to_ts     TIMESTAMPTZ,
	start_idx BIGINT NOT NULL,
	end_idx   BIGINT NOT NULL DEFAULT -1
);
CREATE INDEX runs_from ON runs (from_ts);
CREATE INDEX runs_vm ON runs (vm, from_ts);
CREATE INDEX runs_host ON runs (host, from_ts);
CREATE INDEX runs_owner ON runs (owner, from_ts);
CREATE INDEX runs_image ON runs (image, from_ts);
CREATE INDEX runs_endorser ON runs (endorser, from_ts);
CREATE INDEX runs_open ON runs (vm, host) WHERE end_idx = -1;
CREATE TABLE vm_events (
	vm  TEXT NOT NULL,
	idx BIGINT NOT NULL,
	PRIMARY KEY (vm, idx)
);
