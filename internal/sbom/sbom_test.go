package sbom

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	packageurl "github.com/package-url/packageurl-go"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdxlib"

	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// testReport is a small inspection of a Debian 12 image.
func testReport() *inventory.Report {
	installed := time.Date(2025, 6, 1, 8, 30, 0, 0, time.UTC)
	return &inventory.Report{
		Image: inventory.Image{
			Path: "/var/lib/vmtrust/cache/debian-12-generic-amd64.qcow2", Format: "qcow2",
			VirtualSize: 2 << 30, FileSize: 400 << 20, Scheme: "gpt",
			SHA512: strings.Repeat("ab", 64),
		},
		OS: inventory.OS{ID: "debian", VersionID: "12", VersionCodename: "bookworm",
			PrettyName: "Debian GNU/Linux 12 (bookworm)", Source: "/etc/os-release"},
		EndOfLife: inventory.EndOfLife{Known: true, Date: time.Date(2028, 6, 30, 0, 0, 0, 0, time.UTC), Release: "bookworm"},
		Kernels:   []inventory.Kernel{{Version: "6.1.0-18-amd64", Path: "/boot/vmlinuz-6.1.0-18-amd64"}},
		Packages: []inventory.Package{
			{Name: "bash", Version: "5.2.15-2+b2", Arch: "amd64", SourceName: "bash", SourceVersion: "5.2.15-2", Manager: "dpkg", InstallTime: installed},
			{Name: "libc6", Version: "2.36-9+deb12u1", Arch: "amd64", SourceName: "glibc", SourceVersion: "2.36-9+deb12u1", Manager: "dpkg"},
			{Name: "libc6", Version: "2.36-9+deb12u1", Arch: "i386", SourceName: "glibc", SourceVersion: "2.36-9+deb12u1", Manager: "dpkg"},
			{Name: "libstdc++6", Version: "12.2.0-14", Arch: "amd64", SourceName: "gcc-12", SourceVersion: "12.2.0-14", Manager: "dpkg"},
			{Name: "zlib1g", Version: "1:1.2.13.dfsg-1", Arch: "amd64", SourceName: "zlib", SourceVersion: "1:1.2.13.dfsg-1", Manager: "dpkg"},
		},
		Vulnerabilities: []inventory.Vulnerability{
			{ID: "DEBIAN-CVE-2023-4911", Aliases: []string{"CVE-2023-4911"}, Ecosystem: "Debian:12", Package: "libc6",
				SourceName: "glibc", Installed: "2.36-9+deb12u1", Fixed: "2.36-9+deb12u3", Severity: inventory.High,
				Summary: "buffer overflow in ld.so's GLIBC_TUNABLES handling"},
			{ID: "DEBIAN-CVE-2010-4756", Aliases: []string{"CVE-2010-4756"}, Ecosystem: "Debian:12", Package: "libc6",
				SourceName: "glibc", Installed: "2.36-9+deb12u1", Severity: inventory.Info, Summary: "glob denial of service"},
		},
		VulnDB:      "OSV Debian (all.zip sha256:0123456789ab): 9 advisories",
		InspectedAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
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
}

func render(t *testing.T, f func(w *bytes.Buffer, r *inventory.Report) error, r *inventory.Report) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := f(&b, r); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func cyclonedxTo(w *bytes.Buffer, r *inventory.Report) error { return CycloneDX(w, r) }
func spdxTo(w *bytes.Buffer, r *inventory.Report) error      { return SPDX(w, r) }

func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		file string
		f    func(*bytes.Buffer, *inventory.Report) error
	}{
		{"debian12.cdx.json", cyclonedxTo},
		{"debian12.spdx.json", spdxTo},
	} {
		t.Run(tc.file, func(t *testing.T) {
			out := render(t, tc.f, testReport())
			golden(t, tc.file, out)
			// Shuffled input, same output.
			r := testReport()
			r.Packages[0], r.Packages[3] = r.Packages[3], r.Packages[0]
			if again := render(t, tc.f, r); !bytes.Equal(again, out) {
				t.Error("output depends on the order of the report's packages")
			}
		})
	}
}

