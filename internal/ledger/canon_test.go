package ledger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// parseSlow is the previous Parse: decode with encoding/json, re-encode
// with the previous Marshal, and require the same bytes. It is the
// reference the scanner is checked against.
func parseSlow(body []byte) (Event, error) {
	if len(body) > MaxEventSize {
		return Event{}, fmt.Errorf("event: %d bytes, more than %d", len(body), MaxEventSize)
	}
	if !utf8.Valid(body) {
		return Event{}, errors.New("event: not UTF-8")
	}
	var e Event
	if err := json.Unmarshal(body, &e); err != nil {
		return Event{}, fmt.Errorf("event: %w", err)
	}
	again, err := marshalSlow(e)
	if err != nil {
		return Event{}, err
	}
	if !bytes.Equal(again, body) {
		return Event{}, errors.New("event: not in canonical form")
	}
	return e, nil
}

func marshalSlow(e Event) ([]byte, error) {
	if err := checkSlow(e); err != nil {
		return nil, err
	}
	c := e
	c.Time = e.Time.UTC()
	if len(e.Data) > 0 {
		d, err := canonicalJSON(e.Data)
		if err != nil {
			return nil, err
		}
		c.Data = d
	}
	out, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	if len(out) > MaxEventSize {
		return nil, errors.New("too large")
	}
	return out, nil
}

func checkSlow(e Event) error {
	if e.V != SchemaVersion || !knownTypes[e.Type] || !hostRE.MatchString(e.Host) {
		return errors.New("bad version, type or host")
	}
	if e.Time.IsZero() || e.Time.Year() < 2000 || e.Time.Year() > 9999 || !e.Time.Equal(e.Time.Truncate(time.Microsecond)) {
		return errors.New("bad time")
	}
	for _, s := range []string{e.VM, e.Actor} {
		if len(s) > 256 || !utf8.ValidString(s) {
			return errors.New("bad vm or actor")
		}
	}
	if len(e.Data) > 0 {
		d := bytes.TrimSpace(e.Data)
		if len(d) == 0 || d[0] != '{' || !json.Valid(d) {
			return errors.New("data is not a JSON object")
		}
	}
	switch e.Type {
	case VMStarted, VMRestored:
		var d RunData
		return decodeDataSlow(e, &d)
	case VMMigrated:
		var d MigrateData
		if err := decodeDataSlow(e, &d); err != nil {
			return err
		}
		if !hostRE.MatchString(d.From) {
			return errors.New("bad from")
		}
	case LeaseStart, LeaseEndType:
		var d LeaseData
		if err := decodeDataSlow(e, &d); err != nil {
			return err
		}
		if _, err := net.ParseMAC(d.MAC); err != nil {
			return err
		}
		if _, err := netip.ParseAddr(d.IP); err != nil {
			return err
		}
		if e.VM == "" {
			return errors.New("no vm")
		}
	case VMStopped:
		if e.VM == "" {
			return errors.New("no vm")
		}
	}
	return nil
}

func decodeDataSlow(e Event, v any) error {
	if len(e.Data) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(e.Data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing content")
	}
	return nil
}

// stricterCase reports whether body is one the scanner refuses on
// purpose although parseSlow accepts it: data nested more than
// maxDataDepth deep, a typed payload with a key that is not exactly a
// field's lowercase name (encoding/json matches case-insensitively) or a
// null value, a run event without a vm, or a lease whose MAC or address
// is not in its one canonical spelling (net.HardwareAddr.String,
// netip.Addr.String, no zone).
func stricterCase(body []byte) bool {
	var env struct {
		Type Type
		VM   string
		Data json.RawMessage
	}
	if json.Unmarshal(body, &env) != nil {
		return false
	}
	switch env.Type {
	case VMStarted, VMRestored, VMMigrated:
		if env.VM == "" {
			return true
		}
	case LeaseStart, LeaseEndType:
		var l struct{ MAC, IP string }
		if json.Unmarshal(env.Data, &l) == nil {
			mac, merr := net.ParseMAC(l.MAC)
			a, aerr := netip.ParseAddr(l.IP)
			if merr == nil && mac.String() != l.MAC || aerr == nil && (a.Zone() != "" || a.String() != l.IP) {
				return true
			}
		}
	}
	if len(env.Data) == 0 {
		return false
	}
	if jsonDepth(env.Data) > maxDataDepth {
		return true
	}
	run := []string{"class", "endorser", "image", "list", "name", "owner"}
	switch env.Type {
	case VMStarted, VMRestored:
		return inexact(env.Data, run)
	case LeaseStart, LeaseEndType:
		return inexact(env.Data, []string{"ip", "mac"})
	case VMMigrated:
		if inexact(env.Data, []string{"from", "run"}) {
			return true
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(env.Data, &m) == nil && m["run"] != nil {
			return inexact(m["run"], run)
		}
	}
	return false
}

// inexact reports whether the object d has a key outside names or a
// null value.
func inexact(d []byte, names []string) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(d, &m) != nil {
		return false
	}
	for k, v := range m {
		known := false
		for _, n := range names {
			known = known || k == n
		}
		if !known || string(v) == "null" {
			return true
		}
	}
	return false
}

