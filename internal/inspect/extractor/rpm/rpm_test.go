package rpm

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/internal/fsys"
	"github.com/vmtrust/vmtrust/internal/fsys/fsystest"
	"github.com/vmtrust/vmtrust/internal/inspect/extractor/extractortest"
	"github.com/vmtrust/vmtrust/internal/inspect/inventory"

	// Not used as code: this keeps go-rpmdb in go.mod, so that its real
	// rpm databases (CentOS, Fedora, SLES test data) are in the module
	// cache for the interop tests below.
	_ "github.com/knqyf263/go-rpmdb/pkg/db"
)

// rpmTool returns the path of rpm (Debian package rpm), or skips/fails.
func rpmTool(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("interop test (-short)")
	}
	return extractortest.NeedTool(t, "rpm", "rpm")
}

// rpmQuery runs rpm --dbpath dir -qa --qf format on a private copy of the
// database directory (rpm may write beside it) and returns the lines.
func rpmQuery(t *testing.T, rpm, dir, format string) []string {
	t.Helper()
	cp := t.TempDir()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cp, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(rpm, "--dbpath", cp, "-qa", "--qf", format)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("rpm -qa: %v: %s", err, stderr.String())
	}
	return splitLines(string(out))
}

func splitLines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

const qfPackages = "%{NAME}\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\t%{ARCH}\t%{SOURCERPM}\t%{INSTALLTIME}\n"

