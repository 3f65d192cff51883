-- vmtrust ledger, schema version 2: the tree kept in tiles
-- (ledger.TileHeight) rather than one row per stored hash (Open converts
-- the hashes of a version-1 ledger in Go, then drops them); leases keyed
-- for who-had, with their ends in a table of their own that grows at its
-- end (no index page rewritten at random when a lease ends); a VM's
-- timeline as one row per VM and ingest.
-- A tile's id is its level << 55 | its offset (sqlite.tileID).
CREATE TABLE tiles (
	id   INTEGER PRIMARY KEY,
	data BLOB NOT NULL
);

CREATE TABLE leases2 (
	ip        TEXT NOT NULL,
	from_ts   TEXT NOT NULL,
	start_idx INTEGER NOT NULL,
	mac       TEXT NOT NULL,
	vm        TEXT NOT NULL,
	host      TEXT NOT NULL,
	PRIMARY KEY (ip, from_ts, start_idx)
) WITHOUT ROWID;
CREATE TABLE lease_ends (
	start_idx INTEGER PRIMARY KEY,
	end_idx   INTEGER NOT NULL,
	to_ts     TEXT NOT NULL
);
INSERT INTO leases2 (ip, from_ts, start_idx, mac, vm, host) SELECT ip, from_ts, start_idx, mac, vm, host FROM leases;
INSERT INTO lease_ends (start_idx, end_idx, to_ts) SELECT start_idx, end_idx, COALESCE(to_ts, from_ts) FROM leases WHERE end_idx >= 0;
DROP TABLE leases;
ALTER TABLE leases2 RENAME TO leases;

-- idxs: the entry indexes, ascending decimal, comma-separated.
CREATE TABLE vm_timeline (
	id        INTEGER PRIMARY KEY,
	vm        TEXT NOT NULL,
	first_idx INTEGER NOT NULL,
	idxs      TEXT NOT NULL
);
CREATE UNIQUE INDEX vm_timeline_vm ON vm_timeline (vm, first_idx);
INSERT INTO vm_timeline (vm, first_idx, idxs)
	SELECT vm, MIN(idx), group_concat(idx, ',' ORDER BY idx) FROM vm_events GROUP BY vm;
DROP TABLE vm_events;

DROP INDEX runs_open;
