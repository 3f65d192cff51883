package lvm

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Bounds of the metadata text parser.
const (
	maxTextBytes = 4 << 20
	maxDepth     = 8
	maxNodes     = 1 << 18 // keys, sections and array elements together
	maxArray     = 1 << 12
)

// kind is the type of a metadata value.
type kind uint8

const (
	kindString kind = iota + 1
	kindInt
	kindFloat
	kindArray
	kindSection
)

// value is one metadata value: a string, a number, an array of strings and
// numbers, or a section.
type value struct {
	kind kind
	str  string
	num  int64
	arr  []value
	sec  *section
}

// section is a brace-delimited block; keys keep their order.
type section struct {
	keys []string
	vals map[string]value
}

func (s *section) get(key string) (value, bool) {
	v, ok := s.vals[key]
	return v, ok
}

func (s *section) str(key string) (string, error) {
	v, ok := s.vals[key]
	if !ok || v.kind != kindString {
		return "", fmt.Errorf("%s: missing or not a string", key)
	}
	return v.str, nil
}

func (s *section) int(key string) (int64, error) {
	v, ok := s.vals[key]
	if !ok || v.kind != kindInt {
		return 0, fmt.Errorf("%s: missing or not an integer", key)
	}
	return v.num, nil
}

func (s *section) sub(key string) (*section, error) {
	v, ok := s.vals[key]
	if !ok || v.kind != kindSection {
		return nil, fmt.Errorf("%s: missing or not a section", key)
	}
	return v.sec, nil
}

// strings returns an array of strings (e.g. status flags); absent is empty.
func (s *section) strings(key string) ([]string, error) {
	v, ok := s.vals[key]
	if !ok {
		return nil, nil
	}
	if v.kind != kindArray {
		return nil, fmt.Errorf("%s: not an array", key)
	}
	out := make([]string, len(v.arr))
	for i, e := range v.arr {
		if e.kind != kindString {
			return nil, fmt.Errorf("%s: element %d is not a string", key, i)
		}
		out[i] = e.str
	}
	return out, nil
}

// parser reads the LVM2 text format: "key = value" pairs and "name { ... }"
// sections, values being "strings", integers or [arrays], with # comments.
type parser struct {
	text  []byte
	pos   int
	line  int
	nodes int
}

// parseText parses metadata text into its top-level section.
func parseText(text []byte) (*section, error) {
	if len(text) > maxTextBytes {
		return nil, fmt.Errorf("lvm: metadata: %d bytes exceeds %d", len(text), maxTextBytes)
	}
	p := &parser{text: text, line: 1}
	s, err := p.items(0)
	if err != nil {
		return nil, fmt.Errorf("lvm: metadata line %d: %w", p.line, err)
	}
	return s, nil
}

// skip passes over white space and comments.
func (p *parser) skip() {
	for p.pos < len(p.text) {
		switch c := p.text[p.pos]; c {
		case '\n':
			p.line++
			p.pos++
		case ' ', '\t', '\r':
			p.pos++
		case '#':
			for p.pos < len(p.text) && p.text[p.pos] != '\n' {
				p.pos++
			}
		default:
			return
		}
	}
}

func isWordByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '_' || c == '.' || c == '+' || c == '-'
}

// word returns the next run of name characters.
func (p *parser) word() string {
	start := p.pos
	for p.pos < len(p.text) && isWordByte(p.text[p.pos]) {
		p.pos++
	}
	return string(p.text[start:p.pos])
}

func (p *parser) count() error {
	p.nodes++
	if p.nodes > maxNodes {
		return fmt.Errorf("more than %d values", maxNodes)
	}
	return nil
}

