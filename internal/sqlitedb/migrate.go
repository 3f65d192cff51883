package sqlitedb

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// Migration is one schema step, read from a file NNNN_name.sql.
type Migration struct {
	Version int    // NNNN
	Name    string // name
	SQL     string // the file's statements
}

// LoadMigrations reads the migrations in dir of fsys: the files
// NNNN_name.sql (other files are ignored), with versions 1, 2, 3, ... and
// no gaps. subject names the database in errors, as Options.Subject.
func LoadMigrations(subject string, fsys fs.FS, dir string) ([]Migration, error) {
	subj := Options{Subject: subject}.subject()
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("%s migrations: %w", subj, err)
	}
	var ms []Migration
	for _, e := range entries { // sorted by name
		name, ok := strings.CutSuffix(e.Name(), ".sql")
		if !ok || e.IsDir() {
			continue
		}
		num, label, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || len(num) != 4 || label == "" {
			return nil, fmt.Errorf("%s migrations: %s is not named NNNN_name.sql", subj, e.Name())
		}
		if v != len(ms)+1 {
			return nil, fmt.Errorf("%s migrations: %s has version %d, want %d", subj, e.Name(), v, len(ms)+1)
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("%s migrations: %w", subj, err)
		}
		ms = append(ms, Migration{Version: v, Name: label, SQL: string(b)})
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("%s migrations: none in %s", subj, dir)
	}
	return ms, nil
}

// SchemaVersionError is returned by Migrate for a database this binary
// must not use: its schema is newer than the binary knows, or its applied
// migrations are not the binary's. The database is left unchanged.
type SchemaVersionError struct {
	Subject  string // the database's kind: "catalog", "vulndb"
	Path     string
	Database int    // the database's schema version
	Known    int    // the newest version this binary knows
	Detail   string // set when the applied migrations differ
}

func (e *SchemaVersionError) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("%s %s: schema version %d does not match this binary: %s", e.Subject, e.Path, e.Database, e.Detail)
	}
	return fmt.Sprintf("%s %s: schema version %d is newer than this binary knows (%d); use a newer vmtrust", e.Subject, e.Path, e.Database, e.Known)
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	name       TEXT NOT NULL,
	applied_at TEXT NOT NULL
) STRICT`

// Migrate brings the database db, at path dbPath, to the last of ms (as
// LoadMigrations returns them): it applies the migrations db lacks, each
// in its own transaction together with its schema_migrations row. It
// refuses a database that is newer than ms or whose applied migrations
// differ from ms with a *SchemaVersionError.
func Migrate(ctx context.Context, db *sql.DB, dbPath string, ms []Migration, opts Options) error {
	for {
		done, err := migrateStep(ctx, db, dbPath, ms, opts)
		if err != nil || done {
			return err
		}
	}
}

// migrateStep applies the next missing migration, if any. Each step
// re-reads the version inside its transaction, so two processes opening the
// same file do not apply a migration twice.
func migrateStep(ctx context.Context, db *sql.DB, dbPath string, ms []Migration, opts Options) (done bool, err error) {
	subj := opts.subject()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("%s %s: begin migration: %w", subj, dbPath, err)
	}
	defer func() {
		if err != nil || done {
			tx.Rollback()
		}
	}()
	applied, err := appliedMigrations(ctx, tx)
	if err != nil {
		return false, fmt.Errorf("%s %s: %w", subj, dbPath, err)
	}

	cur := 0
	if len(applied) > 0 {
		cur = applied[len(applied)-1].Version
	}
	refuse := func(detail string) error {
		return &SchemaVersionError{Subject: subj, Path: dbPath, Database: cur, Known: len(ms), Detail: detail}
	}
	if cur > len(ms) {
		return false, refuse("")
	}
	for i, m := range applied {
		if m.Version != i+1 {
			return false, refuse(fmt.Sprintf("migration %d is missing", i+1))
		}
		if m.Name != ms[i].Name {
			return false, refuse(fmt.Sprintf("migration %d is %q in the database and %q in this binary", m.Version, m.Name, ms[i].Name))
		}
	}
	if cur == len(ms) {
		return true, nil
	}

	m := ms[cur]
	fail := func(err error) error {
		return fmt.Errorf("%s %s: migration %04d_%s: %w", subj, dbPath, m.Version, m.Name, err)
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return false, fail(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.Version, m.Name, EncodeTime(opts.now())); err != nil {
		return false, fail(err)
	}
	// Foreign keys are on: a migration must leave none dangling.
	var violations int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pragma_foreign_key_check`).Scan(&violations); err != nil {
		return false, fail(err)
	}
	if violations != 0 {
		return false, fmt.Errorf("%s %s: migration %04d_%s leaves %d foreign key violations", subj, dbPath, m.Version, m.Name, violations)
	}
	if err := tx.Commit(); err != nil {
		return false, fail(fmt.Errorf("commit: %w", err))
	}
	if opts.Log != nil {
		opts.Log.Info(subj+" schema migrated", "path", dbPath, "schema.version", m.Version, "schema.name", m.Name)
	}
	return false, nil
}

// appliedMigrations reads schema_migrations in tx, creating the table when
// it does not exist.
func appliedMigrations(ctx context.Context, tx *sql.Tx) ([]Migration, error) {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&n); err != nil {
		return nil, err
	}
	if n == 0 {
		if _, err := tx.ExecContext(ctx, createMigrationsTable); err != nil {
			return nil, err
		}
	}
	rows, err := tx.QueryContext(ctx, `SELECT version, name FROM schema_migrations ORDER BY version`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var applied []Migration
	for rows.Next() {
		var m Migration
		if err := rows.Scan(&m.Version, &m.Name); err != nil {
			return nil, err
		}
		applied = append(applied, m)
	}
	return applied, rows.Err()
}
