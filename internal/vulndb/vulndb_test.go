package vulndb

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

var (
	debian12 = inventory.OS{ID: "debian", VersionID: "12", VersionCodename: "bookworm", PrettyName: "Debian GNU/Linux 12 (bookworm)"}
	debian11 = inventory.OS{ID: "debian", VersionID: "11"}
	ubuntu22 = inventory.OS{ID: "ubuntu", VersionID: "22.04", PrettyName: "Ubuntu 22.04.4 LTS"}
	ubuntu23 = inventory.OS{ID: "ubuntu", VersionID: "23.10", PrettyName: "Ubuntu 23.10"}
	ubuntu18 = inventory.OS{ID: "ubuntu", VersionID: "18.04", PrettyName: "Ubuntu 18.04.6 LTS"}
	alpine   = inventory.OS{ID: "alpine", VersionID: "3.19.1"}
	rocky9   = inventory.OS{ID: "rocky", VersionID: "9.3"}
	alma9    = inventory.OS{ID: "almalinux", VersionID: "9.3"}
)

func deb(name, version, src, srcVersion string) inventory.Package {
	return inventory.Package{Name: name, Version: version, Arch: "amd64", SourceName: src, SourceVersion: srcVersion, Manager: "dpkg"}
}

func TestImport(t *testing.T) {
	db := openTest(t)
	zipPath := writeZip(t, append(advisories(debianDump...), entry{"README.txt", "not an advisory"})...)
	st, err := db.Import(context.Background(), zipPath)
	if err != nil {
		t.Fatal(err)
	}
	want := ImportStats{
		Family:     "Debian",
		Entries:    11,
		Advisories: 9,  // withdrawn and empty ones skipped
		Affected:   10, // DEBIAN-CVE-2023-4911 has two
		Skipped:    Skipped{NoAffected: 1, Withdrawn: 1, Ranges: 1, Other: 1},
	}
	if st.Family != want.Family || st.Entries != want.Entries || st.Advisories != want.Advisories ||
		st.Affected != want.Affected || st.Skipped != want.Skipped {
		t.Errorf("Import stats = %+v, want %+v", st, want)
	}
	if want := time.Date(2025, 12, 1, 10, 20, 30, 123456000, time.UTC); !st.NewestModified.Equal(want) {
		t.Errorf("NewestModified = %v, want %v", st.NewestModified, want)
	}
	if len(st.SHA256) != 64 {
		t.Errorf("SHA256 = %q", st.SHA256)
	}
	if n := count(t, db.r, `SELECT count(*) FROM advisories WHERE osv_id = 'DEBIAN-CVE-2024-9999'`); n != 0 {
		t.Errorf("withdrawn advisory stored %d times", n)
	}
	fi, err := os.Stat(db.Path())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("database mode = %v, want 0600", fi.Mode().Perm())
	}
}

func TestStatus(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	if st, err := db.Status(ctx); err != nil || len(st) != 0 {
		t.Fatalf("Status of an empty database = %v, %v; want none", st, err)
	}
	debZip := writeZip(t, advisories(debianDump...)...)
	if _, err := db.Import(ctx, debZip); err != nil {
		t.Fatal(err)
	}
	db.now = func() time.Time { return testNow.Add(time.Hour) }
	if _, err := db.Import(ctx, writeZip(t, advisories("ALPINE-CVE-2023-5678")...)); err != nil {
		t.Fatal(err)
	}
	st, err := db.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 || st[0].Family != "Alpine" || st[1].Family != "Debian" {
		t.Fatalf("Status = %+v, want Alpine and Debian", st)
	}
	d := st[1]
	if d.Source != filepath.Base(debZip) || !d.ImportedAt.Equal(testNow) || d.Advisories != 9 || d.Entries != 11 {
		t.Errorf("Debian status = %+v", d)
	}
	newest := time.Date(2025, 12, 1, 10, 20, 30, 123456000, time.UTC)
	if !d.NewestModified.Equal(newest) {
		t.Errorf("NewestModified = %v, want %v", d.NewestModified, newest)
	}
	if got, want := d.Age(newest.Add(48*time.Hour)), 48*time.Hour; got != want {
		t.Errorf("Age = %v, want %v", got, want)
	}
	if got := st[0].ImportedAt; !got.Equal(testNow.Add(time.Hour)) {
		t.Errorf("Alpine ImportedAt = %v", got)
	}
	if s := d.Describe(newest.Add(48 * time.Hour)); !strings.Contains(s, "OSV Debian") || !strings.Contains(s, "9 advisories") || !strings.Contains(s, "48h0m0s old") {
		t.Errorf("Describe = %q", s)
	}
	src, err := db.Source(ctx, debian12)
	if err != nil || src.Family != "Debian" {
		t.Errorf("Source(debian 12) = %+v, %v", src, err)
	}
	if _, err := db.Source(ctx, rocky9); !errors.Is(err, ErrNotImported) {
		t.Errorf("Source(rocky) error = %v, want ErrNotImported", err)
	}
}

