package sarif

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gosarif "github.com/owenrumney/go-sarif/v2/sarif"

	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func testReport() *inventory.Report {
	return &inventory.Report{
		Image: inventory.Image{Path: "/var/cache/vmtrust/untrusted.qcow2", Format: "qcow2", SHA512: strings.Repeat("ab", 64)},
		OS:    inventory.OS{ID: "debian", VersionID: "12"},
		Packages: []inventory.Package{
			{Name: "libc6", Version: "2.36-9+deb12u1", Arch: "amd64", SourceName: "glibc", SourceVersion: "2.36-9+deb12u1", Manager: "dpkg"},
			{Name: "openssh-server", Version: "1:9.2p1-2+deb12u1", Arch: "amd64", SourceName: "openssh", SourceVersion: "1:9.2p1-2+deb12u1", Manager: "dpkg"},
		},
		Findings: []inventory.Finding{
			{Rule: "ssh-authorized-keys", Severity: inventory.High, Path: "/root/.ssh/authorized_keys",
				Reason: "root accepts SSH logins with 2 keys baked into the image", Policy: "3.2: images carry no credentials"},
			{Rule: "shadow-empty-password", Severity: inventory.Critical, Path: "/etc/shadow",
				Reason: "account debian has an empty password", Policy: "3.1: no account may log in without a credential"},
			{Rule: "cloud-init-disabled", Severity: inventory.Medium, Path: "/etc/cloud/cloud-init.disabled",
				Reason: "cloud-init is disabled, so site contextualisation cannot run", Policy: "4.1: images accept contextualisation"},
			{Rule: "world-writable", Severity: inventory.Low, Path: "/opt/app data/run#1",
				Reason: "a world-writable file outside /tmp", Policy: ""},
			{Rule: "image-note", Severity: inventory.Info, Path: "",
				Reason: "the image has no partition table", Policy: "5: informational"},
		},
		Vulnerabilities: []inventory.Vulnerability{
			{ID: "DEBIAN-CVE-2023-4911", Aliases: []string{"CVE-2023-4911"}, Ecosystem: "Debian:12", Package: "libc6",
				SourceName: "glibc", Installed: "2.36-9+deb12u1", Fixed: "2.36-9+deb12u3", Severity: inventory.High,
				Summary: "buffer overflow in ld.so"},
			{ID: "DEBIAN-CVE-2010-4756", Ecosystem: "Debian:12", Package: "libc6", SourceName: "glibc",
				Installed: "2.36-9+deb12u1", Severity: inventory.Info, Summary: "glob denial of service"},
		},
		VulnDB:      "OSV Debian: 9 advisories",
		InspectedAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
	}
}

func write(t *testing.T, r *inventory.Report) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, r); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestGolden(t *testing.T) {
	got := write(t, testReport())
	path := filepath.Join("testdata", "debian12.sarif")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (run go test -update after checking the change):\n%s", path, got)
	}
	r := testReport()
	slices := r.Findings
	slices[0], slices[4] = slices[4], slices[0]
	r.Vulnerabilities[0], r.Vulnerabilities[1] = r.Vulnerabilities[1], r.Vulnerabilities[0]
	if again := write(t, r); !bytes.Equal(again, got) {
		t.Error("output depends on the order of the report's findings and vulnerabilities")
	}
}

