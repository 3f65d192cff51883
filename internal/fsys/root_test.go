package fsys_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/vmtrust/vmtrust/internal/fsys"
	"github.com/vmtrust/vmtrust/internal/fsys/fsystest"
)

func link(target string) *fsystest.MapFile { return &fsystest.MapFile{Target: target} }
func file(data string) *fsystest.MapFile {
	return &fsystest.MapFile{Data: []byte(data), Mode: 0o644}
}
func dir() *fsystest.MapFile { return &fsystest.MapFile{Mode: fs.ModeDir | 0o755} }

// testTree is a small guest filesystem with the link layouts Root must
// resolve, or refuse.
func testTree() fsystest.MapFS {
	m := fsystest.MapFS{
		"/usr/lib/os-release": file("ID=debian\n"),
		"/etc/os-release":     link("../usr/lib/os-release"), // Debian's real layout
		"/etc/abs-release":    link("/etc/os-release"),
		"/usr/bin/sh":         file("#!sh"),
		"/bin":                link("usr/bin"),
		"/rootlink":           link("/"),
		"/rootdot":            link("."),
		"/a/b/c/ok":           link("../../.."),
		"/a/b/c/up":           link("../../../.."),
		"/a/b/c/absup":        link("/../etc"),
		"/a/b/c/file":         file("c"),
		"/sub":                link("a/b/c"),
		"/loop/a":             link("b"),
		"/loop/b":             link("a"),
		"/loop/self":          link("self"),
		"/loop/dir":           link("dir/x"),
		"/dir/file":           file("in dir"),
		"/dirlink":            link("dir"),
		"/dirslash":           link("dir/"),
		"/fileslash":          link("dir/file/"),
		"/dangling":           link("nowhere"),
		"/empty":              {Mode: fs.ModeSymlink | 0o777},
		"/longlink":           link(strings.Repeat("a/", 2100)),
		"/nullink":            link("a\x00b"),
		"/emptydir":           dir(),
		"/fifo":               {Mode: fs.ModeNamedPipe | 0o644},
		"/file":               file("0123456789"),
		"/hard":               {HardLink: "/file"},
	}
	// /chain/l0 -> l1 -> ... -> l39 -> /file: 40 links, the most allowed.
	for i := range fsys.MaxSymlinks {
		m[fmt.Sprintf("/chain/l%d", i)] = link(fmt.Sprintf("l%d", i+1))
	}
	m[fmt.Sprintf("/chain/l%d", fsys.MaxSymlinks)] = file("end of chain")
	// /long/m0 -> ... -> m40 -> /file: 41 links, one too many.
	for i := range fsys.MaxSymlinks + 1 {
		m[fmt.Sprintf("/long/m%d", i)] = link(fmt.Sprintf("m%d", i+1))
	}
	m[fmt.Sprintf("/long/m%d", fsys.MaxSymlinks+1)] = file("unreachable")
	return m
}

