package policy

import (
	"bytes"
	"fmt"
	"strings"
)

// File kinds, used as error prefixes.
const (
	kindSigning    = "signing_policy"
	kindNamespaces = "namespaces"
)

// parseError formats an error for line num of a file of the given kind.
func parseError(kind string, num int, format string, args ...any) error {
	return fmt.Errorf("%s line %d: %s", kind, num, fmt.Sprintf(format, args...))
}

// forEachLine enforces MaxPolicySize, MaxLineLength and the absence of NUL
// bytes and other control characters (tab excepted), then calls fn with every
// physical line, numbered from 1, stripped of its "\n" or "\r\n" terminator.
func forEachLine(kind string, data []byte, fn func(num int, text string) error) error {
	if len(data) > MaxPolicySize {
		return fmt.Errorf("%s: input is %d bytes, larger than the limit of %d", kind, len(data), MaxPolicySize)
	}
	num := 0
	for len(data) > 0 {
		num++
		ln := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			ln, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		ln = bytes.TrimSuffix(ln, []byte{'\r'})
		if len(ln) > MaxLineLength {
			return parseError(kind, num, "line is %d bytes, longer than the limit of %d", len(ln), MaxLineLength)
		}
		for col, b := range ln {
			switch {
			case b == 0:
				return parseError(kind, num, "NUL byte at column %d", col+1)
			case (b < 0x20 && b != '\t') || b == 0x7f:
				return parseError(kind, num, "control character 0x%02x at column %d", b, col+1)
			}
		}
		if err := fn(num, string(ln)); err != nil {
			return err
		}
	}
	return nil
}

// token is one lexical element of a line.
type token struct {
	text   string // for quoted tokens, the content between the quotes (raw)
	quoted bool
	line   int
}

// lexer describes the lexical conventions of one file format.
type lexer struct {
	kind string
	// quote is the quote character delimiting string tokens.
	quote byte
	// escapes lets a backslash inside a quoted token protect the next
	// character (the backslash is kept in the token text).
	escapes bool
	// continuation allows a trailing backslash to continue a logical line on
	// the next physical line.
	continuation bool
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' }

// lex splits one physical line into tokens. A '#' at the start of a token
// begins a comment that runs to the end of the line. cont reports a trailing
// continuation backslash.
func (lx lexer) lex(num int, s string) (toks []token, cont bool, err error) {
	i := 0
	for {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i == len(s) {
			return toks, false, nil
		}
		c := s[i]
		switch {
		case c == '#':
			return toks, false, nil
		case c == lx.quote:
			j := i + 1
			for j < len(s) && s[j] != lx.quote {
				if lx.escapes && s[j] == '\\' && j+1 < len(s) {
					j++
				}
				j++
			}
			if j >= len(s) {
				return nil, false, parseError(lx.kind, num, "unterminated quoted string starting at column %d", i+1)
			}
			toks = append(toks, token{text: s[i+1 : j], quoted: true, line: num})
			i = j + 1
		case c == '\\' && lx.continuation:
			if strings.TrimLeft(s[i+1:], " \t") != "" {
				return nil, false, parseError(lx.kind, num, "backslash at column %d is not at the end of the line", i+1)
			}
			return toks, true, nil
		case c == '\'' || c == '"' || c == '\\':
			return nil, false, parseError(lx.kind, num, "unexpected %q at column %d", c, i+1)
		default:
			j := i
			for j < len(s) && !isSpace(s[j]) && s[j] != '\'' && s[j] != '"' && s[j] != '\\' {
				j++
			}
			toks = append(toks, token{text: s[i:j], line: num})
			i = j
		}
		// Tokens must be separated by white space; only a continuation
		// backslash may directly follow a token.
		if i < len(s) && !isSpace(s[i]) && !(lx.continuation && s[i] == '\\') {
			return nil, false, parseError(lx.kind, num, "missing white space before column %d", i+1)
		}
	}
}

// asciiEqualFold is strings.EqualFold restricted to ASCII, so that keywords
// cannot be spelt with look-alike Unicode letters (e.g. U+017F for 's').
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
