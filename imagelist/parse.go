package imagelist

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

var (
	// Identifiers are UUIDs in every real list, but test lists and some
	// tools use other strings. What matters for safety is that an identifier
	// can serve as a file name and a database key without escaping.
	identRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	sha512RE = regexp.MustCompile(`^[0-9a-fA-F]{128}$`)
)

// obj is one JSON object being read; it records problems and which keys
// were consumed, so the rest can be kept as Extra.
type obj struct {
	path     string
	m        map[string]json.RawMessage
	used     map[string]bool
	problems *[]Problem
}

func (o *obj) add(key, format string, args ...any) {
	p := o.path
	if key != "" {
		p += "/" + key
	}
	*o.problems = append(*o.problems, Problem{Path: p, Message: fmt.Sprintf(format, args...)})
}

func newObj(path string, raw json.RawMessage, problems *[]Problem) (*obj, bool) {
	o := &obj{path: path, used: map[string]bool{}, problems: problems}
	if err := json.Unmarshal(raw, &o.m); err != nil || o.m == nil {
		o.add("", "not a JSON object")
		return o, false
	}
	return o, true
}

// str reads a string field. required fields that are absent are reported.
func (o *obj) str(key string, required bool) string {
	o.used[key] = true
	raw, ok := o.m[key]
	if !ok {
		if required {
			o.add(key, "required field is missing")
		}
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		o.add(key, "not a string: %s", abbrev(raw))
		return ""
	}
	return s
}

// loose reads a field that real lists write as a string or as a number
// (hv:ram_minimum, hv:core_minimum, ...), as a string.
func (o *obj) loose(key string) string {
	o.used[key] = true
	raw, ok := o.m[key]
	if !ok {
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s
	}
	var n json.Number
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&n); err == nil {
		return n.String()
	}
	o.add(key, "not a string or number: %s", abbrev(raw))
	return ""
}

// need reports a required field that is present but empty.
func (o *obj) need(key, v string) string {
	if v == "" {
		if _, present := o.m[key]; present {
			o.add(key, "must not be empty")
		}
	}
	return v
}

