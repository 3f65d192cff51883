// Package sqlite implements catalog.Store on SQLite through
// modernc.org/sqlite (pure Go, no cgo).
//
// # Guarantees
//
// Beyond those of package catalog (checked by catalogtest.TestStore, which
// this package's tests run):
//
//   - The database file and its -wal and -shm files are mode 0600. Open
//     creates the file with that mode, and tightens an existing file that
//     is more open (logging a warning).
//   - The database runs in WAL mode with synchronous=FULL (a returned
//     write survives power loss), foreign keys on and a busy timeout, so
//     several processes may share it. Within one process, writes are
//     serialised on one connection and every write transaction takes the
//     write lock when it begins (BEGIN IMMEDIATE), so two writers never
//     deadlock on a lock upgrade; reads use a separate pool of read-only
//     connections and never wait for writers.
//   - The schema is versioned. Migrations are ordered SQL files embedded in
//     the binary (migrations/NNNN_name.sql); Open applies the missing ones,
//     each in its own transaction together with its row in
//     schema_migrations, so a failed migration leaves the previous version.
//     Open refuses, with a *SchemaVersionError, a database whose version is
//     newer than this binary knows, or whose applied migrations differ from
//     the binary's, and changes nothing in it.
//
// # Schema
//
// schema_migrations(version, name, applied_at) records the migrations.
// Version 1 holds endorsers, subscriptions, list_versions, images, events,
// hooks and deliveries; see migrations/0001_initial.sql. Version 2 adds
// the site endorser flag, the verified file identity of cached images and
// the registered user images (migrations/0002_admission.sql). Times are stored
// as fixed-width RFC 3339 text in UTC with nanoseconds, NULL when absent.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"log/slog"
	"strings"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/vmtrust/vmtrust/internal/catalog"
	"github.com/vmtrust/vmtrust/internal/sqlitedb"
)

// BusyTimeout is how long a statement waits for another process's lock.
const BusyTimeout = sqlitedb.BusyTimeout

// migrationFiles holds the schema: migrations/NNNN_name.sql.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// SchemaVersionError is returned by Open for a database this binary must
// not use: its schema is newer than the binary knows, or its applied
// migrations are not the binary's. The database is left unchanged.
type SchemaVersionError = sqlitedb.SchemaVersionError

// Store is a catalog.Store on one SQLite database file. It is safe for
// concurrent use.
type Store struct {
	path  string
	log   *slog.Logger
	conns *sqlitedb.Conns
	w     *sql.DB // conns.W: one connection, all writes
	r     *sql.DB // conns.R: read-only connections
}

var _ catalog.Store = (*Store)(nil)

// Open opens the catalog at path, creating the file (mode 0600) when it
// does not exist, and brings its schema up to date. The directory must
// exist. A nil log discards log records.
func Open(ctx context.Context, path string, log *slog.Logger) (*Store, error) {
	ms, err := sqlitedb.LoadMigrations("catalog", migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	return open(ctx, path, log, ms)
}

func open(ctx context.Context, path string, log *slog.Logger, ms []sqlitedb.Migration) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c, err := sqlitedb.Open(ctx, path, ms, sqlitedb.Options{Subject: "catalog", Log: log})
	if err != nil {
		return nil, err
	}
	return &Store{path: c.Path, log: log, conns: c, w: c.W, r: c.R}, nil
}

// Close closes the database. Calling it again returns nil.
func (s *Store) Close() error { return s.conns.Close() }

// Path is the absolute path of the database file.
func (s *Store) Path() string { return s.path }

// inTx runs f in a write transaction and commits when f returns nil.
func (s *Store) inTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("catalog %s: begin: %w", s.path, err)
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("catalog %s: commit: %w", s.path, err)
	}
	return nil
}

// isForeignKeyViolation also covers ON DELETE RESTRICT, which SQLite
// reports as SQLITE_CONSTRAINT_TRIGGER.
func isForeignKeyViolation(err error) bool {
	switch sqlitedb.Code(err) {
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return true
	case sqlite3.SQLITE_CONSTRAINT_TRIGGER:
		return strings.Contains(err.Error(), "FOREIGN KEY constraint failed")
	}
	return false
}
