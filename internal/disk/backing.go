package disk

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// allowedDir is one backing directory, absolute as given and with its
// symbolic links resolved.
type allowedDir struct {
	given, real string
}

func allowedDirs(dirs []string) ([]allowedDir, error) {
	var out []allowedDir
	for _, d := range dirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			return nil, fmt.Errorf("disk: backing directory %q: %w", d, err)
		}
		real, err := filepath.EvalSymlinks(abs)
		if err != nil {
			return nil, fmt.Errorf("disk: backing directory %q: %w", d, err)
		}
		if fi, err := os.Stat(real); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("disk: backing directory %q is not a directory", d)
		}
		out = append(out, allowedDir{given: abs, real: real})
	}
	return out, nil
}

// resolved is a backing file that passed the checks.
type resolved struct {
	named string      // the name joined to the parent's directory, cleaned
	real  string      // named with every symbolic link resolved
	info  os.FileInfo // Lstat of real: a regular file
}

// resolve turns the backing file name written in image parent into a
// checked host path, the way QEMU finds it (a relative name is relative to
// the directory of the image that names it), and refuses it unless it is
// a regular file inside an allowed directory both as named and after
// resolving symbolic links. A name that is not lexically inside an allowed
// directory is refused before any lookup; nothing outside them is opened.
func (o *opener) resolve(parent, name string) (resolved, error) {
	refuse := func(why string, args ...any) (resolved, error) {
		return resolved{}, fmt.Errorf("disk: %s: backing file %q refused: %s", parent, name, fmt.Sprintf(why, args...))
	}
	if len(o.dirs) == 0 {
		return refuse("no backing directory is allowed (allow one with --backing-dir DIR)")
	}
	if hasProtocol(name) {
		return refuse("it names a QEMU protocol or json: options, not a file")
	}
	named := name
	if !filepath.IsAbs(named) {
		named = filepath.Join(filepath.Dir(parent), named)
	}
	named = filepath.Clean(named)
	if !o.allowed(named, true) {
		return refuse("%s is outside the backing directories (%s)", named, o.dirList())
	}
	real, err := filepath.EvalSymlinks(named)
	if err != nil {
		return refuse("%v", err)
	}
	if !o.allowed(real, false) {
		return refuse("%s resolves to %s, outside the backing directories (%s)", named, real, o.dirList())
	}
	info, err := os.Lstat(real)
	if err != nil {
		return refuse("%v", err)
	}
	if !info.Mode().IsRegular() {
		return refuse("%s is not a regular file", real)
	}
	return resolved{named: named, real: real, info: info}, nil
}

// allowed reports whether path lies strictly inside an allowed directory:
// its resolved form, or also its form as given when lexical is set.
func (o *opener) allowed(path string, lexical bool) bool {
	for _, d := range o.dirs {
		if within(d.real, path) || (lexical && within(d.given, path)) {
			return true
		}
	}
	return false
}

func within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	if err != nil || rel == "." || filepath.IsAbs(rel) {
		return false
	}
	return rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

func (o *opener) dirList() string {
	var s []string
	for _, d := range o.dirs {
		s = append(s, d.given)
	}
	return strings.Join(s, ", ")
}

// hasProtocol reports whether QEMU would read name as "protocol:..." (a
// colon before any slash, which includes "json:{...}") rather than as a
// file name. Such names are refused: what QEMU would open is not a file
// this package could confine.
func hasProtocol(name string) bool {
	i := strings.IndexAny(name, ":/")
	return i >= 0 && name[i] == ':'
}
