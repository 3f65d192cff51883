package ledger

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// maxDataDepth bounds the nesting of objects and arrays in an event's
// data, the data object itself counting as one.
const maxDataDepth = 32

// canonTypes are the known types as they appear, unescaped, in a
// canonical body.
var canonTypes = [...]Type{
	ListAccepted, ListRejected, ImageCached, ImageExpired, AdmissionDecision,
	VMDefined, VMStarted, VMStopped, VMMigrated, VMRestored,
	LeaseStart, LeaseEndType, ContainApplied, ContainRemoved,
	QuarantineOn, QuarantineOff, SnapshotTaken, AlertRaised, OperatorAction,
}

// plainByte marks the ASCII bytes a canonical string holds unescaped:
// all but controls, '"', '\\', '<', '>' and '&' (a constant table).
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// scanner reads a canonical encoding held in s from byte i on. It never
// indexes past len(s): every read is guarded by a bounds check.
type scanner struct {
	s string
	i int
}

func (p *scanner) errf(format string, args ...any) error {
	return fmt.Errorf("byte %d: %s", p.i, fmt.Sprintf(format, args...))
}

// lit consumes want at p.i.
func (p *scanner) lit(want string) error {
	if !strings.HasPrefix(p.s[p.i:], want) {
		return p.errf("want %q", want)
	}
	p.i += len(want)
	return nil
}

// str reads a canonical JSON string at p.i (its opening quote) and
// returns its raw content and whether it holds an escape. Canonical is
// what encoding/json's encoder writes with HTML escaping: only \" \\ \b
// \f \n \r \t, \u00xx (lowercase hex) for the other controls, \u003c
// \u003e \u0026 \u2028 \u2029, and valid UTF-8 for everything else.
func (p *scanner) str() (raw string, esc bool, err error) {
	if p.i >= len(p.s) || p.s[p.i] != '"' {
		return "", false, p.errf("want a string")
	}
	p.i++
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		if plainByte[c] {
			p.i++
			continue
		}
		switch {
		case c == '"':
			raw = p.s[start:p.i]
			p.i++
			return raw, esc, nil
		case c == '\\':
			esc = true
			if p.i+1 >= len(p.s) {
				return "", false, p.errf("unterminated escape")
			}
			switch p.s[p.i+1] {
			case '"', '\\', 'b', 'f', 'n', 'r', 't':
				p.i += 2
				continue
			case 'u':
			default:
				return "", false, p.errf("escape not in canonical form")
			}
			if p.i+6 > len(p.s) {
				return "", false, p.errf("unterminated escape")
			}
			if !canonicalUEscape(p.s[p.i+2 : p.i+6]) {
				return "", false, p.errf("escape \\u%s not in canonical form", p.s[p.i+2:p.i+6])
			}
			p.i += 6
		case c < 0x20:
			return "", false, p.errf("unescaped control character")
		case c == '<' || c == '>' || c == '&':
			return "", false, p.errf("unescaped %q", c)
		case c < utf8.RuneSelf:
			p.i++
		default:
			r, n := utf8.DecodeRuneInString(p.s[p.i:])
			if r == utf8.RuneError && n == 1 {
				return "", false, p.errf("not UTF-8")
			}
			if r == '\u2028' || r == '\u2029' {
				return "", false, p.errf("unescaped U+%04X", r)
			}
			p.i += n
		}
	}
	return "", false, p.errf("unterminated string")
}

// canonicalUEscape reports whether h, the four digits of a \u escape, is
// one that encoding/json writes.
func canonicalUEscape(h string) bool {
	switch h {
	case "003c", "003e", "0026", "2028", "2029":
		return true
	}
	if h[0] != '0' || h[1] != '0' || (h[2] != '0' && h[2] != '1') {
		return false
	}
	d := h[3]
	var lo byte
	switch {
	case d >= '0' && d <= '9':
		lo = d - '0'
	case d >= 'a' && d <= 'f':
		lo = d - 'a' + 10
	default:
		return false
	}
	c := (h[2]-'0')<<4 | lo
	// These have short escapes.
	return c != '\b' && c != '\f' && c != '\n' && c != '\r' && c != '\t'
}

