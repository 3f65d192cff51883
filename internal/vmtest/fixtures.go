package vmtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// The real disk images of image-inspection tests are built by
// scripts/fixtures.sh (make fixtures, as root) into
// $VMTRUST_FIXTURES/<recipe>/ (default /var/cache/vmtrust/fixtures), where
// <recipe> is the first 16 hex digits of the sha256 of the script: a fixture
// directory always matches the script in the checkout. manifest.json is
// written last, so a directory without it is not a fixture.
const (
	fixturesScript      = "scripts/fixtures.sh"
	fixturesEnv         = "VMTRUST_FIXTURES"
	defaultFixturesBase = "/var/cache/vmtrust/fixtures"
	manifestName        = "manifest.json"
	fixturesHint        = "fixtures not built: run `make fixtures` (scripts/fixtures.sh, as root)"
	// maxManifestSize bounds the manifest read; the real one is a few KiB.
	maxManifestSize = 1 << 20
)

// errNotBuilt: the fixture directory for the checkout's recipe is absent.
var errNotBuilt = errors.New(fixturesHint)

// Manifest is a fixture directory's manifest.json.
type Manifest struct {
	Recipe  string         `json:"recipe"`  // 16 hex digits: the directory's name
	Mirror  string         `json:"mirror"`  // Debian mirror debootstrap used
	Created string         `json:"created"` // RFC 3339 UTC time of the build
	Roots   []string       `json:"roots"`   // the trees the images were made from
	Files   []ManifestFile `json:"files"`   // every file outside the roots
}

// ManifestFile is one fixture file: a path relative to the fixture
// directory, its sha256 (lowercase hex), its size and what it is.
type ManifestFile struct {
	Name        string `json:"name"`
	SHA256      string `json:"sha256"`
	Size        int64  `json:"size"`
	Description string `json:"description"`
}

// Fixtures returns the directory of the fixtures built by scripts/fixtures.sh
// for the script as it is in the checkout. When they are not built the test
// is skipped with a message saying how to build them, except under CI (CI
// set), where it fails.
func Fixtures(t testing.TB) string {
	t.Helper()
	dir, err := fixturesDir(ModuleRoot(t), os.Getenv)
	switch {
	case errors.Is(err, errNotBuilt):
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	case err != nil:
		t.Fatal(err)
	}
	return dir
}

// Fixture returns the path of one fixture file or directory, name being
// relative to the fixture directory ("debian12-dirty.qcow2",
// "expected/debian12-dirty.dpkg", "rootfs/debian12-dirty"). It fails the
// test when name is not a local path or the file is absent.
func Fixture(t testing.TB, name string) string {
	t.Helper()
	dir := Fixtures(t)
	p, err := fixturePath(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// ReadManifest reads and checks the manifest.json of fixture directory dir.
func ReadManifest(t testing.TB, dir string) Manifest {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, manifestName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxManifestSize+1))
	if err != nil {
		t.Fatal(err)
	}
	m, err := parseManifest(data, filepath.Base(dir))
	if err != nil {
		t.Fatalf("fixtures %s: %v", dir, err)
	}
	return m
}

// recipe is the name of the fixture directory for a fixtures.sh: the first 16
// hex digits of its sha256, as the script computes it with sha256sum.
func recipe(script []byte) string {
	sum := sha256.Sum256(script)
	return hex.EncodeToString(sum[:])[:16]
}

// fixturesDir finds the fixture directory for the fixtures.sh below
// moduleRoot; the error wraps errNotBuilt when it is not (completely) built.
func fixturesDir(moduleRoot string, getenv func(string) string) (string, error) {
	script, err := os.ReadFile(filepath.Join(moduleRoot, fixturesScript))
	if err != nil {
		return "", fmt.Errorf("fixtures: recipe: %w", err)
	}
	base := getenv(fixturesEnv)
	if base == "" {
		base = defaultFixturesBase
	}
	dir := filepath.Join(base, recipe(script))
	if _, err := os.Stat(filepath.Join(dir, manifestName)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("%w: %s is missing", errNotBuilt, filepath.Join(dir, manifestName))
		}
		return "", fmt.Errorf("fixtures: %w", err)
	}
	return dir, nil
}

// fixturePath returns dir/name when name is a local path that exists.
func fixturePath(dir, name string) (string, error) {
	if !filepath.IsLocal(name) {
		return "", fmt.Errorf("fixture %q: not a path inside the fixture directory", name)
	}
	p := filepath.Join(dir, name)
	if _, err := os.Lstat(p); err != nil {
		return "", fmt.Errorf("fixture %q: %w (is scripts/fixtures.sh building it? run `make fixtures`)", name, err)
	}
	return p, nil
}

var (
	recipeRE = regexp.MustCompile(`^[0-9a-f]{16}$`)
	sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// parseManifest decodes a manifest strictly (no unknown fields, no trailing
// data) and checks it describes the fixture directory named recipe.
func parseManifest(data []byte, recipe string) (Manifest, error) {
	if len(data) > maxManifestSize {
		return Manifest{}, fmt.Errorf("manifest: larger than %d bytes", maxManifestSize)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("manifest: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Manifest{}, errors.New("manifest: data after the JSON object")
	}
	if !recipeRE.MatchString(m.Recipe) || m.Recipe != recipe {
		return Manifest{}, fmt.Errorf("manifest: recipe %q, want the directory name %q", m.Recipe, recipe)
	}
	if len(m.Files) == 0 {
		return Manifest{}, errors.New("manifest: no files")
	}
	seen := make(map[string]bool, len(m.Files)+len(m.Roots))
	for _, r := range m.Roots {
		if !filepath.IsLocal(r) || seen[r] {
			return Manifest{}, fmt.Errorf("manifest: root %q: not local or listed twice", r)
		}
		seen[r] = true
	}
	for _, f := range m.Files {
		switch {
		case !filepath.IsLocal(f.Name) || filepath.Clean(f.Name) != f.Name:
			return Manifest{}, fmt.Errorf("manifest: file %q: not a clean local path", f.Name)
		case seen[f.Name]:
			return Manifest{}, fmt.Errorf("manifest: file %q: listed twice", f.Name)
		case !sha256RE.MatchString(f.SHA256):
			return Manifest{}, fmt.Errorf("manifest: file %q: sha256 %q is not 64 lowercase hex digits", f.Name, f.SHA256)
		case f.Size < 0:
			return Manifest{}, fmt.Errorf("manifest: file %q: negative size %d", f.Name, f.Size)
		case f.Description == "":
			return Manifest{}, fmt.Errorf("manifest: file %q: no description", f.Name)
		}
		seen[f.Name] = true
	}
	return m, nil
}
