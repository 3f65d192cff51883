package eol

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

const distroInfoDir = "/usr/share/distro-info"

// hostDistroInfo loads the host's distro-info-data; the package must be
// installed (it is under CI).
func hostDistroInfo(t *testing.T) *Data {
	t.Helper()
	if _, err := os.Stat(filepath.Join(distroInfoDir, "debian.csv")); err != nil {
		msg := "Debian package distro-info-data is not installed (apt-get install -y --no-install-recommends distro-info-data): " + err.Error()
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	d, err := LoadDistroInfo(distroInfoDir)
	if err != nil {
		t.Fatalf("LoadDistroInfo(%s) = %v", distroInfoDir, err)
	}
	return d
}

func date(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

// The real distro-info-data files, at fixed dates chosen far from any
// boundary so that updates of the package do not change the outcome.
func TestLookupDistroInfo(t *testing.T) {
	data := hostDistroInfo(t)
	tests := []struct {
		name       string
		os         inventory.OS
		at         string
		known, eol bool
		dateYear   int      // year of Date, 0: not checked
		release    string   // substring of Release
		source     []string // substrings of Source
	}{
		{"bookworm by version, supported", inventory.OS{ID: "debian", VersionID: "12"}, "2025-01-01", true, false, 2028, "Debian 12 (bookworm)", []string{"security support until 2026-", "LTS until 2028-"}},
		{"bookworm in LTS is supported", inventory.OS{ID: "debian", VersionID: "12"}, "2027-01-01", true, false, 2028, "bookworm) LTS", []string{"security support until 2026-"}},
		{"bookworm after LTS", inventory.OS{ID: "debian", VersionID: "12"}, "2028-07-01", true, true, 2028, "bookworm", []string{"ELTS (paid) until 2033-"}},
		{"bullseye by codename only", inventory.OS{ID: "debian", VersionCodename: "bullseye"}, "2023-01-01", true, false, 2026, "Debian 11", nil},
		{"buster in LTS is supported", inventory.OS{ID: "debian", VersionID: "10"}, "2023-06-01", true, false, 2024, "buster) LTS", []string{"LTS until 2024-"}},
		{"buster after LTS", inventory.OS{ID: "debian", VersionID: "10"}, "2024-07-01", true, true, 2024, "buster", []string{"security support until 2022-"}},
		{"squeeze 6.0 exact version", inventory.OS{ID: "debian", VersionID: "6.0"}, "2010-01-01", false, false, 0, "", []string{"not released"}},
		{"squeeze 6.0 after release", inventory.OS{ID: "debian", VersionID: "6.0"}, "2012-01-01", true, false, 2016, "squeeze", nil},
		{"jammy LTS supported", inventory.OS{ID: "ubuntu", VersionID: "22.04"}, "2025-01-01", true, false, 2027, "Ubuntu 22.04 LTS (jammy)", []string{"ESM (Ubuntu Pro) until 2032-"}},
		{"bionic past standard support", inventory.OS{ID: "ubuntu", VersionID: "18.04", VersionCodename: "bionic"}, "2025-01-01", true, true, 2023, "bionic", []string{"ESM"}},
		{"lunar interim past end", inventory.OS{ID: "ubuntu", VersionID: "23.04"}, "2025-01-01", true, true, 2024, "lunar", nil},
		{"focal by codename", inventory.OS{ID: "ubuntu", VersionCodename: "focal"}, "2022-01-01", true, false, 2025, "20.04", nil},
		// Negative and unknown cases.
		{"unknown debian version", inventory.OS{ID: "debian", VersionID: "99"}, "2025-01-01", false, false, 0, "", []string{"not in distro-info-data"}},
		{"sid has no security support", inventory.OS{ID: "debian", VersionCodename: "sid"}, "2025-01-01", false, false, 0, "", []string{"not released"}},
		{"testing not yet released", inventory.OS{ID: "debian", VersionCodename: "forky"}, "2025-01-01", false, false, 0, "", []string{"not released"}},
		{"ubuntu unknown version", inventory.OS{ID: "ubuntu", VersionID: "99.04"}, "2025-01-01", false, false, 0, "", []string{"not in distro-info-data"}},
		{"ubuntu codename mismatch", inventory.OS{ID: "ubuntu", VersionCodename: "nosuch"}, "2025-01-01", false, false, 0, "", nil},
		{"no os identified", inventory.OS{}, "2025-01-01", false, false, 0, "", []string{"not identified"}},
		{"derivative not guessed", inventory.OS{ID: "linuxmint", IDLike: []string{"ubuntu"}, VersionID: "21.3"}, "2025-01-01", false, false, 0, "", []string{"no end-of-life data"}},
		{"debian 1.x major ambiguous", inventory.OS{ID: "debian", VersionID: "1"}, "2025-01-01", false, false, 0, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Lookup(tt.os, date(tt.at), data)
			if got.Known != tt.known || got.EOL != tt.eol {
				t.Fatalf("Lookup(%+v, %s) = %+v, want known=%v eol=%v", tt.os, tt.at, got, tt.known, tt.eol)
			}
			if tt.dateYear != 0 && got.Date.Year() != tt.dateYear {
				t.Errorf("Lookup(%+v).Date = %v, want a date in %d", tt.os, got.Date, tt.dateYear)
			}
			if !strings.Contains(got.Release, tt.release) {
				t.Errorf("Lookup(%+v).Release = %q, want it to contain %q", tt.os, got.Release, tt.release)
			}
			for _, s := range tt.source {
				if !strings.Contains(got.Source, s) {
					t.Errorf("Lookup(%+v).Source = %q, want it to contain %q", tt.os, got.Source, s)
				}
			}
			if got.Source == "" {
				t.Errorf("Lookup(%+v).Source is empty", tt.os)
			}
		})
	}
}

func TestLookupNilData(t *testing.T) {
	for _, id := range []string{"debian", "ubuntu"} {
		got := Lookup(inventory.OS{ID: id, VersionID: "12"}, date("2025-01-01"), nil)
		if got.Known || !strings.Contains(got.Source, "not loaded") {
			t.Errorf("Lookup(%s, nil data) = %+v, want unknown, distro-info-data not loaded", id, got)
		}
	}
}

func TestLookupTable(t *testing.T) {
	tests := []struct {
		name       string
		os         inventory.OS
		at         string
		known, eol bool
		date       string
		release    string
	}{
		{"rhel 9 minor", inventory.OS{ID: "rhel", VersionID: "9.3"}, "2026-01-01", true, false, "2032-05-31", "Red Hat Enterprise Linux 9"},
		{"rhel 7 past maintenance", inventory.OS{ID: "rhel", VersionID: "7.9"}, "2025-01-01", true, true, "2024-06-30", "Red Hat Enterprise Linux 7"},
		{"rocky 8", inventory.OS{ID: "rocky", VersionID: "8.10"}, "2026-01-01", true, false, "2029-05-31", "Rocky Linux 8"},
		{"alma 9", inventory.OS{ID: "almalinux", VersionID: "9.4"}, "2026-01-01", true, false, "2032-05-31", "AlmaLinux 9"},
		{"centos linux 7", inventory.OS{ID: "centos", VersionID: "7", PrettyName: "CentOS Linux 7 (Core)"}, "2025-01-01", true, true, "2024-06-30", "CentOS Linux 7"},
		{"centos linux 8", inventory.OS{ID: "centos", VersionID: "8", PrettyName: "CentOS Linux 8"}, "2023-01-01", true, true, "2021-12-31", "CentOS Linux 8"},
		{"centos stream 8 by name", inventory.OS{ID: "centos", VersionID: "8", PrettyName: "CentOS Stream 8"}, "2023-01-01", true, false, "2024-05-31", "CentOS Stream 8"},
		{"centos stream 9 without name", inventory.OS{ID: "centos", VersionID: "9"}, "2026-01-01", true, false, "2027-05-31", "CentOS Stream 9"},
		{"oracle 8", inventory.OS{ID: "ol", VersionID: "8.9"}, "2026-01-01", true, false, "2029-07-01", "Oracle Linux 8"},
		{"fedora 40 ended", inventory.OS{ID: "fedora", VersionID: "40"}, "2026-01-01", true, true, "2025-05-13", "Fedora 40"},
		{"alpine 3.19 point release ended", inventory.OS{ID: "alpine", VersionID: "3.19.1"}, "2025-12-01", true, true, "2025-11-01", "Alpine Linux 3.19"},
		{"alpine 3.22 supported", inventory.OS{ID: "alpine", VersionID: "3.22.0"}, "2026-01-01", true, false, "2027-05-01", "Alpine Linux 3.22"},
		{"end date itself is end of life", inventory.OS{ID: "alpine", VersionID: "3.21"}, "2026-11-01", true, true, "2026-11-01", "3.21"},
		{"day before end date", inventory.OS{ID: "alpine", VersionID: "3.21.2"}, "2026-10-31", true, false, "2026-11-01", "3.21"},
		// Negative: never guessed.
		{"alpine edge", inventory.OS{ID: "alpine", VersionID: "3.21_alpha20240923"}, "2025-01-01", false, false, "", ""},
		{"alpine future branch", inventory.OS{ID: "alpine", VersionID: "3.99.0"}, "2025-01-01", false, false, "", ""},
		{"alpine major only", inventory.OS{ID: "alpine", VersionID: "3"}, "2025-01-01", false, false, "", ""},
		{"oracle 10 not in table", inventory.OS{ID: "ol", VersionID: "10.0"}, "2026-01-01", false, false, "", ""},
		{"rhel malformed version", inventory.OS{ID: "rhel", VersionID: "nine"}, "2026-01-01", false, false, "", ""},
		{"fedora rawhide", inventory.OS{ID: "fedora", VersionID: "rawhide"}, "2026-01-01", false, false, "", ""},
		{"arch linux", inventory.OS{ID: "arch"}, "2026-01-01", false, false, "", ""},
		{"opensuse", inventory.OS{ID: "opensuse-leap", VersionID: "15.5"}, "2026-01-01", false, false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Lookup(tt.os, date(tt.at), nil)
			if got.Known != tt.known || got.EOL != tt.eol {
				t.Fatalf("Lookup(%+v, %s) = %+v, want known=%v eol=%v", tt.os, tt.at, got, tt.known, tt.eol)
			}
			if !tt.known {
				if got.Source == "" || !got.Date.IsZero() {
					t.Errorf("Lookup(%+v) = %+v, want an unknown with a reason and no date", tt.os, got)
				}
				return
			}
			if d := got.Date.Format(time.DateOnly); d != tt.date {
				t.Errorf("Lookup(%+v).Date = %s, want %s", tt.os, d, tt.date)
			}
			if !strings.Contains(got.Release, tt.release) || !strings.Contains(got.Source, "https://") {
				t.Errorf("Lookup(%+v) = %+v, want release %q and a cited vendor page", tt.os, got, tt.release)
			}
		})
	}
}

