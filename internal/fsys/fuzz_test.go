package fsys_test

import (
	"errors"
	"io/fs"
	"path"
	"strings"
	"testing"

	"github.com/vmtrust/vmtrust/internal/fsys"
)

// FuzzResolve resolves arbitrary paths and patterns on the link-rich test
// tree. Beyond not panicking it checks the contract: a resolved path is
// absolute, clean and names the inode Stat finds, and failures return
// zero results.
func FuzzResolve(f *testing.F) {
	r := fsys.NewRoot(testTree())
	f.Fuzz(func(t *testing.T, name string) {
		got, err := r.Resolve(name)
		if err != nil {
			if got != "" {
				t.Fatalf("Resolve(%q) = %q with error %v", name, got, err)
			}
		} else {
			if got != path.Clean(got) || !strings.HasPrefix(got, "/") {
				t.Fatalf("Resolve(%q) = %q, not clean and absolute", name, got)
			}
			a, errA := r.Stat(name)
			b, errB := r.Lstat(got)
			if errA != nil || errB != nil || a.Ino != b.Ino {
				t.Fatalf("Stat(%q) = %d, %v; Lstat(Resolve) = %d, %v", name, a.Ino, errA, b.Ino, errB)
			}
		}
		if info, err := r.Lstat(name); err != nil && info != (fsys.Info{}) {
			t.Fatalf("Lstat(%q) = %+v with error %v", name, info, err)
		}
		if b, err := r.ReadFile(name, 1<<10); err != nil && b != nil {
			t.Fatalf("ReadFile(%q) returned data and %v", name, err)
		}
		if ents, err := r.ReadDir(name); err != nil && ents != nil {
			t.Fatalf("ReadDir(%q) returned entries and %v", name, err)
		}
		matches, err := r.Glob(name)
		if err != nil && matches != nil {
			t.Fatalf("Glob(%q) returned matches and %v", name, err)
		}
		if err != nil && !errors.Is(err, fs.ErrInvalid) && !errors.Is(err, path.ErrBadPattern) {
			t.Fatalf("Glob(%q) = %v, want only invalid-pattern errors on this tree", name, err)
		}
	})
}
