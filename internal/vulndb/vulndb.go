// Package vulndb keeps offline vulnerability data for the guest operating
// systems vmtrust inspects, and matches installed packages against it.
//
// The data are OSV (https://ossf.github.io/osv-schema/) per-ecosystem dumps,
// the all.zip files published for Debian, Ubuntu, Alpine, Rocky Linux and
// AlmaLinux, imported into an SQLite database (modernc.org/sqlite, pure Go).
//
// # Guarantees
//
//   - An import is all or nothing. Each zip is read in one write
//     transaction; any error (a hostile or malformed zip, one invalid
//     advisory, a cancelled context) rolls it back and leaves the database
//     exactly as it was.
//   - Re-importing a family (Debian, Ubuntu, ...) replaces everything the
//     previous import of that family stored, so an advisory withdrawn or
//     deleted upstream disappears. Advisories with a "withdrawn" time are
//     skipped. The family of a dump is the one most of its affected
//     packages name; packages of other families in it are dropped.
//   - Reading is bounded (see MaxZipSize, MaxEntries, MaxDirectorySize,
//     MaxEntrySize, MaxTotalSize): the entry count and the directory size
//     are checked by walking the central directory before archive/zip
//     allocates for it, and each entry's size is counted on the bytes
//     actually decompressed. File names with NUL are refused. Each
//     advisory must be one strict JSON object (valid UTF-8, no duplicate
//     member names, at most 64 levels deep, the schema's field types); an
//     advisory that is not is an error naming the file. Advisories without an affected
//     package of a supported ecosystem are skipped and counted, as are
//     ranges whose events are malformed or whose versions do not parse in
//     the ecosystem's order.
//   - Match fails closed: for an operating system it cannot map to an OSV
//     ecosystem it returns ErrUnsupportedOS, and for a family never
//     imported ErrNotImported, never an empty "no vulnerabilities" list.
//   - The database file is mode 0600, runs in WAL mode with
//     synchronous=FULL, and its schema is versioned: migrations are ordered
//     SQL files embedded in the binary, each applied in its own
//     transaction; Open refuses a database newer than the binary.
//
// # Matching
//
// The ecosystem comes from os-release: Debian VERSION_ID "12" is
// "Debian:12"; Ubuntu "22.04" is "Ubuntu:22.04:LTS" plus the Ubuntu Pro
// (ESM) stream "Ubuntu:Pro:22.04:LTS" (an LTS release is YY.04 with YY
// even, or one whose PRETTY_NAME says LTS), a non-LTS release such as
// "23.10" is "Ubuntu:23.10" only; the FIPS and vendor-specific Ubuntu
// streams are not matched. Alpine "3.19.1" is "Alpine:v3.19"; Rocky "9.3"
// is "Rocky Linux:9"; AlmaLinux "9.3" is "AlmaLinux:9".
//
// Debian, Ubuntu, Alpine and Rocky Linux advisories name source packages
// (Rocky's Apollo exports only the src RPM of each advisory), so packages
// are looked up by inventory.Package.SourceName. AlmaLinux's errata2osv
// copies every package of the updateinfo package list, which names binary
// RPMs, so AlmaLinux packages are looked up by binary name and by source
// name. Versions compare in the ecosystem's order: dpkg for Debian and
// Ubuntu (on the source version, as OSV records it), rpm for Rocky and
// AlmaLinux (on the package's epoch:version-release), apk for Alpine.
//
// A package is affected when its version lies in any ECOSYSTEM range of
// the advisory, or equals one of its listed versions. Range events are
// sorted in the ecosystem order ("introduced: 0" first); walking them up to
// the installed version, "introduced" opens the range, "fixed" (at or
// below the version) and "last_affected" (below it) close it, and a
// "limit" at or below the version excludes the range. The reported fix is
// the first "fixed" event above the installed version in the open range;
// it is empty when none is known.
//
// # Severity
//
// The distribution's own rating wins: Debian urgency (affected
// ecosystem_specific or database_specific "urgency": unimportant → info,
// low → low, medium → medium, high → high; "not yet assigned" and
// "end-of-life" carry no rating), Ubuntu priority (severity type
// "Ubuntu": negligible → low, low, medium, high, critical), a Red Hat
// rating in database_specific "severity" or the summary's prefix
// ("Low:", "Moderate:", "Important:", "Critical:" → low, medium, high,
// critical). Otherwise the highest CVSS v3.x base score (else v2) in the
// severity lists: 0 → info, below 4 → low, below 7 → medium, below 9 →
// high, else critical (v2 tops out at high). CVSS v4 vectors are not
// scored. With nothing usable, the severity is medium.
package vulndb

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
	"github.com/vmtrust/vmtrust/internal/sqlitedb" // also registers the "sqlite" database/sql driver
)

// File is the database's file name in vmtrust's state directory.
const File = "vulndb.db"

// migrationFiles holds the schema: migrations/NNNN_name.sql.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// SchemaVersionError is returned by Open for a database this binary must
// not use: its schema is newer than the binary knows, or its applied
// migrations are not the binary's. The database is left unchanged.
type SchemaVersionError = sqlitedb.SchemaVersionError

