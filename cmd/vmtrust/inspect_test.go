package main

import (
	"archive/zip"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmtrust/vmtrust/internal/vmtest"
)

// inspectWorld is a tiny real guest — a tree turned into ext4 by mkfs.ext4
// -d and into a compressed qcow2 by qemu-img — with two dpkg packages, a
// password and an authorized_keys planted, and a small OSV dump naming one
// of its source packages.
type inspectWorld struct {
	dir, state, image, osvZip string
}

func newInspectWorld(t *testing.T) *inspectWorld {
	t.Helper()
	vmtest.Require(t, "mkfs.ext4", "qemu-img")
	dir := t.TempDir()
	w := &inspectWorld{dir: dir, state: filepath.Join(dir, "state")}
	root := filepath.Join(dir, "root")
	files := map[string]string{
		"etc/os-release": "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n",
		"etc/passwd":     "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice:/home/alice:/bin/bash\n",
		// A SHA-512 crypt hash of "password" (openssl passwd -6 -salt salt).
		"etc/shadow":                  "root:*:19000:0:99999:7:::\nalice:$6$salt$IxDD3jeSOb5eB1CX5LBsqZFVkJdido3OUILO5Ifz5iwMuTS4XMS130MTSuDDl3aCI6WouIL9AjRbLCelDCy.g.:19000:0:99999:7:::\n",
		"etc/group":                   "root:x:0:\nalice:x:1000:\n",
		"root/.ssh/authorized_keys":   "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop\n",
		"usr/bin/openssl":             "not really openssl\n",
		"usr/lib/x86_64-linux-gnu/ok": "library\n",
		"var/lib/dpkg/status": `Package: openssl
Status: install ok installed
Architecture: amd64
Version: 3.0.11-1~deb12u2
Description: Secure Sockets Layer toolkit

Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl
Version: 3.0.11-1~deb12u2
Description: Secure Sockets Layer toolkit - shared libraries

`,
		"var/lib/dpkg/info/openssl.list":       "/.\n/usr\n/usr/bin\n/usr/bin/openssl\n",
		"var/lib/dpkg/info/libssl3:amd64.list": "/.\n/usr\n/usr/lib\n/usr/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu/ok\n",
	}
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(root, "etc/shadow"), 0o640); err != nil {
		t.Fatal(err)
	}
	raw := filepath.Join(dir, "disk.raw")
	w.image = filepath.Join(dir, "disk.qcow2")
	for _, args := range [][]string{
		{"mkfs.ext4", "-q", "-F", "-d", root, raw, "16M"},
		{"qemu-img", "convert", "-O", "qcow2", "-c", raw, w.image},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	w.osvZip = filepath.Join(dir, "Debian-all.zip")
	writeOSVZip(t, w.osvZip, map[string]string{
		"DSA-9999-1.json": `{"schema_version":"1.6.0","id":"DSA-9999-1","modified":"2026-11-01T00:00:00Z","published":"2026-10-30T00:00:00Z",
"aliases":["CVE-2026-99999"],"summary":"openssl - security update",
"affected":[{"package":{"ecosystem":"Debian:12","name":"openssl"},
"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.0.13-1~deb12u1"}]}],
"ecosystem_specific":{"urgency":"high"}}]}`,
		"DSA-9998-1.json": `{"schema_version":"1.6.0","id":"DSA-9998-1","modified":"2026-10-01T00:00:00Z",
"summary":"openssl - fixed long ago",
"affected":[{"package":{"ecosystem":"Debian:12","name":"openssl"},
"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.0.9-1"}]}]}]}`,
	})
	return w
}

