package vulndb

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

func TestVersionOrder(t *testing.T) {
	tests := []struct {
		o    order
		a, b string
		want int
	}{
		{orderDpkg, "2.36-9+deb12u3", "2.36-9+deb12u10", -1},
		{orderDpkg, "1:1.0-1", "2.0-1", 1}, // epoch wins
		{orderDpkg, "0:2.0-1", "2.0-1", 0},
		{orderDpkg, "3.0.11-1~deb12u2", "3.0.11-1", -1}, // tilde sorts first
		{orderDpkg, "1.0~rc1-1", "1.0-1", -1},
		{orderDpkg, "5.2.15-2+b2", "5.2.15-2", 1},
		{orderDpkg, "5.2.15-2+deb12u1", "5.2.15-2+b2", 1},
		{orderDpkg, "1:8.9p1-3ubuntu0.10", "1:8.9p1-3ubuntu0.6", 1},
		{orderRPM, "1:3.0.7-25.el9", "1:3.0.7-25.el9_3", -1},
		{orderRPM, "0:4.9.3-2.el9_8.1", "4.9.3-2.el9_8.1", 0},
		{orderRPM, "2.34-83.el9_3.10", "2.34-83.el9_3.7", 1},
		{orderRPM, "1.0~rc1-1", "1.0-1", -1},
		{orderRPM, "1:1.0-1", "2.0-1", 1},
		{orderAPK, "3.1.4-r1", "3.1.4-r10", -1},
		{orderAPK, "3.1.4-r0", "3.1.4", 1},
		{orderAPK, "1.2.3_rc1-r0", "1.2.3-r0", -1},
		{orderAPK, "1.2.3_p1-r0", "1.2.3-r0", 1},
		{orderAPK, "1.36.1-r29", "1.36.1-r30", -1},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%v %s %s", tc.o, tc.a, tc.b), func(t *testing.T) {
			for _, v := range []string{tc.a, tc.b} {
				if err := tc.o.valid(v); err != nil {
					t.Fatalf("valid(%q) = %v", v, err)
				}
			}
			if got := sign(tc.o.compare(tc.a, tc.b)); got != tc.want {
				t.Errorf("compare(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
			}
			if got := sign(tc.o.compare(tc.b, tc.a)); got != -tc.want {
				t.Errorf("compare(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
			}
		})
	}
}

func sign(c int) int {
	switch {
	case c < 0:
		return -1
	case c > 0:
		return 1
	}
	return 0
}

func TestVersionInvalid(t *testing.T) {
	tests := []struct {
		o order
		v string
	}{
		{orderDpkg, ""},
		{orderDpkg, "abc"},
		{orderDpkg, "1.0-1 "},
		{orderDpkg, "x:1.0"},
		{orderDpkg, "1.0-1$"},
		{orderDpkg, strings.Repeat("1", maxVersionLen+1)},
		{orderRPM, ""},
		{orderRPM, "1.0-1-2"},
		{orderRPM, "a:1.0"},
		{orderRPM, ":1.0"},
		{orderRPM, "1.0-"},
		{orderRPM, "1.0 1"},
		{orderRPM, "1.0/1"},
		{orderAPK, ""},
		{orderAPK, "1.0-r"},
		{orderAPK, "r1"},
		{orderAPK, "1.0_bogus"},
		{order(0), "1.0"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%v %q", tc.o, tc.v), func(t *testing.T) {
			if err := tc.o.valid(tc.v); err == nil {
				t.Errorf("valid(%q) = nil, want an error", tc.v)
			}
		})
	}
}

