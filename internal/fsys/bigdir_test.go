package fsys

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"testing"
)

// bigDirFS has a root holding directories d0..dN-1 (inodes 2..), each with
// size regular files; it counts the entries ReadDir returns.
type bigDirFS struct {
	dirs, size int
	read       int
}

func (b *bigDirFS) Type() string { return "bigdir" }
func (b *bigDirFS) Root() Ino    { return 1 }
func (b *bigDirFS) Stat(ino Ino) (Info, error) {
	if int(ino) <= b.dirs+1 {
		return Info{Ino: ino, Mode: fs.ModeDir | 0o755}, nil
	}
	return Info{Ino: ino, Mode: 0o644}, nil
}
func (b *bigDirFS) ReadDir(ino Ino) ([]DirEntry, error) {
	var out []DirEntry
	if ino == 1 {
		for i := range b.dirs {
			out = append(out, DirEntry{Name: fmt.Sprintf("d%d", i), Ino: Ino(2 + i), Type: fs.ModeDir})
		}
	} else {
		out = make([]DirEntry, b.size)
		for i := range out {
			out[i] = DirEntry{Name: fmt.Sprintf("f%d", i), Ino: Ino(1 << 32)}
		}
	}
	b.read += len(out)
	return out, nil
}
func (b *bigDirFS) Readlink(Ino) (string, error)  { return "", ErrNotSymlink }
func (b *bigDirFS) Open(Ino) (io.ReaderAt, error) { return nil, ErrNotRegular }

// A directory too big for the name cache must not be read again for every
// lookup in it (which made Glob, Resolve and the like quadratic on a
// hostile image), and alternating between such directories is bounded.
func TestLookupHugeDirectory(t *testing.T) {
	t.Run("one huge directory is read once", func(t *testing.T) {
		b := &bigDirFS{dirs: 1, size: maxCachedNames + 1}
		r := NewRoot(b)
		for i := range 300 {
			if _, err := r.Lstat(fmt.Sprintf("/d0/f%d", i)); err != nil {
				t.Fatalf("Lstat(/d0/f%d) = %v, want nil", i, err)
			}
		}
		if want := 1 + (maxCachedNames + 1); b.read != want {
			t.Errorf("300 lookups read %d directory entries, want %d", b.read, want)
		}
	})
	t.Run("alternating huge directories hit the bound", func(t *testing.T) {
		b := &bigDirFS{dirs: 2, size: maxCachedNames + 1}
		r := NewRoot(b)
		r.maxRead = 10 * (maxCachedNames + 1)
		var err error
		for i := 0; i < 1000 && err == nil; i++ {
			_, err = r.Lstat(fmt.Sprintf("/d%d/f%d", i%2, i))
		}
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("alternating lookups: err = %v, want ErrTooLarge", err)
		}
		if b.read > 12*(maxCachedNames+1) {
			t.Errorf("lookups read %d directory entries, want at most about %d", b.read, r.maxRead)
		}
	})
}
