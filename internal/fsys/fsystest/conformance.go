package fsystest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/vmtrust/vmtrust/internal/fsys"
)

// ignoredNames are guest paths accepted in the image without a host
// counterpart: mkfs.ext4 always creates /lost+found.
var ignoredNames = []string{"/lost+found"}

// maxReported bounds the mismatches TestFS reports per subtest.
const maxReported = 30

// Options relax TestFSWith where an image builder cannot express part of
// the host tree. The zero value checks everything.
type Options struct {
	// Exclude lists guest paths (and what lies below them) the image does
	// not hold, e.g. "/special" for a builder without devices.
	Exclude []string
	// SkipMtime skips mtime comparison, for builders that do not copy
	// times (mkfs.xfs protofiles).
	SkipMtime bool
	// SkipHardLinks skips link counts and hard-link identity, for
	// builders that copy each name as its own file.
	SkipHardLinks bool
}

func (o Options) excluded(gp string) bool {
	for _, e := range o.Exclude {
		if gp == e || strings.HasPrefix(gp, e+"/") {
			return true
		}
	}
	return false
}

// TestFS is TestFSWith with the zero Options.
func TestFS(t *testing.T, f fsys.FS, hostDir string) {
	t.Helper()
	TestFSWith(t, f, hostDir, Options{})
}

// TestFSWith checks that f, a driver's view of an image built from hostDir
// (mkfs.ext4 -d hostDir, or mkfs.xfs with a protofile of it), matches
// hostDir: every name, file type, permission bits with setuid, setgid and
// sticky, uid and gid, size of files and links, mtime in seconds, link
// count of non-directories, symbolic link target, full content (SHA-256)
// and partial reads, hard-link identity, and directory listings both ways.
// It also checks the driver's refusals: ReadDir of a file, Readlink of a
// directory, Open of a directory and Stat of inode 0 must fail. The root
// directory's own attributes are not compared (mkfs tools set them), and
// /lost+found may exist in the image only.
func TestFSWith(t *testing.T, f fsys.FS, hostDir string, opts Options) {
	t.Helper()
	r := fsys.NewRoot(f)
	hostDir = filepath.Clean(hostDir)
	rootInfo, err := f.Stat(f.Root())
	if err != nil || !rootInfo.Mode.IsDir() {
		t.Fatalf("%s: Stat(Root()) = %v, %v; want a directory", f.Type(), rootInfo.Mode, err)
	}

	var hostPaths []string // guest spelling, sorted by walk order
	err = filepath.WalkDir(hostDir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(hostDir, p)
		if err != nil {
			return err
		}
		gp := "/" + filepath.ToSlash(rel)
		if opts.excluded(gp) {
			return filepath.SkipDir
		}
		hostPaths = append(hostPaths, gp)
		return nil
	})
	if err != nil {
		t.Fatalf("walking host tree %s: %v", hostDir, err)
	}
	hostPaths[0] = "/" // "/." from Rel

	t.Run("attributes", func(t *testing.T) {
		rep := reporter{t: t, opts: opts}
		for _, gp := range hostPaths[1:] {
			rep.compareAttrs(r, gp, filepath.Join(hostDir, filepath.FromSlash(gp)))
		}
	})
	t.Run("contents", func(t *testing.T) {
		rep := reporter{t: t}
		for _, gp := range hostPaths[1:] {
			hp := filepath.Join(hostDir, filepath.FromSlash(gp))
			if fi, err := os.Lstat(hp); err == nil && fi.Mode().IsRegular() {
				rep.compareContent(r, gp, hp, fi.Size())
			}
		}
	})
	t.Run("listings", func(t *testing.T) {
		rep := reporter{t: t}
		for _, gp := range hostPaths {
			hp := filepath.Join(hostDir, filepath.FromSlash(gp))
			if fi, err := os.Lstat(hp); err == nil && fi.IsDir() {
				rep.compareListing(r, gp, hp, opts)
			}
		}
	})
	t.Run("hardlinks", func(t *testing.T) {
		if opts.SkipHardLinks {
			t.Skip("hard links not compared: Options.SkipHardLinks")
		}
		rep := reporter{t: t}
		guestOf := map[[2]uint64]fsys.Ino{} // host (dev, ino) -> guest ino
		hostOf := map[fsys.Ino]string{}     // guest ino -> first guest path
		for _, gp := range hostPaths {
			hi, err := os.Lstat(filepath.Join(hostDir, filepath.FromSlash(gp)))
			if err != nil {
				continue
			}
			st := hi.Sys().(*syscall.Stat_t)
			gi, err := r.Lstat(gp)
			if err != nil {
				continue // reported by attributes
			}
			key := [2]uint64{uint64(st.Dev), st.Ino}
			if ino, ok := guestOf[key]; ok {
				if ino != gi.Ino {
					rep.errorf("%s: guest inode %d, want %d (a hard link of %s)", gp, gi.Ino, ino, hostOf[ino])
				}
				continue
			}
			if first, ok := hostOf[gi.Ino]; ok {
				rep.errorf("%s: guest inode %d also names %s, which is a different host file", gp, gi.Ino, first)
				continue
			}
			guestOf[key] = gi.Ino
			hostOf[gi.Ino] = gp
		}
	})
	t.Run("walk", func(t *testing.T) {
		var got []string
		err := r.Walk(t.Context(), "/", fsys.WalkOptions{}, func(p string, info fsys.Info) error {
			if slices.Contains(ignoredNames, p) || opts.excluded(p) {
				if info.Mode.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			got = append(got, p)
			return nil
		})
		if err != nil {
			t.Fatalf("Walk(/) = %v", err)
		}
		want := slices.Clone(hostPaths)
		sort.Strings(want)
		sort.Strings(got)
		if !slices.Equal(got, want) {
			t.Errorf("Walk(/) visited %d paths, host has %d; first difference %s", len(got), len(want), firstDiff(got, want))
		}
	})
	t.Run("refusals", func(t *testing.T) {
		refuse := func(what string, err error) {
			if err == nil {
				t.Errorf("%s: %s succeeded, want an error", f.Type(), what)
			}
		}
		_, err := f.Stat(0)
		refuse("Stat(0)", err)
		_, err = f.Readlink(f.Root())
		refuse("Readlink(root directory)", err)
		_, err = f.Open(f.Root())
		refuse("Open(root directory)", err)
		for _, gp := range hostPaths {
			hi, err := os.Lstat(filepath.Join(hostDir, filepath.FromSlash(gp)))
			if err != nil || !hi.Mode().IsRegular() {
				continue
			}
			gi, err := r.Lstat(gp)
			if err != nil {
				continue
			}
			_, err = f.ReadDir(gi.Ino)
			refuse("ReadDir(regular file "+gp+")", err)
			_, err = f.Readlink(gi.Ino)
			refuse("Readlink(regular file "+gp+")", err)
			break
		}
	})
}

