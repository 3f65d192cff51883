// Package extractor holds what the package-database extractors (packages
// dpkg, rpm and apk below it) return: the installed packages, and which
// package owns which guest path.
//
// Guarantees: a Result's packages are sorted (name, version, arch), and
// every owned path is an absolute, lexically clean guest path with no NUL;
// a path claimed by several packages is owned by the smallest package name,
// so two extractions of the same image agree. Owner never touches the guest.
// Owners holds at most the number of paths its creator allowed.
package extractor

import (
	"cmp"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/vmtrust/vmtrust/internal/fsys"
	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

// Result is what one package database holds.
type Result struct {
	// Packages lists the installed packages, sorted by name, version, arch.
	Packages []inventory.Package
	owners   *Owners
}

// NewResult sorts pkgs and returns a Result that answers Owner from owners
// (which may be nil). The Result keeps both; the caller must not change
// them afterwards.
func NewResult(pkgs []inventory.Package, owners *Owners) *Result {
	SortPackages(pkgs)
	return &Result{Packages: pkgs, owners: owners}
}

// Owner returns the package that installed the guest path p, as the
// database records it (see Owners.AddAliases for paths reached through a
// directory link such as /bin -> usr/bin). p is cleaned lexically first.
func (r *Result) Owner(p string) (pkg string, ok bool) {
	if r == nil || r.owners == nil {
		return "", false
	}
	c, ok := CleanPath(p)
	if !ok {
		return "", false
	}
	pkg, ok = r.owners.m[c]
	return pkg, ok
}

// OwnedPaths returns how many paths have an owner.
func (r *Result) OwnedPaths() int {
	if r == nil || r.owners == nil {
		return 0
	}
	return len(r.owners.m)
}

// SortPackages sorts by name, then version, then arch (plain byte order:
// the order is for reproducible output, not for version comparison).
func SortPackages(pkgs []inventory.Package) {
	slices.SortStableFunc(pkgs, func(a, b inventory.Package) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.Version, b.Version), strings.Compare(a.Arch, b.Arch))
	})
}

// ErrTooManyPaths is returned (wrapped) by Owners.Add when the bound given
// to NewOwners is reached.
var ErrTooManyPaths = errors.New("too many owned paths")

// Owners maps guest paths to the package that owns them, bounded.
type Owners struct {
	m   map[string]string
	max int
}

// NewOwners returns an empty map that accepts at most max distinct paths.
func NewOwners(max int) *Owners {
	return &Owners{m: make(map[string]string), max: max}
}

// Add records that pkg owns the guest path p. p must be absolute; it is
// cleaned lexically ("/usr/./bin/" → "/usr/bin"); "/" itself is not
// recorded. When another package already owns p, the smaller name is kept.
func (o *Owners) Add(p, pkg string) error {
	c, ok := CleanPath(p)
	if !ok {
		return fmt.Errorf("owned path %q: not an absolute path", p)
	}
	if c == "/" {
		return nil
	}
	o.put(c, pkg)
	if len(o.m) > o.max {
		return fmt.Errorf("%w: more than %d", ErrTooManyPaths, o.max)
	}
	return nil
}

func (o *Owners) put(p, pkg string) {
	if old, ok := o.m[p]; !ok || pkg < old {
		o.m[p] = pkg
	}
}

// Len returns the number of owned paths.
func (o *Owners) Len() int { return len(o.m) }

// maxAliasDirs bounds how many distinct directories AddAliases resolves.
const maxAliasDirs = 100_000

// AddAliases makes every owned path also reachable through its directory's
// canonical guest path: on a merged-/usr system a package that lists
// /bin/ls also owns /usr/bin/ls, because /bin is a link to usr/bin. Each
// distinct directory is resolved once through r (confined to the guest);
// directories that do not resolve are left alone. An alias never replaces
// a path recorded by Add; when two aliases meet, the smaller name wins.
func (o *Owners) AddAliases(r *fsys.Root) error {
	canon := make(map[string]string) // dir -> canonical dir ("" when the same or unresolved)
	aliases := make(map[string]string)
	for p, pkg := range o.m {
		dir, base := path.Split(p)
		dir = path.Clean(dir)
		c, seen := canon[dir]
		if !seen {
			if len(canon) >= maxAliasDirs {
				return fmt.Errorf("owned paths: more than %d directories", maxAliasDirs)
			}
			if res, err := r.Resolve(dir); err == nil && res != dir {
				c = res
			}
			canon[dir] = c
		}
		if c == "" {
			continue
		}
		a := path.Join(c, base)
		if _, direct := o.m[a]; direct {
			continue
		}
		if cur, ok := aliases[a]; !ok || pkg < cur {
			aliases[a] = pkg
		}
	}
	if len(o.m)+len(aliases) > o.max {
		return fmt.Errorf("%w: more than %d with aliases", ErrTooManyPaths, o.max)
	}
	for a, pkg := range aliases {
		o.m[a] = pkg
	}
	return nil
}

// CleanPath cleans an absolute guest path lexically. It reports false for a
// relative or empty path, or one holding NUL.
func CleanPath(p string) (string, bool) {
	if !strings.HasPrefix(p, "/") || strings.IndexByte(p, 0) >= 0 || len(p) > fsys.MaxPath {
		return "", false
	}
	return path.Clean(p), true
}