// compareWithRPM checks res against rpm -qa on the database in dir:
// packages, versions, arches, source packages, install times and owners.
func compareWithRPM(t *testing.T, rpm, dir string, res *Result) {
	t.Helper()
	want := rpmQuery(t, rpm, dir, qfPackages)
	var got []string
	for _, p := range res.Packages {
		got = append(got, strings.Join([]string{p.Name, p.Version, cmpOr(p.Arch, "(none)"), sourceRPM(p), strconv.FormatInt(p.InstallTime.Unix(), 10)}, "\t"))
	}
	slices.Sort(want)
	slices.Sort(got)
	if diff := extractortest.Diff(want, got); diff != "" {
		t.Errorf("packages differ from rpm -qa (want: rpm):\n%s", diff)
	}
	owners := make(map[string][]string)
	for _, l := range rpmQuery(t, rpm, dir, "[%{=NAME}\t%{FILENAMES}\n]") {
		name, p, _ := strings.Cut(l, "\t")
		if p != "" && p != "(none)" {
			owners[p] = append(owners[p], name)
		}
	}
	delete(owners, "/") // Owner never reports the root directory
	for p, names := range owners {
		if got, ok := res.Owner(p); !ok || !slices.Contains(names, got) {
			t.Errorf("Owner(%q) = %q, %v; rpm lists %q", p, got, ok, names)
		}
	}
	if res.OwnedPaths() < len(owners) {
		t.Errorf("%d owned paths, rpm lists %d", res.OwnedPaths(), len(owners))
	}
	t.Logf("%d packages, %d owned paths match rpm", len(got), len(owners))
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// sourceRPM rebuilds the SOURCERPM a package came from.
func sourceRPM(p inventory.Package) string {
	if p.SourceName == p.Name && p.SourceVersion == p.Version && strings.HasPrefix(p.Name, "gpg-pubkey") {
		return "(none)"
	}
	v := p.SourceVersion
	if _, after, ok := strings.Cut(v, ":"); ok {
		v = after
	}
	return p.SourceName + "-" + v + ".src.rpm"
}

// goRPMDBTestdata returns the test databases shipped with the go-rpmdb
// module (real databases from CentOS 5-8, Fedora 35, SLE 15, Mariner),
// which the module cache holds since go.mod requires the module.
func goRPMDBTestdata(t *testing.T) string {
	t.Helper()
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(gobin, "list", "-m", "-f", "{{.Dir}}", "github.com/knqyf263/go-rpmdb").Output()
	dir := filepath.Join(strings.TrimSpace(string(out)), "pkg", "testdata")
	if err == nil {
		if _, err = os.Stat(dir); err == nil {
			return dir
		}
	}
	msg := "go-rpmdb's test databases are not in the module cache (go mod download github.com/knqyf263/go-rpmdb): " + err.Error()
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// guestWithDB returns a guest holding the host file db at guest path p.
func guestWithDB(t *testing.T, db, p string) fsystest.MapFS {
	t.Helper()
	b, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	return fsystest.MapFS{p: {Data: b, Mode: 0o644}}
}

// TestRealDatabases reads real Berkeley DB, SQLite and NDB databases and
// compares with rpm itself (Debian's rpm reads Berkeley DB and SQLite, not
// NDB; the NDB database is checked against the package list its
// maintainers recorded).
func TestRealDatabases(t *testing.T) {
	rpm := rpmTool(t)
	td := goRPMDBTestdata(t)
	tests := []struct {
		dir, file, guest string
	}{
		{"centos5-plain", "Packages", "/var/lib/rpm/Packages"},
		{"centos6-plain", "Packages", "/var/lib/rpm/Packages"},
		{"centos7-many", "Packages", "/var/lib/rpm/Packages"},
		{"centos8-modularitylabel", "Packages", "/var/lib/rpm/Packages"},
		{"ubi8-s390x", "Packages", "/var/lib/rpm/Packages"},
		{"fedora35", "rpmdb.sqlite", "/usr/lib/sysimage/rpm/rpmdb.sqlite"},
		{"cbl-mariner-2.0", "rpmdb.sqlite", "/var/lib/rpm/rpmdb.sqlite"},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			m := guestWithDB(t, filepath.Join(td, tt.dir, tt.file), tt.guest)
			res, err := Extract(context.Background(), extractortest.Root(m), t.TempDir())
			if err != nil {
				t.Fatalf("Extract() error = %v", err)
			}
			compareWithRPM(t, rpm, filepath.Join(td, tt.dir), res)
		})
	}
	t.Run("sle15-bci NDB", func(t *testing.T) {
		m := guestWithDB(t, filepath.Join(td, "sle15-bci", "Packages.db"), "/usr/lib/sysimage/rpm/Packages.db")
		m["/var/lib/rpm"] = &fsystest.MapFile{Target: "../../usr/lib/sysimage/rpm"}
		res, err := Extract(context.Background(), extractortest.Root(m), t.TempDir())
		if err != nil {
			t.Fatalf("Extract() error = %v", err)
		}
		if len(res.Packages) != 35 {
			t.Errorf("%d packages, want 35", len(res.Packages))
		}
		want := map[string]string{
			"bash":             "4.4-19.6.1 bash 4.4-19.6.1 x86_64",
			"libreadline7":     "7.0-19.6.1 bash 4.4-19.6.1 x86_64",
			"system-user-root": "20190513-3.3.1 system-user-root 20190513-3.3.1 noarch",
			"rpm-ndb":          "4.14.3-40.1 rpm-ndb 4.14.3-40.1 x86_64",
			"libstdc++6":       "11.2.1+git610-1.3.9 gcc11 11.2.1+git610-1.3.9 x86_64",
		}
		for _, p := range res.Packages {
			if w, ok := want[p.Name]; ok {
				if got := strings.Join([]string{p.Version, p.SourceName, p.SourceVersion, p.Arch}, " "); got != w {
					t.Errorf("%s = %q, want %q", p.Name, got, w)
				}
				delete(want, p.Name)
			}
		}
		if len(want) > 0 {
			t.Errorf("packages not found: %v", want)
		}
		if pkg, ok := res.Owner("/usr/bin/bash"); !ok || pkg != "bash" {
			t.Errorf("Owner(/usr/bin/bash) = %q, %v; want bash", pkg, ok)
		}
	})
}

const testSpec = `Name: vmt-hello
Version: 1.2.3
Release: 4.test
Epoch: 2
Summary: test package
License: MIT
BuildArch: noarch

%description
A test package.

%package -n vmt-extra-tools
Version: 0.9~rc1
Summary: a subpackage with its own version
%description -n vmt-extra-tools
Tools.

%install
mkdir -p %{buildroot}/usr/bin %{buildroot}/etc
echo hi > %{buildroot}/usr/bin/vmt-hello
echo conf > %{buildroot}/etc/vmt-hello.conf
echo tool > %{buildroot}/usr/bin/vmt-tool

%files
/usr/bin/vmt-hello
%config /etc/vmt-hello.conf

%files -n vmt-extra-tools
/usr/bin/vmt-tool
`

