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
// hooks and deliveries; see migrations/0001_initial.sql. Times are stored
// as fixed-width RFC 3339 text in UTC with nanoseconds, NULL when absent.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/vmtrust/vmtrust/internal/catalog"
)

// BusyTimeout is how long a statement waits for another process's lock.
const BusyTimeout = 10 * time.Second

// maxReaders bounds the read-only connection pool.
const maxReaders = 4

// Store is a catalog.Store on one SQLite database file. It is safe for
// concurrent use.
type Store struct {
	path string
	log  *slog.Logger
	w    *sql.DB // one connection: all writes
	r    *sql.DB // read-only connections

	closeOnce sync.Once
}

var _ catalog.Store = (*Store)(nil)

// Open opens the catalog at path, creating the file (mode 0600) when it
// does not exist, and brings its schema up to date. The directory must
// exist. A nil log discards log records.
func Open(ctx context.Context, path string, log *slog.Logger) (*Store, error) {
	ms, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	return open(ctx, path, log, ms)
}

func open(ctx context.Context, path string, log *slog.Logger, ms []migration) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if path == "" {
		return nil, errors.New("catalog: empty database path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", path, err)
	}
	if err := prepareFiles(abs, log); err != nil {
		return nil, err
	}
	s := &Store{path: abs, log: log}
	s.w, err = sql.Open("sqlite", dsn(abs, false))
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", abs, err)
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxLifetime(0)
	s.w.SetConnMaxIdleTime(0)
	if err := s.checkWriter(ctx); err != nil {
		s.w.Close()
		return nil, err
	}
	if err := migrate(ctx, s.w, abs, ms, log); err != nil {
		s.w.Close()
		return nil, err
	}
	s.r, err = sql.Open("sqlite", dsn(abs, true))
	if err != nil {
		s.w.Close()
		return nil, fmt.Errorf("catalog %s: %w", abs, err)
	}
	s.r.SetMaxOpenConns(maxReaders)
	s.r.SetMaxIdleConns(maxReaders)
	if err := s.r.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("catalog %s: %w", abs, err)
	}
	return s, nil
}

// dsn builds the modernc.org/sqlite data source name. The path is escaped
// into a file: URI, so '?', '#' and '%' in it are not taken for URI syntax;
// mode=rw stops SQLite from creating the file (prepareFiles did, with the
// right mode).
func dsn(abs string, readOnly bool) string {
	q := url.Values{}
	q.Set("mode", "rw")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", BusyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(FULL)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Set("_txlock", "immediate")
	}
	return "file:" + (&url.URL{Path: abs}).EscapedPath() + "?" + q.Encode()
}

// prepareFiles makes sure the database file exists with mode 0600, and
// tightens it and its -wal and -shm companions when they are more open.
// SQLite gives the companions the mode of the database file.
func prepareFiles(abs string, log *slog.Logger) error {
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		if err := f.Close(); err != nil {
			return fmt.Errorf("catalog %s: %w", abs, err)
		}
	case !errors.Is(err, fs.ErrExist):
		return fmt.Errorf("catalog %s: %w", abs, err)
	}
	for _, p := range []string{abs, abs + "-wal", abs + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) && p != abs {
			continue
		}
		if err != nil {
			return fmt.Errorf("catalog %s: %w", p, err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("catalog %s: not a regular file", p)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			if err := os.Chmod(p, 0o600); err != nil {
				return fmt.Errorf("catalog %s: mode %v is open to others and cannot be tightened: %w", p, perm, err)
			}
			log.Warn("catalog file was open to others; mode set to 0600", "path", p, "mode", perm.String())
		}
	}
	return nil
}

// checkWriter verifies that the pragmas took effect on the write
// connection.
func (s *Store) checkWriter(ctx context.Context) error {
	var mode string
	var fk int
	if err := s.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("catalog %s: %w", s.path, err)
	}
	if err := s.w.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		return fmt.Errorf("catalog %s: %w", s.path, err)
	}
	if mode != "wal" {
		return fmt.Errorf("catalog %s: journal mode is %q, not wal (is the file system local?)", s.path, mode)
	}
	if fk != 1 {
		return fmt.Errorf("catalog %s: foreign keys are off", s.path)
	}
	return nil
}

// Close closes the database. Calling it again returns nil.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		var errs []error
		if s.r != nil {
			errs = append(errs, s.r.Close())
		}
		errs = append(errs, s.w.Close())
		if e := errors.Join(errs...); e != nil {
			err = fmt.Errorf("catalog %s: %w", s.path, e)
		}
	})
	return err
}

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

// sqliteCode is the extended result code of a SQLite error, or 0.
func sqliteCode(err error) int {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return 0
}

func isUniqueViolation(err error) bool {
	c := sqliteCode(err)
	return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// isForeignKeyViolation also covers ON DELETE RESTRICT, which SQLite
// reports as SQLITE_CONSTRAINT_TRIGGER.
func isForeignKeyViolation(err error) bool {
	switch sqliteCode(err) {
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return true
	case sqlite3.SQLITE_CONSTRAINT_TRIGGER:
		return strings.Contains(err.Error(), "FOREIGN KEY constraint failed")
	}
	return false
}

// timeLayout is fixed width so that stored times sort as text.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// encTime encodes t for storage: NULL when zero, else UTC text.
func encTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(timeLayout)
}

// nullTime scans a stored time.
type nullTime struct{ t *time.Time }

func (n nullTime) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		*n.t = time.Time{}
		return nil
	case string:
		t, err := time.Parse(timeLayout, v)
		if err != nil {
			return fmt.Errorf("stored time %q: %w", v, err)
		}
		*n.t = t
		return nil
	}
	return fmt.Errorf("stored time has type %T", v)
}

func scanTime(t *time.Time) nullTime { return nullTime{t} }