func (o *obj) date(key string, required bool) time.Time {
	present := o.m[key] != nil
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

func (o *obj) extra() map[string]json.RawMessage {
	var x map[string]json.RawMessage
	for k, v := range o.m {
		if !o.used[k] {
			if x == nil {
				x = map[string]json.RawMessage{}
			}
			x[k] = v
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
// wrapping ErrSyntax, and no list, when data is not strict JSON; every other
// defect is recorded in the list's Problems.
func Parse(data []byte) (*List, error) {
	if err := checkStrict(data); err != nil {
		return nil, err
	}
	var problems []Problem
	top, ok := newObj("", data, &problems)
	if !ok {
		return nil, fmt.Errorf("%w: the document is not a JSON object", ErrSyntax)
	}
	body, present := top.m["hv:imagelist"]
	if !present {
		return nil, fmt.Errorf("%w: no \"hv:imagelist\" object: not an image list", ErrSyntax)
	}
	top.used["hv:imagelist"] = true
	for k := range top.extra() {
		top.add(k, "unexpected top-level field")
	}
	l := parseBody("hv:imagelist", body, &problems)
	l.problems = problems
	return l, nil
}

// ParseBody reads the inside of hv:imagelist, as some tools store it.
func ParseBody(data []byte) (*List, error) {
	if err := checkStrict(data); err != nil {
		return nil, err
	}
	var problems []Problem
	l := parseBody("", data, &problems)
	l.problems = problems
	return l, nil
}

func parseBody(path string, raw json.RawMessage, problems *[]Problem) *List {
	l := &List{}
	o, ok := newObj(path, raw, problems)
	if !ok {
		return l
	}
	l.Created = o.date("dc:date:created", true)
	l.Expires = o.date("dc:date:expires", true)
	l.Identifier = o.need("dc:identifier", o.str("dc:identifier", true))
	if l.Identifier != "" && !identRE.MatchString(l.Identifier) {
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

	o.used["hv:endorser"] = true
	if raw, ok := o.m["hv:endorser"]; !ok {
		o.add("hv:endorser", "required field is missing")
	} else {
		e, ok := newObj(o.path+"/hv:endorser", raw, problems)
		if ok {
			x, present := e.m["hv:x509"]
			e.used["hv:x509"] = true
			if !present {
				e.add("hv:x509", "required field is missing")
			} else {
				l.Endorser = parseEndorser(e.path+"/hv:x509", x, problems)
			}
			for k := range e.extra() {
				e.add(k, "unexpected endorser field")
			}
		}
	}

	o.used["hv:images"] = true
	if raw, ok := o.m["hv:images"]; !ok {
		o.add("hv:images", "required field is missing")
	} else {
		var entries []json.RawMessage
		if err := json.Unmarshal(raw, &entries); err != nil {
			o.add("hv:images", "not an array")
		} else if len(entries) > MaxImages {
			o.add("hv:images", "%d images, more than the limit of %d", len(entries), MaxImages)
		} else {
			seen := map[string]int{}
			for i, raw := range entries {
				p := fmt.Sprintf("%s/hv:images[%d]", o.path, i)
				w, ok := newObj(p, raw, problems)
				if !ok {
					continue
				}
				img, present := w.m["hv:image"]
				w.used["hv:image"] = true
				if !present {
					w.add("hv:image", "required field is missing")
					continue
				}
				for k := range w.extra() {
					w.add(k, "unexpected field beside hv:image")
				}
				im := parseImage(p+"/hv:image", img, problems)
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
	}
	l.Extra = o.extra()
	return l
}

// ParseImage reads one image entry, either {"hv:image": {...}} or the bare
// inner object, and returns it with its problems.
func ParseImage(data []byte) (Image, []Problem, error) {
	if err := checkStrict(data); err != nil {
		return Image{}, nil, err
	}
	var problems []Problem
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return Image{}, nil, fmt.Errorf("%w: not a JSON object", ErrSyntax)
	}
	if inner, ok := probe["hv:image"]; ok && len(probe) == 1 {
		return parseImage("hv:image", inner, &problems), problems, nil
	}
	return parseImage("", data, &problems), problems, nil
}

// ParseEndorser reads {"hv:x509": {...}} or the bare inner object.
func ParseEndorser(data []byte) (Endorser, []Problem, error) {
	if err := checkStrict(data); err != nil {
		return Endorser{}, nil, err
	}
	var problems []Problem
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return Endorser{}, nil, fmt.Errorf("%w: not a JSON object", ErrSyntax)
	}
	if inner, ok := probe["hv:x509"]; ok && len(probe) == 1 {
		return parseEndorser("hv:x509", inner, &problems), problems, nil
	}
	return parseEndorser("", data, &problems), problems, nil
}

func parseEndorser(path string, raw json.RawMessage, problems *[]Problem) Endorser {
	o, ok := newObj(path, raw, problems)
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

func parseImage(path string, raw json.RawMessage, problems *[]Problem) Image {
	o, ok := newObj(path, raw, problems)
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
	if im.Identifier != "" && !identRE.MatchString(im.Identifier) {
		o.add("dc:identifier", "%q is not a safe identifier (letters, digits, '.', '_', '-'; at most 128)", abbrevStr(im.Identifier))
	}
	o.used["hv:size"] = true
	if raw, ok := o.m["hv:size"]; !ok {
		o.add("hv:size", "required field is missing")
	} else if n, err := ParseSize(raw); err != nil {
		o.add("hv:size", "%v", err)
	} else {
		im.Size = n
	}
	if raw, ok := o.m["sl:checksum:sha512"]; ok && bytes.HasPrefix(raw, []byte(`"`)) {
		s := o.str("sl:checksum:sha512", true)
		if !sha512RE.MatchString(s) {
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

func abbrev(raw json.RawMessage) string { return abbrevStr(string(raw)) }

func abbrevStr(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}
