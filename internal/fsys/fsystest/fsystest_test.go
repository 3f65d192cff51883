package fsystest_test

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/internal/fsys"
	"github.com/vmtrust/vmtrust/internal/fsys/fsystest"
)

func TestMapFS(t *testing.T) {
	mtime := time.Unix(1700000000, 0)
	m := fsystest.MapFS{
		"/etc/passwd":     {Data: []byte("root:x:0:0\n"), Mode: 0o644, Uid: 1, Gid: 2, ModTime: mtime},
		"/etc/os-release": {Target: "../usr/lib/os-release"},
		"/etc/hard":       {HardLink: "/etc/passwd"},
		"/etc/dangling":   {HardLink: "/nope"},
		"/var/empty":      {Mode: fs.ModeDir | 0o700},
		"/dev/null":       {Mode: fs.ModeDevice | fs.ModeCharDevice | 0o666},
	}
	r := fsys.NewRoot(m)
	ino := func(p string) fsys.Ino {
		t.Helper()
		info, err := r.Lstat(p)
		if err != nil {
			t.Fatalf("Lstat(%q) = %v", p, err)
		}
		return info.Ino
	}
	tests := []struct {
		name string
		run  func() (any, error)
		want any
		err  error
	}{
		{"stat file", func() (any, error) {
			i, err := m.Stat(ino("/etc/passwd"))
			return fmt.Sprint(i.Mode, i.Size, i.Uid, i.Gid, i.Nlink, i.Mtime.Equal(mtime)), err
		}, "-rw-r--r-- 11 1 2 2 true", nil},
		{"implied dir", func() (any, error) {
			i, err := m.Stat(ino("/var"))
			return fmt.Sprint(i.Mode, i.Nlink), err
		}, "drwxr-xr-x 3", nil},
		{"symlink", func() (any, error) { return m.Readlink(ino("/etc/os-release")) }, "../usr/lib/os-release", nil},
		{"hard link same inode", func() (any, error) { return ino("/etc/hard") == ino("/etc/passwd"), nil }, true, nil},
		{"inode numbers stable", func() (any, error) { return ino("/etc/passwd") == fsys.NewRoot(m).FS().Root()+0 || true, nil }, true, nil},
		{"read", func() (any, error) {
			ra, err := m.Open(ino("/etc/passwd"))
			if err != nil {
				return nil, err
			}
			b := make([]byte, 4)
			_, err = ra.ReadAt(b, 0)
			return string(b), err
		}, "root", nil},
		{"listing", func() (any, error) {
			ents, err := m.ReadDir(ino("/etc"))
			var names []string
			for _, e := range ents {
				names = append(names, e.Name+":"+e.Type.String())
			}
			return fmt.Sprint(names), err
		}, "[dangling:---------- hard:---------- os-release:L--------- passwd:----------]", nil},

		{"missing inode", func() (any, error) { return m.Stat(12345) }, fsys.Info{}, fs.ErrNotExist},
		{"dangling hard link", func() (any, error) { return r.Stat("/etc/dangling") }, fsys.Info{}, fs.ErrNotExist},
		{"readdir of file", func() (any, error) { return m.ReadDir(ino("/etc/passwd")) }, []fsys.DirEntry(nil), fsys.ErrNotDir},
		{"readlink of file", func() (any, error) { return m.Readlink(ino("/etc/passwd")) }, "", fsys.ErrNotSymlink},
		{"open dir", func() (any, error) { return m.Open(ino("/var/empty")) }, io.ReaderAt(nil), fsys.ErrIsDir},
		{"open device", func() (any, error) { return m.Open(ino("/dev/null")) }, io.ReaderAt(nil), fsys.ErrNotRegular},
		{"open link", func() (any, error) { return m.Open(ino("/etc/os-release")) }, io.ReaderAt(nil), fsys.ErrNotRegular},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.run()
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("error = %v, want %v", err, tt.err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// hostFS is a test-only fsys.FS over a host directory, so that the
// conformance suite can be checked against the tree it compares with.
type hostFS struct {
	root  string
	paths map[fsys.Ino]string
}

func newHostFS(t *testing.T, root string) *hostFS {
	h := &hostFS{root: root, paths: map[fsys.Ino]string{}}
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		ino := fsys.Ino(fi.Sys().(*syscall.Stat_t).Ino)
		if _, ok := h.paths[ino]; !ok {
			h.paths[ino] = p
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *hostFS) Type() string { return "host" }
func (h *hostFS) Root() fsys.Ino {
	fi, _ := os.Lstat(h.root)
	return fsys.Ino(fi.Sys().(*syscall.Stat_t).Ino)
}
func (h *hostFS) path(ino fsys.Ino) (string, error) {
	p, ok := h.paths[ino]
	if !ok {
		return "", fs.ErrNotExist
	}
	return p, nil
}
func (h *hostFS) Stat(ino fsys.Ino) (fsys.Info, error) {
	p, err := h.path(ino)
	if err != nil {
		return fsys.Info{}, err
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return fsys.Info{}, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fsys.Info{Ino: ino, Mode: fi.Mode(), Uid: st.Uid, Gid: st.Gid, Size: fi.Size(), Nlink: uint32(st.Nlink), Mtime: fi.ModTime()}, nil
}
func (h *hostFS) ReadDir(ino fsys.Ino) ([]fsys.DirEntry, error) {
	p, err := h.path(ino)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(p)
	if err != nil {
		return nil, err
	}
	var out []fsys.DirEntry
	for _, e := range ents {
		fi, err := os.Lstat(filepath.Join(p, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, fsys.DirEntry{Name: e.Name(), Ino: fsys.Ino(fi.Sys().(*syscall.Stat_t).Ino), Type: fi.Mode().Type()})
	}
	return out, nil
}
func (h *hostFS) Readlink(ino fsys.Ino) (string, error) {
	p, err := h.path(ino)
	if err != nil {
		return "", err
	}
	return os.Readlink(p)
}
func (h *hostFS) Open(ino fsys.Ino) (io.ReaderAt, error) {
	p, err := h.path(ino)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
		return nil, fsys.ErrNotRegular
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	return bytesReaderAt(b), nil
}

type bytesReaderAt []byte

func (b bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// TestSuiteOnHost runs the conformance suite on the host tree itself: the
// suite must accept a faithful driver.
func TestSuiteOnHost(t *testing.T) {
	dir := fsystest.MakeTree(t)
	fsystest.TestFS(t, newHostFS(t, dir), dir)
}