// unescape decodes the raw content of a canonical string (as str
// accepted it).
func unescape(raw string) string {
	b := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' || i+1 >= len(raw) {
			b = append(b, c)
			continue
		}
		i++
		switch raw[i] {
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			if i+5 > len(raw) {
				return string(b)
			}
			v, _ := strconv.ParseUint(raw[i+1:i+5], 16, 32)
			b = utf8.AppendRune(b, rune(v))
			i += 4
		default:
			b = append(b, raw[i])
		}
	}
	return string(b)
}

// decoded returns the string that raw (with esc as str returned it)
// encodes.
func decoded(raw string, esc bool) string {
	if esc {
		return unescape(raw)
	}
	return raw
}

// value reads one canonical JSON value at p.i; depth is the nesting of
// the containers it is in.
func (p *scanner) value(depth int) error {
	if p.i >= len(p.s) {
		return p.errf("want a value")
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		_, _, err := p.str()
		return err
	case c == 't':
		return p.lit("true")
	case c == 'f':
		return p.lit("false")
	case c == 'n':
		return p.lit("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	default:
		return p.errf("want a value")
	}
}

// digits consumes one or more ASCII digits.
func (p *scanner) digits() error {
	start := p.i
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
	}
	if p.i == start {
		return p.errf("want a digit")
	}
	return nil
}

// number reads a JSON number, kept as written (json.Number).
func (p *scanner) number() error {
	if p.s[p.i] == '-' {
		p.i++
	}
	if p.i < len(p.s) && p.s[p.i] == '0' {
		p.i++
	} else if err := p.digits(); err != nil {
		return err
	}
	if p.i < len(p.s) && p.s[p.i] == '.' {
		p.i++
		if err := p.digits(); err != nil {
			return err
		}
	}
	if p.i < len(p.s) && (p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		p.i++
		if p.i < len(p.s) && (p.s[p.i] == '+' || p.s[p.i] == '-') {
			p.i++
		}
		if err := p.digits(); err != nil {
			return err
		}
	}
	return nil
}

func (p *scanner) array(depth int) error {
	if depth > maxDataDepth {
		return p.errf("nested more than %d deep", maxDataDepth)
	}
	p.i++ // '['
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		return nil
	}
	for {
		if err := p.value(depth); err != nil {
			return err
		}
		if p.i >= len(p.s) {
			return p.errf("unterminated array")
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return nil
		default:
			return p.errf("want ',' or ']'")
		}
	}
}

// object reads an object whose keys are in strictly increasing byte
// order of their decoded strings (so no key repeats).
func (p *scanner) object(depth int) error {
	if depth > maxDataDepth {
		return p.errf("nested more than %d deep", maxDataDepth)
	}
	p.i++ // '{'
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return nil
	}
	var prev string
	var prevEsc, first = false, true
	for {
		at := p.i
		k, esc, err := p.str()
		if err != nil {
			return err
		}
		if !first && !keyLess(prev, prevEsc, k, esc) {
			return fmt.Errorf("byte %d: key not after the previous one (unsorted or repeated)", at)
		}
		prev, prevEsc, first = k, esc, false
		if err := p.lit(":"); err != nil {
			return err
		}
		if err := p.value(depth); err != nil {
			return err
		}
		if p.i >= len(p.s) {
			return p.errf("unterminated object")
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return nil
		default:
			return p.errf("want ',' or '}'")
		}
	}
}

// keyLess reports whether key a sorts strictly before key b, comparing
// their decoded strings.
func keyLess(a string, aEsc bool, b string, bEsc bool) bool {
	if aEsc || bEsc {
		return decoded(a, aEsc) < decoded(b, bEsc)
	}
	return a < b
}