func TestResolve(t *testing.T) {
	r := fsys.NewRoot(testTree())
	tests := []struct {
		name, path string
		want       string // canonical path; "" when err is set
		err        error
	}{
		{"root", "/", "/", nil},
		{"plain", "/usr/lib/os-release", "/usr/lib/os-release", nil},
		{"debian os-release", "/etc/os-release", "/usr/lib/os-release", nil},
		{"absolute then relative", "/etc/abs-release", "/usr/lib/os-release", nil},
		{"repeated slashes and dots", "//etc/./os-release", "/usr/lib/os-release", nil},
		{"dotdot lexical", "/etc/../usr/bin/sh", "/usr/bin/sh", nil},
		{"dir link inside path", "/bin/sh", "/usr/bin/sh", nil},
		{"link to root", "/rootlink", "/", nil},
		{"link to root inside path", "/rootlink/rootlink/etc/os-release", "/usr/lib/os-release", nil},
		{"link to dot", "/rootdot/bin/sh", "/usr/bin/sh", nil},
		{"dotdot to root from deep link", "/a/b/c/ok/etc/os-release", "/usr/lib/os-release", nil},
		{"dotdot after link uses real parent", "/sub/..", "/a/b", nil},
		{"dotdot after dir link", "/dirlink/../etc/os-release", "/usr/lib/os-release", nil},
		{"40 links", "/chain/l0", fmt.Sprintf("/chain/l%d", fsys.MaxSymlinks), nil},
		{"trailing slash on dir link", "/dirlink/", "/dir", nil},
		{"link target with trailing slash", "/dirslash/file", "/dir/file", nil},
		{"hard link", "/hard", "/hard", nil},

		{"relative path", "etc/os-release", "", fs.ErrInvalid},
		{"empty path", "", "", fs.ErrInvalid},
		{"NUL in path", "/etc\x00/os-release", "", fs.ErrInvalid},
		{"path too long", "/" + strings.Repeat("a", fsys.MaxPath), "", fs.ErrInvalid},
		{"dotdot at root", "/..", "", fsys.ErrEscapesRoot},
		{"dotdot above root", "/etc/../../etc/passwd", "", fsys.ErrEscapesRoot},
		{"link climbs above root", "/a/b/c/up", "", fsys.ErrEscapesRoot},
		{"link climbs above root mid-path", "/a/b/c/up/etc/passwd", "", fsys.ErrEscapesRoot},
		{"absolute target climbs above root", "/a/b/c/absup", "", fsys.ErrEscapesRoot},
		{"two-link loop", "/loop/a", "", fsys.ErrSymlinkLoop},
		{"self loop", "/loop/self", "", fsys.ErrSymlinkLoop},
		{"growing loop", "/loop/dir", "", fsys.ErrSymlinkLoop},
		{"41 links", "/long/m0", "", fsys.ErrSymlinkLoop},
		{"dangling", "/dangling", "", fs.ErrNotExist},
		{"missing", "/nope", "", fs.ErrNotExist},
		{"host file is not read", "/etc/passwd", "", fs.ErrNotExist},
		{"empty target", "/empty", "", fs.ErrNotExist},
		{"target too long", "/longlink", "", fs.ErrInvalid},
		{"NUL in target", "/nullink", "", fs.ErrInvalid},
		{"file as dir", "/file/x", "", fsys.ErrNotDir},
		{"dotdot after file", "/file/..", "", fsys.ErrNotDir},
		{"trailing slash on file", "/file/", "", fsys.ErrNotDir},
		{"link to file with trailing slash", "/fileslash", "", fsys.ErrNotDir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Resolve(tt.path)
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("Resolve(%q) error = %v, want %v", tt.path, err, tt.err)
			}
			if got != tt.want {
				t.Errorf("Resolve(%q) = %q, want %q", tt.path, got, tt.want)
			}
		})
	}
}

func TestStatLstat(t *testing.T) {
	m := testTree()
	r := fsys.NewRoot(m)
	tests := []struct {
		name, path string
		follow     bool
		wantType   fs.FileMode
		wantSize   int64
		err        error
	}{
		{"lstat link", "/etc/os-release", false, fs.ModeSymlink, int64(len("../usr/lib/os-release")), nil},
		{"stat link", "/etc/os-release", true, 0, int64(len("ID=debian\n")), nil},
		{"lstat through dir link", "/dirlink/file", false, 0, 6, nil},
		{"lstat trailing slash follows", "/dirlink/", false, fs.ModeDir, 0, nil},
		{"lstat dangling", "/dangling", false, fs.ModeSymlink, 7, nil},
		{"lstat loop", "/loop/a", false, fs.ModeSymlink, 1, nil},
		{"lstat fifo", "/fifo", false, fs.ModeNamedPipe, 0, nil},

		{"stat dangling", "/dangling", true, 0, 0, fs.ErrNotExist},
		{"stat loop", "/loop/a", true, 0, 0, fsys.ErrSymlinkLoop},
		{"lstat in loop dir", "/loop/a/x", false, 0, 0, fsys.ErrSymlinkLoop},
		{"lstat escape", "/a/b/c/up/x", false, 0, 0, fsys.ErrEscapesRoot},
		{"stat escape", "/a/b/c/up", true, 0, 0, fsys.ErrEscapesRoot},
		{"lstat missing", "/usr/nope", false, 0, 0, fs.ErrNotExist},
		{"lstat relative", "usr", false, 0, 0, fs.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stat := r.Lstat
			if tt.follow {
				stat = r.Stat
			}
			info, err := stat(tt.path)
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("stat(%q) error = %v, want %v", tt.path, err, tt.err)
			}
			if err != nil {
				return
			}
			if info.Mode.Type() != tt.wantType || info.Size != tt.wantSize {
				t.Errorf("stat(%q) = type %v size %d, want %v %d", tt.path, info.Mode.Type(), info.Size, tt.wantType, tt.wantSize)
			}
		})
	}
	t.Run("hard links share an inode", func(t *testing.T) {
		a, err1 := r.Stat("/file")
		b, err2 := r.Stat("/hard")
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if a.Ino != b.Ino || a.Nlink != 2 {
			t.Errorf("Stat(/file).Ino = %d nlink %d, Stat(/hard).Ino = %d; want equal, nlink 2", a.Ino, a.Nlink, b.Ino)
		}
	})
}

