package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/internal/endorse"
	"github.com/vmtrust/vmtrust/internal/pkitest"
)

func vmtrust(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestExitCodesDistinct(t *testing.T) {
	seen := map[int]endorse.Reason{}
	for _, r := range endorse.Reasons {
		c, ok := reasonCodes[r]
		if !ok {
			t.Errorf("reason %s has no exit code", r)
			continue
		}
		if prev, dup := seen[c]; dup {
			t.Errorf("reasons %s and %s share exit code %d", prev, r, c)
		}
		if c <= exitInput || c >= 126 {
			t.Errorf("reason %s has exit code %d, outside 4..125", r, c)
		}
		seen[c] = r
	}
	if len(reasonCodes) != len(endorse.Reasons) {
		t.Errorf("%d exit codes for %d reasons", len(reasonCodes), len(endorse.Reasons))
	}
}

func TestHelpEverywhere(t *testing.T) {
	for _, args := range [][]string{{}, {"imagelist"}, {"imagelist", "create"}, {"imagelist", "sign"}, {"imagelist", "verify"}, {"imagelist", "show"}} {
		code, out, _ := vmtrust(t, append(args, "--help")...)
		if code != 0 || !strings.Contains(out, "Usage:") {
			t.Errorf("vmtrust %v --help = %d, %q", args, code, out)
		}
	}
	if code, _, errs := vmtrust(t, "no-such-command"); code != exitUsage || !strings.Contains(errs, "vmtrust: error:") {
		t.Errorf("unknown command: exit %d, stderr %q", code, errs)
	}
}

// endorserWorld is a site: a CA with a CRL, an endorser, a real image file
// and a spec, all in files as an admin would have them.
type endorserWorld struct {
	dir, caDir, cert, key, spec string
	endorser                    *pkitest.Identity
}

func newEndorserWorld(t *testing.T) *endorserWorld {
	w := &endorserWorld{dir: t.TempDir()}
	ca := pkitest.NewCA(t, "/DC=org/DC=vmtrust-test/CN=CLI CA", pkitest.Opts{})
	e := ca.Issue(t, "/DC=org/DC=vmtrust-test/CN=CLI Endorser", false, pkitest.Opts{})
	w.endorser = e
	w.caDir = pkitest.NewDir(t).AddCA(ca).AddCRL(ca, ca.CurrentCRL(t)).Path
	w.cert = w.write(t, "endorser.pem", e.CertPEM())
	w.key = w.write(t, "endorser.key", e.KeyPEM(t))
	img := bytes.Repeat([]byte("vmtrust disk image block\n"), 40000) // 1 MB
	w.write(t, "disk.img", img)
	w.spec = w.write(t, "spec.json", []byte(`{
  "identifier": "5d5e7c4e-2f1a-4f43-9d3c-0a9a4f1b2c3d", "title": "CLI list", "description": "test",
  "source": "https://site.test/", "uri": "https://site.test/image.list",
  "endorser": {"email": "admin@site.test", "creator": "Admins"},
  "images": [{"file": "disk.img", "identifier": "8c0a7d1e-1111-4c4c-8d8d-000000000001", "title": "Disk",
    "description": "a disk", "uri": "https://site.test/disk.img", "version": "1.0", "hypervisor": "QEMU",
    "format": "raw", "arch": "x86_64", "os": "Linux", "osname": "Debian", "osversion": "12", "comments": ""}]}`))
	return w
}

func (w *endorserWorld) write(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(w.dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (w *endorserWorld) path(name string) string { return filepath.Join(w.dir, name) }

func TestEndorserWorkflow(t *testing.T) {
	w := newEndorserWorld(t)
	if code, _, errs := vmtrust(t, "imagelist", "create", "--spec", w.spec, "--cert", w.cert, "-o", w.path("list.json")); code != exitUsage || !strings.Contains(errs, "version") {
		t.Fatalf("create without a version: exit %d, %q; want %d and a message about the version", code, errs, exitUsage)
	}
	if code, _, errs := vmtrust(t, "imagelist", "create", "--spec", w.spec, "--cert", w.cert, "--version", "4", "-o", w.path("list.json")); code != 0 {
		t.Fatalf("create: exit %d: %s", code, errs)
	}
	list, err := os.ReadFile(w.path("list.json"))
	if err != nil {
		t.Fatal(err)
	}
	// The digest and size are of the real file: 1,000,000 bytes.
	for _, want := range []string{`"hv:size": 1000000`, `"hv:version": "4"`, `"hv:dn": "/DC=org/DC=vmtrust-test/CN=CLI Endorser"`, `"hv:ca": "/DC=org/DC=vmtrust-test/CN=CLI CA"`} {
		if !strings.Contains(string(list), want) {
			t.Errorf("list lacks %s", want)
		}
	}
	if code, _, errs := vmtrust(t, "imagelist", "sign", "--cert", w.cert, "--key", w.key, "-o", w.path("list.signed"), w.path("list.json")); code != 0 {
		t.Fatalf("sign: exit %d: %s", code, errs)
	}
	code, out, errs := vmtrust(t, "imagelist", "verify", "--ca-dir", w.caDir, "--content", w.path("verified.json"), w.path("list.signed"))
	if code != 0 || !strings.Contains(out, "VERIFIED") {
		t.Fatalf("verify: exit %d\n%s\n%s", code, out, errs)
	}
	if got, _ := os.ReadFile(w.path("verified.json")); !bytes.Equal(bytes.ReplaceAll(got, []byte("\r\n"), []byte("\n")), list) {
		t.Fatal("--content did not write the verified list")
	}
	code, out, _ = vmtrust(t, "imagelist", "verify", "--json", "--ca-dir", w.caDir, w.path("list.signed"))
	var rep struct {
		MessageType string `json:"message_type"`
		OK          bool   `json:"ok"`
		Checks      []struct{ Name, Status string }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 || !rep.OK || rep.MessageType != "imagelist_verification" || len(rep.Checks) < 10 {
		t.Fatalf("verify --json: exit %d, %+v, %v\n%s", code, rep, err, out)
	}

	// --bump counts up from the previous list.
	if code, _, errs := vmtrust(t, "imagelist", "create", "--spec", w.spec, "--cert", w.cert, "--bump", w.path("list.signed"), "-o", w.path("list5.json")); code != 0 {
		t.Fatalf("create --bump: exit %d: %s", code, errs)
	}
	if b, _ := os.ReadFile(w.path("list5.json")); !strings.Contains(string(b), `"hv:version": "5"`) {
		t.Fatalf("--bump did not make version 5:\n%s", b)
	}

	signed, _ := os.ReadFile(w.path("list.signed"))
	rejections := []struct {
		name string
		file []byte
		args []string
		code int
		text string
	}{
		{"tampered", bytes.Replace(signed, []byte(`"hv:size": 1000000`), []byte(`"hv:size": 1000001`), 1), nil, 15, "tampered"},
		{"expired", signed, []string{"--at", "2099-01-01"}, 21, "cert-expired"},
		{"unsigned", list, nil, 11, "unsigned"},
		{"truncated", signed[:len(signed)/2], nil, 10, "malformed"},
	}
	for _, r := range rejections {
		t.Run(r.name, func(t *testing.T) {
			f := w.write(t, r.name+".signed", r.file)
			args := append([]string{"imagelist", "verify", "--ca-dir", w.caDir, "--content", w.path(r.name + ".out")}, r.args...)
			code, out, errs := vmtrust(t, append(args, f)...)
			if code != r.code || !strings.Contains(out, "REJECTED ("+r.text+")") || !strings.Contains(errs, "vmtrust: error:") {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, r.code, out, errs)
			}
			if _, err := os.Stat(w.path(r.name + ".out")); !os.IsNotExist(err) {
				t.Fatal("a rejected list's content was written")
			}
		})
	}

	// The list expires before the certificate does: at a time between the
	// two, the list itself is what has expired.
	after := time.Now().Add(29 * 24 * time.Hour).UTC().Format(time.RFC3339) // the list lives 28 days, the certificate a year
	if code, out, _ := vmtrust(t, "imagelist", "verify", "--crl", "off", "--ca-dir", w.caDir, "--at", after, w.path("list.signed")); code != 32 || !strings.Contains(out, "list-expired") {
		t.Fatalf("verify at %s: exit %d, want 32 (list expired)\n%s", after, code, out)
	}
	if code, _, errs := vmtrust(t, "imagelist", "verify", "--ca-dir", w.caDir, "--endorser-dn", "/DC=org/DC=vmtrust-test/CN=Someone", "--endorser-ca", "/DC=org/DC=vmtrust-test/CN=CLI CA", w.path("list.signed")); code != 34 {
		t.Fatalf("verify with another authorised endorser: exit %d, want 34\n%s", code, errs)
	}
	if code, _, _ := vmtrust(t, "imagelist", "verify", "--ca-dir", w.caDir, "--endorser-dn", "/DC=org/DC=vmtrust-test/CN=CLI Endorser", w.path("list.signed")); code != exitUsage {
		t.Fatalf("--endorser-dn without --endorser-ca: exit %d, want %d", code, exitUsage)
	}
	big := w.write(t, "big.signed", append(append([]byte{}, signed...), make([]byte, 64<<20)...))
	if code, _, _ := vmtrust(t, "imagelist", "verify", "--ca-dir", w.caDir, big); code != 13 {
		t.Fatalf("verify of an oversize file: exit %d, want 13 (too large)", code)
	}
}

func TestSignRefusesWrongEndorser(t *testing.T) {
	w := newEndorserWorld(t)
	if code, _, errs := vmtrust(t, "imagelist", "create", "--spec", w.spec, "--version", "1", "-o", w.path("list.json")); code != exitInput || !strings.Contains(errs, "hv:dn") {
		// Without --cert the spec has no dn/ca: create refuses an incomplete list.
		t.Fatalf("create without endorser DN: exit %d, %s", code, errs)
	}
	other := pkitest.NewCA(t, "/DC=org/DC=other/CN=Other", pkitest.Opts{})
	otherCert := w.write(t, "other.pem", other.CertPEM())
	if code, _, errs := vmtrust(t, "imagelist", "create", "--spec", w.spec, "--cert", otherCert, "--version", "1", "-o", w.path("list.json")); code != 0 {
		t.Fatalf("create: %d %s", code, errs)
	}
	code, _, errs := vmtrust(t, "imagelist", "sign", "--cert", w.cert, "--key", w.key, "-o", w.path("list.signed"), w.path("list.json"))
	if code != exitInput || !strings.Contains(errs, "subscribers would reject it") || !strings.Contains(errs, "vmtrust: hint:") {
		t.Fatalf("sign with another endorser's list: exit %d, %s", code, errs)
	}
	if _, err := os.Stat(w.path("list.signed")); !os.IsNotExist(err) {
		t.Fatal("a refused sign wrote output")
	}
	wrongKey := pkitest.NewCA(t, "/DC=org/DC=other/CN=Key", pkitest.Opts{})
	keyFile := w.write(t, "wrong.key", wrongKey.KeyPEM(t))
	if code, _, errs := vmtrust(t, "imagelist", "sign", "--force", "--cert", w.cert, "--key", keyFile, "-o", w.path("x.signed"), w.path("list.json")); code != exitInput || !strings.Contains(errs, "does not belong") {
		t.Fatalf("sign with a mismatched key: exit %d, %s", code, errs)
	}
}

func TestShow(t *testing.T) {
	w := newEndorserWorld(t)
	vmtrust(t, "imagelist", "create", "--spec", w.spec, "--cert", w.cert, "--version", "1", "-o", w.path("list.json"))
	vmtrust(t, "imagelist", "sign", "--cert", w.cert, "--key", w.key, "-o", w.path("list.signed"), w.path("list.json"))
	code, out, _ := vmtrust(t, "imagelist", "show", w.path("list.signed"))
	if code != 0 || !strings.Contains(out, "NOT VERIFIED") || !strings.Contains(out, "8c0a7d1e-1111-4c4c-8d8d-000000000001") {
		t.Fatalf("show unverified: %d\n%s", code, out)
	}
	code, out, _ = vmtrust(t, "imagelist", "show", "--ca-dir", w.caDir, w.path("list.signed"))
	if code != 0 || !strings.Contains(out, "VERIFIED, signed by /DC=org/DC=vmtrust-test/CN=CLI Endorser") {
		t.Fatalf("show verified: %d\n%s", code, out)
	}
	// With --ca-dir nothing is shown that does not verify, unsigned included.
	if code, out, _ := vmtrust(t, "imagelist", "show", "--ca-dir", w.caDir, w.path("list.json")); code != 11 || strings.Contains(out, "VERIFIED") {
		t.Fatalf("show --ca-dir of an unsigned list: exit %d, want 11\n%s", code, out)
	}
	signed, _ := os.ReadFile(w.path("list.signed"))
	tampered := w.write(t, "tampered.signed", bytes.Replace(signed, []byte(`"hv:size": 1000000`), []byte(`"hv:size": 1000001`), 1))
	if code, _, _ := vmtrust(t, "imagelist", "show", "--ca-dir", w.caDir, tampered); code != 15 {
		t.Fatalf("show --ca-dir of a tampered list: exit %d, want 15", code)
	}
	code, out, _ = vmtrust(t, "imagelist", "show", "--json", w.path("list.json"))
	var v struct {
		MessageType string `json:"message_type"`
		Images      []struct {
			Size int64 `json:"size"`
		} `json:"images"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || code != 0 || v.MessageType != "imagelist" || len(v.Images) != 1 || v.Images[0].Size != 1000000 {
		t.Fatalf("show --json: %d %v %+v", code, err, v)
	}
}
