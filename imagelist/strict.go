package imagelist

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// Limits on what Parse accepts. They bound memory and time on hostile input;
// a real list of 10,000 images is about 7.4 MB.
const (
	MaxListSize  = 64 << 20 // bytes of JSON
	MaxDepth     = 32       // nesting of objects and arrays
	MaxImages    = 30_000   // entries in hv:images
	MaxStringLen = 1 << 20  // bytes in one JSON string
	// MaxValues bounds the JSON values in a document (about 30 per image):
	// the tree costs some 64 bytes a value, so a hostile document of tiny
	// values ("[0,0,0,...]") cannot make it grow past ~150 MB.
	MaxValues = 1 << 20
)

// The tree stores offsets as int32.
const _ = uint32(1<<31 - 1 - MaxListSize)

// ErrSyntax classifies input that is not a single, well-formed, unambiguous
// JSON document: invalid UTF-8, a syntax error, a duplicate object key, too
// deep, too large, or trailing data.
var ErrSyntax = errors.New("invalid JSON")

// node is one JSON value of a document read by decode. It is kept small
// (raw text as offsets into the input, strings decoded only when read):
// a 10,000-image list has some 300,000 of them.
type node struct {
	kind       jsontext.Kind // '{', '[', '"', '0', 't', 'f' or 'n'
	start, end int32         // the value's exact bytes: doc[start:end]
	keys       []string      // an object's member names, in order
	vals       []node        // an object's member values, or an array's elements
}

// doc is a decoded document: the input and its tree.
type doc struct {
	data []byte
	root node
}

func (d *doc) raw(n *node) []byte { return d.data[n.start:n.end] }

// text returns a string node's decoded text.
func (d *doc) text(n *node) string {
	raw := d.raw(n)
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1])
	}
	b, err := jsontext.AppendUnquote(nil, raw)
	if err != nil { // cannot happen: decode validated every string
		return string(raw)
	}
	return string(b)
}

// decode reads data in one strict pass (RFC 8259 with RFC 7493's I-JSON
// rules: valid UTF-8, no duplicate member names) into a tree, rejecting what
// encoding/json would accept silently but a security decision must not:
// duplicate keys (different parsers keep different values), invalid UTF-8
// (replaced by U+FFFD), excessive depth and trailing data.
func decode(data []byte) (*doc, error) {
	if len(data) > MaxListSize {
		return nil, fmt.Errorf("%w: %d bytes, more than the limit of %d", ErrSyntax, len(data), MaxListSize)
	}
	// A bytes.Buffer lets the decoder read data in place, without a copy.
	dec := jsontext.NewDecoder(bytes.NewBuffer(data),
		jsontext.AllowDuplicateNames(false), jsontext.AllowInvalidUTF8(false))
	d := &doc{data: data}
	r := &reader{dec: dec, data: data, names: map[string]string{}}
	var err error
	d.root, err = r.read(0)
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
	return d, nil
}

// reader builds the tree. Children are collected on a shared stack and
// copied into an exact-size slice when their parent closes: one allocation
// per object or array, not one per value, and no slice growth. Member names
// repeat in every image, so each is allocated once.
type reader struct {
	count int // values read so far
	dec   *jsontext.Decoder
	data  []byte
	vals  []node
	keys  []string
	names map[string]string
}

func (r *reader) name() (string, error) {
	v, err := r.dec.ReadValue()
	if err != nil {
		return "", err
	}
	raw := []byte(v)
	if len(raw) < 2 || raw[0] != '"' {
		return "", errors.New("object member name is not a string")
	}
	if bytes.IndexByte(raw, '\\') >= 0 {
		b, err := jsontext.AppendUnquote(nil, raw)
		if err != nil {
			return "", err
		}
		raw = append([]byte{'"'}, append(b, '"')...)
	}
	key := raw[1 : len(raw)-1]
	if s, ok := r.names[string(key)]; ok {
		return s, nil
	}
	s := string(key)
	if len(r.names) < 4096 {
		r.names[s] = s
	}
	return s, nil
}

// read reads one value. It returns the node by value so that it stays on
// the stack until it is copied into its parent.
func (r *reader) read(depth int) (n node, err error) {
	dec := r.dec
	if r.count++; r.count > MaxValues {
		return n, fmt.Errorf("more than %d values", MaxValues)
	}
	start := dec.InputOffset()
	switch k := dec.PeekKind(); k {
	case '{', '[':
		if depth >= MaxDepth {
			return n, fmt.Errorf("nested deeper than %d", MaxDepth)
		}
		if _, err := dec.ReadToken(); err != nil {
			return n, err
		}
		n.kind = k
		end := jsontext.Kind('}')
		if k == '[' {
			end = ']'
		}
		base, keyBase := len(r.vals), len(r.keys)
		for dec.PeekKind() != end {
			if k == '{' {
				name, err := r.name()
				if err != nil {
					return n, err
				}
				r.keys = append(r.keys, name)
			}
			v, err := r.read(depth + 1)
			if err != nil {
				return n, err
			}
			r.vals = append(r.vals, v)
		}
		if _, err := dec.ReadToken(); err != nil {
			return n, err
		}
		n.vals = append([]node(nil), r.vals[base:]...)
		r.vals = r.vals[:base]
		if k == '{' {
			n.keys = append([]string(nil), r.keys[keyBase:]...)
			r.keys = r.keys[:keyBase]
		}
	default:
		v, err := dec.ReadValue()
		if err != nil {
			return n, err
		}
		n.kind = v.Kind()
		if n.kind == '"' && len(v) > MaxStringLen+2 {
			return n, fmt.Errorf("a string of %d bytes, more than %d", len(v)-2, MaxStringLen)
		}
	}
	// The bytes from the end of the previous token to the end of this one
	// hold the value, after any whitespace and separator.
	end := dec.InputOffset()
	for start < end && strings.IndexByte(" \t\r\n:,", r.data[start]) >= 0 {
		start++
	}
	n.start, n.end = int32(start), int32(end)
	return n, nil
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
