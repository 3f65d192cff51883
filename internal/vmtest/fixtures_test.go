package vmtest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// recordTB records the first Fatal or Skip and stops the goroutine, as the
// real ones do; everything else goes to the real test.
type recordTB struct {
	testing.TB
	fatal, skip string
}

func (r *recordTB) Helper() {}
func (r *recordTB) Fatal(args ...any) {
	r.fatal = fmt.Sprint(args...)
	runtime.Goexit()
}
func (r *recordTB) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (r *recordTB) Skip(args ...any) {
	r.skip = fmt.Sprint(args...)
	runtime.Goexit()
}
func (r *recordTB) Skipf(format string, args ...any) {
	r.skip = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls f with a recordTB in its own goroutine (Goexit ends only that).
func run(t *testing.T, f func(testing.TB) string) (got string, rec *recordTB) {
	rec = &recordTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		got = f(rec)
	}()
	<-done
	return got, rec
}

// fakeFixtures makes $VMTRUST_FIXTURES a temporary directory holding a
// fixture directory for the checkout's fixtures.sh (with a manifest and the
// given files), or none when files is nil.
func fakeFixtures(t *testing.T, files map[string]string) string {
	t.Helper()
	base := t.TempDir()
	t.Setenv(fixturesEnv, base)
	script, err := os.ReadFile(filepath.Join(ModuleRoot(t), fixturesScript))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, recipe(script))
	if files == nil {
		return dir
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestRecipe(t *testing.T) {
	tests := []struct {
		name   string
		script string
		want   string
	}{
		{"empty", "", "e3b0c44298fc1c14"},
		{"abc", "abc", "ba7816bf8f01cfea"},
		{"one byte changes it", "abd", "a52d159f262b2c6d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := recipe([]byte(tt.script)); got != tt.want {
				t.Errorf("recipe(%q) = %s, want %s", tt.script, got, tt.want)
			}
		})
	}
}

// The directory name must be the one the script computes with sha256sum.
func TestRecipeMatchesScript(t *testing.T) {
	Require(t, "sha256sum")
	path := filepath.Join(ModuleRoot(t), fixturesScript)
	out, err := exec.Command("sha256sum", path).Output()
	if err != nil {
		t.Fatalf("sha256sum %s: %v", path, err)
	}
	script, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := recipe(script), string(out[:16]); got != want {
		t.Errorf("recipe(fixtures.sh) = %s, want %s (sha256sum | cut -c1-16)", got, want)
	}
}

func TestFixturesDir(t *testing.T) {
	root := ModuleRoot(t)
	script, err := os.ReadFile(filepath.Join(root, fixturesScript))
	if err != nil {
		t.Fatal(err)
	}
	rec := recipe(script)
	built := t.TempDir()
	if err := os.MkdirAll(filepath.Join(built, rec), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(built, rec, manifestName), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	half := t.TempDir() // a directory without manifest: an interrupted build
	if err := os.MkdirAll(filepath.Join(half, rec), 0o755); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir() // built for another recipe only
	if err := os.MkdirAll(filepath.Join(other, "0123456789abcdef"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "0123456789abcdef", manifestName), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		root     string
		base     string // $VMTRUST_FIXTURES
		want     string
		notBuilt bool   // error wraps errNotBuilt
		errHas   string // other error containing this
	}{
		{name: "built", root: root, base: built, want: filepath.Join(built, rec)},
		{name: "no manifest", root: root, base: half, notBuilt: true},
		{name: "other recipe only", root: root, base: other, notBuilt: true},
		{name: "empty base", root: root, base: t.TempDir(), notBuilt: true},
		{name: "base does not exist", root: root, base: filepath.Join(t.TempDir(), "nope"), notBuilt: true},
		{name: "no script", root: t.TempDir(), base: built, errHas: "fixtures: recipe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := fixturesDir(tt.root, func(k string) string {
				if k == fixturesEnv {
					return tt.base
				}
				return ""
			})
			switch {
			case tt.notBuilt:
				if !errors.Is(err, errNotBuilt) || got != "" {
					t.Errorf("fixturesDir() = %q, %v; want errNotBuilt", got, err)
				}
			case tt.errHas != "":
				if err == nil || errors.Is(err, errNotBuilt) || !strings.Contains(err.Error(), tt.errHas) || got != "" {
					t.Errorf("fixturesDir() = %q, %v; want an error containing %q", got, err, tt.errHas)
				}
			default:
				if err != nil || got != tt.want {
					t.Errorf("fixturesDir() = %q, %v; want %q", got, err, tt.want)
				}
			}
		})
	}
}