// jsonDepth is the nesting depth of containers in d, outside strings.
func jsonDepth(d []byte) int {
	depth, most, inStr := 0, 0, false
	for i := 0; i < len(d); i++ {
		switch c := d[i]; {
		case inStr && c == '\\':
			i++
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '{' || c == '[':
			depth++
			most = max(most, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return most
}

// canonSeeds are Marshal outputs covering every type, every string
// escape class, unicode, times with 0-6 fraction digits and nested data.
func canonSeeds(t testing.TB) [][]byte {
	t.Helper()
	at := time.Date(2026, 2, 28, 23, 59, 59, 0, time.UTC)
	run := RunData{Name: "job-1", Owner: "user1@site.example", Image: strings.Repeat("ab", 64), List: "site-images/2026.11", Endorser: "/CN=e", Class: 2}
	lease := LeaseData{MAC: "52:54:00:00:00:01", IP: "10.0.0.1"}
	var evs []Event
	add := func(typ Type, vm, actor string, at time.Time, data any) {
		e, err := NewEvent(typ, "hv-01.site.example", vm, at, data)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		e.Actor = actor
		evs = append(evs, e)
	}
	for _, typ := range canonTypes {
		var data any = map[string]any{"k": "v"}
		switch typ {
		case VMStarted, VMRestored:
			data = run
		case VMMigrated:
			data = MigrateData{From: "hv-02", Run: run}
		case LeaseStart, LeaseEndType:
			data = lease
		}
		add(typ, "uuid-1", "", at, data)
	}
	for n := 0; n <= 6; n++ {
		ns := []int{0, 100000000, 120000000, 123000000, 123400000, 123450000, 123456000}[n]
		add(VMStopped, "vm", "", time.Date(2000+n*1000/7, time.Month(1+n), 1+n*4, n, n*9, n*8, ns, time.UTC), nil)
	}
	add(VMStopped, "vm", "", time.Date(2024, 2, 29, 0, 0, 0, 1000, time.UTC), nil)
	add(VMStopped, "vm", "", time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC), nil)
	escapes := "q\" b\\ \b\f\n\r\t \x00\x01\x1f\x7f <>& \u2028\u2029 / é ☃ 😀 \ufffd"
	add(OperatorAction, escapes, escapes, at, map[string]any{escapes: escapes, "a<": 1, "a\\": 2, "a\"": 3, "é": []any{nil, true, false, "x"}})
	add(LeaseStart, "vm", "op", at, LeaseData{MAC: "52:54:00:00:00:01", IP: "fd00::1"})
	add(AlertRaised, "", "", at, map[string]any{})
	add(AlertRaised, "vm", "", at, json.RawMessage(`{"n":[1.0,1e5,-0,1E+5,-12.5e-3,0,{"a":{"b":[[[]]]}}],"z":{}}`))
	var out [][]byte
	for _, e := range evs {
		b, err := e.Marshal()
		if err != nil {
			t.Fatalf("%s: %v", e.Type, err)
		}
		out = append(out, b)
	}
	return out
}

// hostileBodies are bodies Parse must refuse, by name.
func hostileBodies(t testing.TB) map[string]string {
	good, err := mustEvent(t, LeaseStart, "vm", LeaseData{MAC: "52:54:00:00:00:01", IP: "10.0.0.1"}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	g := string(good)
	op := `{"v":1,"type":"operator.action","host":"h1","time":"2026-11-01T12:00:00Z","data":`
	run := `{"v":1,"type":"vm.started","host":"h1","time":"2026-11-01T12:00:00Z","data":`
	tm := func(s string) string { return strings.Replace(g, `2026-11-01T12:00:00Z`, s, 1) }
	return map[string]string{
		"truncated":             g[:len(g)-1],
		"lease mac uppercase":   strings.Replace(g, `52:54:00:00:00:01`, `52:54:00:00:00:AB`, 1),
		"lease mac dashes":      strings.Replace(g, `52:54:00:00:00:01`, `52-54-00-00-00-01`, 1),
		"lease ip zone":         strings.Replace(g, `"ip":"10.0.0.1"`, `"ip":"fe80::1%eth0"`, 1),
		"lease ip long form":    strings.Replace(g, `"ip":"10.0.0.1"`, `"ip":"2001:db8:0:0::1"`, 1),
		"vm.started without vm": run + `{"name":"n"}}`,
		"prefix only":           `{"v":1,"type":"`,
		"type unterminated":     `{"v":1,"type":"lease.start`,
		"escaped type":          strings.Replace(g, `lease.start`, `lease\u002estart`, 1),
		"host too long":         strings.Replace(g, `"host":"h1"`, `"host":"`+strings.Repeat("h", 129)+`"`, 1),
		"host escaped slash":    strings.Replace(g, `"host":"h1"`, `"host":"h\/1"`, 1),
		"vm empty":              strings.Replace(g, `"vm":"vm"`, `"vm":""`, 1),
		"actor empty":           strings.Replace(g, `"vm":"vm"`, `"vm":"vm","actor":""`, 1),
		"actor before vm":       strings.Replace(g, `"vm":"vm"`, `"actor":"a","vm":"vm"`, 1),
		"vm escaped slash":      strings.Replace(g, `"vm":"vm"`, `"vm":"v\/m"`, 1),
		"vm uppercase hex":      strings.Replace(g, `"vm":"vm"`, `"vm":"v\u001Fm"`, 1),
		"vm long escape of \\n": strings.Replace(g, `"vm":"vm"`, `"vm":"v\u000am"`, 1),
		"vm escaped letter":     strings.Replace(g, `"vm":"vm"`, `"vm":"v\u006d"`, 1),
		"vm escaped fffd":       strings.Replace(g, `"vm":"vm"`, `"vm":"v\ufffd"`, 1),
		"vm literal tab":        strings.Replace(g, `"vm":"vm"`, "\"vm\":\"v\tm\"", 1),
		"vm literal 2028":       strings.Replace(g, `"vm":"vm"`, "\"vm\":\"v\u2028m\"", 1),
		"vm literal ampersand":  strings.Replace(g, `"vm":"vm"`, `"vm":"v&m"`, 1),
		"vm escape at end":      strings.Replace(g, `"vm":"vm"`, `"vm":"vm\`, 1)[:strings.Index(g, `"vm":"vm"`)+9],
		"vm bad escape":         strings.Replace(g, `"vm":"vm"`, `"vm":"v\xm"`, 1),
		"vm surrogate":          strings.Replace(g, `"vm":"vm"`, `"vm":"v\ud800m"`, 1),
		"time no Z":             tm(`2026-11-01T12:00:00`),
		"time lowercase t":      tm(`2026-11-01t12:00:00Z`),
		"time offset":           tm(`2026-11-01T12:00:00+00:00`),
		"time trailing zero":    tm(`2026-11-01T12:00:00.10Z`),
		"time lone dot":         tm(`2026-11-01T12:00:00.Z`),
		"time zero fraction":    tm(`2026-11-01T12:00:00.000000Z`),
		"time seven digits":     tm(`2026-11-01T12:00:00.1234567Z`),
		"time month 13":         tm(`2026-13-01T12:00:00Z`),
		"time feb 30":           tm(`2026-02-30T12:00:00Z`),
		"time feb 29 non-leap":  tm(`2100-02-29T12:00:00Z`),
		"time hour 24":          tm(`2026-11-01T24:00:00Z`),
		"time second 60":        tm(`2026-11-01T12:00:60Z`),
		"time year 1999":        tm(`1999-12-31T23:59:59.999999Z`),
		"time 5-digit year":     tm(`12026-11-01T12:00:00Z`),
		"time short":            tm(`2026-1-01T12:00:00Z`),
		"time sign":             tm(`+026-11-01T12:00:00Z`),
		"data empty string key": op + `{"":1,"":2}}`,
		"data space":            op + `{"a": 1}}`,
		"data trailing comma":   op + `{"a":1,}}`,
		"data leading zero":     op + `{"a":01}}`,
		"data bare minus":       op + `{"a":-}}`,
		"data dot no digit":     op + `{"a":1.}}`,
		"data exp no digit":     op + `{"a":1e}}`,
		"data plus":             op + `{"a":+1}}`,
		"data nan":              op + `{"a":NaN}}`,
		"data tru":              op + `{"a":tru}}`,
		"data unsorted escaped": op + `{"b":1,"\u003c":2}}`,
		"data unterminated":     op + `{"a":[1,2`,
		"data array close":      op + `{"a":[1}}`,
		"data not object":       op + `"x"}`,
		"data empty array":      op + `[]}`,
		"data too deep":         op + strings.Repeat(`{"a":`, 33) + `1` + strings.Repeat(`}`, 33) + `}`,
		"data too deep arrays":  op + `{"a":` + strings.Repeat(`[`, 32) + strings.Repeat(`]`, 32) + `}}`,
		"run class float":       run + `{"class":1.0}}`,
		"run class exponent":    run + `{"class":1e2}}`,
		"run class overflow":    run + `{"class":9223372036854775808}}`,
		"run class string":      run + `{"class":"1"}}`,
		"run name number":       run + `{"name":1}}`,
		"run name null":         run + `{"name":null}}`,
		"run uppercase key":     run + `{"Name":"x"}}`,
		"run folded key":        run + `{"claſs":1}}`,
		"migrate run null":      `{"v":1,"type":"vm.migrated","host":"h1","time":"2026-11-01T12:00:00Z","data":{"from":"h2","run":null}}`,
		"migrate bad from":      `{"v":1,"type":"vm.migrated","host":"h1","time":"2026-11-01T12:00:00Z","data":{"from":"h 2"}}`,
		"migrate no data":       `{"v":1,"type":"vm.migrated","host":"h1","time":"2026-11-01T12:00:00Z"}`,
		"lease uppercase key":   strings.Replace(g, `"ip":`, `"IP":`, 1),
		"lease empty data":      strings.Replace(g, `{"ip":"10.0.0.1","mac":"52:54:00:00:00:01"}`, `{}`, 1),
		"stopped without vm":    `{"v":1,"type":"vm.stopped","host":"h1","time":"2026-11-01T12:00:00Z"}`,
		"nul byte":              g[:10] + "\x00" + g[10:],
	}
}

func TestParseHostile(t *testing.T) {
	for name, body := range hostileBodies(t) {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(body))
			if err == nil {
				t.Fatalf("Parse accepted %.300q", body)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "event") || msg != strings.ToLower(msg[:1])+msg[1:] {
				t.Errorf("error %q: want lowercase, starting with event", msg)
			}
			checkAgainstSlow(t, []byte(body))
		})
	}
}

// The stricter cases are refused by Marshal too, and detected as such.
func TestStricterCasesRefusedByMarshal(t *testing.T) {
	for name, body := range hostileBodies(t) {
		es, err := parseSlow([]byte(body))
		if err != nil {
			continue
		}
		if !stricterCase([]byte(body)) {
			t.Errorf("%s: parseSlow accepts it but it is not a documented stricter case", name)
		}
		if _, err := es.Marshal(); err == nil {
			t.Errorf("%s: Parse refuses it but Marshal accepts the event", name)
		}
	}
	for _, name := range []string{"run uppercase key", "run folded key", "run name null", "migrate run null", "lease uppercase key", "data too deep", "data too deep arrays",
		"lease mac uppercase", "lease mac dashes", "lease ip zone", "lease ip long form", "vm.started without vm"} {
		if _, err := parseSlow([]byte(hostileBodies(t)[name])); err != nil {
			t.Errorf("%s: parseSlow refuses it (%v): not a stricter case", name, err)
		}
	}
}

func TestParseErrorLocation(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"v":2}`, "event: byte 0: "},
		{`{"v":1,"type":"vm.stopped","host":"h1","time":"2026-11-01T12:00:00.10Z","vm":"x"}`, `event: field "time": byte 69: fraction not in canonical form`},
		{`{"v":1,"type":"vm.stopped","host":"h1","time":"2026-11-01T12:00:00Z","vm":"a<"}`, `event: field "vm": byte 76: unescaped '<'`},
		{`{"v":1,"type":"alert.raised","host":"h1","time":"2026-11-01T12:00:00Z","data":{"b":1,"a":2}}`, `event: field "data": byte 85: key not after`},
		{`{"v":1,"type":"vm.stopped","host":"h1","time":"2026-11-01T12:00:00Z","vm":"x"} `, "event: byte 78: trailing content"},
	} {
		_, err := Parse([]byte(tc.body))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Parse(%s) = %v, want an error starting %q", tc.body, err, tc.want)
		}
	}
}