// TestRPMBuild builds packages with rpmbuild, installs them with rpm into
// a fresh root (a SQLite rpmdb) and compares Extract with rpm -qa.
func TestRPMBuild(t *testing.T) {
	rpm := rpmTool(t)
	rpmbuild := extractortest.NeedTool(t, "rpmbuild", "rpm")
	top, root := t.TempDir(), t.TempDir()
	spec := filepath.Join(top, "t.spec")
	if err := os.WriteFile(spec, []byte(testSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	run(rpmbuild, "-bb", "--define", "_topdir "+top, spec)
	rpms, _ := filepath.Glob(filepath.Join(top, "RPMS", "*", "*.rpm"))
	if len(rpms) != 2 {
		t.Fatalf("rpmbuild made %q, want 2 packages", rpms)
	}
	dbFlags := []string{"--root", root, "--define", "_dbpath /var/lib/rpm"}
	run(rpm, append(dbFlags, "--initdb")...)
	before := time.Now().Add(-time.Second)
	run(rpm, append(append(dbFlags, "-i", "--nodeps", "--noscripts"), rpms...)...)

	m := fsystest.MapFS{}
	extractortest.Load(t, m, root, "/", nil)
	res, err := Extract(context.Background(), extractortest.Root(m), t.TempDir())
	if err != nil {
		t.Fatalf("Extract() error = %v", err)
	}
	compareWithRPM(t, rpm, filepath.Join(root, "var/lib/rpm"), res)
	want := map[string]string{
		"vmt-hello":       "2:1.2.3-4.test noarch vmt-hello 2:1.2.3-4.test",
		"vmt-extra-tools": "2:0.9~rc1-4.test noarch vmt-hello 2:1.2.3-4.test",
	}
	for _, p := range res.Packages {
		if got := strings.Join([]string{p.Version, p.Arch, p.SourceName, p.SourceVersion}, " "); got != want[p.Name] {
			t.Errorf("%s = %q, want %q", p.Name, got, want[p.Name])
		}
		if p.InstallTime.Before(before) || p.InstallTime.After(time.Now().Add(time.Second)) {
			t.Errorf("%s: InstallTime = %v, want about now", p.Name, p.InstallTime)
		}
	}
	for p, w := range map[string]string{"/usr/bin/vmt-tool": "vmt-extra-tools", "/etc/vmt-hello.conf": "vmt-hello"} {
		if got, ok := res.Owner(p); !ok || got != w {
			t.Errorf("Owner(%q) = %q, %v; want %q", p, got, ok, w)
		}
	}
}

func TestFind(t *testing.T) {
	db := []byte("SQLite format 3\x00")
	tests := []struct {
		name string
		fs   fsystest.MapFS
		want string
	}{
		{"var/lib/rpm sqlite", fsystest.MapFS{"/var/lib/rpm/rpmdb.sqlite": {Data: db}}, "/var/lib/rpm/rpmdb.sqlite"},
		{"sqlite before bdb", fsystest.MapFS{"/var/lib/rpm/Packages": {Data: db}, "/var/lib/rpm/rpmdb.sqlite": {Data: db}}, "/var/lib/rpm/rpmdb.sqlite"},
		{"sysimage ndb", fsystest.MapFS{"/usr/lib/sysimage/rpm/Packages.db": {Data: db}}, "/usr/lib/sysimage/rpm/Packages.db"},
		{"through a link", fsystest.MapFS{"/var/lib/rpm": {Target: "/usr/lib/sysimage/rpm"}, "/usr/lib/sysimage/rpm/Packages": {Data: db}}, "/var/lib/rpm/Packages"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := find(extractortest.Root(tt.fs)); err != nil || got != tt.want {
				t.Errorf("find() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	bad := []struct {
		name string
		fs   fsystest.MapFS
		want error
	}{
		{"nothing", fsystest.MapFS{"/etc/x": {Data: db}}, fs.ErrNotExist},
		{"database is a directory", fsystest.MapFS{"/var/lib/rpm/Packages/x": {Data: db}}, fs.ErrNotExist},
		{"rpm dir is a file", fsystest.MapFS{"/var/lib/rpm": {Data: db}}, fs.ErrNotExist},
		{"dangling link", fsystest.MapFS{"/var/lib/rpm/rpmdb.sqlite": {Target: "/gone"}}, fs.ErrNotExist},
		{"link loop", fsystest.MapFS{"/var/lib/rpm/rpmdb.sqlite": {Target: "rpmdb.sqlite"}}, fsys.ErrSymlinkLoop},
		{"link escapes", fsystest.MapFS{"/var/lib/rpm": {Target: "../../../../.."}}, fsys.ErrEscapesRoot},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := find(extractortest.Root(tt.fs)); !errors.Is(err, tt.want) || got != "" {
				t.Errorf("find() = %q, %v; want an error wrapping %v", got, err, tt.want)
			}
		})
	}
}

// sqliteDB creates a SQLite database on the host with the given schema
// statements and returns its bytes.
func sqliteDB(t *testing.T, stmts ...string) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "db.sqlite")
	db, err := sql.Open("sqlite", p)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestExtractSQLite(t *testing.T) {
	blob := buildHeader(true, bashHeader()...)
	good := sqliteDB(t, "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)",
		"INSERT INTO Packages (blob) VALUES (x'"+hexs(blob)+"')")
	m := fsystest.MapFS{"/var/lib/rpm/rpmdb.sqlite": {Data: good}}
	tmp := t.TempDir()
	res, err := Extract(context.Background(), extractortest.Root(m), tmp)
	if err != nil {
		t.Fatalf("Extract() error = %v", err)
	}
	want := []inventory.Package{{Name: "bash", Version: "0:5.1.8-6.el9", Arch: "x86_64", SourceName: "bash", SourceVersion: "0:5.1.8-6.el9", Manager: "rpm", InstallTime: time.Unix(1700000000, 0).UTC()}}
	if diff := extractortest.Diff(want, res.Packages); diff != "" {
		t.Errorf("Extract():\n%s", diff)
	}
	if got, ok := res.Owner("/etc/skel/bashrc"); got != "bash" || !ok {
		t.Errorf("Owner(/etc/skel/bashrc) = %q, %v; want bash", got, ok)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("temporary directory not emptied: %v", left)
	}
}

func hexs(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 2*len(b))
	for i, c := range b {
		out[2*i], out[2*i+1] = digits[c>>4], digits[c&15]
	}
	return string(out)
}

func TestExtractErrors(t *testing.T) {
	blob := buildHeader(true, bashHeader()...)
	tests := []struct {
		name    string
		fs      fsystest.MapFS
		wantErr string
		wantIs  error
	}{
		{name: "no database", fs: fsystest.MapFS{"/etc/os-release": {Data: []byte("ID=rocky\n")}}, wantIs: fs.ErrNotExist},
		{name: "garbage", fs: fsystest.MapFS{"/var/lib/rpm/Packages": {Data: bytes.Repeat([]byte{0xAB}, 4096)}}, wantErr: "not a Berkeley DB"},
		{name: "empty file", fs: fsystest.MapFS{"/var/lib/rpm/rpmdb.sqlite": {Data: nil}}, wantErr: "beyond the end"},
		{name: "sqlite without Packages", fs: fsystest.MapFS{"/var/lib/rpm/rpmdb.sqlite": {Data: sqliteDB(t, "CREATE TABLE Other (x)")}}, wantErr: "0 Packages tables"},
		{name: "sqlite Packages view", fs: fsystest.MapFS{"/var/lib/rpm/rpmdb.sqlite": {Data: sqliteDB(t,
			"CREATE VIEW Packages AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT zeroblob(1000000) AS blob FROM c")}}, wantErr: "not a table"},
		{name: "sqlite Packages virtual table", fs: fsystest.MapFS{"/var/lib/rpm/rpmdb.sqlite": {Data: sqliteDB(t, "CREATE VIRTUAL TABLE Packages USING fts5(blob)")}}, wantErr: "not an ordinary table"},
		{name: "sqlite generated blob column", fs: fsystest.MapFS{"/var/lib/rpm/rpmdb.sqlite": {Data: sqliteDB(t,
			"CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB GENERATED ALWAYS AS (zeroblob(1000000000)) VIRTUAL)", "INSERT INTO Packages (hnum) VALUES (1)")}}, wantErr: "no stored blob column"},
		{name: "sqlite without blob column", fs: fsystest.MapFS{"/var/lib/rpm/rpmdb.sqlite": {Data: sqliteDB(t, "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, data BLOB)")}}, wantErr: "no stored blob column"},
		{name: "sqlite bad blob", fs: fsystest.MapFS{"/var/lib/rpm/rpmdb.sqlite": {Data: sqliteDB(t, "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB)", "INSERT INTO Packages VALUES (1, x'00000001')")}}, wantErr: "too short"},
		{name: "sqlite corrupted", fs: fsystest.MapFS{"/var/lib/rpm/rpmdb.sqlite": {Data: corrupt(sqliteDB(t, "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB)", "INSERT INTO Packages VALUES (1, x'"+hexs(blob)+"')"))}}, wantErr: "sqlite"},
		{name: "ndb truncated", fs: fsystest.MapFS{"/var/lib/rpm/Packages.db": {Data: ndbFile(t, [][]byte{blob})[:4200]}}, wantErr: "outside the file"},
		{name: "bdb overflow loop", fs: fsystest.MapFS{"/var/lib/rpm/Packages": {Data: bdbFile(t, [][]byte{bigHeader("bash")}, func(b []byte) { binary.LittleEndian.PutUint32(b[2*512+16:], 2) })}}, wantErr: "used twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			res, err := Extract(context.Background(), extractortest.Root(tt.fs), tmp)
			if err == nil || res != nil {
				t.Fatalf("Extract() = %v, %v; want nil and an error", res, err)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Extract() error = %v, want one wrapping %v", err, tt.wantIs)
			}
			if tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Extract() error = %v, want one containing %q", err, tt.wantErr)
			}
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Errorf("temporary directory not emptied: %v", left)
			}
		})
	}
}