func writeOSVZip(t *testing.T, path string, entries map[string]string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for name, body := range entries {
		e, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func (w *inspectWorld) vm(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return vmtrust(t, append([]string{"--state", w.state}, args...)...)
}

type inspectJSON struct {
	MessageType string `json:"message_type"`
	OS          struct {
		ID        string `json:"id"`
		VersionID string `json:"version_id"`
	} `json:"os"`
	Packages []struct {
		Name, Version string
		SourceName    string `json:"source_name"`
	} `json:"packages"`
	Findings []struct {
		Rule, Severity, Path, Reason string
	} `json:"findings"`
	Vulnerabilities []struct {
		ID, Package, Installed, Fixed, Severity string
	} `json:"vulnerabilities"`
	VulnDB string `json:"vulndb"`
	Image  struct {
		Format    string
		BytesRead int64 `json:"bytes_read"`
	} `json:"image"`
}

func (w *inspectWorld) inspect(t *testing.T, args ...string) inspectJSON {
	t.Helper()
	code, out, errs := w.vm(t, append([]string{"inspect", "--format", "json"}, append(args, w.image)...)...)
	if code != 0 {
		t.Fatalf("inspect: exit %d, stderr %s", code, errs)
	}
	var r inspectJSON
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("inspect --format json: %v\n%s", err, out)
	}
	return r
}

func TestInspectCommand(t *testing.T) {
	w := newInspectWorld(t)

	r := w.inspect(t)
	if r.MessageType != "inspection" || r.Image.Format != "qcow2" || r.Image.BytesRead <= 0 || r.OS.ID != "debian" || r.OS.VersionID != "12" {
		t.Errorf("inspect: message_type %q, format %q, bytes_read %d, os %+v", r.MessageType, r.Image.Format, r.Image.BytesRead, r.OS)
	}
	if len(r.Packages) != 2 || r.Packages[0].Name != "libssl3" || r.Packages[0].SourceName != "openssl" {
		t.Errorf("packages = %+v, want libssl3 (source openssl) and openssl", r.Packages)
	}
	found := map[string]string{}
	for _, f := range r.Findings {
		found[f.Rule+" "+f.Path] = f.Severity
		if strings.Contains(f.Reason, "IxDD3jeSOb5e") {
			t.Errorf("finding %s prints the password hash: %q", f.Rule, f.Reason)
		}
	}
	for _, want := range []string{"ssh-authorized-keys /root/.ssh/authorized_keys", "account-password /etc/shadow"} {
		if found[want] != "high" {
			t.Errorf("finding %q: severity %q, want high (findings %v)", want, found[want], found)
		}
	}
	if r.VulnDB != "" || len(r.Vulnerabilities) != 0 {
		t.Errorf("without vulnerability data: vulndb %q, %d vulnerabilities", r.VulnDB, len(r.Vulnerabilities))
	}

	// --fail-on: exit 5 at high, a usage error for a bad name.
	if code, _, errs := w.vm(t, "inspect", "--fail-on", "high", w.image); code != exitFindings || !strings.Contains(errs, "high or above") {
		t.Errorf("--fail-on high: exit %d (want %d), stderr %q", code, exitFindings, errs)
	}
	if code, _, _ := w.vm(t, "inspect", "--fail-on", "severe", w.image); code != exitUsage {
		t.Errorf("--fail-on severe: exit %d, want %d", code, exitUsage)
	}
	if code, _, _ := w.vm(t, "inspect", "--format", "xml", w.image); code != exitUsage {
		t.Errorf("--format xml: exit %d, want %d", code, exitUsage)
	}

	// Vulnerability data: import, status, then matching by source package.
	if code, out, errs := w.vm(t, "vulndb", "import", w.osvZip); code != 0 || !strings.Contains(out, "Debian") {
		t.Fatalf("vulndb import: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, errs := w.vm(t, "vulndb", "status", "--json")
	if code != 0 || !strings.Contains(out, `"Debian"`) || !strings.Contains(out, `"Advisories": 2`) {
		t.Errorf("vulndb status: exit %d, %s %s", code, out, errs)
	}
	r = w.inspect(t)
	var got []string
	for _, v := range r.Vulnerabilities {
		got = append(got, v.ID+" "+v.Package+" "+v.Installed+" "+v.Fixed+" "+v.Severity)
	}
	want := []string{
		"DSA-9999-1 libssl3 3.0.11-1~deb12u2 3.0.13-1~deb12u1 high",
		"DSA-9999-1 openssl 3.0.11-1~deb12u2 3.0.13-1~deb12u1 high",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("vulnerabilities:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(r.VulnDB, "Debian") {
		t.Errorf("vulndb description %q", r.VulnDB)
	}
	if r := w.inspect(t, "--no-vulns"); len(r.Vulnerabilities) != 0 {
		t.Errorf("--no-vulns: %d vulnerabilities", len(r.Vulnerabilities))
	}

	// The other formats parse as what they claim to be.
	formats := map[string]func(map[string]any) bool{
		"cyclonedx": func(m map[string]any) bool {
			cs, _ := m["components"].([]any)
			return m["bomFormat"] == "CycloneDX" && len(cs) >= 2 && strings.Contains(mustJSON(t, cs), "pkg:deb/debian/openssl@3.0.11-1~deb12u2")
		},
		"spdx": func(m map[string]any) bool {
			ps, _ := m["packages"].([]any)
			return m["spdxVersion"] == "SPDX-2.3" && len(ps) >= 2
		},
		"sarif": func(m map[string]any) bool {
			runs, _ := m["runs"].([]any)
			return m["version"] == "2.1.0" && len(runs) == 1 && strings.Contains(mustJSON(t, runs), "ssh-authorized-keys")
		},
	}
	for format, ok := range formats {
		out := filepath.Join(w.dir, "report."+format)
		if code, _, errs := w.vm(t, "inspect", "--format", format, "-o", out, w.image); code != 0 {
			t.Errorf("--format %s: exit %d, %s", format, code, errs)
			continue
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil || !ok(m) {
			t.Errorf("--format %s: not the expected document (%v): %.300s", format, err, b)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Images that must be refused, each with exit 3 and an error that says why,
// without reading anything of the host through them.
func TestInspectRefuses(t *testing.T) {
	vmtest.Require(t, "qemu-img")
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	mk := func(name string, args ...string) string {
		p := filepath.Join(dir, name)
		if out, err := exec.Command("qemu-img", append(args, p, "1M")...).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img %v: %v\n%s", args, err, out)
		}
		return p
	}
	junk := filepath.Join(dir, "junk.img")
	if err := os.WriteFile(junk, []byte(strings.Repeat("not a disk image ", 4096)), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, image string
		args        []string
		want        string
	}{
		{"absolute backing file", mk("abs.qcow2", "create", "-q", "-f", "qcow2", "-u", "-b", "/etc/hostname", "-F", "raw"), nil, "/etc/hostname"},
		{"relative backing file leaving the directory", mk("rel.qcow2", "create", "-q", "-f", "qcow2", "-u", "-b", "../../etc/passwd", "-F", "raw"), []string{"--backing-dir", dir}, "../../etc/passwd"},
		{"no operating system", junk, nil, "no operating system found"},
		{"missing file", filepath.Join(dir, "nope.qcow2"), nil, "no such file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"--state", state, "inspect"}, c.args...)
			code, out, errs := vmtrust(t, append(args, c.image)...)
			if code != exitInput || !strings.Contains(errs, c.want) || out != "" {
				t.Errorf("inspect %s: exit %d (want %d), stderr %q (want %q), stdout %q", c.image, code, exitInput, errs, c.want, out)
			}
		})
	}
}
