-- vmtrust ledger, schema version 3: the query indexes (leases, runs,
-- timelines) follow the log rather than being written by each ingest;
-- index_state.indexed is the number of entries they cover (always the
-- size of a checkpoint). A schema-2 ledger's indexes were written with
-- its ingests, so they cover its latest checkpoint.
CREATE TABLE index_state (
	id      INTEGER PRIMARY KEY CHECK (id = 1),
	indexed BIGINT NOT NULL CHECK (indexed >= 0)
);
INSERT INTO index_state (id, indexed) VALUES (1, COALESCE((SELECT MAX(size) FROM checkpoints), 0));
