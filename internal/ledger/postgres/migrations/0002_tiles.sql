-- vmtrust ledger, schema version 2: the tree kept in tiles
-- (ledger.TileHeight) rather than one row per stored hash (Open converts
-- the hashes of a version-1 ledger in Go, then drops them); leases keyed
-- for who-had, with their ends in a table of their own (no lease row
-- rewritten when it ends); a VM's timeline as one row per VM and ingest.
CREATE TABLE tiles (
	level INTEGER NOT NULL,
	n     BIGINT NOT NULL,
	data  BYTEA NOT NULL,
	PRIMARY KEY (level, n)
);

CREATE TABLE leases2 (
	ip        TEXT NOT NULL,
	from_ts   TIMESTAMPTZ NOT NULL,
	start_idx BIGINT NOT NULL,
	mac       TEXT NOT NULL,
	vm        TEXT NOT NULL,
	host      TEXT NOT NULL,
	PRIMARY KEY (ip, from_ts, start_idx)
);
CREATE TABLE lease_ends (
	start_idx BIGINT PRIMARY KEY,
	end_idx   BIGINT NOT NULL,
	to_ts     TIMESTAMPTZ NOT NULL
);
INSERT INTO leases2 (ip, from_ts, start_idx, mac, vm, host)
	SELECT ip, from_ts, start_idx, mac, vm, host FROM leases;
INSERT INTO lease_ends (start_idx, end_idx, to_ts)
	SELECT start_idx, end_idx, COALESCE(to_ts, from_ts) FROM leases WHERE end_idx >= 0;
DROP TABLE leases;
ALTER TABLE leases2 RENAME TO leases;
ALTER TABLE leases RENAME CONSTRAINT leases2_pkey TO leases_pkey;

-- idxs: the entry indexes of one ingest's events about vm, ascending,
-- the first equal to first_idx.
CREATE TABLE vm_timeline (
	vm        TEXT NOT NULL,
	first_idx BIGINT NOT NULL,
	idxs      BIGINT[] NOT NULL,
	PRIMARY KEY (vm, first_idx)
);
INSERT INTO vm_timeline (vm, first_idx, idxs)
	SELECT vm, MIN(idx), array_agg(idx ORDER BY idx) FROM vm_events GROUP BY vm;
DROP TABLE vm_events;

DROP INDEX runs_open;
