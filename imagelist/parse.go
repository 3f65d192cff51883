package imagelist

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// obj is one JSON object being read; it records problems and which keys
// were consumed, so the rest can be kept as Extra.
type obj struct {
	path     string
	d        *doc
	n        *node
	used     []bool
	problems *[]Problem
}

func (o *obj) add(key, format string, args ...any) {
	p := o.path
	if key != "" {
		p += "/" + key
	}
	*o.problems = append(*o.problems, Problem{Path: p, Message: fmt.Sprintf(format, args...)})
}

func newObj(path string, d *doc, n *node, problems *[]Problem) (*obj, bool) {
	o := &obj{path: path, d: d, n: n, problems: problems}
	if n == nil || n.kind != '{' {
		o.n = &node{kind: '{'}
		o.add("", "not a JSON object")
		return o, false
	}
	o.used = make([]bool, len(n.keys))
	return o, true
}

// get returns the member key and marks it used, or nil.
func (o *obj) get(key string) *node {
	for i, k := range o.n.keys {
		if k == key {
			o.used[i] = true
			return &o.n.vals[i]
		}
	}
	return nil
}

// str reads a string field. required fields that are absent are reported.
func (o *obj) str(key string, required bool) string {
	v := o.get(key)
	switch {
	case v == nil:
		if required {
			o.add(key, "required field is missing")
		}
		return ""
	case v.kind != '"':
		o.add(key, "not a string: %s", abbrev(o.d.raw(v)))
		return ""
	}
	return o.d.text(v)
}

// loose reads a field that real lists write as a string or as a number
// (hv:ram_minimum, hv:core_minimum, ...), as a string.
func (o *obj) loose(key string) string {
	v := o.get(key)
	switch {
	case v == nil:
		return ""
	case v.kind == '"':
		return o.d.text(v)
	case v.kind == '0':
		return string(o.d.raw(v))
	}
	o.add(key, "not a string or number: %s", abbrev(o.d.raw(v)))
	return ""
}

// need reports a required field that is present but empty.
func (o *obj) need(key, v string) string {
	if v == "" && o.n.member(key) != nil {
		o.add(key, "must not be empty")
	}
	return v
}

func (o *obj) date(key string, required bool) time.Time {
	present := o.n.member(key) != nil
	s := o.str(key, required)
	if s == "" {
		if present {
			o.add(key, "empty date")
		}
		return time.Time{}
	}
	t, err := ParseTime(s)
	if err != nil {
		o.add(key, "%v", err)
	}
	return t
}

// unused lists the members not read, in document order.
func (o *obj) unused() []string {
	var ks []string
	for i, k := range o.n.keys {
		if !o.used[i] {
			ks = append(ks, k)
		}
	}
	return ks
}

func (o *obj) extra() map[string]json.RawMessage {
	var x map[string]json.RawMessage
	for i, k := range o.n.keys {
		if !o.used[i] {
			if x == nil {
				x = map[string]json.RawMessage{}
			}
			x[k] = append(json.RawMessage(nil), o.d.raw(&o.n.vals[i])...)
		}
	}
	return x
}

// ParseTime parses a HEPiX date, which must be exactly "YYYY-MM-DDTHH:MM:SSZ".
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(TimeFormat, s)
	if err != nil || t.Format(TimeFormat) != s {
		return time.Time{}, fmt.Errorf("date %q is not in the form YYYY-MM-DDTHH:MM:SSZ", s)
	}
	return t, nil
}

// ParseSize parses hv:size: a non-negative integer written as a JSON number
// or as a decimal string, with no sign, fraction, exponent or leading zeros.
func ParseSize(raw json.RawMessage) (int64, error) {
	s := string(raw)
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, fmt.Errorf("size %s is not a string or number", abbrev(raw))
		}
	}
	return parseSize(s, raw)
}

func parseSize(s string, raw []byte) (int64, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("size %s is not a non-negative integer", abbrev(raw))
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %s is out of range", abbrev(raw))
	}
	return n, nil
}

// Parse reads a complete list, {"hv:imagelist": {...}}. It returns an error
// wrapping ErrSyntax, and no list, when data is not strict JSON or not an
// image list; every other defect is recorded in the list's Problems.
func Parse(data []byte) (*List, error) {
	d, err := decode(data)
	if err != nil {
		return nil, err
	}
	if d.root.kind != '{' {
		return nil, fmt.Errorf("%w: the document is not a JSON object", ErrSyntax)
	}
	var problems []Problem
	top, _ := newObj("", d, &d.root, &problems)
	body := top.get("hv:imagelist")
	if body == nil {
		return nil, fmt.Errorf("%w: no \"hv:imagelist\" object: not an image list", ErrSyntax)
	}
	for _, k := range top.unused() {
		top.add(k, "unexpected top-level field")
	}
	l := parseBody("hv:imagelist", d, body, &problems)
	l.problems = problems
	return l, nil
}