func TestParseMatchesSlowOnSeeds(t *testing.T) {
	for _, b := range canonSeeds(t) {
		e, err := Parse(b)
		if err != nil {
			t.Fatalf("Parse(%s): %v", b, err)
		}
		checkAgainstSlow(t, b)
		// The event does not alias the body.
		d := append([]byte(nil), e.Data...)
		for i := range b {
			b[i] = 'x'
		}
		if !bytes.Equal(d, e.Data) {
			t.Fatalf("Data changed with the body")
		}
	}
}

// checkAgainstSlow checks Parse against parseSlow on b.
func checkAgainstSlow(t *testing.T, b []byte) {
	t.Helper()
	e, err := Parse(b)
	es, errSlow := parseSlow(b)
	switch {
	case err == nil && errSlow != nil:
		t.Fatalf("Parse accepts what parseSlow refuses (%v): %q", errSlow, b)
	case err == nil:
		if !reflect.DeepEqual(e, es) || !bytes.Equal(e.Data, es.Data) {
			t.Fatalf("Parse and parseSlow differ on %q:\n%#v\n%#v", b, e, es)
		}
		again, err := e.Marshal()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("Marshal(Parse(%q)) = %q, %v", b, again, err)
		}
	case errSlow == nil:
		if !stricterCase(b) {
			t.Fatalf("Parse refuses (%v) what parseSlow accepts, not a documented stricter case: %q", err, b)
		}
		if _, err := es.Marshal(); err == nil {
			t.Fatalf("Parse refuses a stricter case that Marshal accepts: %q", b)
		}
	}
}

