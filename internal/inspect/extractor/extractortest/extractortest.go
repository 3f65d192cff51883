// Package extractortest helps test the package-database extractors: it
// finds the real tools (dpkg-query, rpm, rpmbuild) the interoperability
// tests compare against, and copies parts of a host directory tree into an
// in-memory guest filesystem (fsystest.MapFS).
//
// It is for tests only. A missing tool skips the test with a message
// naming the Debian package to install, except when CI is set, where it
// fails: tests never skip silently.
package extractortest

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/vmtrust/vmtrust/internal/fsys"
	"github.com/vmtrust/vmtrust/internal/fsys/fsystest"
)

// NeedTool returns the path of the command tool, which the Debian package
// debPkg provides. When it is missing the test fails under CI (CI set) and
// is skipped otherwise, with a message naming debPkg.
func NeedTool(t testing.TB, tool, debPkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err == nil {
		return p
	}
	msg := tool + " is not installed: apt-get install -y --no-install-recommends " + debPkg + " (scripts/setup.sh)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg + "; CI is set, so this test must run")
	}
	t.Skip(msg)
	return ""
}

// Root returns an fsys.Root over m.
func Root(m fsystest.MapFS) *fsys.Root { return fsys.NewRoot(m) }

// Load copies the host tree hostRoot/guestPath (a file, a link or a
// directory, recursively) into m at guestPath, keeping contents, link
// targets, permission bits and modification times. keep, when not nil,
// selects which regular files are copied (by guest path). Links are
// copied as links, never followed.
func Load(t testing.TB, m fsystest.MapFS, hostRoot, guestPath string, keep func(guestPath string) bool) {
	t.Helper()
	start := filepath.Join(hostRoot, filepath.FromSlash(guestPath))
	err := filepath.WalkDir(start, func(hp string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(hostRoot, hp)
		if err != nil {
			return err
		}
		gp := path.Clean("/" + filepath.ToSlash(rel))
		info, err := os.Lstat(hp)
		if err != nil {
			return err
		}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(hp)
			if err != nil {
				return err
			}
			m[gp] = &fsystest.MapFile{Target: target, ModTime: info.ModTime()}
		case info.IsDir():
			m[gp] = &fsystest.MapFile{Mode: fs.ModeDir | info.Mode().Perm(), ModTime: info.ModTime()}
		case info.Mode().IsRegular():
			if keep != nil && !keep(gp) {
				return nil
			}
			b, err := os.ReadFile(hp)
			if err != nil {
				return err
			}
			m[gp] = &fsystest.MapFile{Data: b, Mode: info.Mode().Perm(), ModTime: info.ModTime()}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("loading %s into a MapFS: %v", start, err)
	}
}

// Diff returns "" when want and got are deeply equal, else both values
// printed for a failure message. (The module has no go-cmp; slices are
// compared element by element to point at the first difference.)
func Diff(want, got any) string {
	if reflect.DeepEqual(want, got) {
		return ""
	}
	wv, gv := reflect.ValueOf(want), reflect.ValueOf(got)
	if wv.Kind() == reflect.Slice && gv.Kind() == reflect.Slice {
		var b strings.Builder
		fmt.Fprintf(&b, "len want %d, got %d\n", wv.Len(), gv.Len())
		for i := 0; i < max(wv.Len(), gv.Len()); i++ {
			var w, g any = "(none)", "(none)"
			if i < wv.Len() {
				w = wv.Index(i).Interface()
			}
			if i < gv.Len() {
				g = gv.Index(i).Interface()
			}
			if !reflect.DeepEqual(w, g) {
				fmt.Fprintf(&b, "first difference at [%d]:\n  want %+v\n  got  %+v", i, w, g)
				break
			}
		}
		return b.String()
	}
	return fmt.Sprintf("want %+v\ngot  %+v", want, got)
}

// FastRoot returns an fsys.Root over a snapshot of m indexed by inode, for
// trees too large for MapFS, whose every lookup scans the map. It keeps
// MapFS's meaning of keys, modes and link targets, but not HardLink
// (refused) or link counts.
func FastRoot(t testing.TB, m fsystest.MapFS) *fsys.Root {
	t.Helper()
	x := &indexFS{nodes: map[fsys.Ino]*inode{}, byPath: map[string]fsys.Ino{}}
	x.add("/", nil)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		f := m[k]
		if f.HardLink != "" {
			t.Fatalf("FastRoot: %s: HardLink is not supported", k)
		}
		p := path.Clean("/" + k)
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if _, ok := x.byPath[d]; !ok {
				x.add(d, nil)
			}
		}
		x.add(p, f)
	}
	for p, ino := range x.byPath {
		if p == "/" {
			continue
		}
		parent := x.nodes[x.byPath[path.Dir(p)]]
		n := x.nodes[ino]
		parent.ents = append(parent.ents, fsys.DirEntry{Name: path.Base(p), Ino: ino, Type: n.info.Mode.Type()})
	}
	for _, n := range x.nodes {
		slices.SortFunc(n.ents, func(a, b fsys.DirEntry) int { return strings.Compare(a.Name, b.Name) })
	}
	return fsys.NewRoot(x)
}

