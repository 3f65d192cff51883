// Package rpm reads the packages an rpm-based guest (RHEL, Rocky, Alma,
// CentOS, Fedora, SUSE) has installed from its rpm database, without
// running rpm: the SQLite rpmdb.sqlite (rpm ≥ 4.16), the NDB Packages.db
// (SUSE) or the Berkeley DB hash Packages (rpm < 4.16), in /var/lib/rpm or
// /usr/lib/sysimage/rpm. The format is told by the file's content.
//
// Guarantees: the guest is read through fsys.Root only (links confined to
// the guest). Package headers are decoded by ParseHeader, and the NDB and
// Berkeley DB containers by readers here, all bounded and strict, so a
// hostile database gives an error, never a crash, a hang or unbounded
// memory. (github.com/knqyf263/go-rpmdb is not used: its container
// readers run in goroutines, where a panic on a hostile file cannot be
// recovered, spin forever on some overflow chains and leak a goroutine on
// every error. The tests compare this package with rpm itself on real
// databases, among them those go-rpmdb ships.) SQLite needs a file on the
// host: the database (at most MaxDBSize, with its -wal journal if any) is
// copied into a private directory (0700, files 0600) created in the
// caller's temporary directory, opened with SQLite's defensive settings
// (trusted_schema off, query_only), read only through an ordinary
// Packages table with a stored blob column (views, virtual tables and
// generated columns are refused) and removed before Extract returns.
//
// Version is [epoch:]version-release, the epoch only when the header has
// one. SourceName and SourceVersion come from SOURCERPM
// ("bash-5.1.8-6.el9.src.rpm" → "bash", "5.1.8-6.el9"), with the binary
// package's epoch, as rpm gives source and binary packages one epoch; they
// default to Name and Version (gpg-pubkey pseudo-packages have none; they
// are listed, as rpm -qa lists them). InstallTime is INSTALLTIME. Owned
// paths are the header's file lists, plus aliases through directory links.
package rpm

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vmtrust/vmtrust/internal/fsys"
	"github.com/vmtrust/vmtrust/internal/inspect/extractor"
	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Manager is the inventory.Package Manager value of rpm packages.
const Manager = "rpm"

// Bounds on the database.
const (
	// MaxDBSize bounds the database file (and its -wal journal).
	MaxDBSize = 1 << 30
	// MaxPackages bounds the package headers read.
	MaxPackages = 100_000
	// MaxFiles bounds the owned paths of all packages together.
	MaxFiles = 4_000_000
)

// Result is the packages and file ownership found.
type Result = extractor.Result

// dbDirs are where rpm keeps its database, and dbNames the file names of
// the three formats, most recent first.
var (
	dbDirs  = []string{"/var/lib/rpm", "/usr/lib/sysimage/rpm"}
	dbNames = []string{"rpmdb.sqlite", "Packages.db", "Packages"}
)

