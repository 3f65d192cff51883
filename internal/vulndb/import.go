package vulndb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/vmtrust/vmtrust/internal/sqlitedb"
)

// Skipped counts what an import read but did not store.
type Skipped struct {
	NoAffected int // advisories without an affected package of the dump's family
	Withdrawn  int // advisories withdrawn upstream
	Ranges     int // malformed ranges, and versions that do not parse in the ecosystem's order
	Other      int // zip entries that are not .json files
}

// ImportStats describes one import.
type ImportStats struct {
	Family         string // the dump's family, e.g. "Debian"
	SHA256         string // of the zip file, hex
	Entries        int    // JSON files read
	Advisories     int    // advisories stored
	Affected       int    // (ecosystem, package) entries stored
	Replaced       int    // advisories of the family's previous import, now gone
	NewestModified time.Time
	Skipped        Skipped
}

// Import loads one OSV all.zip into the database in one transaction,
// replacing the previous import of the same family. On any error the
// database is unchanged.
func (db *DB) Import(ctx context.Context, zipPath string) (ImportStats, error) {
	st, err := db.importZip(ctx, zipPath)
	if err != nil {
		return ImportStats{}, fmt.Errorf("vulndb: import %s: %w", zipPath, err)
	}
	// Give the write-ahead log back to the file system; failure is harmless.
	db.w.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
	return st, nil
}