func TestCycloneDX(t *testing.T) {
	out := render(t, cyclonedxTo, testReport())
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(out), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		t.Fatal(err)
	}
	if bom.SpecVersion != cdx.SpecVersion1_6 || bom.BOMFormat != "CycloneDX" || bom.JSONSchema != "http://cyclonedx.org/schema/bom-1.6.schema.json" {
		t.Errorf("spec = %v %q %q", bom.SpecVersion, bom.BOMFormat, bom.JSONSchema)
	}
	if !regexp.MustCompile(`^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(bom.SerialNumber) {
		t.Errorf("serial number %q is not a version 8 UUID URN", bom.SerialNumber)
	}
	m := bom.Metadata
	if m == nil || m.Component == nil || m.Timestamp != "2026-03-01T12:00:00Z" {
		t.Fatalf("metadata = %+v", m)
	}
	if c := m.Component; c.Name != "debian-12-generic-amd64.qcow2" || c.Type != cdx.ComponentTypeFile ||
		c.Hashes == nil || (*c.Hashes)[0].Algorithm != cdx.HashAlgoSHA512 || (*c.Hashes)[0].Value != strings.Repeat("ab", 64) {
		t.Errorf("image component = %+v", c)
	}
	if m.Tools == nil || m.Tools.Components == nil || (*m.Tools.Components)[0].Name != "vmtrust" {
		t.Errorf("tools = %+v", m.Tools)
	}
	comps := *bom.Components
	if comps[0].Type != cdx.ComponentTypeOS || comps[0].Name != "debian" || comps[0].Version != "12" {
		t.Errorf("OS component = %+v", comps[0])
	}
	refs := map[string]cdx.Component{}
	for _, c := range comps {
		if _, dup := refs[c.BOMRef]; dup {
			t.Errorf("bom-ref %q twice", c.BOMRef)
		}
		refs[c.BOMRef] = c
		if c.Type != cdx.ComponentTypeLibrary {
			continue
		}
		p, err := packageurl.FromString(c.PackageURL)
		if err != nil {
			t.Errorf("%s: purl %q: %v", c.Name, c.PackageURL, err)
			continue
		}
		if p.Type != "deb" || p.Namespace != "debian" || p.Name != c.Name || p.Version != c.Version || p.Qualifiers.Map()["distro"] != "debian-12" {
			t.Errorf("%s: purl %+v", c.Name, p)
		}
	}
	if len(comps) != 6 {
		t.Errorf("%d components, want the OS and 5 packages", len(comps))
	}
	bash := refs["pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64&distro=debian-12"]
	if bash.Properties == nil || !hasProperty(*bash.Properties, "vmtrust:package:source_version", "5.2.15-2") ||
		!hasProperty(*bash.Properties, "vmtrust:package:install_time", "2025-06-01T08:30:00Z") {
		t.Errorf("bash component = %+v", bash)
	}
	vulns := *bom.Vulnerabilities
	if len(vulns) != 2 || vulns[0].ID != "DEBIAN-CVE-2010-4756" || vulns[1].ID != "DEBIAN-CVE-2023-4911" {
		t.Fatalf("vulnerabilities = %+v", vulns)
	}
	v := vulns[1]
	if (*v.Ratings)[0].Severity != cdx.SeverityHigh || v.Source.URL != "https://osv.dev/vulnerability/DEBIAN-CVE-2023-4911" ||
		!strings.Contains(v.Recommendation, "to 2.36-9+deb12u3") || (*v.References)[0].ID != "CVE-2023-4911" {
		t.Errorf("vulnerability = %+v", v)
	}
	if v.Affects == nil || len(*v.Affects) != 2 {
		t.Fatalf("affects = %+v, want both libc6 arches", v.Affects)
	}
	for _, a := range *v.Affects {
		if c, ok := refs[a.Ref]; !ok || c.Name != "libc6" {
			t.Errorf("affects %q, not a libc6 component", a.Ref)
		}
	}
	if bom.Dependencies == nil || len(*(*bom.Dependencies)[1].Dependencies) != 5 {
		t.Errorf("dependencies = %+v", bom.Dependencies)
	}
}

func hasProperty(ps []cdx.Property, name, value string) bool {
	for _, p := range ps {
		if p.Name == name && p.Value == value {
			return true
		}
	}
	return false
}

func TestSPDX(t *testing.T) {
	out := render(t, spdxTo, testReport())
	doc, err := spdxjson.Read(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if err := spdxlib.ValidateDocument(doc); err != nil {
		t.Errorf("ValidateDocument: %v", err)
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.DataLicense != "CC0-1.0" || doc.SPDXIdentifier != "DOCUMENT" {
		t.Errorf("header = %q %q %q", doc.SPDXVersion, doc.DataLicense, doc.SPDXIdentifier)
	}
	if !regexp.MustCompile(`^https://github\.com/vmtrust/vmtrust/spdx/image/debian-12-generic-amd64\.qcow2-[0-9a-f-]{36}$`).MatchString(doc.DocumentNamespace) {
		t.Errorf("namespace = %q", doc.DocumentNamespace)
	}
	if doc.CreationInfo.Created != "2026-03-01T12:00:00Z" || doc.CreationInfo.Creators[0].Creator != "vmtrust" {
		t.Errorf("creation info = %+v", doc.CreationInfo)
	}
	described, err := spdxlib.GetDescribedPackageIDs(doc)
	if err != nil || len(described) != 1 || described[0] != "Image" {
		t.Errorf("described = %v, %v; want the image", described, err)
	}
	if len(doc.Packages) != 7 {
		t.Fatalf("%d packages, want image, OS and 5", len(doc.Packages))
	}
	img := doc.Packages[0]
	if img.PackageChecksums[0].Value != strings.Repeat("ab", 64) || img.PackageName != "debian-12-generic-amd64.qcow2" {
		t.Errorf("image package = %+v", img)
	}
	contains := 0
	for _, r := range doc.Relationships {
		if r.RefA.ElementRefID == "OperatingSystem" && r.Relationship == "CONTAINS" {
			contains++
		}
	}
	if contains != 5 {
		t.Errorf("the OS CONTAINS %d packages, want 5", contains)
	}
	ids := map[string]bool{}
	advisories := 0
	for _, p := range doc.Packages[2:] {
		if ids[string(p.PackageSPDXIdentifier)] {
			t.Errorf("SPDX id %s twice", p.PackageSPDXIdentifier)
		}
		ids[string(p.PackageSPDXIdentifier)] = true
		if !regexp.MustCompile(`^[A-Za-z0-9.-]+$`).MatchString(string(p.PackageSPDXIdentifier)) {
			t.Errorf("SPDX id %q has characters SPDX does not allow", p.PackageSPDXIdentifier)
		}
		purl := p.PackageExternalReferences[0]
		if purl.Category != "PACKAGE-MANAGER" || purl.RefType != "purl" {
			t.Errorf("%s: first external ref = %+v", p.PackageName, purl)
		}
		if _, err := packageurl.FromString(purl.Locator); err != nil {
			t.Errorf("%s: purl %q: %v", p.PackageName, purl.Locator, err)
		}
		for _, ref := range p.PackageExternalReferences[1:] {
			if ref.Category == "SECURITY" && ref.RefType == "advisory" && p.PackageName == "libc6" {
				advisories++
			}
		}
		if p.PackageName == "libstdc++6" && p.PackageSourceInfo != "built package from: gcc-12 12.2.0-14" {
			t.Errorf("sourceInfo = %q", p.PackageSourceInfo)
		}
	}
	if advisories != 4 {
		t.Errorf("%d advisory references on libc6, want 2 on each arch", advisories)
	}
}