func TestReadlink(t *testing.T) {
	r := fsys.NewRoot(testTree())
	tests := []struct {
		name, path, want string
		err              error
	}{
		{"relative", "/etc/os-release", "../usr/lib/os-release", nil},
		{"absolute", "/rootlink", "/", nil},
		{"through dir link", "/rootlink/bin", "usr/bin", nil},
		{"file", "/file", "", fsys.ErrNotSymlink},
		{"dir", "/dir", "", fsys.ErrNotSymlink},
		{"missing", "/nope", "", fs.ErrNotExist},
		{"too long", "/longlink", "", fs.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Readlink(tt.path)
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("Readlink(%q) error = %v, want %v", tt.path, err, tt.err)
			}
			if got != tt.want {
				t.Errorf("Readlink(%q) = %q, want %q", tt.path, got, tt.want)
			}
		})
	}
}

func TestReadFileOpen(t *testing.T) {
	r := fsys.NewRoot(testTree())
	tests := []struct {
		name, path string
		max        int64
		want       string
		err        error
	}{
		{"through relative link", "/etc/os-release", 100, "ID=debian\n", nil},
		{"exactly max", "/file", 10, "0123456789", nil},
		{"through dir link", "/dirlink/file", 100, "in dir", nil},
		{"through root link", "/rootlink/a/b/c/file", 100, "c", nil},
		{"over max", "/file", 9, "", fsys.ErrTooLarge},
		{"negative max", "/file", -1, "", fsys.ErrTooLarge},
		{"directory", "/dir", 100, "", fsys.ErrIsDir},
		{"link to directory", "/dirlink", 100, "", fsys.ErrIsDir},
		{"fifo", "/fifo", 100, "", fsys.ErrNotRegular},
		{"loop", "/loop/self", 100, "", fsys.ErrSymlinkLoop},
		{"escape", "/a/b/c/up/etc/passwd", 100, "", fsys.ErrEscapesRoot},
		{"missing", "/etc/shadow", 100, "", fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.ReadFile(tt.path, tt.max)
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("ReadFile(%q) error = %v, want %v", tt.path, err, tt.err)
			}
			if string(got) != tt.want || (err != nil && got != nil) {
				t.Errorf("ReadFile(%q) = %q, want %q", tt.path, got, tt.want)
			}
		})
	}
	t.Run("open reads past size give EOF", func(t *testing.T) {
		ra, info, err := r.Open("/file")
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if n, err := ra.ReadAt(buf, info.Size); n != 0 || err != io.EOF {
			t.Errorf("ReadAt(size) = %d, %v; want 0, EOF", n, err)
		}
	})
}