// checkCanonicalData reports whether d is a JSON object in the canonical
// form canonicalJSON writes, at most maxDataDepth deep.
func checkCanonicalData(d string) error {
	p := scanner{s: d}
	if len(d) == 0 || d[0] != '{' {
		return errors.New("not a JSON object")
	}
	if err := p.object(1); err != nil {
		return err
	}
	if p.i != len(d) {
		return p.errf("trailing content")
	}
	return nil
}

// fields calls fn for each member of the canonical object at the start
// of d with its decoded key and raw value.
func fields(d string, fn func(key, val string) error) error {
	p := scanner{s: d}
	if len(d) == 0 || d[0] != '{' {
		return errors.New("not a JSON object")
	}
	p.i++
	if strings.HasPrefix(d[p.i:], "}") {
		return nil
	}
	for {
		k, esc, err := p.str()
		if err != nil {
			return err
		}
		if err := p.lit(":"); err != nil {
			return err
		}
		start := p.i
		if err := p.value(1); err != nil {
			return err
		}
		if err := fn(decoded(k, esc), d[start:p.i]); err != nil {
			return err
		}
		if p.i >= len(d) {
			return errors.New("unterminated object")
		}
		if d[p.i] == '}' {
			return nil
		}
		p.i++
	}
}

// stringValue decodes a raw canonical JSON string value.
func stringValue(key, val string) (string, error) {
	p := scanner{s: val}
	raw, esc, err := p.str()
	if err != nil || p.i != len(val) {
		return "", fmt.Errorf("%s: want a string", key)
	}
	return decoded(raw, esc), nil
}

// intValue decodes a raw JSON number as an int: an integer (no fraction
// or exponent) that fits, as encoding/json decodes into an int.
func intValue(key, val string) (int, error) {
	if strings.ContainsAny(val, ".eE") {
		return 0, fmt.Errorf("%s: want an integer", key)
	}
	n, err := strconv.Atoi(val)
	if err != nil || !(val[0] == '-' || (val[0] >= '0' && val[0] <= '9')) {
		return 0, fmt.Errorf("%s: want an integer that fits an int", key)
	}
	return n, nil
}

// decodeRun decodes canonical data as RunData: only its exact lowercase
// keys, strings for strings (not null), class an integer.
func decodeRun(d string) (RunData, error) {
	var r RunData
	err := fields(d, func(k, v string) error {
		var err error
		switch k {
		case "name":
			r.Name, err = stringValue(k, v)
		case "owner":
			r.Owner, err = stringValue(k, v)
		case "image":
			r.Image, err = stringValue(k, v)
		case "list":
			r.List, err = stringValue(k, v)
		case "endorser":
			r.Endorser, err = stringValue(k, v)
		case "class":
			r.Class, err = intValue(k, v)
		default:
			err = fmt.Errorf("unknown field %q", k)
		}
		return err
	})
	return r, err
}

// decodeMigrate decodes canonical data as MigrateData.
func decodeMigrate(d string) (MigrateData, error) {
	var m MigrateData
	err := fields(d, func(k, v string) error {
		var err error
		switch k {
		case "from":
			m.From, err = stringValue(k, v)
		case "run":
			m.Run, err = decodeRun(v)
			if err != nil {
				err = fmt.Errorf("run: %w", err)
			}
		default:
			err = fmt.Errorf("unknown field %q", k)
		}
		return err
	})
	return m, err
}

// decodeLease decodes canonical data as LeaseData.
func decodeLease(d string) (LeaseData, error) {
	var l LeaseData
	err := fields(d, func(k, v string) error {
		var err error
		switch k {
		case "mac":
			l.MAC, err = stringValue(k, v)
		case "ip":
			l.IP, err = stringValue(k, v)
		default:
			err = fmt.Errorf("unknown field %q", k)
		}
		return err
	})
	return l, err
}