func FuzzParseCanonical(f *testing.F) {
	for _, b := range canonSeeds(f) {
		f.Add(b)
	}
	for _, b := range hostileBodies(f) {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in := append([]byte(nil), b...)
		checkAgainstSlow(t, b)
		if !bytes.Equal(in, b) {
			t.Fatalf("Parse changed its input")
		}
	})
}

// workloadBodies are the kinds of event of bench/ledgerbench's workload.
func workloadBodies(b testing.TB) map[string][]byte {
	at := time.Date(2026, 1, 1, 0, 12, 34, 567000000, time.UTC)
	vm := "9e3779b1-0000-4000-8000-000000000001"
	host := "hv-03.site.example"
	mk := func(typ Type, actor string, data any) []byte {
		e, err := NewEvent(typ, host, vm, at, data)
		if err != nil {
			b.Fatal(err)
		}
		e.Actor = actor
		out, err := e.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		return out
	}
	lease := LeaseData{MAC: "52:54:00:00:00:01", IP: "10.3.45.67"}
	return map[string][]byte{
		"vm.started":      mk(VMStarted, "", RunData{Name: "job-1", Owner: "user1@site.example", Image: strings.Repeat("ab", 64), List: "site-images/2026.11", Endorser: "endorser1@site.example", Class: 2}),
		"operator.action": mk(OperatorAction, "op1@site.example", map[string]string{"action": "console.open"}),
		"lease.start":     mk(LeaseStart, "", lease),
		"lease.end":       mk(LeaseEndType, "", lease),
		"vm.stopped":      mk(VMStopped, "", nil),
	}
}

func BenchmarkParse(b *testing.B) {
	bodies := workloadBodies(b)
	for _, kind := range []string{"vm.started", "operator.action", "lease.start", "lease.end", "vm.stopped"} {
		body := bodies[kind]
		for _, impl := range []struct {
			name  string
			parse func([]byte) (Event, error)
		}{{"fast", Parse}, {"slow", parseSlow}} {
			b.Run(kind+"/"+impl.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(body)))
				for b.Loop() {
					if _, err := impl.parse(body); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