// ParseBody reads the inside of hv:imagelist, as some tools store it.
func ParseBody(data []byte) (*List, error) {
	d, err := decode(data)
	if err != nil {
		return nil, err
	}
	var problems []Problem
	l := parseBody("", d, &d.root, &problems)
	l.problems = problems
	return l, nil
}

func parseBody(path string, d *doc, n *node, problems *[]Problem) *List {
	l := &List{}
	o, ok := newObj(path, d, n, problems)
	if !ok {
		return l
	}
	l.Created = o.date("dc:date:created", true)
	l.Expires = o.date("dc:date:expires", true)
	l.Identifier = o.need("dc:identifier", o.str("dc:identifier", true))
	if l.Identifier != "" && !ValidIdentifier(l.Identifier) {
		o.add("dc:identifier", "%q is not a safe identifier (letters, digits, '.', '_', '-'; at most 128)", abbrevStr(l.Identifier))
	}
	l.Title = o.str("dc:title", true)
	l.Description = o.str("dc:description", true)
	l.Source = o.str("dc:source", true)
	l.Version = o.need("hv:version", o.str("hv:version", true))
	l.URI = o.need("hv:uri", o.str("hv:uri", true))
	l.VO = o.str("ad:vo", false)
	if !l.Created.IsZero() && !l.Expires.IsZero() && !l.Expires.After(l.Created) {
		o.add("dc:date:expires", "expires %s, not after it was created %s", l.Expires.Format(TimeFormat), l.Created.Format(TimeFormat))
	}

	if en := o.get("hv:endorser"); en == nil {
		o.add("hv:endorser", "required field is missing")
	} else if e, ok := newObj(o.path+"/hv:endorser", d, en, problems); ok {
		if x := e.get("hv:x509"); x == nil {
			e.add("hv:x509", "required field is missing")
		} else {
			l.Endorser = parseEndorser(e.path+"/hv:x509", d, x, problems)
		}
		for _, k := range e.unused() {
			e.add(k, "unexpected endorser field")
		}
	}

	switch imgs := o.get("hv:images"); {
	case imgs == nil:
		o.add("hv:images", "required field is missing")
	case imgs.kind != '[':
		o.add("hv:images", "not an array")
	case len(imgs.vals) > MaxImages:
		o.add("hv:images", "%d images, more than the limit of %d", len(imgs.vals), MaxImages)
	default:
		l.Images = make([]Image, 0, len(imgs.vals))
		seen := make(map[string]int, len(imgs.vals))
		for i := range imgs.vals {
			p := o.path + "/hv:images[" + strconv.Itoa(i) + "]"
			w, ok := newObj(p, d, &imgs.vals[i], problems)
			if !ok {
				continue
			}
			img := w.get("hv:image")
			if img == nil {
				w.add("hv:image", "required field is missing")
				continue
			}
			for _, k := range w.unused() {
				w.add(k, "unexpected field beside hv:image")
			}
			im := parseImage(p+"/hv:image", d, img, problems)
			if im.Identifier != "" {
				key := strings.ToLower(im.Identifier)
				if j, dup := seen[key]; dup {
					w.add("hv:image/dc:identifier", "duplicate image identifier %s (also hv:images[%d])", im.Identifier, j)
				}
				seen[key] = i
			}
			l.Images = append(l.Images, im)
		}
	}
	l.Extra = o.extra()
	return l
}

// unwrap returns the inner object of {"KEY": {...}}, or the node itself.
func unwrap(n *node, key string) (*node, string) {
	if n.kind == '{' && len(n.keys) == 1 && n.keys[0] == key {
		return &n.vals[0], key
	}
	return n, ""
}

// ParseImage reads one image entry, either {"hv:image": {...}} or the bare
// inner object, and returns it with its problems.
func ParseImage(data []byte) (Image, []Problem, error) {
	d, err := decode(data)
	if err != nil {
		return Image{}, nil, err
	}
	if d.root.kind != '{' {
		return Image{}, nil, fmt.Errorf("%w: not a JSON object", ErrSyntax)
	}
	var problems []Problem
	n, path := unwrap(&d.root, "hv:image")
	return parseImage(path, d, n, &problems), problems, nil
}

