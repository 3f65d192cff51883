// Package kernel lists the Linux kernels installed in a guest from its
// files: /boot/vmlinuz-*, /boot/vmlinux-* and the release directories in
// /usr/lib/modules and /lib/modules that hold modules or a vmlinuz.
//
// Guarantees: files are reached through fsys.Root (links followed inside
// the guest only, /boot entries that are themselves links ignored); a
// kernel release comes from the file or directory name when it is one,
// else from the bzImage setup header (BzImageVersion, which reads at most
// a few hundred bytes); releases are checked against a strict character
// set; the result is deduplicated by release (a /boot image is preferred to
// a modules directory) and sorted by release in version order, with
// kernels of unknown release last. At most MaxCandidates names are
// examined.
package kernel

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/vmtrust/vmtrust/internal/fsys"
	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

// MaxCandidates bounds the kernel images and module directories examined.
const MaxCandidates = 1024

var releaseRE = regexp.MustCompile(`^[0-9][A-Za-z0-9._+~-]{0,127}$`)

// validVersion reports whether s looks like a kernel release
// ("6.1.0-18-amd64", "5.14.0-362.8.1.el9_3.x86_64", "6.6.14-0-lts").
func validVersion(s string) bool { return releaseRE.MatchString(s) }

// Find lists the kernels in the guest. A kernel image whose release cannot
// be read is listed with an empty Version.
func Find(r *fsys.Root) ([]inventory.Kernel, error) {
	f := finder{r: r, seen: make(map[string]bool)}
	if err := f.boot(); err != nil {
		return nil, err
	}
	for _, dir := range []string{"/usr/lib/modules", "/lib/modules"} {
		if err := f.modules(dir); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(f.out, func(a, b inventory.Kernel) int {
		if (a.Version == "") != (b.Version == "") {
			if a.Version == "" {
				return 1
			}
			return -1
		}
		return cmp.Or(compareVersions(a.Version, b.Version), strings.Compare(a.Path, b.Path))
	})
	return f.out, nil
}

type finder struct {
	r     *fsys.Root
	seen  map[string]bool // releases (and paths of unknown releases) found
	out   []inventory.Kernel
	count int
}

// add records a kernel unless its release is already known.
func (f *finder) add(version, p string) {
	key := "v:" + version
	if version == "" {
		key = "p:" + p
	}
	if f.seen[key] {
		return
	}
	f.seen[key] = true
	f.out = append(f.out, inventory.Kernel{Version: version, Path: p})
}

func (f *finder) candidate() error {
	f.count++
	if f.count > MaxCandidates {
		return fmt.Errorf("kernel: more than %d candidates", MaxCandidates)
	}
	return nil
}

// readDir lists dir; a missing directory (or a non-directory) is empty.
func (f *finder) readDir(dir string) ([]fsys.DirEntry, error) {
	ents, err := f.r.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fsys.ErrNotDir) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	return ents, nil
}

// boot examines /boot/vmlinuz[-*] and /boot/vmlinux[-*].
func (f *finder) boot() error {
	ents, err := f.readDir("/boot")
	if err != nil {
		return err
	}
	for _, e := range ents {
		suffix, ok := imageSuffix(e.Name)
		if !ok {
			continue
		}
		if err := f.candidate(); err != nil {
			return err
		}
		p := "/boot/" + e.Name
		info, err := f.r.Lstat(p)
		if err != nil {
			return fmt.Errorf("kernel: %w", err)
		}
		if !info.Mode.IsRegular() {
			continue // links (vmlinuz.old -> ...) point at images listed anyway
		}
		version := suffix
		if !nameIsRelease(suffix) {
			version = f.headerVersion(p)
		}
		f.add(version, p)
	}
	return nil
}

// imageSuffix returns the part of a kernel image name after "vmlinuz-" or
// "vmlinux-" ("" for a bare "vmlinuz"), and whether name is one.
func imageSuffix(name string) (string, bool) {
	for _, base := range []string{"vmlinuz", "vmlinux"} {
		if name == base {
			return "", true
		}
		if s, ok := strings.CutPrefix(name, base+"-"); ok {
			return s, true
		}
	}
	return "", false
}

// nameIsRelease reports whether a name suffix is a kernel release, rather
// than a flavour ("lts", "virt") or a rescue image ("0-rescue-<machine-id>").
func nameIsRelease(s string) bool {
	return validVersion(s) && !strings.Contains(s, "rescue")
}

// headerVersion reads the release from the bzImage at p; "" when it cannot.
func (f *finder) headerVersion(p string) string {
	ra, info, err := f.r.Open(p)
	if err != nil {
		return ""
	}
	v, err := BzImageVersion(ra, info.Size)
	if err != nil {
		return ""
	}
	return v
}

// modules examines the release directories in dir: those holding a
// "kernel" directory, modules.dep or a vmlinuz (Fedora and RHEL keep the
// image there).
func (f *finder) modules(dir string) error {
	ents, err := f.readDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !validVersion(e.Name) {
			continue
		}
		if err := f.candidate(); err != nil {
			return err
		}
		rel := path.Join(dir, e.Name)
		info, err := f.r.Lstat(rel)
		if err != nil {
			return fmt.Errorf("kernel: %w", err)
		}
		if !info.Mode.IsDir() {
			continue
		}
		if img := rel + "/vmlinuz"; f.isType(img, fs.ModeType, 0) {
			f.add(e.Name, img)
			continue
		}
		if f.isType(rel+"/kernel", fs.ModeType, fs.ModeDir) || f.isType(rel+"/modules.dep", fs.ModeType, 0) {
			f.add(e.Name, rel)
		}
	}
	return nil
}

// isType reports whether p exists (not following a final link) with
// mode&mask == want.
func (f *finder) isType(p string, mask, want fs.FileMode) bool {
	info, err := f.r.Lstat(p)
	return err == nil && info.Mode&mask == want
}

// compareVersions orders releases like "sort -V": runs of digits compare
// numerically, other runs bytewise.
func compareVersions(a, b string) int {
	for a != "" && b != "" {
		ra, rb := run(a), run(b)
		da, db := isDigit(ra[0]), isDigit(rb[0])
		var c int
		switch {
		case da && db:
			na, nb := strings.TrimLeft(ra, "0"), strings.TrimLeft(rb, "0")
			c = cmp.Or(cmp.Compare(len(na), len(nb)), strings.Compare(na, nb))
		case da != db:
			if da {
				c = 1 // "6.1.10" after "6.1.rc"
			} else {
				c = -1
			}
		default:
			c = strings.Compare(ra, rb)
		}
		if c != 0 {
			return c
		}
		a, b = a[len(ra):], b[len(rb):]
	}
	return cmp.Compare(len(a), len(b))
}

// run returns the leading run of digits or of non-digits of s (non-empty).
func run(s string) string {
	d := isDigit(s[0])
	i := 1
	for i < len(s) && isDigit(s[i]) == d {
		i++
	}
	return s[:i]
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