func TestPackageURL(t *testing.T) {
	debian := inventory.OS{ID: "debian", VersionID: "12"}
	tests := []struct {
		name string
		os   inventory.OS
		pkg  inventory.Package
		want string
	}{
		{"deb with a binNMU", debian, inventory.Package{Name: "bash", Version: "5.2.15-2+b2", Arch: "amd64", Manager: "dpkg"},
			"pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64&distro=debian-12"},
		{"deb with an epoch", debian, inventory.Package{Name: "zlib1g", Version: "1:1.2.13.dfsg-1", Arch: "amd64", Manager: "dpkg"},
			"pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64&distro=debian-12"},
		{"ubuntu", inventory.OS{ID: "ubuntu", VersionID: "22.04"}, inventory.Package{Name: "openssh-server", Version: "1:8.9p1-3ubuntu0.10", Arch: "amd64", Manager: "dpkg"},
			"pkg:deb/ubuntu/openssh-server@1:8.9p1-3ubuntu0.10?arch=amd64&distro=ubuntu-22.04"},
		{"rpm with an epoch", inventory.OS{ID: "rocky", VersionID: "9.3"}, inventory.Package{Name: "openssl-libs", Version: "1:3.0.7-25.el9_3", Arch: "x86_64", Manager: "rpm"},
			"pkg:rpm/rocky/openssl-libs@3.0.7-25.el9_3?arch=x86_64&distro=rocky-9.3&epoch=1"},
		{"rpm with epoch 0", inventory.OS{ID: "almalinux", VersionID: "9.3"}, inventory.Package{Name: "bash", Version: "0:5.1.8-6.el9", Arch: "x86_64", Manager: "rpm"},
			"pkg:rpm/almalinux/bash@5.1.8-6.el9?arch=x86_64&distro=almalinux-9.3"},
		{"apk", inventory.OS{ID: "alpine", VersionID: "3.19.1"}, inventory.Package{Name: "musl", Version: "1.2.4_git20230717-r4", Arch: "x86_64", Manager: "apk"},
			"pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64&distro=alpine-3.19.1"},
		{"deb without arch or release", inventory.OS{ID: "debian"}, inventory.Package{Name: "tzdata", Version: "2024a-0+deb12u1", Manager: "dpkg"},
			"pkg:deb/debian/tzdata@2024a-0%2Bdeb12u1"},
		{"unknown manager", debian, inventory.Package{Name: "x", Version: "1", Manager: "pacman"}, ""},
		{"no manager", debian, inventory.Package{Name: "x", Version: "1"}, ""},
		{"no name", debian, inventory.Package{Version: "1", Manager: "dpkg"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := PackageURL(tc.os, tc.pkg)
			if got != tc.want {
				t.Errorf("PackageURL = %q, want %q", got, tc.want)
			}
			if got == "" {
				return
			}
			p, err := packageurl.FromString(got)
			if err != nil || p.ToString() != got {
				t.Errorf("purl %q does not round-trip: %v, %v", got, p, err)
			}
		})
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
		{"cyclonedx nil report", CycloneDX(&bytes.Buffer{}, nil), "nil report"},
		{"spdx nil report", SPDX(&bytes.Buffer{}, nil), "nil report"},
		{"cyclonedx write error", CycloneDX(failingWriter{}, testReport()), "disk full"},
		{"spdx write error", SPDX(failingWriter{}, testReport()), "disk full"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
				t.Errorf("error = %v, want one containing %q", tc.err, tc.want)
			}
		})
	}
}

