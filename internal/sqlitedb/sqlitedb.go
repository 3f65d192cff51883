// Package sqlitedb holds what vmtrust's SQLite databases (the catalog and
// the vulnerability database) share: versioned schema migrations, how a
// database file is created and connected to, and how times are stored.
// Each caller names its database (Options.Subject, e.g. "catalog" or
// "vulndb"); every error starts with that name and the file's path.
// Importing it registers modernc.org/sqlite's "sqlite" database/sql
// driver.
//
// # Guarantees
//
//   - Migrations are files NNNN_name.sql (four digits, versions 1, 2, 3,
//     ... without gaps); LoadMigrations refuses any other set.
//   - Migrate (which Open runs) applies the migrations a database lacks in
//     order, each in its own transaction together with its row in
//     schema_migrations (version, name, applied_at), and checks that it
//     leaves no foreign key dangling; a failed migration leaves the
//     previous version. Each step re-reads the version inside its
//     transaction, so two processes opening one file never apply a
//     migration twice.
//   - Migrate refuses, with a *SchemaVersionError and without changing
//     anything, a database whose schema is newer than the migrations it was
//     given, or whose applied migrations differ from them.
//   - Open creates the database file with mode 0600, and tightens it and
//     its -wal and -shm companions when they are open to others. It opens
//     one connection for all writes and a pool of MaxReaders read-only
//     (query_only) connections; all run with foreign keys on,
//     synchronous=FULL (a returned write survives power loss) and a busy
//     timeout of BusyTimeout. The writer runs in WAL mode, which Open
//     checks, and begins every transaction with BEGIN IMMEDIATE, so two
//     writers never deadlock on a lock upgrade, and readers never wait for
//     it.
//   - EncodeTime stores a time as fixed-width RFC 3339 text in UTC with
//     nanoseconds, so text order is time order, and the zero time as NULL;
//     ScanTime reads it back.
package sqlitedb

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
	"sync"
	"time"

	"modernc.org/sqlite" // also registers the "sqlite" database/sql driver
	sqlite3 "modernc.org/sqlite/lib"
)

// Options says which database a call is about and how to report on it.
// Only Subject is needed.
type Options struct {
	// Subject names the database in errors and log records: "catalog",
	// "vulndb". Empty means "sqlite".
	Subject string
	// Log, when set, receives a record for each migration applied and
	// each file whose mode Open tightens.
	Log *slog.Logger
	// Now, when set, is the clock for schema_migrations.applied_at;
	// otherwise time.Now.
	Now func() time.Time
	// WriterCacheKiB, when positive, is the write connection's page
	// cache bound (PRAGMA cache_size), otherwise SQLite's default (2 MiB).
	// A writer whose transactions touch more pages than its cache holds
	// spills them to the WAL before the commit and writes them again.
	// (Readers keep the default: with modernc.org/sqlite a large cache
	// made each small read query about three times slower.)
	WriterCacheKiB int
	// CheckpointPages, when set, is the writer's WAL auto-checkpoint
	// threshold in pages (PRAGMA wal_autocheckpoint; SQLite's default is
	// 1000). A larger one checkpoints a page changed by many transactions
	// once rather than after each.
	CheckpointPages int
	// ReaderMmapBytes, when positive, maps up to that many bytes of the
	// database file into the readers' memory (PRAGMA mmap_size): a page
	// a query needs is then read from the mapping, not with a pread
	// system call per page (pages still in the WAL are read as before).
	ReaderMmapBytes int64
}

func (o Options) subject() string {
	if o.Subject == "" {
		return "sqlite"
	}
	return o.Subject
}

func (o Options) now() time.Time {
	if o.Now == nil {
		return time.Now()
	}
	return o.Now()
}

// BusyTimeout is how long a statement waits for another process's lock.
const BusyTimeout = 10 * time.Second

// MaxReaders bounds the read-only connection pool.
const MaxReaders = 4

// Conns are the connections to one database file. Close them with Close.
type Conns struct {
	Path string  // absolute path of the database file
	W    *sql.DB // one connection: all writes
	R    *sql.DB // read-only connections

	subject   string
	closeOnce sync.Once
}

// Open opens the database file at path, creating it (mode 0600) when it
// does not exist, and brings its schema to the last of ms with Migrate.
// The directory must exist.
func Open(ctx context.Context, path string, ms []Migration, opts Options) (*Conns, error) {
	subj := opts.subject()
	if path == "" {
		return nil, fmt.Errorf("%s: empty database path", subj)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", subj, path, err)
	}
	if err := prepareFiles(abs, opts); err != nil {
		return nil, err
	}
	c := &Conns{Path: abs, subject: subj}
	c.W, err = sql.Open("sqlite", dsn(abs, false, opts.WriterCacheKiB, opts.CheckpointPages))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", subj, abs, err)
	}
	c.W.SetMaxOpenConns(1)
	c.W.SetMaxIdleConns(1)
	c.W.SetConnMaxLifetime(0)
	c.W.SetConnMaxIdleTime(0)
	if err := c.checkWriter(ctx); err != nil {
		c.W.Close()
		return nil, err
	}
	if err := Migrate(ctx, c.W, abs, ms, opts); err != nil {
		c.W.Close()
		return nil, err
	}
	rdsn := dsn(abs, true, 0, 0)
	if opts.ReaderMmapBytes > 0 {
		rdsn += "&" + url.Values{"_pragma": {fmt.Sprintf("mmap_size(%d)", opts.ReaderMmapBytes)}}.Encode()
	}
	c.R, err = sql.Open("sqlite", rdsn)
	if err != nil {
		c.W.Close()
		return nil, fmt.Errorf("%s %s: %w", subj, abs, err)
	}
	c.R.SetMaxOpenConns(MaxReaders)
	c.R.SetMaxIdleConns(MaxReaders)
	if err := c.R.PingContext(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("%s %s: %w", subj, abs, err)
	}
	return c, nil
}