type inode struct {
	info   fsys.Info
	data   []byte
	target string
	ents   []fsys.DirEntry
}

type indexFS struct {
	nodes  map[fsys.Ino]*inode
	byPath map[string]fsys.Ino
}

func (x *indexFS) add(p string, f *fsystest.MapFile) {
	ino, ok := x.byPath[p]
	if !ok {
		ino = fsys.Ino(len(x.byPath) + 1)
		x.byPath[p] = ino
	}
	n := &inode{info: fsys.Info{Ino: ino, Mode: fs.ModeDir | 0o755, Nlink: 1}}
	if f != nil {
		n.info.Mode, n.info.Uid, n.info.Gid, n.info.Mtime = f.Mode, f.Uid, f.Gid, f.ModTime
		if f.Target != "" && f.Mode.Type() == 0 {
			n.info.Mode |= fs.ModeSymlink
		}
		n.data, n.target = f.Data, f.Target
		switch {
		case n.info.Mode.IsRegular():
			n.info.Size = int64(len(f.Data))
		case n.info.Mode&fs.ModeSymlink != 0:
			n.info.Size = int64(len(f.Target))
		}
	}
	x.nodes[ino] = n
}

func (x *indexFS) node(ino fsys.Ino) (*inode, error) {
	n, ok := x.nodes[ino]
	if !ok {
		return nil, fmt.Errorf("indexfs: inode %d: %w", ino, fs.ErrNotExist)
	}
	return n, nil
}

func (x *indexFS) Type() string   { return "indexfs" }
func (x *indexFS) Root() fsys.Ino { return x.byPath["/"] }

func (x *indexFS) Stat(ino fsys.Ino) (fsys.Info, error) {
	n, err := x.node(ino)
	if err != nil {
		return fsys.Info{}, err
	}
	return n.info, nil
}

func (x *indexFS) ReadDir(ino fsys.Ino) ([]fsys.DirEntry, error) {
	n, err := x.node(ino)
	if err != nil {
		return nil, err
	}
	if !n.info.Mode.IsDir() {
		return nil, fsys.ErrNotDir
	}
	return slices.Clone(n.ents), nil
}

func (x *indexFS) Readlink(ino fsys.Ino) (string, error) {
	n, err := x.node(ino)
	if err != nil {
		return "", err
	}
	if n.info.Mode&fs.ModeSymlink == 0 {
		return "", fsys.ErrNotSymlink
	}
	return n.target, nil
}

func (x *indexFS) Open(ino fsys.Ino) (io.ReaderAt, error) {
	n, err := x.node(ino)
	if err != nil {
		return nil, err
	}
	if !n.info.Mode.IsRegular() {
		return nil, fsys.ErrNotRegular
	}
	return bytes.NewReader(n.data), nil
}

// CheckSeeds keeps a fuzz target's checked-in seed corpus,
// testdata/fuzz/<target>/<name>, equal to seeds (files in the
// "go test fuzz v1" format holding one []byte each). With update it
// rewrites the directory; otherwise a missing or different file fails the
// test, so the corpus is a fixed point of the vectors it is made from.
func CheckSeeds(t *testing.T, target string, seeds map[string][]byte, update bool) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", target)
	if update {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, b := range seeds {
		want := []byte("go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n")
		p := filepath.Join(dir, name)
		if update {
			if err := os.WriteFile(p, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("fuzz seed %s is missing or stale (%v): run go test -run TestFuzzSeeds -update-seeds", p, err)
		}
	}
}
