// Package apk reads the packages an Alpine guest has installed from its apk
// database, /lib/apk/db/installed, without running apk.
//
// Guarantees: the guest is read through fsys.Root only (links confined to
// the guest); the database is bounded (MaxDBSize, MaxPackages, MaxFiles)
// and parsed strictly (Parse), so a hostile database gives an error, never
// a crash or unbounded memory. The source package is the origin ("o:"),
// whose version is the package's (apk builds every subpackage of an
// origin at one version). apk does not record when a package was
// installed, only when it was built ("t:"), so InstallTime is left zero;
// BuildTime in Entry carries the build time for callers that want it.
// Owned paths are the files ("R:") and directories ("F:") the database
// lists, plus their aliases through directory links.
package apk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/vmtrust/vmtrust/internal/fsys"
	"github.com/vmtrust/vmtrust/internal/inspect/extractor"
	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

// Manager is the inventory.Package Manager value of apk packages.
const Manager = "apk"

// DBPath is where apk keeps its database of installed packages.
const DBPath = "/lib/apk/db/installed"

// Bounds on the database.
const (
	MaxDBSize   = 64 << 20
	MaxPackages = 100_000
	MaxFiles    = 4_000_000
	maxValue    = 512 // for the fields kept (P, V, A, o, t)
)

// Result is the packages and file ownership found.
type Result = extractor.Result

// Entry is one package stanza of the database.
type Entry struct {
	Name, Version, Arch string
	Origin              string    // source package; Name when the stanza has none
	BuildTime           time.Time // "t:", zero when absent
	// Paths are the absolute guest paths the package installed:
	// directories ("F:") and files ("R:").
	Paths []string
}