// Every compiled-in entry has a source, a unique key and a plausible date.
func TestVendorTable(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range vendorTable() {
		key := r.id + " " + r.version
		if seen[key] {
			t.Errorf("vendorTable: %s repeated", key)
		}
		seen[key] = true
		if vendorSource(r.id) == "" {
			t.Errorf("vendorTable: %s has no vendor source", key)
		}
		if r.eol.Year() < 2010 || r.eol.Year() > 2040 {
			t.Errorf("vendorTable: %s end %v implausible", key, r.eol)
		}
	}
}

const (
	debianHeader = "version,codename,series,created,release,eol,eol-lts,eol-elts\n"
	ubuntuHeader = "version,codename,series,created,release,eol,eol-server,eol-esm,eol-legacy\n"
)

func TestParseDistroInfo(t *testing.T) {
	tests := []struct {
		name, distro, in string
		want             int // releases; -1: error
	}{
		{"debian rows of several lengths", "debian", debianHeader +
			"11,Bullseye,bullseye,2019-07-06,2021-08-14,2024-08-14,2026-08-31,2031-06-30\n" +
			"14,Forky,forky,2025-08-09\n,Sid,sid,1993-08-16\n", 3},
		{"ubuntu with eol-legacy", "ubuntu", ubuntuHeader +
			"22.04 LTS,Jammy Jellyfish,jammy,2021-10-14,2022-04-21,2027-06-01,2027-06-01,2032-04-21,2034-04-25\n", 1},
		{"old header without optional columns", "debian", "version,codename,series,created,release,eol\n12,Bookworm,bookworm,2021-08-14,2023-06-10,2026-06-10\n", 1},
		{"unknown future column accepted", "debian", "version,codename,series,created,release,eol,eol-lts,eol-elts,eol-forever\n12,Bookworm,bookworm,2021-08-14,,,,,2040-01-01\n", 1},
		{"CRLF line ends", "debian", strings.ReplaceAll(debianHeader+"12,Bookworm,bookworm,2021-08-14\n", "\n", "\r\n"), 1},
		{"no final newline", "debian", debianHeader + "12,Bookworm,bookworm,2021-08-14", 1},
		// Negative.
		{"empty", "debian", "", -1},
		{"header only", "debian", debianHeader, -1},
		{"unknown distro", "fedora", debianHeader + "12,Bookworm,bookworm,2021-08-14\n", -1},
		{"columns out of order", "debian", "codename,version,series,created,release,eol\n", -1},
		{"ubuntu columns under debian", "debian", ubuntuHeader + "22.04 LTS,Jammy Jellyfish,jammy,2021-10-14\n", -1},
		{"known optional column out of place", "ubuntu", "version,codename,series,created,release,eol,eol-esm\n20.04,Focal,focal,2019-10-17\n", -1},
		{"foreign column name", "debian", "version,codename,series,created,release,eol,notes\n", -1},
		{"quoted field", "debian", debianHeader + "\"12\",Bookworm,bookworm,2021-08-14\n", -1},
		{"short date", "debian", debianHeader + "12,Bookworm,bookworm,2021-8-14\n", -1},
		{"impossible date", "debian", debianHeader + "12,Bookworm,bookworm,2021-02-30\n", -1},
		{"missing created", "debian", debianHeader + "12,Bookworm,bookworm,\n", -1},
		{"too few fields", "debian", debianHeader + "12,Bookworm,bookworm\n", -1},
		{"too many fields", "debian", debianHeader + "12,Bookworm,bookworm,2021-08-14,,,,,2040-01-01\n", -1},
		{"duplicate series", "debian", debianHeader + "12,Bookworm,bookworm,2021-08-14\n13,Trixie,bookworm,2023-06-10\n", -1},
		{"uppercase series", "debian", debianHeader + "12,Bookworm,Bookworm,2021-08-14\n", -1},
		{"bad version", "debian", debianHeader + "12a,Bookworm,bookworm,2021-08-14\n", -1},
		{"empty codename", "debian", debianHeader + "12,,bookworm,2021-08-14\n", -1},
		{"blank line inside", "debian", debianHeader + "12,Bookworm,bookworm,2021-08-14\n\n13,Trixie,trixie,2023-06-10\n", -1},
		{"space around field", "debian", debianHeader + "12, Bookworm,bookworm,2021-08-14\n", -1},
		{"NUL byte", "debian", debianHeader + "12,Book\x00worm,bookworm,2021-08-14\n", -1},
		{"oversized", "debian", debianHeader + strings.Repeat("x", MaxCSVSize), -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDistroInfo(tt.distro, []byte(tt.in))
			if tt.want < 0 {
				if err == nil || got != nil {
					t.Fatalf("ParseDistroInfo(%s) = %v, %v; want nil, an error", tt.distro, got, err)
				}
				return
			}
			if err != nil || len(got) != tt.want {
				t.Fatalf("ParseDistroInfo(%s) = %d releases, %v; want %d, nil", tt.distro, len(got), err, tt.want)
			}
		})
	}
}