func TestRangeAffects(t *testing.T) {
	ev := func(kind, v string) osvEvent {
		e := osvEvent{}
		s := v
		switch kind {
		case "introduced":
			e.Introduced = &s
		case "fixed":
			e.Fixed = &s
		case "last_affected":
			e.LastAffected = &s
		case "limit":
			e.Limit = &s
		}
		return e
	}
	tests := []struct {
		name      string
		events    []osvEvent
		version   string
		want      bool
		wantFixed string
	}{
		{"introduced 0, fixed: below", []osvEvent{ev("introduced", "0"), ev("fixed", "2.0-1")}, "1.0-1", true, "2.0-1"},
		{"introduced 0, fixed: at fix", []osvEvent{ev("introduced", "0"), ev("fixed", "2.0-1")}, "2.0-1", false, ""},
		{"introduced 0, fixed: above", []osvEvent{ev("introduced", "0"), ev("fixed", "2.0-1")}, "2.0-2", false, ""},
		{"events out of order", []osvEvent{ev("fixed", "2.0-1"), ev("introduced", "0")}, "1.5-1", true, "2.0-1"},
		{"below introduced", []osvEvent{ev("introduced", "1.0-1"), ev("fixed", "2.0-1")}, "0.9-1", false, ""},
		{"at introduced", []osvEvent{ev("introduced", "1.0-1"), ev("fixed", "2.0-1")}, "1.0-1", true, "2.0-1"},
		{"only introduced", []osvEvent{ev("introduced", "0")}, "99-1", true, ""},
		{"last_affected at", []osvEvent{ev("introduced", "0"), ev("last_affected", "2.0-1")}, "2.0-1", true, ""},
		{"last_affected above", []osvEvent{ev("introduced", "0"), ev("last_affected", "2.0-1")}, "2.0-2", false, ""},
		{"reintroduced: second window", []osvEvent{ev("introduced", "0"), ev("fixed", "1.0-1"), ev("introduced", "2.0-1"), ev("fixed", "2.5-1")}, "2.1-1", true, "2.5-1"},
		{"reintroduced: between windows", []osvEvent{ev("introduced", "0"), ev("fixed", "1.0-1"), ev("introduced", "2.0-1"), ev("fixed", "2.5-1")}, "1.5-1", false, ""},
		{"reintroduced: first window", []osvEvent{ev("introduced", "0"), ev("fixed", "1.0-1"), ev("introduced", "2.0-1"), ev("fixed", "2.5-1")}, "0.5-1", true, "1.0-1"},
		{"limit: at limit", []osvEvent{ev("introduced", "0"), ev("limit", "3.0-1")}, "3.0-1", false, ""},
		{"limit: below limit", []osvEvent{ev("introduced", "0"), ev("limit", "3.0-1")}, "2.0-1", true, ""},
		{"introduced and fixed at the same version", []osvEvent{ev("fixed", "1.0-1"), ev("introduced", "1.0-1")}, "1.0-1", false, ""},
		{"fix with epoch", []osvEvent{ev("introduced", "0"), ev("fixed", "1:1.0-1")}, "9.0-1", true, "1:1.0-1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := normaliseEvents(orderDpkg, tc.events)
			if err != nil {
				t.Fatal(err)
			}
			got, fixed := rangeAffects(orderDpkg, evs, tc.version)
			if got != tc.want || fixed != tc.wantFixed {
				t.Errorf("rangeAffects(%s) = %v, %q; want %v, %q", tc.version, got, fixed, tc.want, tc.wantFixed)
			}
		})
	}

	bad := []struct {
		name   string
		events []osvEvent
	}{
		{"no events", nil},
		{"no introduced", []osvEvent{ev("fixed", "1.0-1")}},
		{"event with no kind", []osvEvent{ev("introduced", "0"), {}}},
		{"event with two kinds", []osvEvent{{Introduced: ptr("0"), Fixed: ptr("1.0-1")}}},
		{"invalid version", []osvEvent{ev("introduced", "0"), ev("fixed", "not a version")}},
		{"0 is only special when introduced", []osvEvent{ev("introduced", "0"), ev("fixed", "")}},
	}
	for _, tc := range bad {
		t.Run("rejects "+tc.name, func(t *testing.T) {
			if evs, err := normaliseEvents(orderDpkg, tc.events); err == nil || evs != nil {
				t.Errorf("normaliseEvents = %v, %v; want nil and an error", evs, err)
			}
		})
	}
}

func ptr(s string) *string { return &s }