func TestReadDir(t *testing.T) {
	r := fsys.NewRoot(testTree())
	tests := []struct {
		name, path string
		want       []string
		err        error
	}{
		{"dir", "/dir", []string{"file"}, nil},
		{"through link", "/dirlink", []string{"file"}, nil},
		{"sorted", "/a/b/c", []string{"absup", "file", "ok", "up"}, nil},
		{"root via link", "/a/b/c/ok/loop", []string{"a", "b", "dir", "self"}, nil},
		{"empty", "/emptydir", []string{}, nil},
		{"file", "/file", nil, fsys.ErrNotDir},
		{"link to file", "/etc/os-release", nil, fsys.ErrNotDir},
		{"loop", "/loop/a", nil, fsys.ErrSymlinkLoop},
		{"escape", "/a/b/c/up", nil, fsys.ErrEscapesRoot},
		{"missing", "/nope", nil, fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ents, err := r.ReadDir(tt.path)
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("ReadDir(%q) error = %v, want %v", tt.path, err, tt.err)
			}
			if err != nil {
				return
			}
			got := []string{}
			for _, e := range ents {
				got = append(got, e.Name)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ReadDir(%q) = %q, want %q", tt.path, got, tt.want)
			}
		})
	}
}

func TestGlob(t *testing.T) {
	m := fsystest.MapFS{
		"/home/alice/.ssh/authorized_keys": file("a"),
		"/home/bob/.ssh/authorized_keys":   file("b"),
		"/home/carol/notes":                file("c"),
		"/home/dave/.ssh/authorized_keys":  link("/nowhere"), // dangling: still a name
		"/home/evil":                       link("../../.."),
		"/home/loop":                       link("loop"),
		"/home/mallory":                    link("/"),
		"/home/zed":                        link("alice"),
		"/home/file":                       file("not a dir"),
		"/root/.ssh/authorized_keys":       file("r"),
		"/usr/bin/sh":                      file("sh"),
		"/usr/bin/ssh":                     file("ssh"),
		"/bin":                             link("usr/bin"),
	}
	r := fsys.NewRoot(m)
	tests := []struct {
		name, pattern string
		want          []string
		err           error
	}{
		{"authorized keys", "/home/*/.ssh/authorized_keys", []string{
			"/home/alice/.ssh/authorized_keys", "/home/bob/.ssh/authorized_keys",
			"/home/dave/.ssh/authorized_keys", "/home/zed/.ssh/authorized_keys"}, nil},
		{"through dir link", "/bin/s?", []string{"/bin/sh"}, nil},
		{"char class", "/usr/bin/[s]s*", []string{"/usr/bin/ssh"}, nil},
		{"top level", "/*", []string{"/bin", "/home", "/root", "/usr"}, nil},
		{"link to root matched once", "/home/mallory/root/.ssh/*", []string{"/home/mallory/root/.ssh/authorized_keys"}, nil},
		{"literal", "/usr/bin/sh", []string{"/usr/bin/sh"}, nil},
		{"root", "/", []string{"/"}, nil},

		{"no match", "/home/*/.gnupg", nil, nil},
		{"escaping link matches nothing", "/home/evil/*", nil, nil},
		{"looping link matches nothing", "/home/loop/*", nil, nil},
		{"missing literal", "/etc/passwd", nil, nil},
		{"relative", "home/*", nil, fs.ErrInvalid},
		{"NUL", "/home/\x00*", nil, fs.ErrInvalid},
		{"bad pattern", "/home/[", nil, path.ErrBadPattern},
		{"bad pattern in later component", "/nope/x/[", nil, path.ErrBadPattern},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Glob(tt.pattern)
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("Glob(%q) error = %v, want %v", tt.pattern, err, tt.err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Glob(%q) = %q, want %q", tt.pattern, got, tt.want)
			}
		})
	}
}

// wideFS is a synthetic filesystem: the root holds n regular files; with
// deep set, every directory instead holds one subdirectory, forever.
type wideFS struct {
	n    int
	deep bool
	name func(i int) string
}

