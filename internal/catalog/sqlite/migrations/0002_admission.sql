-- Schema 2: what admission needs.
--
-- endorsers.site: the site's own endorser (trust class 1).
-- images.file / verified_at: the identity (package fileid, JSON) of the
-- cached file when its SHA-512 was last verified; NULL when none is known.
-- user_images: user-supplied images registered after an inspection (class 3).

ALTER TABLE endorsers ADD COLUMN site INTEGER NOT NULL DEFAULT 0 CHECK (site IN (0, 1));

ALTER TABLE images ADD COLUMN file TEXT;
ALTER TABLE images ADD COLUMN verified_at TEXT;

CREATE TABLE user_images (
	sha512        TEXT PRIMARY KEY,
	size          INTEGER NOT NULL CHECK (size >= 0),
	format        TEXT NOT NULL,
	path          TEXT NOT NULL,
	name          TEXT NOT NULL DEFAULT '',
	owner         TEXT NOT NULL,
	registered_by TEXT NOT NULL DEFAULT '',
	registered_at TEXT NOT NULL,
	file          TEXT,
	verified_at   TEXT,
	inspection    TEXT NOT NULL -- JSON (catalog.Inspection)
) STRICT;