func TestDecode(t *testing.T) {
	log, err := gosarif.FromBytes(write(t, testReport()))
	if err != nil {
		t.Fatal(err)
	}
	if log.Version != "2.1.0" || len(log.Runs) != 1 {
		t.Fatalf("version %q, %d runs", log.Version, len(log.Runs))
	}
	run := log.Runs[0]
	if run.Tool.Driver.Name != "vmtrust" {
		t.Errorf("tool = %q", run.Tool.Driver.Name)
	}
	base, ok := run.OriginalUriBaseIDs[GuestRoot]
	if !ok || base.URI != nil || base.Description == nil {
		t.Errorf("GUEST_ROOT = %+v, want a description and no URI", base)
	}
	if len(run.Tool.Driver.Rules) != 7 {
		t.Errorf("%d rules, want 5 policy rules and 2 advisories", len(run.Tool.Driver.Rules))
	}
	for i, rule := range run.Tool.Driver.Rules {
		if i > 0 && run.Tool.Driver.Rules[i-1].ID >= rule.ID {
			t.Errorf("rules not sorted: %q before %q", run.Tool.Driver.Rules[i-1].ID, rule.ID)
		}
	}
	rule, err := run.GetRuleById("shadow-empty-password")
	if err != nil || rule.Help == nil || *rule.Help.Text != "Endorsement policy: 3.1: no account may log in without a credential" {
		t.Errorf("shadow rule = %+v, %v", rule, err)
	}
	adv, err := run.GetRuleById("DEBIAN-CVE-2023-4911")
	if err != nil || *adv.HelpURI != "https://osv.dev/vulnerability/DEBIAN-CVE-2023-4911" || !strings.Contains(*adv.Help.Text, "CVE-2023-4911") {
		t.Errorf("advisory rule = %+v, %v", adv, err)
	}

	type want struct{ level, uri string }
	wants := map[string]want{
		"shadow-empty-password": {"error", "etc/shadow"},
		"ssh-authorized-keys":   {"error", "root/.ssh/authorized_keys"},
		"cloud-init-disabled":   {"warning", "etc/cloud/cloud-init.disabled"},
		"world-writable":        {"note", "opt/app%20data/run%231"},
		"image-note":            {"note", ""},
		"DEBIAN-CVE-2023-4911":  {"error", "var/lib/dpkg/status"},
		"DEBIAN-CVE-2010-4756":  {"note", "var/lib/dpkg/status"},
	}
	if len(run.Results) != len(wants) {
		t.Fatalf("%d results, want %d", len(run.Results), len(wants))
	}
	for i, res := range run.Results {
		id := *res.RuleID
		w, ok := wants[id]
		if !ok {
			t.Errorf("unexpected result for %s", id)
			continue
		}
		if *res.Level != w.level {
			t.Errorf("%s: level %q, want %q", id, *res.Level, w.level)
		}
		if int(*res.RuleIndex) >= len(run.Tool.Driver.Rules) || run.Tool.Driver.Rules[*res.RuleIndex].ID != id {
			t.Errorf("%s: rule index %d points elsewhere", id, *res.RuleIndex)
		}
		if w.uri == "" {
			if len(res.Locations) != 0 {
				t.Errorf("%s: locations %+v, want none", id, res.Locations)
			}
			continue
		}
		if len(res.Locations) != 1 {
			t.Errorf("%s: %d locations", id, len(res.Locations))
			continue
		}
		al := res.Locations[0].PhysicalLocation.ArtifactLocation
		if *al.URI != w.uri || *al.URIBaseId != GuestRoot {
			t.Errorf("%s: location %q base %q, want %q base %s", id, *al.URI, *al.URIBaseId, w.uri, GuestRoot)
		}
		if i == 0 && id != "shadow-empty-password" {
			t.Errorf("first result %s, want the critical finding", id)
		}
	}
	for _, res := range run.Results {
		if *res.RuleID == "DEBIAN-CVE-2023-4911" {
			if !strings.Contains(*res.Message.Text, "Fixed in 2.36-9+deb12u3") || res.Properties["vmtrust/fixed"] != "2.36-9+deb12u3" ||
				*res.Locations[0].LogicalLocations[0].Name != "libc6" {
				t.Errorf("vulnerability result = %+v", res)
			}
		}
	}
}

func TestGuestURI(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/etc/shadow", "etc/shadow"},
		{"/root/.ssh/authorized_keys", "root/.ssh/authorized_keys"},
		{"/", "."},
		{"", ""},
		{"/etc/../../../etc/passwd", "etc/passwd"},
		{"../../host/file", "host/file"},
		{"//etc//shadow/", "etc/shadow"},
		{"/opt/a b/c#d?e", "opt/a%20b/c%23d%3Fe"},
		{"/tmp/%2e%2e", "tmp/%252e%252e"},
		{"/var/\x00nul", "var/%00nul"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got := guestURI(tc.in); got != tc.want {
				t.Errorf("guestURI(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestLevel(t *testing.T) {
	tests := []struct {
		s    inventory.Severity
		want string
	}{
		{inventory.Critical, "error"},
		{inventory.High, "error"},
		{inventory.Medium, "warning"},
		{inventory.Low, "note"},
		{inventory.Info, "note"},
		{inventory.Severity(-1), "note"},
		{inventory.Severity(99), "error"},
	}
	for _, tc := range tests {
		if got := level(tc.s); got != tc.want {
			t.Errorf("level(%v) = %q, want %q", tc.s, got, tc.want)
		}
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"nil report", Write(&bytes.Buffer{}, nil), "nil report"},
		{"write error", Write(failingWriter{}, testReport()), "disk full"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
				t.Errorf("error = %v, want one containing %q", tc.err, tc.want)
			}
		})
	}
}

// A clean report is a valid log with no results.
func TestEmptyReport(t *testing.T) {
	log, err := gosarif.FromBytes(write(t, &inventory.Report{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(log.Runs) != 1 || len(log.Runs[0].Results) != 0 || len(log.Runs[0].Tool.Driver.Rules) != 0 {
		t.Errorf("log = %+v", log.Runs)
	}
}
