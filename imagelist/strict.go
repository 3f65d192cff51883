package imagelist

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// Limits on what Parse accepts. They bound memory and time on hostile input;
// a real list of 10,000 images is about 7.4 MB.
const (
	MaxListSize  = 64 << 20 // bytes of JSON
	MaxDepth     = 32       // nesting of objects and arrays
	MaxImages    = 100_000  // entries in hv:images
	MaxStringLen = 1 << 20  // bytes in one JSON string
)

// ErrSyntax classifies input that is not a single, well-formed, unambiguous
// JSON document: invalid UTF-8, a syntax error, a duplicate object key, too
// deep, too large, or trailing data.
var ErrSyntax = errors.New("invalid JSON")

// checkStrict walks the whole document once and rejects what encoding/json
// would accept silently but a security decision must not: duplicate keys
// (different parsers keep different values), invalid UTF-8 (replaced by
// U+FFFD), excessive depth and trailing garbage.
func checkStrict(data []byte) error {
	if len(data) > MaxListSize {
		return fmt.Errorf("%w: %d bytes, more than the limit of %d", ErrSyntax, len(data), MaxListSize)
	}
	if !utf8.Valid(data) {
		return fmt.Errorf("%w: not valid UTF-8", ErrSyntax)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type frame struct {
		object bool
		keys   map[string]struct{}
		expect bool // in an object: the next token is a key
	}
	var stack []*frame
	values := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrSyntax, err)
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.expect {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			key, ok := tok.(string)
			if !ok {
				return fmt.Errorf("%w: object key is not a string", ErrSyntax)
			}
			if _, dup := top.keys[key]; dup {
				return fmt.Errorf("%w: duplicate key %q", ErrSyntax, key)
			}
			top.keys[key] = struct{}{}
			top.expect = false
			continue
		}
		if top == nil {
			values++
			if values > 1 {
				return fmt.Errorf("%w: more than one JSON value", ErrSyntax)
			}
		}
		if top != nil && top.object {
			top.expect = true
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				if len(stack) >= MaxDepth {
					return fmt.Errorf("%w: nested deeper than %d", ErrSyntax, MaxDepth)
				}
				f := &frame{object: v == '{'}
				if f.object {
					f.keys = map[string]struct{}{}
					f.expect = true
				}
				stack = append(stack, f)
			case ']':
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].object {
					stack[len(stack)-1].expect = true
				}
			}
		case string:
			if len(v) > MaxStringLen {
				return fmt.Errorf("%w: a string of %d bytes, more than %d", ErrSyntax, len(v), MaxStringLen)
			}
		}
	}
	if values == 0 {
		return fmt.Errorf("%w: empty document", ErrSyntax)
	}
	return nil
}