// corrupt overwrites the second page of a SQLite file (the Packages table's
// b-tree) with garbage.
func corrupt(b []byte) []byte {
	b = slices.Clone(b)
	for i := 4096; i < len(b) && i < 8192; i++ {
		b[i] = byte(i * 7)
	}
	return b
}

// TestExtractSQLiteWAL reads a database whose last transaction is still in
// its -wal journal (an image taken while rpm ran, or without a clean
// shutdown): the journal is copied out with the database and replayed.
func TestExtractSQLiteWAL(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rpmdb.sqlite")
	db, err := sql.Open("sqlite", p)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, s := range []string{
		"PRAGMA journal_mode=WAL",
		"PRAGMA wal_autocheckpoint=0",
		"CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)",
		"INSERT INTO Packages (blob) VALUES (x'" + hexs(buildHeader(true, bashHeader()...)) + "')",
	} {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	m := fsystest.MapFS{}
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(p + suffix)
		if err != nil {
			t.Fatal(err)
		}
		m["/var/lib/rpm/rpmdb.sqlite"+suffix] = &fsystest.MapFile{Data: b}
	}
	if len(m["/var/lib/rpm/rpmdb.sqlite-wal"].Data) == 0 {
		t.Fatal("the -wal journal is empty; the test needs an unreplayed transaction")
	}
	res, err := Extract(context.Background(), extractortest.Root(m), t.TempDir())
	if err != nil {
		t.Fatalf("Extract() error = %v", err)
	}
	if len(res.Packages) != 1 || res.Packages[0].Name != "bash" {
		t.Errorf("Extract() packages = %+v, want bash from the journal", res.Packages)
	}
	delete(m, "/var/lib/rpm/rpmdb.sqlite-wal")
	if res, err := Extract(context.Background(), extractortest.Root(m), t.TempDir()); err == nil && len(res.Packages) != 0 {
		t.Errorf("without the journal: %d packages, want none (the table is only in the journal)", len(res.Packages))
	}
}
