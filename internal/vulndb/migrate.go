package vulndb

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one schema step: migrations/NNNN_name.sql.
type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads dir of fsys. File names are NNNN_name.sql with
// versions 1, 2, 3, ... and no gaps.
func loadMigrations(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("vulndb migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries { // sorted by name
		name, ok := strings.CutSuffix(e.Name(), ".sql")
		if !ok || e.IsDir() {
			continue
		}
		num, label, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || len(num) != 4 || label == "" {
			return nil, fmt.Errorf("vulndb migrations: %s is not named NNNN_name.sql", e.Name())
		}
		if v != len(ms)+1 {
			return nil, fmt.Errorf("vulndb migrations: %s has version %d, want %d", e.Name(), v, len(ms)+1)
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("vulndb migrations: %w", err)
		}
		ms = append(ms, migration{version: v, name: label, sql: string(b)})
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("vulndb migrations: none in %s", dir)
	}
	return ms, nil
}

// SchemaVersionError is returned by Open for a database this binary must
// not use: its schema is newer than the binary knows, or its applied
// migrations are not the binary's. The database is left unchanged.
type SchemaVersionError struct {
	Path     string
	Database int    // the database's schema version
	Known    int    // the newest version this binary knows
	Detail   string // set when the applied migrations differ
}

func (e *SchemaVersionError) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("vulndb %s: schema version %d does not match this binary: %s", e.Path, e.Database, e.Detail)
	}
	return fmt.Sprintf("vulndb %s: schema version %d is newer than this binary knows (%d); use a newer vmtrust", e.Path, e.Database, e.Known)
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	name       TEXT NOT NULL,
	applied_at TEXT NOT NULL
) STRICT`

// migrate applies the migrations db lacks, each in its own transaction
// together with its schema_migrations row.
func migrate(ctx context.Context, db *sql.DB, dbPath string, ms []migration, now func() time.Time) error {
	for {
		done, err := migrateStep(ctx, db, dbPath, ms, now)
		if err != nil || done {
			return err
		}
	}
}

// migrateStep applies the next missing migration, if any. Each step
// re-reads the version inside its transaction, so two processes opening the
// same file do not apply a migration twice.
func migrateStep(ctx context.Context, db *sql.DB, dbPath string, ms []migration, now func() time.Time) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("vulndb %s: begin migration: %w", dbPath, err)
	}
	defer func() {
		if err != nil || done {
			tx.Rollback()
		}
	}()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&n); err != nil {
		return false, fmt.Errorf("vulndb %s: %w", dbPath, err)
	}
	if n == 0 {
		if _, err := tx.ExecContext(ctx, createMigrationsTable); err != nil {
			return false, fmt.Errorf("vulndb %s: %w", dbPath, err)
		}
	}
	rows, err := tx.QueryContext(ctx, `SELECT version, name FROM schema_migrations ORDER BY version`)
	if err != nil {
		return false, fmt.Errorf("vulndb %s: %w", dbPath, err)
	}
	var applied []migration
	for rows.Next() {
		var m migration
		if err := rows.Scan(&m.version, &m.name); err != nil {
			rows.Close()
			return false, fmt.Errorf("vulndb %s: %w", dbPath, err)
		}
		applied = append(applied, m)
	}
	if err := rows.Close(); err != nil {
		return false, fmt.Errorf("vulndb %s: %w", dbPath, err)
	}
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("vulndb %s: %w", dbPath, err)
	}

	cur := 0
	if len(applied) > 0 {
		cur = applied[len(applied)-1].version
	}
	if cur > len(ms) {
		return false, &SchemaVersionError{Path: dbPath, Database: cur, Known: len(ms)}
	}
	for i, m := range applied {
		if m.version != i+1 {
			return false, &SchemaVersionError{Path: dbPath, Database: cur, Known: len(ms),
				Detail: fmt.Sprintf("migration %d is missing", i+1)}
		}
		if m.name != ms[i].name {
			return false, &SchemaVersionError{Path: dbPath, Database: cur, Known: len(ms),
				Detail: fmt.Sprintf("migration %d is %q in the database and %q in this binary", m.version, m.name, ms[i].name)}
		}
	}
	if cur == len(ms) {
		return true, nil
	}

	m := ms[cur]
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return false, fmt.Errorf("vulndb %s: migration %04d_%s: %w", dbPath, m.version, m.name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.version, m.name, encTime(now())); err != nil {
		return false, fmt.Errorf("vulndb %s: migration %04d_%s: %w", dbPath, m.version, m.name, err)
	}
	// Foreign keys are on: a migration must leave none dangling.
	var violations int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pragma_foreign_key_check`).Scan(&violations); err != nil {
		return false, fmt.Errorf("vulndb %s: migration %04d_%s: %w", dbPath, m.version, m.name, err)
	}
	if violations != 0 {
		return false, fmt.Errorf("vulndb %s: migration %04d_%s leaves %d foreign key violations", dbPath, m.version, m.name, violations)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("vulndb %s: migration %04d_%s: commit: %w", dbPath, m.version, m.name, err)
	}
	return false, nil
}
