-- One row per imported OSV dump; re-importing a family replaces its row,
-- and the cascade removes every advisory of the previous import.
CREATE TABLE imports (
	id                  INTEGER PRIMARY KEY,
	family              TEXT UNIQUE,           -- "Debian", "Ubuntu", "Alpine", "Rocky Linux", "AlmaLinux"; NULL while an import runs
	source              TEXT NOT NULL,         -- base name of the zip file
	sha256              TEXT NOT NULL,         -- of the zip file, hex
	imported_at         TEXT NOT NULL,
	newest_modified     TEXT,                  -- newest "modified" of the stored advisories
	entries             INTEGER NOT NULL,      -- JSON files read
	advisories          INTEGER NOT NULL,      -- advisories stored
	affected            INTEGER NOT NULL,      -- (ecosystem, package) rows stored
	skipped_no_affected INTEGER NOT NULL,
	skipped_withdrawn   INTEGER NOT NULL,
	skipped_ranges      INTEGER NOT NULL,
	skipped_other       INTEGER NOT NULL
) STRICT;

CREATE TABLE advisories (
	id        INTEGER PRIMARY KEY,
	import    INTEGER NOT NULL REFERENCES imports(id) ON DELETE CASCADE,
	osv_id    TEXT NOT NULL,
	modified  TEXT NOT NULL,
	summary   TEXT NOT NULL,
	aliases   TEXT NOT NULL,                   -- JSON array of strings
	UNIQUE (import, osv_id)
) STRICT;

CREATE TABLE affected (
	advisory  INTEGER NOT NULL REFERENCES advisories(id) ON DELETE CASCADE,
	ecosystem TEXT NOT NULL,
	package   TEXT NOT NULL,
	severity  INTEGER NOT NULL,                -- inventory.Severity
	spec      TEXT NOT NULL                    -- JSON: sorted ECOSYSTEM ranges and versions
) STRICT;

CREATE INDEX affected_by_package ON affected (package, ecosystem);
CREATE INDEX affected_by_advisory ON affected (advisory);