// ParseEndorser reads {"hv:x509": {...}} or the bare inner object.
func ParseEndorser(data []byte) (Endorser, []Problem, error) {
	d, err := decode(data)
	if err != nil {
		return Endorser{}, nil, err
	}
	if d.root.kind != '{' {
		return Endorser{}, nil, fmt.Errorf("%w: not a JSON object", ErrSyntax)
	}
	var problems []Problem
	n, path := unwrap(&d.root, "hv:x509")
	return parseEndorser(path, d, n, &problems), problems, nil
}

func parseEndorser(path string, d *doc, n *node, problems *[]Problem) Endorser {
	o, ok := newObj(path, d, n, problems)
	if !ok {
		return Endorser{}
	}
	e := Endorser{
		DN:      o.need("hv:dn", o.str("hv:dn", true)),
		CA:      o.need("hv:ca", o.str("hv:ca", true)),
		Email:   o.str("hv:email", true),
		Creator: o.str("dc:creator", true),
	}
	e.Extra = o.extra()
	return e
}

func parseImage(path string, d *doc, n *node, problems *[]Problem) Image {
	o, ok := newObj(path, d, n, problems)
	if !ok {
		return Image{}
	}
	im := Image{
		Identifier:      o.need("dc:identifier", o.str("dc:identifier", true)),
		Title:           o.str("dc:title", true),
		Description:     o.str("dc:description", true),
		URI:             o.need("hv:uri", o.str("hv:uri", true)),
		Version:         o.str("hv:version", true),
		Arch:            o.str("sl:arch", true),
		OS:              o.str("sl:os", true),
		OSName:          o.str("sl:osname", false),
		OSVersion:       o.str("sl:osversion", true),
		Comments:        o.str("sl:comments", true),
		Hypervisor:      o.str("hv:hypervisor", true),
		Format:          o.str("hv:format", false),
		Expires:         o.date("dc:date:expires", false),
		RAMMinimum:      o.loose("hv:ram_minimum"),
		RAMRecommended:  o.loose("ad:ram_recommended"),
		CoreMinimum:     o.loose("hv:core_minimum"),
		CoreRecommended: o.loose("ad:core_recommended"),
		VO:              o.str("ad:vo", false),
		MPURI:           o.str("ad:mpuri", false),
		BaseMPURI:       o.str("ad:base_mpuri", false),
		Group:           o.str("ad:group", false),
		AppID:           o.loose("ad:appid"),
		UserFullname:    o.str("ad:user:fullname", false),
		UserGUID:        o.str("ad:user:guid", false),
		UserURI:         o.str("ad:user:uri", false),
	}
	if im.Identifier != "" && !ValidIdentifier(im.Identifier) {
		o.add("dc:identifier", "%q is not a safe identifier (letters, digits, '.', '_', '-'; at most 128)", abbrevStr(im.Identifier))
	}
	switch v := o.get("hv:size"); {
	case v == nil:
		o.add("hv:size", "required field is missing")
	case v.kind != '"' && v.kind != '0':
		o.add("hv:size", "size %s is not a non-negative integer", abbrev(d.raw(v)))
	default:
		var s string
		if v.kind == '0' {
			s = string(d.raw(v))
		} else {
			s = d.text(v)
		}
		if size, err := parseSize(s, d.raw(v)); err != nil {
			o.add("hv:size", "%v", err)
		} else {
			im.Size = size
		}
	}
	if v := o.n.member("sl:checksum:sha512"); v != nil && v.kind == '"' {
		s := o.str("sl:checksum:sha512", true)
		if !isHex(s, 128) {
			o.add("sl:checksum:sha512", "%q is not 128 hexadecimal digits", abbrevStr(s))
		} else {
			im.SHA512 = strings.ToLower(s)
		}
	} else {
		o.str("sl:checksum:sha512", true) // reports missing or not a string
	}
	im.Extra = o.extra()
	return im
}

// ValidIdentifier: identifiers are UUIDs in every real list, but test lists
// and some tools use other strings. What matters for safety is that an
// identifier can serve as a file name and a database key without escaping:
// a letter or digit, then up to 127 letters, digits, '.', '_' or '-'.
func ValidIdentifier(s string) bool {
	if len(s) == 0 || len(s) > 128 || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func abbrev(raw []byte) string { return abbrevStr(string(raw)) }

func abbrevStr(s string) string {
	if len(s) <= 40 {
		return s
	}
	cut := 37
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
