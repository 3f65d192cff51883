package vulndb

import (
	"archive/zip"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// testNow is the clock of every test database.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// openTest opens a fresh database in a temporary directory.
func openTest(t testing.TB) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), File))
	if err != nil {
		t.Fatal(err)
	}
	db.now = func() time.Time { return testNow }
	t.Cleanup(func() { db.Close() })
	return db
}

// entry is one file of a test zip.
type entry struct {
	name string
	body string
}

// writeZip writes entries into a zip file (deflated) and returns its path.
func writeZip(t testing.TB, entries ...entry) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		w, err := zw.Create(e.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return writeFile(t, buf.Bytes())
}

func writeFile(t testing.TB, data []byte) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "all-*.zip")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// advisories returns the named advisories as zip entries "<id>.json".
func advisories(ids ...string) []entry {
	var es []entry
	for _, id := range ids {
		body, ok := testAdvisories[id]
		if !ok {
			panic("no test advisory " + id)
		}
		es = append(es, entry{id + ".json", body})
	}
	return es
}

// dumpDB renders every row of every table, to compare a database before
// and after a failed import.
func dumpDB(t testing.TB, db *DB) string {
	t.Helper()
	var out strings.Builder
	for _, table := range []string{"schema_migrations", "imports", "advisories", "affected"} {
		rows, err := db.r.Query("SELECT * FROM " + table)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		var lines []string
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, fmt.Sprint(vals...))
		}
		rows.Close()
		sort.Strings(lines)
		fmt.Fprintf(&out, "%s: %d rows\n%s\n", table, len(lines), strings.Join(lines, "\n"))
	}
	return out.String()
}