// checkWriter verifies that the pragmas took effect on the write
// connection.
func (c *Conns) checkWriter(ctx context.Context) error {
	var mode string
	var fk int
	if err := c.W.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("%s %s: %w", c.subject, c.Path, err)
	}
	if err := c.W.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		return fmt.Errorf("%s %s: %w", c.subject, c.Path, err)
	}
	if mode != "wal" {
		return fmt.Errorf("%s %s: journal mode is %q, not wal (is the file system local?)", c.subject, c.Path, mode)
	}
	if fk != 1 {
		return fmt.Errorf("%s %s: foreign keys are off", c.subject, c.Path)
	}
	return nil
}

// Close closes the connections. Calling it again returns nil.
func (c *Conns) Close() error {
	var err error
	c.closeOnce.Do(func() {
		var errs []error
		if c.R != nil {
			errs = append(errs, c.R.Close())
		}
		errs = append(errs, c.W.Close())
		if e := errors.Join(errs...); e != nil {
			err = fmt.Errorf("%s %s: %w", c.subject, c.Path, e)
		}
	})
	return err
}

// dsn is the modernc.org/sqlite data source name for the database file at
// abs. The path is escaped into a file: URI, so '?', '#' and '%' in it are
// not taken for URI syntax; mode=rw stops SQLite from creating the file
// (prepareFiles does, with the right mode).
func dsn(abs string, readOnly bool, cacheKiB, checkpointPages int) string {
	q := url.Values{}
	q.Set("mode", "rw")
	if cacheKiB > 0 {
		q.Add("_pragma", fmt.Sprintf("cache_size(%d)", -cacheKiB))
	}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", BusyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(FULL)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		if checkpointPages > 0 {
			q.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", checkpointPages))
		}
		q.Set("_txlock", "immediate")
		// Statement journals (a multi-row INSERT inside a transaction
		// keeps one, to undo just that statement) in memory: on disk,
		// every page a large insert changes was first written to a
		// temporary file (measured: a third of an index transaction's
		// time in the ledger).
		q.Add("_pragma", "temp_store(MEMORY)")
	}
	return "file:" + (&url.URL{Path: abs}).EscapedPath() + "?" + q.Encode()
}

// prepareFiles makes sure the database file abs exists with mode 0600, and
// tightens it and its -wal and -shm companions when they are more open
// (SQLite gives the companions the mode of the database file), logging a
// warning for each to opts.Log.
func prepareFiles(abs string, opts Options) error {
	subj := opts.subject()
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		if err := f.Close(); err != nil {
			return fmt.Errorf("%s %s: %w", subj, abs, err)
		}
	case !errors.Is(err, fs.ErrExist):
		return fmt.Errorf("%s %s: %w", subj, abs, err)
	}
	for _, p := range []string{abs, abs + "-wal", abs + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) && p != abs {
			continue
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", subj, p, err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s %s: not a regular file", subj, p)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			if err := os.Chmod(p, 0o600); err != nil {
				return fmt.Errorf("%s %s: mode %v is open to others and cannot be tightened: %w", subj, p, perm, err)
			}
			if opts.Log != nil {
				opts.Log.Warn(subj+" file was open to others; mode set to 0600", "path", p, "mode", perm.String())
			}
		}
	}
	return nil
}

// TimeLayout is fixed width so that stored times sort as text.
const TimeLayout = "2006-01-02T15:04:05.000000000Z"

// EncodeTime encodes t for storage: NULL when zero, else UTC text in
// TimeLayout.
func EncodeTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(TimeLayout)
}

// ScanTime returns a Scanner that reads a time stored by EncodeTime into
// *t: the zero time for NULL, else the instant in UTC.
func ScanTime(t *time.Time) TimeScanner { return TimeScanner{t} }

// TimeScanner scans a stored time; see ScanTime.
type TimeScanner struct{ t *time.Time }

// Scan implements sql.Scanner.
func (s TimeScanner) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		*s.t = time.Time{}
		return nil
	case string:
		t, err := time.Parse(TimeLayout, v)
		if err != nil {
			return fmt.Errorf("stored time %q: %w", v, err)
		}
		*s.t = t
		return nil
	}
	return fmt.Errorf("stored time has type %T", v)
}

// Code is the extended result code of a SQLite error in err's chain, or 0.
func Code(err error) int {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return 0
}

// IsUniqueViolation reports a UNIQUE or PRIMARY KEY constraint violation.
func IsUniqueViolation(err error) bool {
	c := Code(err)
	return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}