// reporter stops a subtest after maxReported mismatches.
type reporter struct {
	t    *testing.T
	n    int
	opts Options
}

func (r *reporter) errorf(format string, args ...any) {
	r.t.Helper()
	r.n++
	if r.n > maxReported {
		r.t.Fatalf("more than %d mismatches", maxReported)
	}
	r.t.Errorf(format, args...)
}

func (r *reporter) compareAttrs(root *fsys.Root, gp, hp string) {
	r.t.Helper()
	hi, err := os.Lstat(hp)
	if err != nil {
		r.errorf("host %s: %v", hp, err)
		return
	}
	gi, err := root.Lstat(gp)
	if err != nil {
		r.errorf("Lstat(%q) = %v", gp, err)
		return
	}
	st := hi.Sys().(*syscall.Stat_t)
	hm := hi.Mode()
	if gi.Mode != hm {
		r.errorf("Lstat(%q).Mode = %v, want %v", gp, gi.Mode, hm)
	}
	if gi.Uid != st.Uid || gi.Gid != st.Gid {
		r.errorf("Lstat(%q) owner = %d:%d, want %d:%d", gp, gi.Uid, gi.Gid, st.Uid, st.Gid)
	}
	if !hm.IsDir() {
		if gi.Size != hi.Size() {
			r.errorf("Lstat(%q).Size = %d, want %d", gp, gi.Size, hi.Size())
		}
		if !r.opts.SkipHardLinks && uint64(gi.Nlink) != uint64(st.Nlink) {
			r.errorf("Lstat(%q).Nlink = %d, want %d", gp, gi.Nlink, st.Nlink)
		}
	}
	if !r.opts.SkipMtime && gi.Mtime.Unix() != hi.ModTime().Unix() {
		r.errorf("Lstat(%q).Mtime = %v, want %v", gp, gi.Mtime.UTC(), hi.ModTime().UTC())
	}
	if hm&fs.ModeSymlink != 0 {
		want, _ := os.Readlink(hp)
		got, err := root.Readlink(gp)
		if err != nil || got != want {
			r.errorf("Readlink(%q) = %q, %v; want %q", gp, got, err, want)
		}
	}
}