// count returns the number of rows of a query.
func count(t testing.TB, db *sql.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Hand-written advisories in the shapes of the real dumps: Debian DSA, DLA
// and DEBIAN-CVE entries, Ubuntu, Alpine, Rocky Linux and AlmaLinux.
var testAdvisories = map[string]string{
	// A Debian security advisory: source package, CVSS in severity.
	"DSA-5514-1": `{
  "schema_version": "1.6.0",
  "id": "DSA-5514-1",
  "summary": "glibc - security update",
  "modified": "2025-11-02T09:00:00Z",
  "published": "2023-10-03T00:00:00Z",
  "related": ["CVE-2023-4911", "CVE-2023-4806"],
  "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H"}],
  "affected": [{
    "package": {"ecosystem": "Debian:12", "name": "glibc", "purl": "pkg:deb/debian/glibc?arch=source"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.36-9+deb12u3"}]}],
    "versions": ["2.36-8", "2.36-9", "2.36-9+deb12u1", "2.36-9+deb12u2"]
  }],
  "references": [{"type": "ADVISORY", "url": "https://www.debian.org/security/2023/dsa-5514"}]
}`,
	// The CVE entry of the same issue, with Debian's urgency.
	"DEBIAN-CVE-2023-4911": `{
  "id": "DEBIAN-CVE-2023-4911",
  "details": "A buffer overflow was discovered in the GNU C Library's dynamic loader ld.so\nwhile processing the GLIBC_TUNABLES environment variable.",
  "modified": "2025-12-01T10:20:30.123456Z",
  "upstream": ["CVE-2023-4911"],
  "affected": [
    {"package": {"ecosystem": "Debian:12", "name": "glibc"},
     "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.36-9+deb12u3"}]}],
     "ecosystem_specific": {"urgency": "high"}},
    {"package": {"ecosystem": "Debian:13", "name": "glibc"},
     "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.37-12"}]}],
     "ecosystem_specific": {"urgency": "high"}}
  ]
}`,
	// An issue Debian rates unimportant and never fixes.
	"DEBIAN-CVE-2010-4756": `{
  "id": "DEBIAN-CVE-2010-4756",
  "summary": "glob implementation in the GNU C Library allows a denial of service",
  "modified": "2024-01-05T00:00:00Z",
  "upstream": ["CVE-2010-4756"],
  "affected": [{"package": {"ecosystem": "Debian:12", "name": "glibc"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
    "ecosystem_specific": {"urgency": "unimportant"}}]
}`,
	// A long-term support advisory for Debian 11 only.
	"DLA-3600-1": `{
  "id": "DLA-3600-1",
  "summary": "glibc - LTS security update",
  "modified": "2023-10-10T00:00:00Z",
  "related": ["CVE-2023-4911"],
  "affected": [{"package": {"ecosystem": "Debian:11", "name": "glibc"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.31-13+deb11u7"}]}]}]
}`,
	// Epochs: zlib's version has one.
	"DEBIAN-CVE-2023-45853": `{
  "id": "DEBIAN-CVE-2023-45853",
  "summary": "MiniZip in zlib has an integer overflow",
  "modified": "2025-01-01T00:00:00Z",
  "upstream": ["CVE-2023-45853"],
  "affected": [{"package": {"ecosystem": "Debian:12", "name": "zlib"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1:1.2.13.dfsg-1+deb12u1"}]}],
    "ecosystem_specific": {"urgency": "low"}}]
}`,
	// Tildes: a stable update versioned below the next upload.
	"DSA-5532-1": `{
  "id": "DSA-5532-1",
  "summary": "openssl - security update",
  "modified": "2023-10-25T00:00:00Z",
  "aliases": [],
  "related": ["CVE-2023-5363"],
  "affected": [{"package": {"ecosystem": "Debian:12", "name": "openssl"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.0.11-1~deb12u2"}]}]}]
}`,
	// A +debNuM fix for a package whose binary is a binNMU (+b2).
	"DSA-5600-1": `{
  "id": "DSA-5600-1",
  "summary": "bash - security update",
  "modified": "2024-02-01T00:00:00Z",
  "affected": [{"package": {"ecosystem": "Debian:12", "name": "bash"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "5.2.15-2+deb12u1"}]}]}]
}`,
	// last_affected: every version up to and including 2.4.57-2.
	"DEBIAN-CVE-2024-0001": `{
  "id": "DEBIAN-CVE-2024-0001",
  "summary": "apache2: a flaw with no fix yet",
  "modified": "2024-06-01T00:00:00Z",
  "affected": [{"package": {"ecosystem": "Debian:12", "name": "apache2"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "2.4.50-1"}, {"last_affected": "2.4.57-2"}]}],
    "ecosystem_specific": {"urgency": "medium"}}]
}`,
	// Withdrawn upstream: must not be stored.
	"DEBIAN-CVE-2024-9999": `{
  "id": "DEBIAN-CVE-2024-9999",
  "summary": "rejected CVE",
  "modified": "2024-07-01T00:00:00Z",
  "withdrawn": "2024-07-01T00:00:00Z",
  "affected": [{"package": {"ecosystem": "Debian:12", "name": "bash"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]}]
}`,
	// Affects nothing vulndb can match: skipped and counted.
	"DEBIAN-CVE-2024-8888": `{
  "id": "DEBIAN-CVE-2024-8888",
  "summary": "no affected packages",
  "modified": "2024-07-01T00:00:00Z",
  "affected": []
}`,
	// A malformed range (no introduced event) next to a good one.
	"DEBIAN-CVE-2024-7777": `{
  "id": "DEBIAN-CVE-2024-7777",
  "summary": "curl: one malformed range",
  "modified": "2024-07-02T00:00:00Z",
  "affected": [{"package": {"ecosystem": "Debian:12", "name": "curl"},
    "ranges": [
      {"type": "ECOSYSTEM", "events": [{"fixed": "7.88.1-10+deb12u1"}]},
      {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "7.88.1-10+deb12u5"}]}
    ]}]
}`,

	"UBUNTU-CVE-2024-6387": `{
  "id": "UBUNTU-CVE-2024-6387",
  "summary": "regreSSHion: race condition in sshd's SIGALRM handler",
  "modified": "2025-05-01T00:00:00Z",
  "upstream": ["CVE-2024-6387"],
  "related": ["USN-6859-1"],
  "severity": [
    {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H"},
    {"type": "Ubuntu", "score": "high"}
  ],
  "affected": [
    {"package": {"ecosystem": "Ubuntu:22.04:LTS", "name": "openssh"},
     "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1:8.9p1-3ubuntu0.10"}]}]},
    {"package": {"ecosystem": "Ubuntu:23.10", "name": "openssh"},
     "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1:9.3p1-1ubuntu3.6"}]}]},
    {"package": {"ecosystem": "Ubuntu:Pro:18.04:LTS", "name": "openssh"},
     "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1:7.6p1-4ubuntu0.7+esm3"}]}]}
  ]
}`,
	"UBUNTU-CVE-2016-2781": `{
  "id": "UBUNTU-CVE-2016-2781",
  "summary": "chroot in GNU coreutils allows escape to the parent session",
  "modified": "2025-01-01T00:00:00Z",
  "severity": [{"type": "Ubuntu", "score": "negligible"}],
  "affected": [{"package": {"ecosystem": "Ubuntu:22.04:LTS", "name": "coreutils"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]}]
}`,

	"ALPINE-CVE-2023-5678": `{
  "id": "ALPINE-CVE-2023-5678",
  "modified": "2024-01-10T00:00:00Z",
  "upstream": ["CVE-2023-5678"],
  "details": "Generating excessively long X9.42 DH keys may be very slow.",
  "affected": [{"package": {"ecosystem": "Alpine:v3.19", "name": "openssl"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.1.4-r1"}]}]},
    {"package": {"ecosystem": "Alpine:v3.18", "name": "openssl"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.1.4-r3"}]}]}]
}`,

	"RLSA-2024:0310": `{
  "schema_version": "1.6.0",
  "id": "RLSA-2024:0310",
  "summary": "Moderate: openssl security update",
  "modified": "2024-02-01T00:00:00Z",
  "published": "2024-01-23T00:00:00Z",
  "aliases": ["CVE-2023-5678"],
  "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L"}],
  "affected": [{"package": {"ecosystem": "Rocky Linux:9", "name": "openssl", "purl": "pkg:rpm/rocky-linux/openssl?distro=rocky-linux-9&epoch=1"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1:3.0.7-25.el9_3"}]}]}]
}`,

	"ALSA-2024:0310": `{
  "id": "ALSA-2024:0310",
  "summary": "Important: glibc security update",
  "modified": "2024-02-02T00:00:00Z",
  "related": ["CVE-2023-6246"],
  "affected": [
    {"package": {"ecosystem": "AlmaLinux:9", "name": "glibc"},
     "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.34-83.el9_3.7"}]}]},
    {"package": {"ecosystem": "AlmaLinux:9", "name": "glibc-common"},
     "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.34-83.el9_3.7"}]}]}
  ]
}`,
}

// debianDump is the Debian test dump.
var debianDump = []string{
	"DSA-5514-1", "DEBIAN-CVE-2023-4911", "DEBIAN-CVE-2010-4756", "DLA-3600-1", "DEBIAN-CVE-2023-45853",
	"DSA-5532-1", "DSA-5600-1", "DEBIAN-CVE-2024-0001", "DEBIAN-CVE-2024-9999", "DEBIAN-CVE-2024-8888",
	"DEBIAN-CVE-2024-7777",
}
