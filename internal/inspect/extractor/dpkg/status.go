package dpkg

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Bounds on the status database.
const (
	// MaxStatusSize bounds /var/lib/dpkg/status (and the status.d files
	// together).
	MaxStatusSize = 64 << 20
	// MaxStanzas bounds the stanzas (packages) in the database.
	MaxStanzas = 100_000
	// maxFields bounds the fields of one stanza.
	maxFields = 256
	// maxValue bounds the values of the fields kept (Package, Version,
	// Architecture, Source, Status); other fields may be longer.
	maxValue = 512
)

// Entry is one stanza of a dpkg status database.
type Entry struct {
	Package       string // lower-cased, as dpkg does
	Version       string
	Arch          string // empty when the stanza has no Architecture
	SourceName    string // from Source: (as written, not lower-cased, as dpkg-query shows it), else Package
	SourceVersion string // from "Source: name (version)", else Version
	// Want, Flag and State are the three words of the Status field
	// ("install", "ok", "installed"); a stanza without Status is
	// "unknown ok not-installed", as dpkg reads it.
	Want, Flag, State string
}

// Listed reports whether dpkg-query -W lists the package: every state but
// not-installed (so config-files, half-installed, unpacked,
// half-configured, triggers-awaited and triggers-pending packages too).
func (e Entry) Listed() bool { return e.State != "not-installed" }