// Extract reads the rpm database of the guest. The SQLite copy is made in
// tempDir (os.TempDir() when empty). It returns an error wrapping
// fs.ErrNotExist when the guest has no rpm database.
func Extract(ctx context.Context, r *fsys.Root, tempDir string) (*Result, error) {
	path, err := find(r)
	if err != nil {
		return nil, err
	}
	ra, info, err := r.Open(path)
	if err != nil {
		return nil, fmt.Errorf("rpm: %w", err)
	}
	if info.Size > MaxDBSize {
		return nil, fmt.Errorf("rpm: %s: %d bytes, limit %d", path, info.Size, MaxDBSize)
	}
	c := collector{ctx: ctx, owners: extractor.NewOwners(MaxFiles)}
	var magic [16]byte
	if err := readFull(ra, magic[:], 0, info.Size); err != nil {
		return nil, fmt.Errorf("rpm: %s: %w", path, err)
	}
	switch {
	case string(magic[:]) == "SQLite format 3\x00":
		err = readSQLite(ctx, r, path, ra, info.Size, tempDir, c.add)
	case string(magic[:4]) == "RpmP":
		err = readNDB(ra, info.Size, c.add)
	default:
		err = readBDB(ra, info.Size, c.add)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := c.owners.AddAliases(r); err != nil {
		return nil, fmt.Errorf("rpm: %w", err)
	}
	return extractor.NewResult(c.pkgs, c.owners), nil
}

// find returns the guest path of the rpm database.
func find(r *fsys.Root) (string, error) {
	for _, dir := range dbDirs {
		for _, name := range dbNames {
			p := dir + "/" + name
			info, err := r.Stat(p)
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fsys.ErrNotDir) {
				continue
			}
			if err != nil {
				return "", fmt.Errorf("rpm: %w", err)
			}
			if info.Mode.IsRegular() {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("rpm: no database in %s: %w", strings.Join(dbDirs, " or "), fs.ErrNotExist)
}

// collector turns header blobs into packages and owned paths.
type collector struct {
	ctx    context.Context
	pkgs   []inventory.Package
	owners *extractor.Owners
}

func (c *collector) add(blob []byte) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	if len(c.pkgs) >= MaxPackages {
		return fmt.Errorf("rpm: more than %d packages", MaxPackages)
	}
	h, err := ParseHeader(blob)
	if err != nil {
		return err
	}
	p, err := Package(h)
	if err != nil {
		return err
	}
	for _, f := range h.Files {
		if err := c.owners.Add(f, h.Name); err != nil {
			return fmt.Errorf("rpm: package %s: %w", h.Name, err)
		}
	}
	c.pkgs = append(c.pkgs, p)
	return nil
}

// Package turns a header into an inventory package.
func Package(h *Header) (inventory.Package, error) {
	epoch := ""
	if h.HasEpoch {
		epoch = strconv.Itoa(int(h.Epoch)) + ":"
	}
	p := inventory.Package{
		Name:        h.Name,
		Version:     epoch + h.Version + "-" + h.Release,
		Arch:        h.Arch,
		SourceName:  h.Name,
		Manager:     Manager,
		InstallTime: h.InstallTime,
	}
	p.SourceVersion = p.Version
	if h.SourceRPM != "" {
		name, ver, rel, err := ParseSourceRPM(h.SourceRPM)
		if err != nil {
			return inventory.Package{}, fmt.Errorf("rpm: package %s: %w", h.Name, err)
		}
		p.SourceName, p.SourceVersion = name, epoch+ver+"-"+rel
	}
	return p, nil
}

// ParseSourceRPM splits a source package file name, "name-version-release
// .src.rpm" (or .nosrc.rpm), from the right: names may hold hyphens,
// versions and releases may not.
func ParseSourceRPM(s string) (name, version, release string, err error) {
	base, ok := strings.CutSuffix(s, ".src.rpm")
	if !ok {
		base, ok = strings.CutSuffix(s, ".nosrc.rpm")
	}
	if !ok {
		return "", "", "", fmt.Errorf("source rpm %q: no .src.rpm suffix", trunc(s))
	}
	i := strings.LastIndexByte(base, '-')
	if i < 0 {
		return "", "", "", fmt.Errorf("source rpm %q: no release", trunc(s))
	}
	base, release = base[:i], base[i+1:]
	i = strings.LastIndexByte(base, '-')
	if i < 0 {
		return "", "", "", fmt.Errorf("source rpm %q: no version", trunc(s))
	}
	name, version = base[:i], base[i+1:]
	if !nameRE.MatchString(name) || !versionRE.MatchString(version) || !versionRE.MatchString(release) {
		return "", "", "", fmt.Errorf("source rpm %q: invalid name, version or release", trunc(s))
	}
	return name, version, release, nil
}

// readSQLite copies the SQLite database at guest path p (ra, size bytes)
// and its -wal journal into a private directory under tempDir, and calls
// fn with each blob of its Packages table.
func readSQLite(ctx context.Context, r *fsys.Root, p string, ra io.ReaderAt, size int64, tempDir string, fn func([]byte) error) (err error) {
	if tempDir == "" {
		tempDir = os.TempDir()
	}
	dir, err := os.MkdirTemp(tempDir, "vmtrust-rpmdb-*")
	if err != nil {
		return fmt.Errorf("rpm: %w", err)
	}
	defer func() {
		if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
			err = fmt.Errorf("rpm: %w", rerr)
		}
	}()
	host := filepath.Join(dir, "rpmdb.sqlite")
	if err := copyOut(host, ra, size); err != nil {
		return err
	}
	switch wra, winfo, werr := r.Open(p + "-wal"); {
	case werr == nil:
		if winfo.Size > MaxDBSize {
			return fmt.Errorf("rpm: %s-wal: %d bytes, limit %d", p, winfo.Size, MaxDBSize)
		}
		if err := copyOut(host+"-wal", wra, winfo.Size); err != nil {
			return err
		}
	case !errors.Is(werr, fs.ErrNotExist):
		return fmt.Errorf("rpm: %w", werr)
	}
	return querySQLite(ctx, host, fn)
}

// checkSchema accepts only what rpm creates: one ordinary table named
// Packages (not a view or virtual table, which could compute rows) whose
// blob column is stored, not generated on read.
func checkSchema(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, "SELECT type, sql FROM sqlite_master WHERE name = 'Packages' COLLATE NOCASE")
	if err != nil {
		return fmt.Errorf("rpm sqlite: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var typ, stmt sql.NullString
		if err := rows.Scan(&typ, &stmt); err != nil {
			return fmt.Errorf("rpm sqlite: %w", err)
		}
		n++
		if typ.String != "table" {
			return fmt.Errorf("rpm sqlite: Packages is a %s, not a table", typ.String)
		}
		if !strings.HasPrefix(strings.ToUpper(strings.TrimSpace(stmt.String)), "CREATE TABLE") {
			return errors.New("rpm sqlite: Packages is not an ordinary table")
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("rpm sqlite: %w", err)
	}
	if n != 1 {
		return fmt.Errorf("rpm sqlite: %d Packages tables, want 1", n)
	}
	cols, err := db.QueryContext(ctx, "SELECT name, hidden FROM pragma_table_xinfo('Packages')")
	if err != nil {
		return fmt.Errorf("rpm sqlite: %w", err)
	}
	defer cols.Close()
	stored := false
	for cols.Next() {
		var name string
		var hidden int
		if err := cols.Scan(&name, &hidden); err != nil {
			return fmt.Errorf("rpm sqlite: %w", err)
		}
		if strings.EqualFold(name, "blob") {
			stored = hidden == 0
		}
	}
	if err := cols.Err(); err != nil {
		return fmt.Errorf("rpm sqlite: %w", err)
	}
	if !stored {
		return errors.New("rpm sqlite: Packages has no stored blob column")
	}
	return nil
}

// copyOut writes size bytes of ra to a new host file (0600).
func copyOut(host string, ra io.ReaderAt, size int64) error {
	f, err := os.OpenFile(host, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("rpm: %w", err)
	}
	n, err := io.Copy(f, io.NewSectionReader(ra, 0, size))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != size {
		err = fmt.Errorf("copied %d of %d bytes", n, size)
	}
	if err != nil {
		return fmt.Errorf("rpm: copying the database out: %w", err)
	}
	return nil
}

// querySQLite reads the blobs of the Packages table of the SQLite database
// at host path. The copy is private, so SQLite may replay a -wal journal
// into it; queries are read-only. trusted_schema=OFF keeps functions and
// virtual tables named in a hostile schema from running.
func querySQLite(ctx context.Context, host string, fn func([]byte) error) error {
	if strings.ContainsAny(host, "?#%") {
		return fmt.Errorf("rpm sqlite: temporary path %q holds a URI metacharacter", host)
	}
	dsn := "file:" + host + "?_pragma=trusted_schema(0)&_pragma=query_only(1)&_pragma=cell_size_check(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return fmt.Errorf("rpm sqlite: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if err := checkSchema(ctx, db); err != nil {
		return err
	}
	rows, err := db.QueryContext(ctx, "SELECT blob FROM Packages")
	if err != nil {
		return fmt.Errorf("rpm sqlite: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var blob []byte
		if err := rows.Scan(&blob); err != nil {
			return fmt.Errorf("rpm sqlite: %w", err)
		}
		if err := fn(blob); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("rpm sqlite: %w", err)
	}
	return nil
}