// checkPayload checks the canonical data d (empty when absent) of an
// event of type t about vm: the typed payloads decode strictly and hold
// valid values, and the events that need a VM have one.
func checkPayload(t Type, vm, d string) error {
	switch t {
	case VMStarted, VMRestored:
		if d != "" {
			if _, err := decodeRun(d); err != nil {
				return fmt.Errorf("event %s: data: %w", t, err)
			}
		}
		if vm == "" {
			return fmt.Errorf("event %s: no vm", t)
		}
	case VMMigrated:
		if vm == "" {
			return fmt.Errorf("event %s: no vm", t)
		}
		var m MigrateData
		if d != "" {
			var err error
			if m, err = decodeMigrate(d); err != nil {
				return fmt.Errorf("event %s: data: %w", t, err)
			}
		}
		if !hostRE.MatchString(m.From) {
			return fmt.Errorf("event %s: data.from %q is not a host name", t, m.From)
		}
	case LeaseStart, LeaseEndType:
		var l LeaseData
		if d != "" {
			var err error
			if l, err = decodeLease(d); err != nil {
				return fmt.Errorf("event %s: data: %w", t, err)
			}
		}
		// One spelling per address, so that an end matches its start
		// and who-had finds what was recorded.
		mac, err := net.ParseMAC(l.MAC)
		if err != nil {
			return fmt.Errorf("event %s: data.mac: %w", t, err)
		}
		if mac.String() != l.MAC {
			return fmt.Errorf("event %s: data.mac %q: want %q", t, l.MAC, mac.String())
		}
		a, err := netip.ParseAddr(l.IP)
		if err != nil {
			return fmt.Errorf("event %s: data.ip: %w", t, err)
		}
		if a.Zone() != "" || a.String() != l.IP {
			return fmt.Errorf("event %s: data.ip %q: want an address without zone, written %q", t, l.IP, a.WithZone("").String())
		}
		if vm == "" {
			return fmt.Errorf("event %s: no vm", t)
		}
	case VMStopped:
		if vm == "" {
			return fmt.Errorf("event %s: no vm", t)
		}
	}
	return nil
}

// hostByte reports whether c may appear in a host name (hostRE).
func hostByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '/' || c == '-'
}