// Without $VMTRUST_FIXTURES the default base is used.
func TestFixturesDirDefault(t *testing.T) {
	_, err := fixturesDir(ModuleRoot(t), func(string) string { return "" })
	if err != nil && !strings.Contains(err.Error(), defaultFixturesBase) {
		t.Errorf("fixturesDir() error %q does not name %s", err, defaultFixturesBase)
	}
}

func TestFixturesNotBuilt(t *testing.T) {
	tests := []struct {
		name      string
		ci        string
		wantFatal bool
	}{
		{"CI set fails", "true", true},
		{"CI=1 fails", "1", true},
		{"CI unset skips", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fakeFixtures(t, nil)
			t.Setenv("CI", tt.ci)
			got, rec := run(t, Fixtures)
			msg := rec.skip
			if tt.wantFatal {
				msg = rec.fatal
			}
			if got != "" || msg == "" || (rec.fatal != "") != tt.wantFatal || !strings.Contains(msg, fixturesHint) {
				t.Errorf("Fixtures() = %q, fatal %q, skip %q; want fatal=%v with %q", got, rec.fatal, rec.skip, tt.wantFatal, fixturesHint)
			}
		})
	}
}

func TestFixture(t *testing.T) {
	dir := fakeFixtures(t, map[string]string{
		manifestName:                   "{}",
		"disk.qcow2":                   "QFI\xfb",
		"expected/debian12-dirty.dpkg": "bash\t5.2.15-2+b2\tamd64\tbash\t5.2.15-2\n",
	})
	if err := os.Symlink("/etc/hostname", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		file  string
		fatal string // "" when the path is returned
	}{
		{name: "image", file: "disk.qcow2"},
		{name: "expected file", file: "expected/debian12-dirty.dpkg"},
		{name: "symlink itself, not followed", file: "link"},
		{name: "absent", file: "nope.qcow2", fatal: "no such file"},
		{name: "absent in subdir", file: "expected/nope", fatal: "no such file"},
		{name: "parent", file: "../x", fatal: "not a path inside"},
		{name: "escape via subdir", file: "expected/../../x", fatal: "not a path inside"},
		{name: "absolute", file: "/etc/passwd", fatal: "not a path inside"},
		{name: "empty", file: "", fatal: "not a path inside"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CI", "")
			got, rec := run(t, func(tb testing.TB) string { return Fixture(tb, tt.file) })
			if tt.fatal == "" {
				if want := filepath.Join(dir, tt.file); got != want || rec.fatal != "" || rec.skip != "" {
					t.Errorf("Fixture(%q) = %q (fatal %q, skip %q), want %q", tt.file, got, rec.fatal, rec.skip, want)
				}
				return
			}
			if got != "" || !strings.Contains(rec.fatal, tt.fatal) {
				t.Errorf("Fixture(%q) = %q, fatal %q; want fatal containing %q", tt.file, got, rec.fatal, tt.fatal)
			}
		})
	}
}

