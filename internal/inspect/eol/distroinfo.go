package eol

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Limits of the distro-info-data parser.
const (
	MaxCSVSize  = 1 << 20 // bytes of one CSV file
	maxRows     = 4096    // releases in one file
	maxFieldLen = 64      // bytes of one field
	maxColumns  = 16      // header columns, known and unknown
)

// Release is one row of a distro-info-data CSV. Dates the file leaves
// empty are zero.
type Release struct {
	Version  string // as written: "12", "6.0", "22.04 LTS"; empty for sid
	Codename string // "Bookworm", "Jammy Jellyfish"
	Series   string // "bookworm", "jammy": unique in a file
	Created  time.Time
	Released time.Time
	EOL      time.Time // end of regular (security) support
	// Debian only.
	EOLLTS  time.Time // end of Debian LTS
	EOLELTS time.Time // end of Freexian's Extended LTS
	// Ubuntu only.
	EOLServer time.Time // end of standard support for server (LTS releases)
	EOLESM    time.Time // end of Expanded Security Maintenance (Ubuntu Pro)
}

// Data holds the distro-info-data tables Lookup consults. A nil *Data is
// valid and knows nothing about Debian or Ubuntu.
type Data struct {
	Debian []Release
	Ubuntu []Release
}

// requiredColumns are the columns each file starts with.
var requiredColumns = [...]string{"version", "codename", "series", "created", "release", "eol"}

// optionalColumns are the known columns that may follow, in order. Unknown
// columns after these are accepted (newer distro-info-data releases add
// some) but their values must still be empty or dates.
func optionalColumns(distro string) ([]string, bool) {
	switch distro {
	case "debian":
		return []string{"eol-lts", "eol-elts"}, true
	case "ubuntu":
		return []string{"eol-server", "eol-esm", "eol-legacy"}, true
	}
	return nil, false
}

// LoadDistroInfo reads debian.csv and ubuntu.csv from dir (normally
// /usr/share/distro-info, from the distro-info-data package). Both files
// must be present and well formed.
func LoadDistroInfo(dir string) (*Data, error) {
	var d Data
	for _, distro := range []string{"debian", "ubuntu"} {
		name := filepath.Join(dir, distro+".csv")
		b, err := readLimited(name, MaxCSVSize)
		if err != nil {
			return nil, fmt.Errorf("eol: %w", err)
		}
		rs, err := ParseDistroInfo(distro, b)
		if err != nil {
			return nil, fmt.Errorf("eol: %s: %w", name, err)
		}
		if distro == "debian" {
			d.Debian = rs
		} else {
			d.Ubuntu = rs
		}
	}
	return &d, nil
}

func readLimited(name string, max int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, max)
	}
	return b, nil
}

// ParseDistroInfo parses one distro-info-data CSV file; distro is "debian"
// or "ubuntu" and selects the columns expected. The format is checked
// strictly: the header must name the known columns in order, every row has
// at least the version, codename, series and created columns and no more
// columns than the header, dates are YYYY-MM-DD, series names are unique
// lowercase words, and quoting is not accepted (the files never quote).
func ParseDistroInfo(distro string, data []byte) ([]Release, error) {
	opt, ok := optionalColumns(distro)
	if !ok {
		return nil, fmt.Errorf("distro-info: unknown distribution %q", distro)
	}
	if len(data) > MaxCSVSize {
		return nil, fmt.Errorf("distro-info: %d bytes, limit %d", len(data), MaxCSVSize)
	}
	lines := strings.Split(string(data), "\n")
	// One final newline (and nothing after it) is allowed.
	if n := len(lines); n > 1 && lines[n-1] == "" {
		lines = lines[:n-1]
	}
	if len(lines) == 0 || lines[0] == "" {
		return nil, errors.New("distro-info: no header")
	}
	if len(lines)-1 > maxRows {
		return nil, fmt.Errorf("distro-info: more than %d rows", maxRows)
	}
	header, err := splitRow(lines[0])
	if err != nil {
		return nil, fmt.Errorf("distro-info: header: %w", err)
	}
	if err := checkHeader(header, opt); err != nil {
		return nil, fmt.Errorf("distro-info: header: %w", err)
	}
	out := make([]Release, 0, len(lines)-1)
	seen := make(map[string]bool)
	for i, line := range lines[1:] {
		lineNo := i + 2
		fields, err := splitRow(line)
		if err != nil {
			return nil, fmt.Errorf("distro-info: line %d: %w", lineNo, err)
		}
		r, err := parseRow(header, fields)
		if err != nil {
			return nil, fmt.Errorf("distro-info: line %d: %w", lineNo, err)
		}
		if seen[r.Series] {
			return nil, fmt.Errorf("distro-info: line %d: series %q repeated", lineNo, r.Series)
		}
		seen[r.Series] = true
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, errors.New("distro-info: no releases")
	}
	return out, nil
}

