-- vmtrust ledger, schema version 3: the query indexes (leases, runs,
-- timelines) follow the log rather than being written by each ingest;
-- index_state.indexed is the number of entries they cover (always the
-- size of a checkpoint). A schema-2 ledger's index rows are dropped and
-- rebuilt from its entries by the first query (ledger.Log.CatchUp): they
-- were written under an older rule for a run or lease started twice
-- before its end, and ledger verify now compares them with the entries.
CREATE TABLE index_state (
	id      INTEGER PRIMARY KEY CHECK (id = 1),
	indexed INTEGER NOT NULL CHECK (indexed >= 0)
);
INSERT INTO index_state (id, indexed) VALUES (1, 0);
DELETE FROM lease_ends;
DELETE FROM leases;
DELETE FROM runs;
DELETE FROM vm_timeline;
-- One run per start event: an index transaction repeated over the same
-- entries fails rather than adding a run twice (leases, lease ends and
-- timelines have keys that refuse it already).
CREATE UNIQUE INDEX runs_start ON runs (start_idx);
