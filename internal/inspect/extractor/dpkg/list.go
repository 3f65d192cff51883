package dpkg

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

const (
	// MaxListSize bounds one /var/lib/dpkg/info/*.list file and the
	// diversions file.
	MaxListSize = 16 << 20
	// MaxFiles bounds the paths of all list files together.
	MaxFiles = 4_000_000
)

// ParseList parses a dpkg file list (info/<package>.list): one absolute
// path per line, "/." for the root. At most max paths are accepted; an
// empty or relative line, or a NUL byte, is an error.
func ParseList(b []byte, max int) ([]string, error) {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return nil, fmt.Errorf("NUL byte at offset %d", i)
	}
	lines, err := splitLines(b, max)
	if err != nil {
		return nil, err
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, "/") {
			return nil, fmt.Errorf("line %d: not an absolute path", i+1)
		}
	}
	return lines, nil
}

// splitLines splits newline-terminated lines (the last newline may be
// missing), refusing more than max lines.
func splitLines(b []byte, max int) ([]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	s := strings.TrimSuffix(string(b), "\n")
	n := strings.Count(s, "\n") + 1
	if n > max {
		return nil, fmt.Errorf("more than %d lines", max)
	}
	return strings.Split(s, "\n"), nil
}

// Diversion is one entry of /var/lib/dpkg/diversions: the file From is
// installed under the name To, except the copy package By ships itself.
// By is ":" for a local (administrator's) diversion.
type Diversion struct {
	To, By string
}

// ParseDiversions parses /var/lib/dpkg/diversions: groups of three lines
// (diverted path, path diverted to, diverting package or ":"). It returns
// the diversions keyed by diverted path. Relative paths, an invalid
// package name, an incomplete group, a path diverted twice and NUL bytes
// are errors; at most MaxFiles lines are read.
func ParseDiversions(b []byte) (map[string]Diversion, error) {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return nil, fmt.Errorf("dpkg diversions: NUL byte at offset %d", i)
	}
	lines, err := splitLines(b, MaxFiles)
	if err != nil {
		return nil, fmt.Errorf("dpkg diversions: %w", err)
	}
	if len(lines)%3 != 0 {
		return nil, errors.New("dpkg diversions: line count not a multiple of 3")
	}
	m := make(map[string]Diversion, len(lines)/3)
	for i := 0; i < len(lines); i += 3 {
		from, to, by := lines[i], lines[i+1], lines[i+2]
		if !strings.HasPrefix(from, "/") || !strings.HasPrefix(to, "/") {
			return nil, fmt.Errorf("dpkg diversions: line %d: not an absolute path", i+1)
		}
		if by != ":" && !pkgNameRE.MatchString(by) {
			return nil, fmt.Errorf("dpkg diversions: line %d: invalid package %q", i+3, trunc([]byte(by)))
		}
		if _, dup := m[from]; dup {
			return nil, fmt.Errorf("dpkg diversions: line %d: %q diverted twice", i+1, trunc([]byte(from)))
		}
		m[from] = Diversion{To: to, By: strings.ToLower(by)}
	}
	return m, nil
}