// DB is an offline vulnerability database. It is safe for concurrent use;
// imports are serialised.
type DB struct {
	path   string
	conns  *sqlitedb.Conns
	w      *sql.DB // conns.W: one connection, all writes
	r      *sql.DB // conns.R: read-only connections
	now    func() time.Time
	limits limits
}

// Open opens the database at path, creating it (mode 0600) when it does
// not exist, and brings its schema up to date. The directory must exist.
func Open(ctx context.Context, path string) (*DB, error) {
	ms, err := sqlitedb.LoadMigrations("vulndb", migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	return open(ctx, path, ms)
}

func open(ctx context.Context, path string, ms []sqlitedb.Migration) (*DB, error) {
	// A writable vulnerability database could be made to hide
	// vulnerabilities: sqlitedb.Open keeps the file mode 0600.
	c, err := sqlitedb.Open(ctx, path, ms, sqlitedb.Options{Subject: "vulndb"})
	if err != nil {
		return nil, err
	}
	return &DB{path: c.Path, conns: c, w: c.W, r: c.R, now: time.Now, limits: defaultLimits()}, nil
}

// Close closes the database. Calling it again returns nil.
func (db *DB) Close() error { return db.conns.Close() }

// Path is the absolute path of the database file.
func (db *DB) Path() string { return db.path }

// EcosystemStatus describes what one import left in the database.
type EcosystemStatus struct {
	Family         string    // "Debian", "Ubuntu", "Alpine", "Rocky Linux" or "AlmaLinux"
	Source         string    // base name of the imported zip
	SHA256         string    // of the zip, hex
	ImportedAt     time.Time // when the import committed
	NewestModified time.Time // newest "modified" time of a stored advisory; zero when none
	Entries        int       // JSON files read
	Advisories     int       // advisories stored
	Affected       int       // (ecosystem, package) entries stored
	Skipped        Skipped
}

// Age is how old the data are at now: the time since the newest advisory
// was modified, or since the import when no advisory has a time.
func (s EcosystemStatus) Age(now time.Time) time.Duration {
	if s.NewestModified.IsZero() {
		return now.Sub(s.ImportedAt)
	}
	return now.Sub(s.NewestModified)
}

// Describe is a one-line account of the data, for inventory.Report.VulnDB.
func (s EcosystemStatus) Describe(now time.Time) string {
	sum := s.SHA256
	if len(sum) > 12 {
		sum = sum[:12]
	}
	return fmt.Sprintf("OSV %s (%s sha256:%s): %d advisories, newest modified %s (%s old), imported %s",
		s.Family, s.Source, sum, s.Advisories, fmtTime(s.NewestModified),
		s.Age(now).Truncate(time.Hour), fmtTime(s.ImportedAt))
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

// Status lists what is loaded, one entry per family, sorted by family.
func (db *DB) Status(ctx context.Context) ([]EcosystemStatus, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+statusColumns+` FROM imports WHERE family IS NOT NULL ORDER BY family`)
	if err != nil {
		return nil, fmt.Errorf("vulndb %s: %w", db.path, err)
	}
	defer rows.Close()
	var out []EcosystemStatus
	for rows.Next() {
		s, err := scanStatus(rows)
		if err != nil {
			return nil, fmt.Errorf("vulndb %s: %w", db.path, err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("vulndb %s: %w", db.path, err)
	}
	return out, nil
}

// Source returns the status of the data Match uses for the guest os:
// ErrUnsupportedOS or ErrNotImported when there are none.
func (db *DB) Source(ctx context.Context, guest inventory.OS) (EcosystemStatus, error) {
	eco, err := ecosystemsFor(guest)
	if err != nil {
		return EcosystemStatus{}, err
	}
	return db.familyStatus(ctx, eco.family.name)
}

func (db *DB) familyStatus(ctx context.Context, family string) (EcosystemStatus, error) {
	row := db.r.QueryRowContext(ctx, `SELECT `+statusColumns+` FROM imports WHERE family = ?`, family)
	s, err := scanStatus(row)
	if errors.Is(err, sql.ErrNoRows) {
		return EcosystemStatus{}, fmt.Errorf("vulndb: %s: %w", family, ErrNotImported)
	}
	if err != nil {
		return EcosystemStatus{}, fmt.Errorf("vulndb %s: %w", db.path, err)
	}
	return s, nil
}

const statusColumns = `family, source, sha256, imported_at, newest_modified, entries, advisories, affected,
	skipped_no_affected, skipped_withdrawn, skipped_ranges, skipped_other`

func scanStatus(row interface{ Scan(...any) error }) (EcosystemStatus, error) {
	var s EcosystemStatus
	err := row.Scan(&s.Family, &s.Source, &s.SHA256, sqlitedb.ScanTime(&s.ImportedAt), sqlitedb.ScanTime(&s.NewestModified),
		&s.Entries, &s.Advisories, &s.Affected,
		&s.Skipped.NoAffected, &s.Skipped.Withdrawn, &s.Skipped.Ranges, &s.Skipped.Other)
	return s, err
}
