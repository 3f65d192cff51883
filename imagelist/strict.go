package imagelist

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/go-json-experiment/json/jsontext"
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

// node is one JSON value of a document read by decode.
type node struct {
	kind jsontext.Kind // '{', '[', '"', '0', 't', 'f' or 'n'
	str  string        // a string's decoded text
	raw  []byte        // the value's exact bytes in the input
	keys []string      // an object's member names, in order
	vals []node        // an object's member values, or an array's elements
}

// decode reads data in one strict pass (RFC 8259 with RFC 7493's I-JSON
// rules: valid UTF-8, no duplicate member names) into a tree, rejecting what
// encoding/json would accept silently but a security decision must not:
// duplicate keys (different parsers keep different values), invalid UTF-8
// (replaced by U+FFFD), excessive depth and trailing data.
func decode(data []byte) (*node, error) {
	if len(data) > MaxListSize {
		return nil, fmt.Errorf("%w: %d bytes, more than the limit of %d", ErrSyntax, len(data), MaxListSize)
	}
	// A bytes.Buffer lets the decoder read data in place, without a copy.
	dec := jsontext.NewDecoder(bytes.NewBuffer(data),
		jsontext.AllowDuplicateNames(false), jsontext.AllowInvalidUTF8(false))
	var n node
	err := (&reader{dec: dec, data: data}).read(0, &n)
	if err == io.EOF {
		return nil, fmt.Errorf("%w: empty document", ErrSyntax)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		if err == nil {
			return nil, fmt.Errorf("%w: more than one JSON value", ErrSyntax)
		}
		return nil, fmt.Errorf("%w: after the value: %v", ErrSyntax, err)
	}
	return &n, nil
}

// reader builds the tree. Children are collected on a shared stack and
// copied into an exact-size slice when their parent closes: one allocation
// per object or array, not one per value, and no slice growth.
type reader struct {
	dec   *jsontext.Decoder
	data  []byte
	vals  []node
	names []string
}

// read reads one value into n.
func (r *reader) read(depth int, n *node) error {
	dec, data := r.dec, r.data
	start := dec.InputOffset()
	tok, err := dec.ReadToken()
	if err != nil {
		return err
	}
	n.kind = tok.Kind()
	switch n.kind {
	case '{', '[':
		if depth >= MaxDepth {
			return fmt.Errorf("nested deeper than %d", MaxDepth)
		}
		end := jsontext.Kind('}')
		if n.kind == '[' {
			end = ']'
		}
		base, nameBase := len(r.vals), len(r.names)
		for dec.PeekKind() != end {
			if n.kind == '{' {
				name, err := dec.ReadToken()
				if err != nil {
					return err
				}
				r.names = append(r.names, name.String())
			}
			var v node
			if err := r.read(depth+1, &v); err != nil {
				return err
			}
			r.vals = append(r.vals, v)
		}
		if _, err := dec.ReadToken(); err != nil {
			return err
		}
		n.vals = append([]node(nil), r.vals[base:]...)
		r.vals = r.vals[:base]
		if n.kind == '{' {
			n.keys = append([]string(nil), r.names[nameBase:]...)
			r.names = r.names[:nameBase]
		}
	case '"':
		n.str = tok.String()
		if len(n.str) > MaxStringLen {
			return fmt.Errorf("a string of %d bytes, more than %d", len(n.str), MaxStringLen)
		}
	case 0:
		return errors.New("invalid token")
	}
	// The bytes from the end of the previous token to the end of this one
	// hold the value, after any whitespace and separator.
	n.raw = bytes.TrimLeft(data[start:dec.InputOffset()], " \t\r\n:,")
	return nil
}

// member returns an object's value for key, or nil.
func (n *node) member(key string) *node {
	for i, k := range n.keys {
		if k == key {
			return &n.vals[i]
		}
	}
	return nil
}

// rawCopy returns the value's bytes as a RawMessage of its own.
func (n *node) rawCopy() json.RawMessage { return append(json.RawMessage(nil), n.raw...) }