func TestParseManifest(t *testing.T) {
	const rec = "0123456789abcdef"
	sum := strings.Repeat("ab", 32)
	file := func(name, sha string, size int, desc string) string {
		return fmt.Sprintf(`{"name": %q, "sha256": %q, "size": %d, "description": %q}`, name, sha, size, desc)
	}
	manifest := func(recipe string, files ...string) string {
		return fmt.Sprintf(`{"recipe": %q, "mirror": "http://deb.debian.org/debian", "created": "2025-01-01T00:00:00Z",
			"roots": ["rootfs/debian12-clean"], "files": [%s]}`, recipe, strings.Join(files, ","))
	}
	good := file("debian12-dirty.qcow2", sum, 123, "an image")
	tests := []struct {
		name    string
		data    string
		wantErr string // "" for a valid manifest
	}{
		{name: "valid", data: manifest(rec, good, file("expected/a.dpkg", sum, 0, "list"))},
		{name: "valid one file", data: manifest(rec, good)},
		{name: "not JSON", data: "not json", wantErr: "invalid character"},
		{name: "truncated", data: manifest(rec, good)[:40], wantErr: "unexpected EOF"},
		{name: "trailing data", data: manifest(rec, good) + "{}", wantErr: "data after"},
		{name: "unknown field", data: `{"recipe": "` + rec + `", "extra": 1, "files": [` + good + `]}`, wantErr: "unknown field"},
		{name: "other recipe", data: manifest("fedcba9876543210", good), wantErr: "want the directory name"},
		{name: "recipe not hex", data: manifest("0123456789ABCDEF", good), wantErr: "recipe"},
		{name: "no files", data: manifest(rec), wantErr: "no files"},
		{name: "file twice", data: manifest(rec, good, good), wantErr: "listed twice"},
		{name: "file is a root", data: manifest(rec, file("rootfs/debian12-clean", sum, 1, "x")), wantErr: "listed twice"},
		{name: "absolute name", data: manifest(rec, file("/etc/shadow", sum, 1, "x")), wantErr: "not a clean local path"},
		{name: "escaping name", data: manifest(rec, file("../x", sum, 1, "x")), wantErr: "not a clean local path"},
		{name: "unclean name", data: manifest(rec, file("expected//a", sum, 1, "x")), wantErr: "not a clean local path"},
		{name: "short sha256", data: manifest(rec, file("a", sum[:63], 1, "x")), wantErr: "sha256"},
		{name: "uppercase sha256", data: manifest(rec, file("a", strings.ToUpper(sum), 1, "x")), wantErr: "sha256"},
		{name: "negative size", data: manifest(rec, file("a", sum, -1, "x")), wantErr: "negative size"},
		{name: "no description", data: manifest(rec, file("a", sum, 1, "")), wantErr: "no description"},
		{name: "root escapes", data: strings.Replace(manifest(rec, good), "rootfs/debian12-clean", "../root", 1), wantErr: "root"},
		{name: "too large", data: manifest(rec, good) + strings.Repeat(" ", maxManifestSize), wantErr: "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parseManifest([]byte(tt.data), rec)
			if tt.wantErr == "" {
				if err != nil || m.Recipe != rec || len(m.Files) == 0 {
					t.Errorf("parseManifest() = %+v, %v; want a manifest", m, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseManifest() error = %v, want one containing %q", err, tt.wantErr)
			}
			if m.Recipe != "" || m.Files != nil {
				t.Errorf("parseManifest() = %+v on error, want the zero Manifest", m)
			}
		})
	}
}

// The fixtures every image-inspection test may rely on; the manifest may hold
// more.
var wantFixtures = []string{
	"debian12-dirty.raw", "debian12-dirty.qcow2", "debian12-dirty-zstd.qcow2",
	"debian12-dirty-v2.qcow2", "debian12-dirty-gpt.qcow2", "debian12-dirty-mbr.qcow2",
	"debian12-dirty.vmdk", "debian12-dirty-stream.vmdk", "debian12-dirty-xfs.qcow2",
	"overlay.qcow2", "debian12-clean.qcow2", "debian12-clean-gpt.qcow2", "rocky-rpm.qcow2",
	"expected/debian12-dirty.dpkg", "expected/debian12-clean.dpkg", "expected/rocky-rpm.rpm",
	"expected/debian12-dirty.planted",
}

// smallFile: files up to this size are hashed; larger ones (the images) only
// have their size checked, which keeps the test fast.
const smallFile = 1 << 20

// The built fixtures match their manifest.
func TestFixtureManifest(t *testing.T) {
	dir := Fixtures(t)
	m := ReadManifest(t, dir)
	listed := map[string]bool{}
	for _, f := range m.Files {
		listed[f.Name] = true
		t.Run(f.Name, func(t *testing.T) {
			p := Fixture(t, f.Name)
			fi, err := os.Lstat(p)
			if err != nil {
				t.Fatal(err)
			}
			if !fi.Mode().IsRegular() || fi.Size() != f.Size {
				t.Fatalf("%s: mode %v size %d, want a regular file of %d bytes", f.Name, fi.Mode(), fi.Size(), f.Size)
			}
			if f.Size > smallFile {
				return
			}
			if got := sha256File(t, p); got != f.SHA256 {
				t.Errorf("sha256(%s) = %s, want %s", f.Name, got, f.SHA256)
			}
		})
	}
	for _, r := range m.Roots {
		if fi, err := os.Stat(Fixture(t, r)); err != nil || !fi.IsDir() {
			t.Errorf("root %s: %v, want a directory", r, err)
		}
	}
	for _, name := range wantFixtures {
		if !listed[name] {
			t.Errorf("manifest of %s does not list %s", dir, name)
		}
	}
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