func (w wideFS) Type() string   { return "wide" }
func (w wideFS) Root() fsys.Ino { return 1 }
func (w wideFS) Stat(ino fsys.Ino) (fsys.Info, error) {
	if ino == 1 || w.deep {
		return fsys.Info{Ino: ino, Mode: fs.ModeDir | 0o755, Nlink: 2}, nil
	}
	return fsys.Info{Ino: ino, Mode: 0o644, Nlink: 1}, nil
}
func (w wideFS) ReadDir(ino fsys.Ino) ([]fsys.DirEntry, error) {
	if w.deep {
		return []fsys.DirEntry{{Name: "d", Ino: ino + 1, Type: fs.ModeDir}}, nil
	}
	if ino != 1 {
		return nil, fsys.ErrNotDir
	}
	ents := make([]fsys.DirEntry, w.n)
	for i := range ents {
		name := fmt.Sprintf("f%06d", i)
		if w.name != nil {
			name = w.name(i)
		}
		ents[i] = fsys.DirEntry{Name: name, Ino: fsys.Ino(i + 2)}
	}
	return ents, nil
}
func (w wideFS) Readlink(fsys.Ino) (string, error)  { return "", fsys.ErrNotSymlink }
func (w wideFS) Open(fsys.Ino) (io.ReaderAt, error) { return strings.NewReader(""), nil }

func TestGlobBounds(t *testing.T) {
	tests := []struct {
		name    string
		f       fsys.FS
		pattern string
		wantN   int
		wantErr string
	}{
		{"at the limit", wideFS{n: fsys.MaxGlobResults}, "/*", fsys.MaxGlobResults, ""},
		{"over the limit", wideFS{n: fsys.MaxGlobResults + 1}, "/*", 0, "more than"},
		{"invalid name in directory", wideFS{n: 3, name: func(i int) string { return fmt.Sprint("a/", i) }}, "/*", 0, "invalid entry name"},
		{"NUL name in directory", wideFS{n: 1, name: func(int) string { return "a\x00" }}, "/*", 0, "invalid entry name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := fsys.NewRoot(tt.f).Glob(tt.pattern)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || got != nil {
					t.Fatalf("Glob(%q) = %d results, %v; want error %q", tt.pattern, len(got), err, tt.wantErr)
				}
				return
			}
			if err != nil || len(got) != tt.wantN {
				t.Fatalf("Glob(%q) = %d results, %v; want %d", tt.pattern, len(got), err, tt.wantN)
			}
		})
	}
}