// Re-importing a family replaces all of its previous import: an advisory
// gone from, or withdrawn in, the new dump no longer matches.
func TestReimportReplaces(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	if _, err := db.Import(ctx, writeZip(t, advisories("DSA-5514-1", "DSA-5532-1", "DSA-5600-1")...)); err != nil {
		t.Fatal(err)
	}
	pkgs := []inventory.Package{
		deb("libc6", "2.36-9+deb12u1", "glibc", "2.36-9+deb12u1"),
		deb("openssl", "3.0.11-1~deb12u1", "openssl", "3.0.11-1~deb12u1"),
		deb("bash", "5.2.15-2+b2", "bash", "5.2.15-2"),
	}
	vulns, err := db.Match(ctx, debian12, pkgs)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(vulns); got != "DSA-5514-1 DSA-5600-1 DSA-5532-1" {
		t.Fatalf("before re-import: %s", got)
	}
	// DSA-5600-1 is withdrawn, DSA-5532-1 gone.
	withdrawn := strings.Replace(testAdvisories["DSA-5600-1"], `"modified"`, `"withdrawn": "2024-03-01T00:00:00Z", "modified"`, 1)
	st, err := db.Import(ctx, writeZip(t, append(advisories("DSA-5514-1"), entry{"DSA-5600-1.json", withdrawn})...))
	if err != nil {
		t.Fatal(err)
	}
	if st.Replaced != 3 || st.Advisories != 1 || st.Skipped.Withdrawn != 1 {
		t.Errorf("re-import stats = %+v, want 3 replaced, 1 stored, 1 withdrawn", st)
	}
	vulns, err = db.Match(ctx, debian12, pkgs)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(vulns); got != "DSA-5514-1" {
		t.Errorf("after re-import: %s, want DSA-5514-1 only", got)
	}
	if n := count(t, db.r, `SELECT count(*) FROM imports`); n != 1 {
		t.Errorf("%d imports rows, want 1", n)
	}
	if n := count(t, db.r, `SELECT count(*) FROM affected`); n != 1 {
		t.Errorf("%d affected rows, want 1", n)
	}
}

// A dump's family is the one most of its packages belong to; stray
// entries of other families are dropped, never replacing their data.
func TestImportMixedFamilies(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	if _, err := db.Import(ctx, writeZip(t, advisories("ALPINE-CVE-2023-5678")...)); err != nil {
		t.Fatal(err)
	}
	st, err := db.Import(ctx, writeZip(t, advisories("DSA-5514-1", "DSA-5532-1", "RLSA-2024:0310")...))
	if err != nil {
		t.Fatal(err)
	}
	if st.Family != "Debian" || st.Advisories != 2 || st.Skipped.NoAffected != 1 {
		t.Errorf("stats = %+v, want Debian with 2 advisories and 1 dropped", st)
	}
	status, err := db.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(status) != 2 || status[0].Family != "Alpine" || status[0].Advisories != 1 {
		t.Errorf("status = %+v, want Alpine kept", status)
	}
	if n := count(t, db.r, `SELECT count(*) FROM affected WHERE ecosystem LIKE 'Rocky%'`); n != 0 {
		t.Errorf("%d Rocky rows kept", n)
	}
}

func ids(vs []inventory.Vulnerability) string {
	var s []string
	for _, v := range vs {
		s = append(s, v.ID)
	}
	return strings.Join(s, " ")
}