func (r *reporter) compareContent(root *fsys.Root, gp, hp string, size int64) {
	r.t.Helper()
	ra, info, err := root.Open(gp)
	if err != nil {
		r.errorf("Open(%q) = %v", gp, err)
		return
	}
	hf, err := os.Open(hp)
	if err != nil {
		r.errorf("host %s: %v", hp, err)
		return
	}
	defer hf.Close()
	hh, gh := sha256.New(), sha256.New()
	if _, err := io.Copy(hh, hf); err != nil {
		r.errorf("host %s: %v", hp, err)
		return
	}
	if _, err := io.Copy(gh, io.NewSectionReader(ra, 0, info.Size)); err != nil {
		r.errorf("reading %q: %v", gp, err)
		return
	}
	if !bytes.Equal(hh.Sum(nil), gh.Sum(nil)) {
		r.errorf("content of %q differs from the host file (sha256 %x, want %x)", gp, gh.Sum(nil), hh.Sum(nil))
		return
	}
	// Partial reads: across block boundaries, and at and past the end.
	for _, off := range []int64{0, 1, 4095, 4097, size / 2, size - 1, size} {
		if off < 0 || off > size {
			continue
		}
		want := make([]byte, 5000)
		hn, herr := hf.ReadAt(want, off)
		got := make([]byte, 5000)
		gn, gerr := ra.ReadAt(got, off)
		if gn != hn || !bytes.Equal(got[:gn], want[:hn]) || (herr == io.EOF) != (gerr == io.EOF) ||
			(gerr != nil && !errors.Is(gerr, io.EOF)) {
			r.errorf("ReadAt(%q, 5000 bytes at %d) = %d, %v; want %d, %v", gp, off, gn, gerr, hn, herr)
		}
	}
}

func (r *reporter) compareListing(root *fsys.Root, gp, hp string, opts Options) {
	r.t.Helper()
	hents, err := os.ReadDir(hp)
	if err != nil {
		r.errorf("host %s: %v", hp, err)
		return
	}
	gents, err := root.ReadDir(gp)
	if err != nil {
		r.errorf("ReadDir(%q) = %v", gp, err)
		return
	}
	var want, got []string
	for _, e := range hents {
		if !opts.excluded(join(gp, e.Name())) {
			want = append(want, e.Name())
		}
	}
	for _, e := range gents {
		if slices.Contains(ignoredNames, join(gp, e.Name)) || opts.excluded(join(gp, e.Name)) {
			continue
		}
		got = append(got, e.Name)
		info, err := root.FS().Stat(e.Ino)
		if err != nil {
			r.errorf("%s: Stat(inode %d) = %v", join(gp, e.Name), e.Ino, err)
			continue
		}
		if !e.Unknown && e.Type != info.Mode.Type() {
			r.errorf("%s: directory entry type %v, inode type %v", join(gp, e.Name), e.Type, info.Mode.Type())
		}
	}
	if !slices.Equal(got, want) { // both sorted by name
		r.errorf("ReadDir(%q): %d names, host has %d; first difference %s", gp, len(got), len(want), firstDiff(got, want))
	}
}

func join(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

func firstDiff(got, want []string) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return "got " + quote(got[i]) + ", want " + quote(want[i])
		}
	}
	switch {
	case len(got) > len(want):
		return "extra " + quote(got[len(want)])
	case len(want) > len(got):
		return "missing " + quote(want[len(got)])
	}
	return "none"
}

func quote(s string) string { return "\"" + s + "\"" }