func TestWalk(t *testing.T) {
	m := fsystest.MapFS{
		"/etc/os-release":     link("../usr/lib/os-release"),
		"/usr/lib/os-release": file("ID=debian\n"),
		"/rootlink":           link("/"),
		"/dirlink":            link("usr"),
		"/loop":               link("loop"),
		"/skip/me":            file("x"),
		"/z":                  dir(),
	}
	all := []string{"/", "/dirlink", "/etc", "/etc/os-release", "/loop", "/rootlink",
		"/skip", "/skip/me", "/usr", "/usr/lib", "/usr/lib/os-release", "/z"}
	loopFS := fsystest.MapFS{
		"/a/b/c/file": file("x"),
		"/a/b/c/loop": {HardLink: "/a"}, // a hard-linked directory loop
	}
	rootLoopFS := fsystest.MapFS{"/x/up": {HardLink: "/"}}
	tests := []struct {
		name    string
		f       fsys.FS
		start   string
		opts    fsys.WalkOptions
		fn      func(p string, info fsys.Info) error
		want    []string
		wantErr string
		errIs   error
	}{
		{"whole tree, links not followed", m, "/", fsys.WalkOptions{}, nil, all, "", nil},
		{"subtree", m, "/usr", fsys.WalkOptions{}, nil, []string{"/usr", "/usr/lib", "/usr/lib/os-release"}, "", nil},
		{"start is a link: not entered", m, "/dirlink", fsys.WalkOptions{}, nil, []string{"/dirlink"}, "", nil},
		{"start through a link", m, "/dirlink/lib/", fsys.WalkOptions{}, nil, []string{"/dirlink/lib", "/dirlink/lib/os-release"}, "", nil},
		{"skip dir", m, "/", fsys.WalkOptions{}, func(p string, _ fsys.Info) error {
			if p == "/skip" || p == "/usr" {
				return fs.SkipDir
			}
			return nil
		}, []string{"/", "/dirlink", "/etc", "/etc/os-release", "/loop", "/rootlink", "/skip", "/usr", "/z"}, "", nil},
		{"skip rest of dir from file", m, "/", fsys.WalkOptions{}, func(p string, _ fsys.Info) error {
			if p == "/etc/os-release" {
				return fs.SkipDir
			}
			return nil
		}, all, "", nil},
		{"skip all", m, "/", fsys.WalkOptions{}, func(p string, _ fsys.Info) error {
			if p == "/loop" {
				return fs.SkipAll
			}
			return nil
		}, []string{"/", "/dirlink", "/etc", "/etc/os-release", "/loop"}, "", nil},
		{"exactly max entries", m, "/", fsys.WalkOptions{MaxEntries: len(all)}, nil, all, "", nil},

		{"over max entries", m, "/", fsys.WalkOptions{MaxEntries: len(all) - 1}, nil, nil, "more than", nil},
		{"hard-linked directory loop", loopFS, "/", fsys.WalkOptions{}, nil, nil, "directory loop at /a/b/c/loop", nil},
		{"hard link to root", rootLoopFS, "/", fsys.WalkOptions{}, nil, nil, "directory loop at /x/up", nil},
		{"infinitely deep", wideFS{deep: true}, "/", fsys.WalkOptions{}, nil, nil, "deeper than 256", nil},
		{"max depth", m, "/", fsys.WalkOptions{MaxDepth: 1}, nil, nil, "deeper than 1", nil},
		{"invalid name", wideFS{n: 2, name: func(int) string { return ".." + "/x" }}, "/", fsys.WalkOptions{}, nil, nil, "invalid entry name", nil},
		{"fn error", m, "/", fsys.WalkOptions{}, func(string, fsys.Info) error { return io.ErrUnexpectedEOF }, nil, "", io.ErrUnexpectedEOF},
		{"missing start", m, "/nope", fsys.WalkOptions{}, nil, nil, "", fs.ErrNotExist},
		{"escaping start", m, "/..", fsys.WalkOptions{}, nil, nil, "", fsys.ErrEscapesRoot},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			err := fsys.NewRoot(tt.f).Walk(context.Background(), tt.start, tt.opts, func(p string, info fsys.Info) error {
				got = append(got, p)
				if tt.fn != nil {
					return tt.fn(p, info)
				}
				return nil
			})
			switch {
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Walk(%q) error = %v, want %q", tt.start, err, tt.wantErr)
				}
				return
			case tt.errIs != nil:
				if !errors.Is(err, tt.errIs) {
					t.Fatalf("Walk(%q) error = %v, want %v", tt.start, err, tt.errIs)
				}
				return
			case err != nil:
				t.Fatalf("Walk(%q) error = %v", tt.start, err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Walk(%q) visited %q, want %q", tt.start, got, tt.want)
			}
		})
	}
}

func TestWalkCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	err := fsys.NewRoot(wideFS{n: 5000}).Walk(ctx, "/", fsys.WalkOptions{}, func(string, fsys.Info) error {
		n++
		if n == 10 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n >= 5000 {
		t.Errorf("Walk after cancel = %v after %d entries, want context.Canceled before the end", err, n)
	}
}

// TestConcurrent runs resolutions in parallel; run with -race.
func TestConcurrent(t *testing.T) {
	r := fsys.NewRoot(testTree())
	done := make(chan error)
	for i := range 8 {
		go func() {
			var err error
			for range 10 {
				if _, e := r.ReadFile("/etc/os-release", 100); e != nil {
					err = e
				}
				if _, e := r.Glob("/chain/l*"); e != nil {
					err = e
				}
			}
			done <- fmt.Errorf("goroutine %d: %w", i, err)
		}()
	}
	for range 8 {
		if err := <-done; errors.Unwrap(err) != nil {
			t.Error(err)
		}
	}
}