func splitRow(line string) ([]string, error) {
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return nil, errors.New("empty line")
	}
	if strings.ContainsAny(line, "\"\r\x00") {
		return nil, errors.New("quote, carriage return or NUL in line")
	}
	fields := strings.Split(line, ",")
	if len(fields) > maxColumns {
		return nil, fmt.Errorf("%d columns, limit %d", len(fields), maxColumns)
	}
	for _, f := range fields {
		if len(f) > maxFieldLen {
			return nil, fmt.Errorf("field of %d bytes, limit %d", len(f), maxFieldLen)
		}
		if f != strings.TrimSpace(f) {
			return nil, fmt.Errorf("field %q has surrounding space", f)
		}
	}
	return fields, nil
}

func checkHeader(h, optional []string) error {
	if len(h) < len(requiredColumns) {
		return fmt.Errorf("%d columns, want at least %d", len(h), len(requiredColumns))
	}
	seen := make(map[string]bool)
	for i, c := range h {
		if seen[c] {
			return fmt.Errorf("column %q repeated", c)
		}
		seen[c] = true
		switch {
		case i < len(requiredColumns):
			if c != requiredColumns[i] {
				return fmt.Errorf("column %d is %q, want %q", i+1, c, requiredColumns[i])
			}
		case i-len(requiredColumns) < len(optional) && c == optional[i-len(requiredColumns)]:
		case !isDateColumnName(c) || foreignColumn(c, optional):
			return fmt.Errorf("column %d: unexpected name %q", i+1, c)
		}
	}
	// A known optional column out of its place is an error, not unknown.
	for i, c := range h[len(requiredColumns):] {
		for j, o := range optional {
			if c == o && i != j {
				return fmt.Errorf("column %q out of order", c)
			}
		}
	}
	return nil
}

// foreignColumn reports whether c is a known column of the other
// distribution (an Ubuntu file given as Debian's, or the reverse).
func foreignColumn(c string, own []string) bool {
	for _, d := range []string{"debian", "ubuntu"} {
		cols, _ := optionalColumns(d)
		if slices.Contains(cols, c) && !slices.Contains(own, c) {
			return true
		}
	}
	return false
}

// isDateColumnName accepts the shape of the columns distro-info-data adds
// over time ("eol-something").
func isDateColumnName(c string) bool {
	if !strings.HasPrefix(c, "eol-") || len(c) == len("eol-") {
		return false
	}
	for _, r := range c {
		if !(r >= 'a' && r <= 'z' || r == '-') {
			return false
		}
	}
	return true
}

func parseRow(header, f []string) (Release, error) {
	const minFields = 4 // version, codename, series, created
	if len(f) < minFields || len(f) > len(header) {
		return Release{}, fmt.Errorf("%d fields, want %d to %d", len(f), minFields, len(header))
	}
	r := Release{Version: f[0], Codename: f[1], Series: f[2]}
	if !validVersion(r.Version) {
		return Release{}, fmt.Errorf("version %q malformed", r.Version)
	}
	if r.Codename == "" {
		return Release{}, errors.New("codename empty")
	}
	if !validSeries(r.Series) {
		return Release{}, fmt.Errorf("series %q malformed", r.Series)
	}
	for i := 3; i < len(f); i++ {
		t, err := parseDate(f[i])
		if err != nil {
			return Release{}, fmt.Errorf("%s: %w", header[i], err)
		}
		switch header[i] {
		case "created":
			if t.IsZero() {
				return Release{}, errors.New("created date empty")
			}
			r.Created = t
		case "release":
			r.Released = t
		case "eol":
			r.EOL = t
		case "eol-lts":
			r.EOLLTS = t
		case "eol-elts":
			r.EOLELTS = t
		case "eol-server":
			r.EOLServer = t
		case "eol-esm":
			r.EOLESM = t
		}
	}
	return r, nil
}

func parseDate(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil || t.Format(time.DateOnly) != s {
		return time.Time{}, fmt.Errorf("date %q is not YYYY-MM-DD", s)
	}
	return t, nil
}

// validVersion accepts "", "12", "6.0", "22.04" and "22.04 LTS".
func validVersion(v string) bool {
	v = strings.TrimSuffix(v, " LTS")
	for _, r := range v {
		if !(r >= '0' && r <= '9' || r == '.') {
			return false
		}
	}
	return !strings.HasPrefix(v, ".") && !strings.HasSuffix(v, ".") && !strings.Contains(v, "..")
}

func validSeries(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}