func TestMatch(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	for _, dump := range [][]string{
		debianDump,
		{"UBUNTU-CVE-2024-6387", "UBUNTU-CVE-2016-2781"},
		{"ALPINE-CVE-2023-5678"},
		{"RLSA-2024:0310"},
		{"ALSA-2024:0310"},
	} {
		if _, err := db.Import(ctx, writeZip(t, advisories(dump...)...)); err != nil {
			t.Fatal(err)
		}
	}
	type hit struct {
		id, fixed, installed string
		sev                  inventory.Severity
	}
	tests := []struct {
		name string
		os   inventory.OS
		pkg  inventory.Package
		want []hit
	}{
		{"debian source package, several binaries share it", debian12,
			deb("libc-bin", "2.36-9+deb12u1", "glibc", "2.36-9+deb12u1"),
			[]hit{
				{"DEBIAN-CVE-2023-4911", "2.36-9+deb12u3", "2.36-9+deb12u1", inventory.High},
				{"DSA-5514-1", "2.36-9+deb12u3", "2.36-9+deb12u1", inventory.High},
				{"DEBIAN-CVE-2010-4756", "", "2.36-9+deb12u1", inventory.Info},
			}},
		{"debian fixed version installed", debian12,
			deb("libc6", "2.36-9+deb12u3", "glibc", "2.36-9+deb12u3"),
			[]hit{{"DEBIAN-CVE-2010-4756", "", "2.36-9+deb12u3", inventory.Info}}},
		{"debian newer than fixed", debian12,
			deb("libc6", "2.36-9+deb12u10", "glibc", "2.36-9+deb12u10"),
			[]hit{{"DEBIAN-CVE-2010-4756", "", "2.36-9+deb12u10", inventory.Info}}},
		{"debian 11 sees only its own advisory", debian11,
			deb("libc6", "2.31-13+deb11u6", "glibc", "2.31-13+deb11u6"),
			[]hit{{"DLA-3600-1", "2.31-13+deb11u7", "2.31-13+deb11u6", inventory.Medium}}},
		{"epoch: installed epoch 1 below fix", debian12,
			deb("zlib1g", "1:1.2.13.dfsg-1", "zlib", "1:1.2.13.dfsg-1"),
			[]hit{{"DEBIAN-CVE-2023-45853", "1:1.2.13.dfsg-1+deb12u1", "1:1.2.13.dfsg-1", inventory.Low}}},
		{"epoch: missing epoch sorts below any epoch 1", debian12,
			deb("zlib1g", "1.3.dfsg-3", "zlib", "1.3.dfsg-3"),
			[]hit{{"DEBIAN-CVE-2023-45853", "1:1.2.13.dfsg-1+deb12u1", "1.3.dfsg-3", inventory.Low}}},
		{"epoch: fixed", debian12, deb("zlib1g", "1:1.2.13.dfsg-1+deb12u1", "zlib", "1:1.2.13.dfsg-1+deb12u1"), nil},
		{"tilde: earlier stable update is below the fix", debian12,
			deb("openssl", "3.0.11-1~deb12u1", "openssl", "3.0.11-1~deb12u1"),
			[]hit{{"DSA-5532-1", "3.0.11-1~deb12u2", "3.0.11-1~deb12u1", inventory.Medium}}},
		{"tilde: the unstable upload sorts above the ~deb12u2 fix", debian12,
			deb("libssl3", "3.0.11-1", "openssl", "3.0.11-1"), nil},
		{"+deb12u1: compares the source version, not the binNMU", debian12,
			deb("bash", "5.2.15-2+b2", "bash", "5.2.15-2"),
			[]hit{{"DSA-5600-1", "5.2.15-2+deb12u1", "5.2.15-2", inventory.Medium}}},
		{"+deb12u1: fixed", debian12, deb("bash", "5.2.15-2+deb12u1", "bash", "5.2.15-2+deb12u1"), nil},
		{"last_affected: at the bound", debian12,
			deb("apache2-bin", "2.4.57-2", "apache2", "2.4.57-2"),
			[]hit{{"DEBIAN-CVE-2024-0001", "", "2.4.57-2", inventory.Medium}}},
		{"last_affected: above the bound", debian12, deb("apache2-bin", "2.4.57-3", "apache2", "2.4.57-3"), nil},
		{"last_affected: below introduced", debian12, deb("apache2-bin", "2.4.49-1", "apache2", "2.4.49-1"), nil},
		{"malformed range skipped, good one used", debian12,
			deb("curl", "7.88.1-10+deb12u4", "curl", "7.88.1-10+deb12u4"),
			[]hit{{"DEBIAN-CVE-2024-7777", "7.88.1-10+deb12u5", "7.88.1-10+deb12u4", inventory.Medium}}},
		{"withdrawn advisory does not match", debian12, deb("bash", "5.2.15-2+deb12u1", "bash", "5.2.15-2+deb12u1"), nil},
		{"unknown package", debian12, deb("hello", "2.10-3", "hello", "2.10-3"), nil},
		{"package of another manager ignored", debian12,
			inventory.Package{Name: "glibc", Version: "2.30-1", SourceName: "glibc", SourceVersion: "2.30-1", Manager: "rpm"}, nil},
		{"invalid installed version ignored", debian12, deb("libc6", "not a version", "glibc", "not a version"), nil},
		{"ubuntu LTS", ubuntu22,
			deb("openssh-server", "1:8.9p1-3ubuntu0.6", "openssh", "1:8.9p1-3ubuntu0.6"),
			[]hit{{"UBUNTU-CVE-2024-6387", "1:8.9p1-3ubuntu0.10", "1:8.9p1-3ubuntu0.6", inventory.High}}},
		{"ubuntu negligible priority", ubuntu22,
			deb("coreutils", "8.32-4.1ubuntu1", "coreutils", "8.32-4.1ubuntu1"),
			[]hit{{"UBUNTU-CVE-2016-2781", "", "8.32-4.1ubuntu1", inventory.Low}}},
		{"ubuntu non-LTS", ubuntu23,
			deb("openssh-client", "1:9.3p1-1ubuntu3.2", "openssh", "1:9.3p1-1ubuntu3.2"),
			[]hit{{"UBUNTU-CVE-2024-6387", "1:9.3p1-1ubuntu3.6", "1:9.3p1-1ubuntu3.2", inventory.High}}},
		{"ubuntu non-LTS does not see LTS entries", ubuntu23,
			deb("coreutils", "9.1-1ubuntu2", "coreutils", "9.1-1ubuntu2"), nil},
		{"ubuntu Pro (ESM) stream of an LTS", ubuntu18,
			deb("openssh-server", "1:7.6p1-4ubuntu0.7", "openssh", "1:7.6p1-4ubuntu0.7"),
			[]hit{{"UBUNTU-CVE-2024-6387", "1:7.6p1-4ubuntu0.7+esm3", "1:7.6p1-4ubuntu0.7", inventory.High}}},
		{"alpine -r suffix below", alpine,
			inventory.Package{Name: "libcrypto3", Version: "3.1.4-r0", SourceName: "openssl", SourceVersion: "3.1.4-r0", Manager: "apk"},
			[]hit{{"ALPINE-CVE-2023-5678", "3.1.4-r1", "3.1.4-r0", inventory.Medium}}},
		{"alpine -r10 sorts above -r1", alpine,
			inventory.Package{Name: "libcrypto3", Version: "3.1.4-r10", SourceName: "openssl", SourceVersion: "3.1.4-r10", Manager: "apk"}, nil},
		{"alpine fixed", alpine,
			inventory.Package{Name: "libssl3", Version: "3.1.4-r1", SourceName: "openssl", SourceVersion: "3.1.4-r1", Manager: "apk"}, nil},
		{"rocky release compare: el9 below el9_3", rocky9,
			inventory.Package{Name: "openssl-libs", Version: "1:3.0.7-25.el9", SourceName: "openssl", SourceVersion: "3.0.7-25.el9", Manager: "rpm"},
			[]hit{{"RLSA-2024:0310", "1:3.0.7-25.el9_3", "1:3.0.7-25.el9", inventory.Medium}}},
		{"rocky fixed, source version without epoch", rocky9,
			inventory.Package{Name: "openssl-libs", Version: "1:3.0.7-25.el9_3", SourceName: "openssl", SourceVersion: "3.0.7-25.el9_3", Manager: "rpm"}, nil},
		{"rocky newer release", rocky9,
			inventory.Package{Name: "openssl", Version: "1:3.0.7-27.el9", SourceName: "openssl", SourceVersion: "3.0.7-27.el9", Manager: "rpm"}, nil},
		{"rocky matches source names only", rocky9,
			inventory.Package{Name: "openssl", Version: "1:3.0.7-24.el9", SourceName: "openssl-other", SourceVersion: "3.0.7-24.el9", Manager: "rpm"}, nil},
		{"almalinux by binary name", alma9,
			inventory.Package{Name: "glibc-common", Version: "2.34-83.el9_3.5", SourceName: "glibc-src-renamed", SourceVersion: "2.34-83.el9_3.5", Manager: "rpm"},
			[]hit{{"ALSA-2024:0310", "2.34-83.el9_3.7", "2.34-83.el9_3.5", inventory.High}}},
		{"almalinux fixed", alma9,
			inventory.Package{Name: "glibc-common", Version: "2.34-83.el9_3.7", SourceName: "glibc", SourceVersion: "2.34-83.el9_3.7", Manager: "rpm"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vulns, err := db.Match(ctx, tc.os, []inventory.Package{tc.pkg})
			if err != nil {
				t.Fatal(err)
			}
			var got []hit
			for _, v := range vulns {
				got = append(got, hit{v.ID, v.Fixed, v.Installed, v.Severity})
				if v.Package != tc.pkg.Name {
					t.Errorf("%s: Package = %q, want %q", v.ID, v.Package, tc.pkg.Name)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("Match(%s) =\n  %v\nwant\n  %v", tc.pkg.Name, got, tc.want)
			}
		})
	}

	t.Run("fields", func(t *testing.T) {
		vulns, err := db.Match(ctx, debian12, []inventory.Package{deb("libc6", "2.36-9", "glibc", "2.36-9")})
		if err != nil {
			t.Fatal(err)
		}
		var dsa *inventory.Vulnerability
		for i := range vulns {
			if vulns[i].ID == "DSA-5514-1" {
				dsa = &vulns[i]
			}
		}
		if dsa == nil {
			t.Fatalf("DSA-5514-1 not matched: %v", vulns)
		}
		want := inventory.Vulnerability{ID: "DSA-5514-1", Aliases: []string{"CVE-2023-4806", "CVE-2023-4911"},
			Ecosystem: "Debian:12", Package: "libc6", SourceName: "glibc", Installed: "2.36-9", Fixed: "2.36-9+deb12u3",
			Severity: inventory.High, Summary: "glibc - security update"}
		if fmt.Sprintf("%+v", *dsa) != fmt.Sprintf("%+v", want) {
			t.Errorf("vulnerability =\n  %+v\nwant\n  %+v", *dsa, want)
		}
	})

	t.Run("one per advisory and package, sorted", func(t *testing.T) {
		pkgs := []inventory.Package{
			deb("libc6", "2.36-9", "glibc", "2.36-9"),
			{Name: "libc6", Version: "2.36-9", Arch: "i386", SourceName: "glibc", SourceVersion: "2.36-9", Manager: "dpkg"},
			deb("bash", "5.2.15-2", "bash", "5.2.15-2"),
		}
		vulns, err := db.Match(ctx, debian12, pkgs)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, v := range vulns {
			got = append(got, v.Severity.String()+" "+v.Package+" "+v.ID)
		}
		want := []string{"high libc6 DEBIAN-CVE-2023-4911", "high libc6 DSA-5514-1", "medium bash DSA-5600-1", "info libc6 DEBIAN-CVE-2010-4756"}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("Match =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}

func TestMatchErrors(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	if _, err := db.Import(ctx, writeZip(t, advisories("DSA-5514-1")...)); err != nil {
		t.Fatal(err)
	}
	pkgs := []inventory.Package{deb("libc6", "2.36-9", "glibc", "2.36-9")}
	tests := []struct {
		name string
		os   inventory.OS
		want error
	}{
		{"family never imported", alpine, ErrNotImported},
		{"other family never imported", rocky9, ErrNotImported},
		{"unknown distribution", inventory.OS{ID: "arch"}, ErrUnsupportedOS},
		{"debian testing has no VERSION_ID", inventory.OS{ID: "debian", VersionCodename: "trixie"}, ErrUnsupportedOS},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vulns, err := db.Match(ctx, tc.os, pkgs)
			if !errors.Is(err, tc.want) || vulns != nil {
				t.Errorf("Match = %v, %v; want nil, %v", vulns, err, tc.want)
			}
		})
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := db.Match(cancelled, debian12, pkgs); err == nil {
		t.Error("Match with a cancelled context succeeded")
	}
}

func TestEcosystems(t *testing.T) {
	tests := []struct {
		os   inventory.OS
		want string // space-separated; "" for ErrUnsupportedOS
	}{
		{debian12, "Debian:12"},
		{ubuntu22, "Ubuntu:22.04:LTS Ubuntu:Pro:22.04:LTS"},
		{inventory.OS{ID: "ubuntu", VersionID: "24.04"}, "Ubuntu:24.04:LTS Ubuntu:Pro:24.04:LTS"},
		{ubuntu23, "Ubuntu:23.10"},
		{inventory.OS{ID: "ubuntu", VersionID: "23.04"}, "Ubuntu:23.04"},
		{alpine, "Alpine:v3.19"},
		{inventory.OS{ID: "alpine", VersionID: "3.20"}, "Alpine:v3.20"},
		{rocky9, "Rocky Linux:9"},
		{inventory.OS{ID: "rocky", VersionID: "8"}, "Rocky Linux:8"},
		{alma9, "AlmaLinux:9"},
		{inventory.OS{ID: "alpine", VersionID: "3.20_alpha20240329"}, ""},
		{inventory.OS{ID: "alpine", VersionID: "3"}, ""},
		{inventory.OS{ID: "ubuntu", VersionID: "22.4"}, ""},
		{inventory.OS{ID: "ubuntu", VersionID: "22"}, ""},
		{inventory.OS{ID: "debian", VersionID: ""}, ""},
		{inventory.OS{ID: "debian", VersionID: "12/../11"}, ""},
		{inventory.OS{ID: "centos", VersionID: "7"}, ""},
		{inventory.OS{ID: "Debian", VersionID: "12"}, ""},
		{inventory.OS{ID: "linuxmint", IDLike: []string{"ubuntu"}, VersionID: "21.3"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.os.ID+" "+tc.os.VersionID, func(t *testing.T) {
			got, err := Ecosystems(tc.os)
			if tc.want == "" {
				if !errors.Is(err, ErrUnsupportedOS) || got != nil {
					t.Errorf("Ecosystems = %q, %v; want ErrUnsupportedOS", got, err)
				}
				return
			}
			if err != nil || strings.Join(got, " ") != tc.want {
				t.Errorf("Ecosystems = %q, %v; want %s", got, err, tc.want)
			}
		})
	}
}

// rawZipEntry is a zip entry whose header says what the test wants,
// whatever the data are.
type rawZipEntry struct {
	name     string
	data     []byte // compressed with deflate
	claimed  uint64 // UncompressedSize64 in the headers
	crc      uint32
	method   uint16
	compress bool
}

func writeRawZip(t *testing.T, es ...rawZipEntry) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range es {
		data := e.data
		if e.compress {
			var c bytes.Buffer
			fw, _ := flate.NewWriter(&c, flate.BestCompression)
			fw.Write(e.data)
			fw.Close()
			data = c.Bytes()
		}
		w, err := zw.CreateRaw(&zip.FileHeader{Name: e.name, Method: e.method, CRC32: e.crc,
			CompressedSize64: uint64(len(data)), UncompressedSize64: e.claimed})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return writeFile(t, buf.Bytes())
}

// Hostile and malformed dumps are refused with an error naming the
// problem (and the file), and leave the database exactly as it was.
func TestImportRejects(t *testing.T) {
	huge := bytes.Repeat([]byte{' '}, 3<<20)
	hugeJSON := append(append([]byte(`{"id": "X", "modified": "2024-01-01T00:00:00Z", "summary": "`), huge...), `"}`...)
	tests := []struct {
		name  string
		setup func(db *DB)
		zip   func(t *testing.T) string
		want  string
	}{
		{"zip bomb: claims small, expands huge",
			func(db *DB) { db.limits.entrySize = 1 << 20 },
			func(t *testing.T) string {
				return writeRawZip(t, rawZipEntry{name: "BOMB.json", data: hugeJSON, claimed: 100,
					crc: crc32.ChecksumIEEE(hugeJSON), method: zip.Deflate, compress: true})
			}, "BOMB.json"},
		{"entry claims more than the limit",
			func(db *DB) { db.limits.entrySize = 1 << 20 },
			func(t *testing.T) string {
				return writeRawZip(t, rawZipEntry{name: "BIG.json", data: hugeJSON, claimed: uint64(len(hugeJSON)),
					crc: crc32.ChecksumIEEE(hugeJSON), method: zip.Deflate, compress: true})
			}, "BIG.json: claims"},
		{"entry really larger than the limit",
			func(db *DB) { db.limits.entrySize = 1 << 20 },
			func(t *testing.T) string { return writeZip(t, entry{"REAL.json", string(hugeJSON)}) },
			"REAL.json: claims"},
		{"more entries than the limit",
			func(db *DB) { db.limits.entries = 5 },
			func(t *testing.T) string {
				var es []entry
				for i := range 6 {
					es = append(es, entry{fmt.Sprintf("E-%d.json", i), "{}"})
				}
				return writeZip(t, es...)
			}, "more than 5 entries"},
		{"central directory larger than the limit",
			func(db *DB) { db.limits.dirSize = 300 },
			func(t *testing.T) string { return writeZip(t, advisories(debianDump...)...) },
			"central directory of more than 300 bytes"},
		{"total JSON beyond the limit",
			func(db *DB) { db.limits.totalSize = 2000 },
			func(t *testing.T) string { return writeZip(t, advisories(debianDump...)...) },
			"more than 2000 bytes of JSON"},
		{"zip larger than the limit",
			func(db *DB) { db.limits.zipSize = 100 },
			func(t *testing.T) string { return writeZip(t, advisories("DSA-5514-1")...) },
			"more than the limit of 100"},
		{"invalid JSON names the file", nil,
			func(t *testing.T) string {
				return writeZip(t, append(advisories("DSA-5514-1"), entry{"DSA-9999-1.json", `{"id": "DSA-9999-1",`})...)
			}, "DSA-9999-1.json: "},
		{"JSON array, not an object", nil,
			func(t *testing.T) string { return writeZip(t, entry{"A.json", `[{"id": "A"}]`}) },
			"A.json: not a JSON object"},
		{"JSON null", nil,
			func(t *testing.T) string { return writeZip(t, entry{"N.json", `null`}) },
			"N.json: not a JSON object"},
		{"duplicate member names", nil,
			func(t *testing.T) string {
				return writeZip(t, entry{"D.json", `{"id": "D", "id": "E", "modified": "2024-01-01T00:00:00Z"}`})
			}, "D.json: "},
		{"invalid UTF-8", nil,
			func(t *testing.T) string {
				return writeZip(t, entry{"U.json", "{\"id\": \"U\xff\", \"modified\": \"2024-01-01T00:00:00Z\"}"})
			}, "U.json: "},
		{"wrong field type", nil,
			func(t *testing.T) string {
				return writeZip(t, entry{"T.json", `{"id": "T", "modified": "2024-01-01T00:00:00Z", "affected": {}}`})
			}, "T.json: "},
		{"missing modified", nil,
			func(t *testing.T) string { return writeZip(t, entry{"M.json", `{"id": "M"}`}) },
			"M.json: advisory M: modified: missing"},
		{"two objects in one file", nil,
			func(t *testing.T) string {
				return writeZip(t, entry{"TWO.json", `{"id": "A", "modified": "2024-01-01T00:00:00Z"} {}`})
			}, "TWO.json: "},
		{"NUL in a file name", nil,
			func(t *testing.T) string { return writeZip(t, entry{"DSA\x00.json", testAdvisories["DSA-5514-1"]}) },
			"file name contains NUL"},
		{"advisory twice", nil,
			func(t *testing.T) string {
				return writeZip(t, entry{"a/DSA-5514-1.json", testAdvisories["DSA-5514-1"]}, entry{"b/DSA-5514-1.json", testAdvisories["DSA-5514-1"]})
			}, "DSA-5514-1 appears twice"},
		{"nothing of a supported family", nil,
			func(t *testing.T) string {
				return writeZip(t, entry{"GHSA.json", `{"id": "GHSA-1", "modified": "2024-01-01T00:00:00Z",
					"affected": [{"package": {"ecosystem": "npm", "name": "left-pad"}, "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}]}]}`})
			}, "no advisory affects a package"},
		{"not a zip", nil,
			func(t *testing.T) string { return writeFile(t, []byte(testAdvisories["DSA-5514-1"])) },
			"not a valid zip file"},
		{"truncated zip", nil,
			func(t *testing.T) string {
				data, err := os.ReadFile(writeZip(t, advisories(debianDump...)...))
				if err != nil {
					t.Fatal(err)
				}
				return writeFile(t, data[:len(data)/2])
			}, "not a valid zip file"},
		{"missing file", nil,
			func(t *testing.T) string { return filepath.Join(t.TempDir(), "absent.zip") },
			"no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := openTest(t)
			ctx := context.Background()
			if _, err := db.Import(ctx, writeZip(t, advisories(debianDump...)...)); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Import(ctx, writeZip(t, advisories("ALPINE-CVE-2023-5678")...)); err != nil {
				t.Fatal(err)
			}
			before := dumpDB(t, db)
			if tc.setup != nil {
				tc.setup(db)
			}
			st, err := db.Import(ctx, tc.zip(t))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Import error = %v, want one containing %q", err, tc.want)
			}
			if st != (ImportStats{}) {
				t.Errorf("Import stats on error = %+v, want zero", st)
			}
			if after := dumpDB(t, db); after != before {
				t.Errorf("database changed by a failed import:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// A cancelled import changes nothing either.
func TestImportCancelled(t *testing.T) {
	db := openTest(t)
	before := dumpDB(t, db)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := db.Import(ctx, writeZip(t, advisories(debianDump...)...)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Import error = %v, want context.Canceled", err)
	}
	if after := dumpDB(t, db); after != before {
		t.Errorf("database changed:\n%s", after)
	}
}

func TestOpenRejects(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	newer := filepath.Join(dir, "newer.db")
	db, err := Open(ctx, newer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.w.Exec(`INSERT INTO schema_migrations VALUES (99, 'future', '2030-01-01T00:00:00.000000000Z')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("not sqlite "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, want string
	}{
		{"newer schema", newer, "newer than this binary"},
		{"not a database", garbage, "not a database"},
		{"directory", dir, "not a regular file"},
		{"empty path", "", "empty database path"},
		{"missing directory", filepath.Join(dir, "no", "such", "x.db"), "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db, err := Open(ctx, tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.want) || db != nil {
				t.Errorf("Open(%s) = %v, %v; want error containing %q", tc.path, db, err, tc.want)
			}
		})
	}
	// A database open to others is tightened.
	loose := filepath.Join(dir, "loose.db")
	if err := os.WriteFile(loose, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	os.Chmod(loose, 0o666)
	db, err = Open(ctx, loose)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if fi, _ := os.Stat(loose); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
}

// Matching 200 packages against a dump the size of a real one is fast.
func TestMatchPerformance(t *testing.T) {
	if testing.Short() {
		t.Skip("imports 20,000 advisories; skipped with -short")
	}
	db := openTest(t)
	var es []entry
	const names, perName = 2000, 10
	for n := range names {
		for i := range perName {
			id := fmt.Sprintf("DEBIAN-CVE-2024-%05d", n*perName+i)
			es = append(es, entry{id + ".json", fmt.Sprintf(`{"id": %q, "modified": "2024-01-01T00:00:00Z", "summary": "issue %d",
				"upstream": ["CVE-2024-%05d"],
				"affected": [
					{"package": {"ecosystem": "Debian:12", "name": "pkg%d"}, "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.%d-1+deb12u1"}]}], "ecosystem_specific": {"urgency": "low"}},
					{"package": {"ecosystem": "Debian:11", "name": "pkg%d"}, "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.%d-1+deb11u1"}]}]}
				]}`, id, i, n*perName+i, n, i, n, i)})
		}
	}
	ctx := context.Background()
	start := time.Now()
	if _, err := db.Import(ctx, writeZip(t, es...)); err != nil {
		t.Fatal(err)
	}
	t.Logf("imported %d advisories in %v", len(es), time.Since(start))
	var pkgs []inventory.Package
	for n := range 200 {
		pkgs = append(pkgs, deb(fmt.Sprintf("lib%d", n), "1.5-1", fmt.Sprintf("pkg%d", n*7), "1.5-1"))
	}
	start = time.Now()
	vulns, err := db.Match(ctx, debian12, pkgs)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if len(vulns) != 200*5 { // fixed 1.5-1+deb12u1 .. 1.9-1+deb12u1 are above 1.5-1
		t.Errorf("%d vulnerabilities, want %d", len(vulns), 200*5)
	}
	t.Logf("matched 200 packages in %v", took)
	if took > 3*time.Second {
		t.Errorf("Match took %v, want well under 3s", took)
	}
}

func BenchmarkMatch(b *testing.B) {
	db := openTest(b)
	var es []entry
	for n := range 500 {
		for i := range 10 {
			id := fmt.Sprintf("DEBIAN-CVE-2024-%05d", n*10+i)
			es = append(es, entry{id + ".json", fmt.Sprintf(`{"id": %q, "modified": "2024-01-01T00:00:00Z",
				"affected": [{"package": {"ecosystem": "Debian:12", "name": "pkg%d"}, "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.%d-1+deb12u1"}]}]}]}`, id, n, i)})
		}
	}
	ctx := context.Background()
	if _, err := db.Import(ctx, writeZip(b, es...)); err != nil {
		b.Fatal(err)
	}
	var pkgs []inventory.Package
	for n := range 200 {
		pkgs = append(pkgs, deb(fmt.Sprintf("lib%d", n), "1.5-1", fmt.Sprintf("pkg%d", n*2), "1.5-1"))
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := db.Match(ctx, debian12, pkgs); err != nil {
			b.Fatal(err)
		}
	}
}