var (
	nameRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9+._-]*$`)
	versionRE = regexp.MustCompile(`^[0-9][A-Za-z0-9._+~-]*$`)
	archRE    = regexp.MustCompile(`^[a-z0-9_]+$`)
)

// Extract reads the apk database of the guest. It returns an error
// wrapping fs.ErrNotExist when the guest has none.
func Extract(ctx context.Context, r *fsys.Root) (*Result, error) {
	b, err := r.ReadFile(DBPath, MaxDBSize)
	if err != nil {
		return nil, fmt.Errorf("apk: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	entries, err := Parse(b)
	if err != nil {
		return nil, err
	}
	owners := extractor.NewOwners(MaxFiles)
	pkgs := make([]inventory.Package, 0, len(entries))
	for _, e := range entries {
		for _, p := range e.Paths {
			if err := owners.Add(p, e.Name); err != nil {
				return nil, fmt.Errorf("apk: package %s: %w", e.Name, err)
			}
		}
		pkgs = append(pkgs, inventory.Package{
			Name:          e.Name,
			Version:       e.Version,
			Arch:          e.Arch,
			SourceName:    e.Origin,
			SourceVersion: e.Version,
			Manager:       Manager,
		})
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := owners.AddAliases(r); err != nil {
		return nil, fmt.Errorf("apk: %w", err)
	}
	return extractor.NewResult(pkgs, owners), nil
}

// Parse parses an apk installed database: stanzas separated by empty
// lines, each line "X:value" with a one-letter key. P (name) and V
// (version) are required; A (arch), o (origin) and t (build time, Unix
// seconds) are optional; none of these may repeat within a stanza. "F:"
// names a directory (relative to /) and the "R:" lines after it files in
// it. Other keys are skipped. Two stanzas for the same name, a line that
// is not "X:value", an invalid name, version, arch, origin or time, a file
// name holding "/", NUL bytes, more than MaxPackages stanzas or MaxFiles
// paths, and input over MaxDBSize are errors.
func Parse(b []byte) ([]Entry, error) {
	if len(b) > MaxDBSize {
		return nil, fmt.Errorf("apk: database of %d bytes, limit %d", len(b), MaxDBSize)
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return nil, fmt.Errorf("apk: NUL byte at offset %d", i)
	}
	p := parser{names: make(map[string]bool)}
	for n := 1; len(b) > 0; n++ {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		if err := p.line(line); err != nil {
			return nil, fmt.Errorf("apk: line %d: %w", n, err)
		}
	}
	if err := p.end(); err != nil {
		return nil, fmt.Errorf("apk: last stanza: %w", err)
	}
	return p.out, nil
}

type parser struct {
	out   []Entry
	names map[string]bool
	files int
	// The stanza being read.
	cur    Entry
	have   map[byte]bool // single-valued keys seen
	dir    string        // the current "F:" directory
	inside bool          // a stanza has started
}

func (p *parser) line(line []byte) error {
	if len(line) == 0 {
		return p.end()
	}
	if len(line) < 2 || line[1] != ':' || !isLetter(line[0]) {
		return fmt.Errorf("not a \"X:value\" line (%q)", trunc(line))
	}
	if !p.inside {
		p.inside = true
		p.cur = Entry{}
		p.have = make(map[byte]bool)
		p.dir = ""
	}
	key, val := line[0], string(line[2:])
	switch key {
	case 'P', 'V', 'A', 'o', 't':
		if p.have[key] {
			return fmt.Errorf("%c: given twice in a stanza", key)
		}
		p.have[key] = true
		if len(val) > maxValue {
			return fmt.Errorf("%c: longer than %d bytes", key, maxValue)
		}
	}
	switch key {
	case 'P':
		if !nameRE.MatchString(val) {
			return fmt.Errorf("invalid package name %q", val)
		}
		p.cur.Name = val
	case 'V':
		if !versionRE.MatchString(val) {
			return fmt.Errorf("invalid version %q", val)
		}
		p.cur.Version = val
	case 'A':
		if !archRE.MatchString(val) {
			return fmt.Errorf("invalid arch %q", val)
		}
		p.cur.Arch = val
	case 'o':
		if !nameRE.MatchString(val) {
			return fmt.Errorf("invalid origin %q", val)
		}
		p.cur.Origin = val
	case 't':
		sec, err := strconv.ParseInt(val, 10, 64)
		if err != nil || sec < 0 || sec > 1<<40 {
			return fmt.Errorf("invalid build time %q", val)
		}
		p.cur.BuildTime = time.Unix(sec, 0).UTC()
	case 'F':
		if val == "" || strings.HasPrefix(val, "/") {
			return fmt.Errorf("invalid directory %q", trunc([]byte(val)))
		}
		p.dir = val
		return p.addPath("/" + val)
	case 'R':
		if val == "" || strings.Contains(val, "/") || val == "." || val == ".." {
			return fmt.Errorf("invalid file name %q", trunc([]byte(val)))
		}
		if p.dir == "" {
			return p.addPath("/" + val)
		}
		return p.addPath("/" + p.dir + "/" + val)
	}
	return nil
}

func (p *parser) addPath(path string) error {
	p.files++
	if p.files > MaxFiles {
		return fmt.Errorf("more than %d paths", MaxFiles)
	}
	p.cur.Paths = append(p.cur.Paths, path)
	return nil
}

// end completes the current stanza, if any.
func (p *parser) end() error {
	if !p.inside {
		return nil
	}
	p.inside = false
	e := p.cur
	switch {
	case e.Name == "":
		return errors.New("stanza without P: (name)")
	case e.Version == "":
		return fmt.Errorf("package %s: no V: (version)", e.Name)
	case p.names[e.Name]:
		return fmt.Errorf("package %s listed twice", e.Name)
	case len(p.out) >= MaxPackages:
		return fmt.Errorf("more than %d packages", MaxPackages)
	}
	if e.Origin == "" {
		e.Origin = e.Name
	}
	p.names[e.Name] = true
	p.out = append(p.out, e)
	return nil
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// trunc shortens b for an error message.
func trunc(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}
