package osrelease

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxFileSize bounds every file this package reads (os-release(5) files are
// a few hundred bytes).
const MaxFileSize = 64 << 10

// maxKeyLen bounds an assignment's variable name.
const maxKeyLen = 128

// Parse reads os-release(5) syntax (also used by /etc/lsb-release): one
// KEY=value assignment per line, where value follows the shell's quoting
// rules — 'single quotes' keep everything literally, "double quotes" and
// unquoted text take a backslash to escape the next character (inside
// double quotes only \" \\ \$ and \` are escapes, as in the shell), and
// adjacent quoted pieces concatenate. Blank lines and lines starting with
// "#" are skipped, as is a " #" comment after an unquoted value; leading
// and trailing blanks of a line are ignored.
//
// It is strict where the shell would do something other than assign a
// literal: unescaped "$" or "`" (expansion), unquoted blanks or shell
// operators, an unterminated quote, a key that is not a shell name, a line
// without "=", and a key assigned twice (an ambiguity between readers) are
// errors, as are input larger than MaxFileSize, NUL bytes and invalid
// UTF-8. Unknown keys are kept.
func Parse(b []byte) (map[string]string, error) {
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("os-release: %d bytes, limit %d", len(b), MaxFileSize)
	}
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		return nil, fmt.Errorf("os-release: NUL byte at offset %d", i)
	}
	if !utf8.Valid(b) {
		return nil, errors.New("os-release: not valid UTF-8")
	}
	vars := make(map[string]string)
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.Trim(line, " \t\r")
		if line == "" || line[0] == '#' {
			continue
		}
		key, raw, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("os-release: line %d: no '=' in assignment", n+1)
		}
		if !validKey(key) {
			return nil, fmt.Errorf("os-release: line %d: invalid variable name %q", n+1, trunc(key))
		}
		val, err := unquote(raw)
		if err != nil {
			return nil, fmt.Errorf("os-release: line %d: %s: %w", n+1, key, err)
		}
		if _, dup := vars[key]; dup {
			return nil, fmt.Errorf("os-release: line %d: %s assigned twice", n+1, key)
		}
		vars[key] = val
	}
	return vars, nil
}

// validKey reports whether k is a shell variable name.
func validKey(k string) bool {
	if k == "" || len(k) > maxKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c == '_', 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// unquote evaluates a shell word made of literal pieces.
func unquote(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return "", errors.New("unterminated single quote")
			}
			b.WriteString(s[i+1 : i+1+end])
			i += 1 + end
		case '"':
			j, err := doubleQuoted(&b, s, i+1)
			if err != nil {
				return "", err
			}
			i = j
		case '\\':
			if i+1 >= len(s) {
				return "", errors.New("backslash at end of line")
			}
			i++
			b.WriteByte(s[i])
		case ' ', '\t':
			// Only a comment may follow a blank outside quotes.
			rest := strings.TrimLeft(s[i:], " \t")
			if rest == "" || rest[0] == '#' {
				return b.String(), nil
			}
			return "", errors.New("unquoted blank in value")
		case '$', '`':
			return "", fmt.Errorf("unescaped %q (shell expansion)", c)
		case ';', '&', '|', '<', '>', '(', ')':
			return "", fmt.Errorf("unquoted shell operator %q", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// doubleQuoted appends the double-quoted string starting at s[i] (just
// after the opening quote) to b and returns the index of the closing quote.
func doubleQuoted(b *strings.Builder, s string, i int) (int, error) {
	for ; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return i, nil
		case '\\':
			if i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
				i++
				b.WriteByte(s[i])
			} else {
				b.WriteByte(c) // the shell keeps other backslashes
			}
		case '$', '`':
			return 0, fmt.Errorf("unescaped %q in double quotes (shell expansion)", c)
		default:
			b.WriteByte(c)
		}
	}
	return 0, errors.New("unterminated double quote")
}

// trunc shortens s for an error message.
func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