// num reads n ASCII digits at p.i as a number.
func (p *scanner) num(n int) (int, bool) {
	if p.i+n > len(p.s) {
		return 0, false
	}
	v := 0
	for _, c := range []byte(p.s[p.i : p.i+n]) {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	p.i += n
	return v, true
}

// timeValue reads the canonical time at p.i (after its opening quote,
// up to and including its closing quote): what time.Time.MarshalJSON
// writes for a UTC time in whole microseconds between the years 2000
// and 9999, "2006-01-02T15:04:05.999999Z" with the fraction's trailing
// zeros (and a lone dot) dropped.
func (p *scanner) timeValue() (time.Time, error) {
	bad := func(what string) (time.Time, error) {
		return time.Time{}, fmt.Errorf("field \"time\": byte %d: %s", p.i, what)
	}
	year, ok := p.num(4)
	if !ok || p.lit("-") != nil {
		return bad("want YYYY-")
	}
	month, ok := p.num(2)
	if !ok || p.lit("-") != nil {
		return bad("want MM-")
	}
	day, ok := p.num(2)
	if !ok || p.lit("T") != nil {
		return bad("want DDT")
	}
	hour, ok := p.num(2)
	if !ok || p.lit(":") != nil {
		return bad("want hh:")
	}
	minute, ok := p.num(2)
	if !ok || p.lit(":") != nil {
		return bad("want mm:")
	}
	sec, ok := p.num(2)
	if !ok {
		return bad("want ss")
	}
	ns := 0
	if p.i < len(p.s) && p.s[p.i] == '.' {
		p.i++
		start := p.i
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			if p.i-start == 6 {
				return bad("more precise than a microsecond")
			}
			ns = ns*10 + int(p.s[p.i]-'0')
			p.i++
		}
		n := p.i - start
		if n == 0 || p.s[p.i-1] == '0' {
			return bad("fraction not in canonical form")
		}
		for ; n < 9; n++ {
			ns *= 10
		}
	}
	if p.lit(`Z"`) != nil {
		return bad(`want Z" (UTC)`)
	}
	if year < 2000 || month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || minute > 59 || sec > 59 {
		return bad("out of range")
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, ns, time.UTC), nil
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// optString reads the optional envelope field `,"name":"…"`, non-empty
// and at most 256 bytes when present.
func (p *scanner) optString(name string) (string, error) {
	prefix := `,"` + name + `":`
	if !strings.HasPrefix(p.s[p.i:], prefix) {
		return "", nil
	}
	p.i += len(prefix)
	raw, esc, err := p.str()
	if err != nil {
		return "", fmt.Errorf("field %q: %w", name, err)
	}
	v := decoded(raw, esc)
	if v == "" {
		return "", fmt.Errorf("field %q: empty (omitted when canonical)", name)
	}
	if len(v) > 256 {
		return "", fmt.Errorf("field %q: more than 256 bytes", name)
	}
	return v, nil
}

// parse is Parse: it reads body as exactly the canonical encoding, then
// checks it as Marshal does.
func parse(body []byte) (Event, error) {
	e, err := scanEvent(body)
	if err != nil {
		return Event{}, fmt.Errorf("event: %w", err)
	}
	if err := checkPayload(e.Type, e.VM, e.dataString); err != nil {
		return Event{}, err
	}
	return e.Event, nil
}

// scanned is an event as read, with its data as a string.
type scanned struct {
	Event
	dataString string
}

// scanEvent reads the canonical envelope and data of body.
func scanEvent(body []byte) (scanned, error) {
	if len(body) > MaxEventSize {
		return scanned{}, fmt.Errorf("%d bytes, more than %d", len(body), MaxEventSize)
	}
	p := scanner{s: string(body)}
	var e Event
	e.V = SchemaVersion
	if err := p.lit(`{"v":1,"type":"`); err != nil {
		return scanned{}, err
	}
	start := p.i
	for p.i < len(p.s) && p.s[p.i] != '"' {
		p.i++
	}
	name := p.s[start:p.i]
	for _, t := range canonTypes {
		if string(t) == name {
			e.Type = t
			break
		}
	}
	if e.Type == "" {
		return scanned{}, fmt.Errorf("field \"type\": unknown type %.64q", name)
	}
	if err := p.lit(`","host":"`); err != nil {
		return scanned{}, err
	}
	start = p.i
	for p.i < len(p.s) && hostByte(p.s[p.i]) {
		p.i++
	}
	if n := p.i - start; n < 1 || n > 128 {
		return scanned{}, errors.New(`field "host": want 1-128 of [A-Za-z0-9._/-]`)
	}
	e.Host = p.s[start:p.i]
	if err := p.lit(`","time":"`); err != nil {
		return scanned{}, err
	}
	var err error
	if e.Time, err = p.timeValue(); err != nil {
		return scanned{}, err
	}
	if e.VM, err = p.optString("vm"); err != nil {
		return scanned{}, err
	}
	if e.Actor, err = p.optString("actor"); err != nil {
		return scanned{}, err
	}
	var data string
	if strings.HasPrefix(p.s[p.i:], `,"data":{`) {
		p.i += len(`,"data":`)
		start := p.i
		if err := p.object(1); err != nil {
			return scanned{}, fmt.Errorf("field \"data\": %w", err)
		}
		data = p.s[start:p.i]
	}
	if err := p.lit("}"); err != nil {
		return scanned{}, err
	}
	if p.i != len(p.s) {
		return scanned{}, p.errf("trailing content")
	}
	if data != "" {
		e.Data = []byte(data)
	}
	return scanned{e, data}, nil
}
