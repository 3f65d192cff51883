-- vmtrust ledger, schema version 1. Entries, stored hashes, batches and
-- checkpoints are the log; hosts the enrolled keys; leases, runs and
-- vm_events are indexes derived from the entries (ledger verify rebuilds
-- nothing from them; who-had re-proves what it reads there).
CREATE TABLE entries (
	idx   INTEGER PRIMARY KEY,
	batch INTEGER NOT NULL,
	body  BLOB NOT NULL
);
CREATE TABLE hashes (
	id   INTEGER PRIMARY KEY,
	hash BLOB NOT NULL
);
CREATE TABLE batches (
	id        INTEGER PRIMARY KEY,
	host      TEXT NOT NULL,
	first_idx INTEGER NOT NULL,
	count     INTEGER NOT NULL,
	root      BLOB NOT NULL,
	sig       BLOB NOT NULL
);
CREATE TABLE checkpoints (
	size INTEGER PRIMARY KEY,
	root BLOB NOT NULL,
	note BLOB NOT NULL,
	time TEXT NOT NULL
);
CREATE TABLE hosts (
	name  TEXT PRIMARY KEY,
	key   TEXT NOT NULL,
	added TEXT NOT NULL
);
CREATE TABLE leases (
	ip        TEXT NOT NULL,
	mac       TEXT NOT NULL,
	vm        TEXT NOT NULL,
	host      TEXT NOT NULL,
	from_ts   TEXT NOT NULL,
	to_ts     TEXT,
	start_idx INTEGER NOT NULL,
	end_idx   INTEGER NOT NULL DEFAULT -1
);
CREATE INDEX leases_ip_from ON leases (ip, from_ts);
CREATE INDEX leases_open ON leases (vm, host, ip, mac) WHERE end_idx = -1;
CREATE TABLE runs (
	vm        TEXT NOT NULL,
	name      TEXT NOT NULL,
	host      TEXT NOT NULL,
	owner     TEXT NOT NULL,
	image     TEXT NOT NULL,
	list      TEXT NOT NULL,
	endorser  TEXT NOT NULL,
	from_ts   TEXT NOT NULL,
	to_ts     TEXT,
	start_idx INTEGER NOT NULL,
	end_idx   INTEGER NOT NULL DEFAULT -1
);
CREATE INDEX runs_vm ON runs (vm, host, from_ts);
CREATE INDEX runs_open ON runs (vm, host) WHERE end_idx = -1;
CREATE INDEX runs_image ON runs (image, from_ts);
CREATE INDEX runs_endorser ON runs (endorser, from_ts);
CREATE INDEX runs_owner ON runs (owner, from_ts);
CREATE INDEX runs_host ON runs (host, from_ts);
CREATE TABLE vm_events (
	vm  TEXT NOT NULL,
	idx INTEGER NOT NULL,
	PRIMARY KEY (vm, idx)
) WITHOUT ROWID;