func TestCVSS(t *testing.T) {
	tests := []struct {
		vector string
		want   float64
		ok     bool
	}{
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8, true},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0, true},
		{"CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N", 5.5, true},
		{"CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N", 3.1, true},
		{"CVSS:3.0/AV:N/AC:L/PR:L/UI:R/S:C/C:L/I:L/A:N", 5.4, true},
		{"CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H", 8.1, true},
		{"CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8, true},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0, true},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:P/RL:O", 9.8, true},
		{"AV:N/AC:L/Au:N/C:P/I:P/A:P", 7.5, true},
		{"AV:N/AC:L/Au:N/C:C/I:C/A:C", 10.0, true},
		{"AV:L/AC:L/Au:N/C:P/I:N/A:N", 2.1, true},
		{"AV:N/AC:M/Au:N/C:N/I:P/A:N", 4.3, true},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H", 0, false},          // A missing
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/A:H", 0, false},  // duplicate
		{"CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 0, false},      // bad value
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/ZZ:Q", 0, false}, // unknown metric
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", 0, false},
		{"CVSS:3.1", 0, false},
		{"AV:N/AC:L/Au:N/C:P/I:P", 0, false},
		{"", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.vector, func(t *testing.T) {
			score, ok := cvss3Score(tc.vector)
			if strings.HasPrefix(tc.vector, "AV:") {
				score, ok = cvss2Score(tc.vector)
			}
			if ok != tc.ok || score != tc.want {
				t.Errorf("score(%q) = %v, %v; want %v, %v", tc.vector, score, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestSeverity(t *testing.T) {
	const cvss98 = `{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}`
	entry := func(eco, top, affectedExtra string) string {
		return `{"id": "X-1", "modified": "2024-01-01T00:00:00Z", ` + top + `
			"affected": [{"package": {"ecosystem": "` + eco + `", "name": "p"}, ` + affectedExtra + `
			"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]}]}`
	}
	tests := []struct {
		name string
		json string
		want inventory.Severity
	}{
		{"debian urgency high", entry("Debian:12", "", `"ecosystem_specific": {"urgency": "high"},`), inventory.High},
		{"debian urgency beats CVSS", entry("Debian:12", `"severity": [`+cvss98+`],`, `"ecosystem_specific": {"urgency": "low"},`), inventory.Low},
		{"debian urgency with asterisk", entry("Debian:12", "", `"ecosystem_specific": {"urgency": "medium*"},`), inventory.Medium},
		{"debian unimportant", entry("Debian:12", "", `"ecosystem_specific": {"urgency": "unimportant"},`), inventory.Info},
		{"debian not yet assigned falls to CVSS", entry("Debian:12", `"severity": [`+cvss98+`],`, `"ecosystem_specific": {"urgency": "not yet assigned"},`), inventory.Critical},
		{"debian not yet assigned, no CVSS", entry("Debian:12", "", `"ecosystem_specific": {"urgency": "not yet assigned"},`), inventory.Medium},
		{"urgency in database_specific", entry("Debian:12", `"database_specific": {"urgency": "high"},`, ""), inventory.High},
		{"urgency of the wrong type ignored", entry("Debian:12", "", `"ecosystem_specific": {"urgency": 3},`), inventory.Medium},
		{"ubuntu negligible", entry("Ubuntu:22.04:LTS", `"severity": [{"type": "Ubuntu", "score": "negligible"}, `+cvss98+`],`, ""), inventory.Low},
		{"ubuntu critical", entry("Ubuntu:22.04:LTS", `"severity": [{"type": "Ubuntu", "score": "critical"}],`, ""), inventory.Critical},
		{"ubuntu untriaged falls to CVSS", entry("Ubuntu:22.04:LTS", `"severity": [{"type": "Ubuntu", "score": "untriaged"}, `+cvss98+`],`, ""), inventory.Critical},
		{"rocky summary prefix", entry("Rocky Linux:9", `"summary": "Important: kernel security update",`, ""), inventory.High},
		{"alma summary prefix", entry("AlmaLinux:9", `"summary": "Low: bind security update",`, ""), inventory.Low},
		{"summary prefix ignored for debian", entry("Debian:12", `"summary": "Critical: a note",`, ""), inventory.Medium},
		{"database_specific severity", entry("Rocky Linux:9", `"database_specific": {"severity": "Moderate"},`, ""), inventory.Medium},
		{"affected-level CVSS", entry("Alpine:v3.19", "", `"severity": [`+cvss98+`],`), inventory.Critical},
		{"CVSS v2 tops out at high", entry("Alpine:v3.19", `"severity": [{"type": "CVSS_V2", "score": "AV:N/AC:L/Au:N/C:C/I:C/A:C"}],`, ""), inventory.High},
		{"v3 preferred to v2", entry("Alpine:v3.19", `"severity": [{"type": "CVSS_V2", "score": "AV:N/AC:L/Au:N/C:C/I:C/A:C"}, {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N"}],`, ""), inventory.Low},
		{"CVSS v4 not scored", entry("Alpine:v3.19", `"severity": [{"type": "CVSS_V4", "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}],`, ""), inventory.Medium},
		{"nothing usable", entry("Alpine:v3.19", "", ""), inventory.Medium},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := parseOSV([]byte(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			if len(a.Affected) != 1 || a.Affected[0].Severity != tc.want {
				t.Errorf("severity = %+v, want %v", a.Affected, tc.want)
			}
		})
	}
}

func TestParseOSV(t *testing.T) {
	t.Run("fields", func(t *testing.T) {
		a, err := parseOSV([]byte(testAdvisories["UBUNTU-CVE-2024-6387"]))
		if err != nil {
			t.Fatal(err)
		}
		if a.ID != "UBUNTU-CVE-2024-6387" || a.Summary != "regreSSHion: race condition in sshd's SIGALRM handler" ||
			strings.Join(a.Aliases, ",") != "CVE-2024-6387" || len(a.Affected) != 3 || a.Withdrawn {
			t.Errorf("parseOSV = %+v", a)
		}
		if got := a.Affected[2]; got.Ecosystem != "Ubuntu:Pro:18.04:LTS" || got.Family != "Ubuntu" || got.Package != "openssh" {
			t.Errorf("affected[2] = %+v", got)
		}
	})
	t.Run("summary from details", func(t *testing.T) {
		a, err := parseOSV([]byte(testAdvisories["DEBIAN-CVE-2023-4911"]))
		if err != nil {
			t.Fatal(err)
		}
		if want := "A buffer overflow was discovered in the GNU C Library's dynamic loader ld.so"; a.Summary != want {
			t.Errorf("Summary = %q, want %q", a.Summary, want)
		}
	})
	t.Run("long summary cut at a rune", func(t *testing.T) {
		long := strings.Repeat("é", 400)
		a, err := parseOSV([]byte(`{"id": "L", "modified": "2024-01-01T00:00:00Z", "summary": "` + long + `"}`))
		if err != nil {
			t.Fatal(err)
		}
		if len(a.Summary) > maxSummaryBytes || !strings.HasSuffix(a.Summary, "é…") {
			t.Errorf("Summary of %d bytes ends %q", len(a.Summary), a.Summary[len(a.Summary)-8:])
		}
	})
	t.Run("unsupported ecosystems and range types are left out", func(t *testing.T) {
		a, err := parseOSV([]byte(`{"id": "G", "modified": "2024-01-01T00:00:00Z", "affected": [
			{"package": {"ecosystem": "npm", "name": "x"}, "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}]},
			{"package": {"ecosystem": "Debian:12", "name": "x"}, "ranges": [{"type": "GIT", "repo": "r", "events": [{"introduced": "0"}]}]},
			{"ranges": [{"type": "GIT", "repo": "https://example.org/r", "events": [{"introduced": "abc"}]}]},
			{"package": {"ecosystem": "Debian:12", "name": "y"}, "versions": ["1.0-1", "not a version"]}],
			"summary": "brackets [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[ in a string do not nest"}`))
		if err != nil {
			t.Fatal(err)
		}
		if len(a.Affected) != 1 || a.Affected[0].Package != "y" || len(a.Affected[0].Spec.Versions) != 1 || a.SkippedRanges != 1 {
			t.Errorf("parseOSV = %+v", a)
		}
	})

	bad := []struct{ name, json, want string }{
		{"empty", ``, "not a JSON object"},
		{"array", `[]`, "not a JSON object"},
		{"string", `"x"`, "not a JSON object"},
		{"no id", `{"modified": "2024-01-01T00:00:00Z"}`, "empty id"},
		{"id with control character", `{"id": "A\u0007", "modified": "2024-01-01T00:00:00Z"}`, "control character"},
		{"long id", `{"id": "` + strings.Repeat("A", maxIDLen+1) + `", "modified": "2024-01-01T00:00:00Z"}`, "more than the limit"},
		{"bad modified", `{"id": "A", "modified": "yesterday"}`, "not an RFC 3339 time"},
		{"bad withdrawn", `{"id": "A", "modified": "2024-01-01T00:00:00Z", "withdrawn": "soon"}`, "withdrawn"},
		{"duplicate key", `{"id": "A", "modified": "2024-01-01T00:00:00Z", "id": "B"}`, "duplicate"},
		{"trailing data", `{"id": "A", "modified": "2024-01-01T00:00:00Z"}x`, "after top-level value"},
		{"aliases not strings", `{"id": "A", "modified": "2024-01-01T00:00:00Z", "aliases": [1]}`, "unmarshal"}, // encoding/json has said both "cannot unmarshal" and "unable to unmarshal" here
		{"empty alias", `{"id": "A", "modified": "2024-01-01T00:00:00Z", "aliases": [""]}`, "empty alias"},
		{"package name empty", `{"id": "A", "modified": "2024-01-01T00:00:00Z", "affected": [{"package": {"ecosystem": "Debian:12", "name": ""}}]}`, "empty package name"},
		{"too deep", `{"id": "A", "modified": "2024-01-01T00:00:00Z", "database_specific": ` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}`, "nested 65 deep"},
		{"too many ranges", `{"id": "A", "modified": "2024-01-01T00:00:00Z", "affected": [{"package": {"ecosystem": "Debian:12", "name": "p"}, "ranges": [` +
			strings.Repeat(`{"type": "ECOSYSTEM", "events": []},`, maxRanges) + `{}]}]}`, "ranges, more than the limit"},
	}
	for _, tc := range bad {
		t.Run("rejects "+tc.name, func(t *testing.T) {
			a, err := parseOSV([]byte(tc.json))
			if err == nil || a != nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parseOSV = %+v, %v; want nil and an error containing %q", a, err, tc.want)
			}
		})
	}
}