func (db *DB) importZip(ctx context.Context, zipPath string) (ImportStats, error) {
	f, err := os.Open(zipPath)
	if err != nil {
		return ImportStats{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ImportStats{}, err
	}
	if !fi.Mode().IsRegular() {
		return ImportStats{}, errors.New("not a regular file")
	}
	size := fi.Size()
	if size > db.limits.zipSize {
		return ImportStats{}, fmt.Errorf("%d bytes, more than the limit of %d", size, db.limits.zipSize)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, size)); err != nil {
		return ImportStats{}, err
	}
	zr, err := openZip(f, size, db.limits)
	if err != nil {
		return ImportStats{}, err
	}

	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return ImportStats{}, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	im := &importer{
		ctx: ctx, tx: tx, lim: db.limits,
		st:       ImportStats{SHA256: hex.EncodeToString(h.Sum(nil))},
		families: map[string]int{},
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO imports (family, source, sha256, imported_at, entries, advisories, affected,
		skipped_no_affected, skipped_withdrawn, skipped_ranges, skipped_other) VALUES (NULL, ?, ?, ?, 0, 0, 0, 0, 0, 0, 0)`,
		filepath.Base(zipPath), im.st.SHA256, sqlitedb.EncodeTime(db.now()))
	if err != nil {
		return ImportStats{}, err
	}
	if im.importID, err = res.LastInsertId(); err != nil {
		return ImportStats{}, err
	}
	if err := im.prepare(); err != nil {
		return ImportStats{}, err
	}
	defer im.close()
	var buf bytes.Buffer
	for _, zf := range zr.File {
		if err := ctx.Err(); err != nil {
			return ImportStats{}, err
		}
		isAdvisory, err := entryKind(zf)
		if err != nil {
			return ImportStats{}, fmt.Errorf("entry %q: %w", zf.Name, err)
		}
		if !isAdvisory {
			if !zf.Mode().IsDir() {
				im.st.Skipped.Other++
			}
			continue
		}
		if err := readEntry(zf, db.limits.entrySize, &buf); err != nil {
			return ImportStats{}, fmt.Errorf("%s: %w", zf.Name, err)
		}
		if im.total += int64(buf.Len()); im.total > db.limits.totalSize {
			return ImportStats{}, fmt.Errorf("more than %d bytes of JSON", db.limits.totalSize)
		}
		im.st.Entries++
		a, err := parseOSV(buf.Bytes())
		if err != nil {
			return ImportStats{}, fmt.Errorf("%s: %w", zf.Name, err)
		}
		if err := im.store(a); err != nil {
			return ImportStats{}, fmt.Errorf("%s: %w", zf.Name, err)
		}
	}
	if err := im.finish(); err != nil {
		return ImportStats{}, err
	}
	if err := tx.Commit(); err != nil {
		return ImportStats{}, fmt.Errorf("commit: %w", err)
	}
	return im.st, nil
}

// importer writes one import inside its transaction.
type importer struct {
	ctx      context.Context
	tx       *sql.Tx
	lim      limits
	importID int64
	st       ImportStats
	total    int64          // JSON bytes read
	families map[string]int // affected entries stored per family

	insAdvisory, insAffected *sql.Stmt
}

func (im *importer) prepare() error {
	var err error
	im.insAdvisory, err = im.tx.PrepareContext(im.ctx,
		`INSERT INTO advisories (import, osv_id, modified, summary, aliases) VALUES (?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	im.insAffected, err = im.tx.PrepareContext(im.ctx,
		`INSERT INTO affected (advisory, ecosystem, package, severity, spec) VALUES (?, ?, ?, ?, ?)`)
	return err
}

func (im *importer) close() {
	for _, s := range []*sql.Stmt{im.insAdvisory, im.insAffected} {
		if s != nil {
			s.Close()
		}
	}
}

// store writes one advisory, unless it is withdrawn or affects nothing
// vulndb can match.
func (im *importer) store(a *advisory) error {
	im.st.Skipped.Ranges += a.SkippedRanges
	switch {
	case a.Withdrawn:
		im.st.Skipped.Withdrawn++
		return nil
	case len(a.Affected) == 0:
		im.st.Skipped.NoAffected++
		return nil
	}
	aliases, err := json.Marshal(a.Aliases)
	if err != nil {
		return err
	}
	if a.Aliases == nil {
		aliases = []byte("[]")
	}
	res, err := im.insAdvisory.ExecContext(im.ctx, im.importID, a.ID, sqlitedb.EncodeTime(a.Modified), a.Summary, string(aliases))
	if sqlitedb.IsUniqueViolation(err) {
		return fmt.Errorf("advisory %s appears twice in the dump", a.ID)
	}
	if err != nil {
		return err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return err
	}
	for _, af := range a.Affected {
		sp, err := json.Marshal(af.Spec)
		if err != nil {
			return err
		}
		if _, err := im.insAffected.ExecContext(im.ctx, id, af.Ecosystem, af.Package, int(af.Severity), string(sp)); err != nil {
			return err
		}
		im.families[af.Family]++
	}
	im.st.Advisories++
	im.st.Affected += len(a.Affected)
	if a.Modified.After(im.st.NewestModified) {
		im.st.NewestModified = a.Modified
	}
	return nil
}

// finish settles the dump's family, drops what belongs to other families,
// replaces the family's previous import and records the statistics.
func (im *importer) finish() error {
	if len(im.families) == 0 {
		return errors.New("no advisory affects a package of Debian, Ubuntu, Alpine, Rocky Linux or AlmaLinux")
	}
	names := make([]string, 0, len(im.families))
	for n := range im.families {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		if im.families[names[i]] != im.families[names[j]] {
			return im.families[names[i]] > im.families[names[j]]
		}
		return names[i] < names[j]
	})
	fam := names[0]
	im.st.Family = fam
	if len(names) > 1 {
		if err := im.dropOtherFamilies(fam); err != nil {
			return err
		}
	}
	res, err := im.tx.ExecContext(im.ctx, `DELETE FROM advisories WHERE import = (SELECT id FROM imports WHERE family = ?)`, fam)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	im.st.Replaced = int(n)
	if _, err := im.tx.ExecContext(im.ctx, `DELETE FROM imports WHERE family = ?`, fam); err != nil {
		return err
	}
	_, err = im.tx.ExecContext(im.ctx, `UPDATE imports SET family = ?, newest_modified = ?, entries = ?, advisories = ?,
		affected = ?, skipped_no_affected = ?, skipped_withdrawn = ?, skipped_ranges = ?, skipped_other = ? WHERE id = ?`,
		fam, sqlitedb.EncodeTime(im.st.NewestModified), im.st.Entries, im.st.Advisories, im.st.Affected,
		im.st.Skipped.NoAffected, im.st.Skipped.Withdrawn, im.st.Skipped.Ranges, im.st.Skipped.Other, im.importID)
	return err
}

// dropOtherFamilies removes the affected entries of families other than
// fam, then the advisories left without any, and recounts.
func (im *importer) dropOtherFamilies(fam string) error {
	if _, err := im.tx.ExecContext(im.ctx, `DELETE FROM affected
		WHERE advisory IN (SELECT id FROM advisories WHERE import = ?)
		AND ecosystem <> ? AND substr(ecosystem, 1, ?) <> ?`,
		im.importID, fam, len(fam)+1, fam+":"); err != nil {
		return err
	}
	res, err := im.tx.ExecContext(im.ctx, `DELETE FROM advisories WHERE import = ?
		AND NOT EXISTS (SELECT 1 FROM affected WHERE affected.advisory = advisories.id)`, im.importID)
	if err != nil {
		return err
	}
	gone, err := res.RowsAffected()
	if err != nil {
		return err
	}
	im.st.Advisories -= int(gone)
	im.st.Skipped.NoAffected += int(gone)
	im.st.Affected = im.families[fam]
	var newest sql.NullString
	if err := im.tx.QueryRowContext(im.ctx, `SELECT max(modified) FROM advisories WHERE import = ?`, im.importID).Scan(&newest); err != nil {
		return err
	}
	im.st.NewestModified = time.Time{}
	if newest.Valid {
		return sqlitedb.ScanTime(&im.st.NewestModified).Scan(newest.String)
	}
	return nil
}