func TestParseDistroInfoFields(t *testing.T) {
	rs, err := ParseDistroInfo("ubuntu", []byte(ubuntuHeader+
		"22.04 LTS,Jammy Jellyfish,jammy,2021-10-14,2022-04-21,2027-06-01,2027-06-02,2032-04-21,2034-04-25\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := rs[0]
	want := Release{Version: "22.04 LTS", Codename: "Jammy Jellyfish", Series: "jammy",
		Created: date("2021-10-14"), Released: date("2022-04-21"), EOL: date("2027-06-01"),
		EOLServer: date("2027-06-02"), EOLESM: date("2032-04-21")}
	if r != want {
		t.Errorf("ParseDistroInfo row = %+v, want %+v", r, want)
	}
}

func TestLoadDistroInfo(t *testing.T) {
	good := t.TempDir()
	write := func(dir, name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(good, "debian.csv", debianHeader+"12,Bookworm,bookworm,2021-08-14,2023-06-10,2026-06-10\n")
	write(good, "ubuntu.csv", ubuntuHeader+"24.04 LTS,Noble Numbat,noble,2023-10-12,2024-04-25,2029-05-31\n")
	missing := t.TempDir()
	write(missing, "debian.csv", debianHeader+"12,Bookworm,bookworm,2021-08-14\n")
	bad := t.TempDir()
	write(bad, "debian.csv", debianHeader+"12,Bookworm,bookworm,2021-08-14\n")
	write(bad, "ubuntu.csv", "garbage\n")
	big := t.TempDir()
	write(big, "debian.csv", strings.Repeat("x", MaxCSVSize+1))
	tests := []struct {
		name string
		dir  string
		ok   bool
	}{
		{"good", good, true},
		{"ubuntu.csv missing", missing, false},
		{"ubuntu.csv malformed", bad, false},
		{"debian.csv too large", big, false},
		{"no such directory", filepath.Join(good, "nope"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := LoadDistroInfo(tt.dir)
			if (err == nil) != tt.ok || (d != nil) != tt.ok {
				t.Fatalf("LoadDistroInfo = %v, %v; want ok=%v", d, err, tt.ok)
			}
			if tt.ok && (len(d.Debian) != 1 || len(d.Ubuntu) != 1) {
				t.Errorf("LoadDistroInfo = %+v, want one release each", d)
			}
		})
	}
}
