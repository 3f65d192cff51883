-- Schema 1: endorsers, subscriptions, accepted list versions, images, the
-- event log, hooks and per-hook deliveries.
--
-- Times are TEXT in UTC, "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ" (fixed width, so
-- they sort as text); NULL means absent.

CREATE TABLE endorsers (
	name  TEXT PRIMARY KEY,
	dn    TEXT NOT NULL,
	ca    TEXT NOT NULL,
	added TEXT NOT NULL
) STRICT;

-- AUTOINCREMENT: IDs are never reused, so events keep naming the right
-- subscription after it is removed.
CREATE TABLE subscriptions (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	url          TEXT NOT NULL UNIQUE,
	endorser     TEXT NOT NULL REFERENCES endorsers (name) ON DELETE RESTRICT,
	new_images   TEXT NOT NULL CHECK (new_images IN ('refuse', 'accept', 'subscribe')),
	ca_bundle    TEXT NOT NULL DEFAULT '',
	created      TEXT NOT NULL,
	identifier   TEXT NOT NULL DEFAULT '',
	last_attempt TEXT,
	last_success TEXT,
	last_error   TEXT NOT NULL DEFAULT '',
	version      TEXT NOT NULL DEFAULT '',
	list_sha512  TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX subscriptions_endorser ON subscriptions (endorser);

CREATE TABLE list_versions (
	subscription_id INTEGER NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
	version         TEXT NOT NULL,
	identifier      TEXT NOT NULL,
	sha512          TEXT NOT NULL,
	raw             BLOB NOT NULL,
	created         TEXT NOT NULL,
	expires         TEXT NOT NULL,
	signer          TEXT NOT NULL,
	signer_ca       TEXT NOT NULL,
	accepted_at     TEXT NOT NULL,
	PRIMARY KEY (subscription_id, version)
) STRICT;

CREATE TABLE images (
	subscription_id INTEGER NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
	id              TEXT NOT NULL,
	list_version    TEXT NOT NULL,
	title           TEXT NOT NULL,
	version         TEXT NOT NULL,
	size            INTEGER NOT NULL CHECK (size >= 0),
	sha512          TEXT NOT NULL,
	uri             TEXT NOT NULL,
	format          TEXT NOT NULL,
	expires         TEXT,
	state           TEXT NOT NULL CHECK (state IN ('available', 'downloading', 'cached', 'expired', 'revoked', 'refused')),
	path            TEXT NOT NULL DEFAULT '',
	attrs           TEXT NOT NULL DEFAULT '{}', -- JSON object of strings
	updated_at      TEXT NOT NULL,
	PRIMARY KEY (subscription_id, id),
	FOREIGN KEY (subscription_id, list_version) REFERENCES list_versions (subscription_id, version)
) STRICT;

CREATE INDEX images_state ON images (state);
CREATE INDEX images_list_version ON images (subscription_id, list_version);

-- The log outlives subscriptions: no foreign key on subscription_id.
CREATE TABLE events (
	seq             INTEGER PRIMARY KEY AUTOINCREMENT,
	time            TEXT NOT NULL,
	type            TEXT NOT NULL,
	subscription_id INTEGER NOT NULL DEFAULT 0,
	image_id        TEXT NOT NULL DEFAULT '',
	fields          TEXT NOT NULL DEFAULT '{}' -- JSON object of strings
) STRICT;

-- after_seq: every event with seq <= after_seq is delivered or predates the
-- hook; it only moves forward.
CREATE TABLE hooks (
	name      TEXT PRIMARY KEY,
	added     TEXT NOT NULL,
	after_seq INTEGER NOT NULL
) STRICT;

-- One row per (hook, event) once an attempt was made.
CREATE TABLE deliveries (
	hook         TEXT NOT NULL REFERENCES hooks (name) ON DELETE CASCADE,
	seq          INTEGER NOT NULL REFERENCES events (seq),
	attempts     INTEGER NOT NULL DEFAULT 0, -- failed attempts
	last_error   TEXT NOT NULL DEFAULT '',
	next_attempt TEXT,
	delivered_at TEXT,
	PRIMARY KEY (hook, seq)
) STRICT;