var (
	// dpkg's pkg_name_is_illegal: an alphanumeric, then alphanumerics and
	// "-+._".
	pkgNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9+._-]*$`)
	// The characters dpkg allows in a version (epoch, upstream, revision).
	versionRE = regexp.MustCompile(`^(?:[0-9]+:)?[A-Za-z0-9.+~:-]+$`)
	archRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

	wants  = set("unknown", "install", "hold", "deinstall", "purge")
	flags  = set("ok", "reinstreq")
	states = set("not-installed", "config-files", "half-installed", "unpacked",
		"half-configured", "triggers-awaited", "triggers-pending", "installed")
)

func set(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}

// ParseStatus parses a dpkg status database (deb822 stanzas separated by
// empty lines; "Field: value" lines, field names case-insensitive, lines
// starting with a blank continue the previous field) the way dpkg reads
// /var/lib/dpkg/status: a stanza without Package, a field given twice, a
// field line without a colon (comments included), an invalid Status, a
// listed package without Version and two stanzas for the same package and
// architecture are errors. Package, Version, Architecture and Source are
// checked against dpkg's character sets; other fields are skipped (they
// may hold any bytes but NUL). Input larger than MaxStatusSize, more than
// MaxStanzas stanzas, NUL bytes and a missing final newline are errors. Entries come in file order.
func ParseStatus(b []byte) ([]Entry, error) {
	p := statusParser{seen: make(map[string]bool)}
	if err := p.parse(b); err != nil {
		return nil, err
	}
	return p.out, nil
}

// statusParser accumulates entries; it is also used for several status.d
// files, which together must obey the same bounds.
type statusParser struct {
	out   []Entry
	seen  map[string]bool // "name:arch" of the entries so far
	bytes int
}

// stanza holds the fields of the stanza being read, lower-cased names.
type stanza struct {
	fields map[string]string
	line   int // first line
}

func (p *statusParser) parse(b []byte) error {
	p.bytes += len(b)
	if p.bytes > MaxStatusSize {
		return fmt.Errorf("dpkg status: more than %d bytes", MaxStatusSize)
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return fmt.Errorf("dpkg status: NUL byte at offset %d", i)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		return errors.New("dpkg status: missing final newline")
	}
	st := stanza{fields: make(map[string]string)}
	var last string // the field continuation lines belong to
	for n := 1; len(b) > 0; n++ {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		switch {
		case len(line) == 0:
			if len(st.fields) > 0 {
				if err := p.end(st); err != nil {
					return err
				}
				clear(st.fields)
			}
			last = ""
		case line[0] == ' ' || line[0] == '\t':
			if last == "" {
				return fmt.Errorf("dpkg status: line %d: continuation line without a field", n)
			}
			if keep(last) {
				// Kept fields are single-line; dpkg would reject a
				// multi-line Package or Version too.
				if len(bytes.TrimSpace(line)) > 0 {
					return fmt.Errorf("dpkg status: line %d: field %s continues on a second line", n, last)
				}
			}
		default:
			name, value, ok := bytes.Cut(line, []byte(":"))
			if !ok || !validFieldName(name) {
				return fmt.Errorf("dpkg status: line %d: not a field (%q)", n, trunc(line))
			}
			key := strings.ToLower(string(name))
			if _, dup := st.fields[key]; dup {
				return fmt.Errorf("dpkg status: line %d: duplicate field %s", n, name)
			}
			if len(st.fields) >= maxFields {
				return fmt.Errorf("dpkg status: line %d: more than %d fields in a stanza", n, maxFields)
			}
			if len(st.fields) == 0 {
				st.line = n
			}
			v := ""
			if keep(key) {
				value = bytes.TrimSpace(value)
				if len(value) > maxValue {
					return fmt.Errorf("dpkg status: line %d: %s longer than %d bytes", n, name, maxValue)
				}
				v = string(value)
			}
			st.fields[key] = v
			last = key
		}
	}
	if len(st.fields) > 0 {
		return p.end(st)
	}
	return nil
}

// keep reports whether a (lower-cased) field's value is used.
func keep(field string) bool {
	switch field {
	case "package", "version", "architecture", "source", "status":
		return true
	}
	return false
}

// validFieldName: printable ASCII without colon, not starting with "#" or
// "-" (deb822).
func validFieldName(name []byte) bool {
	if len(name) == 0 || len(name) > 128 || name[0] == '#' || name[0] == '-' {
		return false
	}
	for _, c := range name {
		if c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}

// end validates a complete stanza and records it.
func (p *statusParser) end(st stanza) error {
	if len(p.out) >= MaxStanzas {
		return fmt.Errorf("dpkg status: more than %d stanzas", MaxStanzas)
	}
	e, err := entry(st.fields)
	if err != nil {
		return fmt.Errorf("dpkg status: stanza at line %d: %w", st.line, err)
	}
	key := e.Package + ":" + e.Arch
	if p.seen[key] {
		return fmt.Errorf("dpkg status: stanza at line %d: package %s (arch %q) listed twice", st.line, e.Package, e.Arch)
	}
	p.seen[key] = true
	p.out = append(p.out, e)
	return nil
}

func entry(f map[string]string) (Entry, error) {
	name, ok := f["package"]
	if !ok {
		return Entry{}, errors.New("no Package field")
	}
	if !pkgNameRE.MatchString(name) {
		return Entry{}, fmt.Errorf("invalid package name %q", name)
	}
	e := Entry{Package: strings.ToLower(name), Want: "unknown", Flag: "ok", State: "not-installed"}
	if s, ok := f["status"]; ok {
		w := strings.Fields(s)
		if len(w) != 3 || !wants[w[0]] || !flags[w[1]] || !states[w[2]] {
			return Entry{}, fmt.Errorf("package %s: invalid Status %q", e.Package, s)
		}
		e.Want, e.Flag, e.State = w[0], w[1], w[2]
	}
	if v, ok := f["version"]; ok {
		if err := checkVersion(v); err != nil {
			return Entry{}, fmt.Errorf("package %s: %w", e.Package, err)
		}
		e.Version = v
	} else if e.Listed() {
		return Entry{}, fmt.Errorf("package %s: no Version field", e.Package)
	}
	if a, ok := f["architecture"]; ok {
		if !archRE.MatchString(a) {
			return Entry{}, fmt.Errorf("package %s: invalid Architecture %q", e.Package, a)
		}
		e.Arch = a
	}
	e.SourceName, e.SourceVersion = e.Package, e.Version
	if s, ok := f["source"]; ok {
		name, version, err := parseSource(s)
		if err != nil {
			return Entry{}, fmt.Errorf("package %s: %w", e.Package, err)
		}
		e.SourceName = name
		if version != "" {
			e.SourceVersion = version
		}
	}
	return e, nil
}

// checkVersion checks a Debian version's characters and structure: an
// optional numeric epoch, a non-empty upstream part, and a non-empty
// revision when there is a hyphen. (dpkg accepts, with a warning, an
// upstream part not starting with a digit; so does this.)
func checkVersion(v string) error {
	if !versionRE.MatchString(v) {
		return fmt.Errorf("invalid Version %q", v)
	}
	rest := v
	if epoch, r, ok := strings.Cut(v, ":"); ok && isDigits(epoch) {
		rest = r
	}
	if rest == "" || strings.HasPrefix(rest, "-") || strings.HasSuffix(rest, "-") {
		return fmt.Errorf("invalid Version %q", v)
	}
	return nil
}

// parseSource reads "name" or "name (version)".
func parseSource(s string) (name, version string, err error) {
	name, rest, _ := strings.Cut(s, " ")
	if !pkgNameRE.MatchString(name) {
		return "", "", fmt.Errorf("invalid Source %q", s)
	}
	rest = strings.TrimSpace(rest)
	if rest == "" {
		return name, "", nil
	}
	inner, ok := strings.CutPrefix(rest, "(")
	if ok {
		inner, ok = strings.CutSuffix(inner, ")")
	}
	inner = strings.TrimSpace(inner)
	if !ok || checkVersion(inner) != nil {
		return "", "", fmt.Errorf("invalid Source %q", s)
	}
	return name, inner, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// trunc shortens b for an error message.
func trunc(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}