// Another inspection, or another image, gets another document id.
func TestDocumentIdentity(t *testing.T) {
	base := testReport()
	later := testReport()
	later.InspectedAt = later.InspectedAt.Add(time.Second)
	other := testReport()
	other.Image.SHA512 = strings.Repeat("cd", 64)
	unhashed := testReport()
	unhashed.Image.SHA512 = ""
	unhashed2 := testReport()
	unhashed2.Image.SHA512 = ""
	unhashed2.Image.Path = "/elsewhere/debian-12-generic-amd64.qcow2"
	ids := map[string]string{}
	for name, r := range map[string]*inventory.Report{"base": base, "later": later, "other image": other,
		"no hash": unhashed, "no hash, other path": unhashed2} {
		for _, kind := range []string{"cyclonedx", "spdx"} {
			id := documentID(r, kind)
			if prev, dup := ids[id]; dup {
				t.Errorf("%s %s has the id of %s", name, kind, prev)
			}
			ids[id] = name + " " + kind
		}
	}
	if documentID(base, "spdx") != documentID(testReport(), "spdx") {
		t.Error("the same report got two ids")
	}
}

// A report with nothing but an image still gives valid documents.
func TestEmptyReport(t *testing.T) {
	r := &inventory.Report{Image: inventory.Image{Path: "x.raw", Format: "raw"}}
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(render(t, cyclonedxTo, r)), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		t.Fatal(err)
	}
	if bom.Vulnerabilities != nil || len(*bom.Components) != 1 || (*bom.Components)[0].Name != "unknown" {
		t.Errorf("BOM = %+v", bom)
	}
	doc, err := spdxjson.Read(bytes.NewReader(render(t, spdxTo, r)))
	if err != nil {
		t.Fatal(err)
	}
	if err := spdxlib.ValidateDocument(doc); err != nil || len(doc.Packages) != 2 {
		t.Errorf("document: %v, %d packages", err, len(doc.Packages))
	}
}

// A package listed twice is one component and one SPDX package.
func TestDuplicatePackages(t *testing.T) {
	r := testReport()
	r.Packages = append(r.Packages, r.Packages[0])
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(render(t, cyclonedxTo, r)), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		t.Fatal(err)
	}
	if n := len(*bom.Components); n != 6 {
		t.Errorf("%d components, want 6", n)
	}
	doc, err := spdxjson.Read(bytes.NewReader(render(t, spdxTo, r)))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(doc.Packages); n != 7 {
		t.Errorf("%d SPDX packages, want 7", n)
	}
}
