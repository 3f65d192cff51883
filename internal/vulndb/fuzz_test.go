package vulndb

import (
	"bytes"
	"testing"

	"github.com/go-json-experiment/json"
)

// FuzzParseOSV: parseOSV never panics, returns nil with every error, and
// what it returns holds its invariants.
func FuzzParseOSV(f *testing.F) {
	for _, a := range testAdvisories {
		f.Add([]byte(a))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := parseOSV(data)
		if err != nil {
			if a != nil {
				t.Fatalf("parseOSV returned %+v with error %v", a, err)
			}
			return
		}
		if a == nil || a.ID == "" || a.Modified.IsZero() || len(a.Summary) > maxSummaryBytes {
			t.Fatalf("parseOSV = %+v", a)
		}
		for _, af := range a.Affected {
			fam, ok := familyOf(af.Ecosystem)
			if !ok || fam.name != af.Family || af.Package == "" || len(af.Spec.Ranges)+len(af.Spec.Versions) == 0 {
				t.Fatalf("affected %+v", af)
			}
			for _, r := range af.Spec.Ranges {
				checkSorted(t, fam.order, r)
				for _, probe := range []string{"1.0-1", "0:1-1", "1.0-r0"} {
					if fam.order.valid(probe) == nil {
						af.Spec.affects(fam.order, probe)
					}
				}
			}
		}
	})
}

// FuzzVersionRanges: any range events and installed version, in any of
// the three orders, evaluate without panicking; a reported fix is above the
// installed version, and an unaffected version reports none.
func FuzzVersionRanges(f *testing.F) {
	f.Add("dpkg", "2.36-9+deb12u1", []byte(`[{"introduced": "0"}, {"fixed": "2.36-9+deb12u3"}]`))
	f.Add("rpm", "1:3.0.7-25.el9", []byte(`[{"introduced": "0"}, {"fixed": "1:3.0.7-25.el9_3"}]`))
	f.Add("apk", "3.1.4-r0", []byte(`[{"introduced": "0"}, {"fixed": "3.1.4-r1"}]`))
	f.Add("dpkg", "2.4.57-2", []byte(`[{"introduced": "2.4.50-1"}, {"last_affected": "2.4.57-2"}, {"limit": "3"}]`))
	f.Fuzz(func(t *testing.T, name, installed string, eventsJSON []byte) {
		var o order
		switch name {
		case "dpkg":
			o = orderDpkg
		case "rpm":
			o = orderRPM
		case "apk":
			o = orderAPK
		default:
			return
		}
		var in []osvEvent
		if json.Unmarshal(eventsJSON, &in) != nil {
			return
		}
		evs, err := normaliseEvents(o, in)
		if err != nil {
			if evs != nil {
				t.Fatalf("normaliseEvents returned %v with error %v", evs, err)
			}
			return
		}
		checkSorted(t, o, evs)
		if o.valid(installed) != nil {
			return
		}
		hit, fixed := rangeAffects(o, evs, installed)
		if !hit && fixed != "" {
			t.Fatalf("unaffected %q reports fix %q", installed, fixed)
		}
		if fixed != "" && o.compare(installed, fixed) >= 0 {
			t.Fatalf("%q affected with fix %q at or below it", installed, fixed)
		}
		sp := spec{Ranges: [][]event{evs}, Versions: []string{installed}}
		if ok, _ := sp.affects(o, installed); !ok {
			t.Fatalf("explicit version %q not affected", installed)
		}
	})
}

func checkSorted(t *testing.T, o order, evs []event) {
	t.Helper()
	for i := 1; i < len(evs); i++ {
		a, b := evs[i-1], evs[i]
		if b.Kind == evIntroduced && b.Version == "0" && !(a.Kind == evIntroduced && a.Version == "0") {
			t.Fatalf("events not sorted: %v", evs)
		}
	}
}

// FuzzOpenZip: the central directory walk and archive/zip never panic, and
// the entry bound holds for whatever openZip accepts.
func FuzzOpenZip(f *testing.F) {
	var buf bytes.Buffer
	f.Add([]byte("PK\x05\x06" + string(make([]byte, 18))))
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		lim := limits{zipSize: 1 << 20, entries: 8, dirSize: 1 << 12, entrySize: 1 << 16, totalSize: 1 << 18}
		zr, err := openZip(bytes.NewReader(data), int64(len(data)), lim)
		if err != nil {
			if zr != nil {
				t.Fatalf("openZip returned a reader with error %v", err)
			}
			return
		}
		if int64(len(zr.File)) > lim.entries {
			t.Fatalf("%d entries accepted, limit %d", len(zr.File), lim.entries)
		}
		var b bytes.Buffer
		for _, f := range zr.File {
			if ok, err := entryKind(f); err == nil && ok {
				if err := readEntry(f, lim.entrySize, &b); err == nil && int64(b.Len()) > lim.entrySize {
					t.Fatalf("entry of %d bytes read, limit %d", b.Len(), lim.entrySize)
				}
			}
		}
	})
}