// items parses key/section items up to a closing brace (depth > 0) or the
// end of the text (depth 0).
func (p *parser) items(depth int) (*section, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("sections nested deeper than %d", maxDepth)
	}
	s := &section{vals: map[string]value{}}
	for {
		p.skip()
		if p.pos == len(p.text) {
			if depth > 0 {
				return nil, errors.New("unexpected end of text in section")
			}
			return s, nil
		}
		if p.text[p.pos] == '}' {
			if depth == 0 {
				return nil, errors.New("unbalanced '}'")
			}
			p.pos++
			return s, nil
		}
		if p.text[p.pos] == 0 && depth == 0 {
			// Metadata areas pad the text with NULs.
			for _, c := range p.text[p.pos:] {
				if c != 0 {
					return nil, errors.New("data after NUL")
				}
			}
			return s, nil
		}
		key := p.word()
		if key == "" {
			return nil, fmt.Errorf("unexpected character %q", p.text[p.pos])
		}
		if _, dup := s.vals[key]; dup {
			return nil, fmt.Errorf("duplicate key %q", key)
		}
		if err := p.count(); err != nil {
			return nil, err
		}
		p.skip()
		if p.pos == len(p.text) {
			return nil, fmt.Errorf("key %q without value", key)
		}
		var v value
		switch p.text[p.pos] {
		case '{':
			p.pos++
			sub, err := p.items(depth + 1)
			if err != nil {
				return nil, err
			}
			v = value{kind: kindSection, sec: sub}
		case '=':
			p.pos++
			p.skip()
			var err error
			if v, err = p.value(true); err != nil {
				return nil, fmt.Errorf("key %q: %w", key, err)
			}
		default:
			return nil, fmt.Errorf("key %q: want '=' or '{'", key)
		}
		s.keys = append(s.keys, key)
		s.vals[key] = v
	}
}

// value parses a string, a number or (when arrays are allowed) an array.
func (p *parser) value(arrays bool) (value, error) {
	if p.pos == len(p.text) {
		return value{}, errors.New("missing value")
	}
	switch c := p.text[p.pos]; {
	case c == '"':
		return p.quoted()
	case c == '[' && arrays:
		p.pos++
		var arr []value
		for {
			p.skip()
			if p.pos < len(p.text) && p.text[p.pos] == ']' {
				p.pos++
				return value{kind: kindArray, arr: arr}, nil
			}
			if len(arr) > 0 {
				if p.pos == len(p.text) || p.text[p.pos] != ',' {
					return value{}, errors.New("want ',' or ']' in array")
				}
				p.pos++
				p.skip()
			}
			if len(arr) == maxArray {
				return value{}, fmt.Errorf("array longer than %d", maxArray)
			}
			if err := p.count(); err != nil {
				return value{}, err
			}
			e, err := p.value(false)
			if err != nil {
				return value{}, err
			}
			arr = append(arr, e)
		}
	default:
		w := p.word()
		if n, err := strconv.ParseInt(w, 10, 64); err == nil {
			return value{kind: kindInt, num: n}, nil
		}
		if isDecimal(w) {
			return value{kind: kindFloat}, nil
		}
		return value{}, fmt.Errorf("bad value %.32q", w)
	}
}

// quoted parses a double-quoted string; \" and \\ are the only escapes.
func (p *parser) quoted() (value, error) {
	p.pos++ // opening quote
	var b []byte
	for p.pos < len(p.text) {
		c := p.text[p.pos]
		p.pos++
		switch {
		case c == '"':
			return value{kind: kindString, str: string(b)}, nil
		case c == '\\':
			if p.pos == len(p.text) || (p.text[p.pos] != '"' && p.text[p.pos] != '\\') {
				return value{}, errors.New("bad escape in string")
			}
			b = append(b, p.text[p.pos])
			p.pos++
		case c == 0:
			return value{}, errors.New("NUL in string")
		case c == '\n':
			p.line++
			b = append(b, c)
		default:
			b = append(b, c)
		}
	}
	return value{}, errors.New("unterminated string")
}

// isDecimal reports whether w is -?digits.digits (floats are parsed but
// their values are not needed).
func isDecimal(w string) bool {
	w = strings.TrimPrefix(w, "-")
	i, f, ok := strings.Cut(w, ".")
	digits := func(s string) bool {
		return s != "" && strings.Trim(s, "0123456789") == ""
	}
	return ok && digits(i) && digits(f)
}
