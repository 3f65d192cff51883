package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func admitDomain(t *testing.T, w *siteWorld, name, disk string) string {
	t.Helper()
	x := `<domain type='kvm'><name>` + name + `</name><uuid>0f0e0d0c-0b0a-0908-0706-050403020100</uuid><devices>
  <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='` + disk + `'/><target dev='vda' bus='virtio'/><transient/></disk>
  <interface type='network'><mac address='52:54:00:12:34:56'/><source network='default'/></interface>
  <graphics type='vnc' listen='127.0.0.1' passwd='x'/>
</devices></domain>`
	return w.write(t, name+".xml", []byte(x))
}

// newCachedWorld is a site that subscribed, updated and cached one image
// (img1); it returns the cached file's path.
func newCachedWorld(t *testing.T) (*siteWorld, string) {
	t.Helper()
	w := newSiteWorld(t)
	w.subscribe(t)
	w.publish(t, "1", map[string][]byte{img1: bytes.Repeat([]byte("disk"), 100_000)})
	if code, out, errs := w.vm(t, "update"); code != 0 {
		t.Fatalf("update: %d\n%s\n%s", code, out, errs)
	}
	_, ims := w.images(t)
	cached := ims[img1].Path
	if ims[img1].State != "cached" || cached == "" {
		t.Fatalf("images: %+v", ims)
	}
	return w, cached
}

func TestAdmit(t *testing.T) {
	w, cached := newCachedWorld(t)

	code, out, errs := w.vm(t, "admit", "--json", admitDomain(t, w, "good", cached))
	var d struct {
		MessageType string `json:"message_type"`
		Allow       bool   `json:"allow"`
		Class       int    `json:"class"`
		Reason      string `json:"reason"`
		UUID        string `json:"uuid"`
		MACs        []string
		Disks       []struct {
			ImageID string `json:"image_id"`
			SHA512  string `json:"sha512"`
			State   string `json:"state"`
		} `json:"disks"`
	}
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("admit --json: %v\n%s\n%s", err, out, errs)
	}
	if code != 0 || d.MessageType != "admission" || !d.Allow || d.Class != 2 || len(d.Disks) != 1 || d.Disks[0].ImageID != img1 || d.Disks[0].State != "cached" {
		t.Fatalf("admit cached image: exit %d %+v\n%s", code, d, errs)
	}
	if code, out, _ := w.vm(t, "admit", admitDomain(t, w, "good", cached)); code != 0 || !strings.Contains(out, "ALLOWED class 2") {
		t.Fatalf("admit (table): exit %d\n%s", code, out)
	}

	// A byte-identical copy outside the cache is not an admitted image.
	disk, err := os.ReadFile(cached)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(w.dir, "copy.img")
	if err := os.WriteFile(cp, disk, 0o444); err != nil {
		t.Fatal(err)
	}
	code, out, errs = w.vm(t, "admit", admitDomain(t, w, "copy", cp))
	if code != exitDenied || !strings.Contains(out, "DENIED") || !strings.Contains(errs, "no rule allows this domain (disk vda: "+cp+" is unknown") || !strings.Contains(out, "not a cached image") {
		t.Fatalf("admit unknown copy: exit %d, want %d\n%s\n%s", code, exitDenied, out, errs)
	}

	if code, _, _ := w.vm(t, "admit", filepath.Join(w.dir, "missing.xml")); code != exitInput {
		t.Fatalf("admit missing file: exit %d, want %d", code, exitInput)
	}

	b, err := os.ReadFile(filepath.Join(w.state, "admission.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n != 3 {
		t.Fatalf("admission.jsonl: %d decisions, want 3:\n%s", n, b)
	}
}

// TestAdmitSiteEndorserAndIdentity: the site's own endorser gives class 1;
// the digest is trusted without re-reading the file only while the file's
// identity is the one recorded at caching or at the last verification.
func TestAdmitSiteEndorserAndIdentity(t *testing.T) {
	w := newSiteWorld(t)
	if code, _, errs := w.vm(t, "endorser", "add", "site", "--site", "--dn", "/DC=org/DC=vmtrust-test/CN=CLI Endorser", "--ca", "/DC=org/DC=vmtrust-test/CN=CLI CA"); code != 0 {
		t.Fatalf("endorser add --site: %d %s", code, errs)
	}
	if code, out, _ := w.vm(t, "endorser", "list"); code != 0 || !strings.Contains(out, "site  yes") {
		t.Fatalf("endorser list: %d\n%s", code, out)
	}
	if code, _, errs := w.vm(t, "subscribe", w.srv.URL+"/image.list", "--endorser", "site", "--ca-bundle", w.caBundle); code != 0 {
		t.Fatalf("subscribe: %d %s", code, errs)
	}
	w.publish(t, "1", map[string][]byte{img1: bytes.Repeat([]byte("disk"), 100_000)})
	if code, out, errs := w.vm(t, "update"); code != 0 {
		t.Fatalf("update: %d\n%s\n%s", code, out, errs)
	}
	_, ims := w.images(t)
	cached := ims[img1].Path
	x := admitDomain(t, w, "site", cached)
	admit := func(t *testing.T, want int, extra ...string) (class int, verified, reason string) {
		t.Helper()
		code, out, errs := w.vm(t, append(append([]string{"admit", "--json"}, extra...), x)...)
		var d struct {
			Class  int    `json:"class"`
			Reason string `json:"reason"`
			Disks  []struct {
				Verified string `json:"verified"`
			} `json:"disks"`
		}
		if err := json.Unmarshal([]byte(out), &d); err != nil || code != want || len(d.Disks) != 1 {
			t.Fatalf("admit: exit %d, want %d (%v)\n%s\n%s", code, want, err, out, errs)
		}
		return d.Class, d.Disks[0].Verified, d.Reason
	}
	touch := func(t *testing.T) { // a chmod to the same mode changes only the ctime
		t.Helper()
		time.Sleep(10 * time.Millisecond)
		if err := os.Chmod(cached, 0o444); err != nil {
			t.Fatal(err)
		}
	}
	if class, how, _ := admit(t, 0); class != 1 || how != "identity" {
		t.Fatalf("first admission: class %d verified %q, want class 1 on the identity recorded at caching", class, how)
	}
	touch(t)
	if class, how, _ := admit(t, 0); class != 1 || how != "sha512" {
		t.Fatalf("after a metadata change: class %d verified %q, want a re-hash", class, how)
	}
	if _, how, _ := admit(t, 0); how != "identity" {
		t.Fatalf("after the re-hash: verified %q, want the recorded identity", how)
	}

	// identity_change = "refuse" in the site policy named by the configuration.
	pol := strings.Replace(string(policySource(t)), `identity_change = "rehash"`, `identity_change = "refuse"`, 1)
	polFile := w.write(t, "policy.toml", []byte(pol))
	cfg, err := os.ReadFile(w.config(t))
	if err != nil {
		t.Fatal(err)
	}
	w.write(t, "vmtrust.toml", append(cfg, []byte("admission_policy = \""+polFile+"\"\n")...))
	touch(t)
	if _, _, reason := admit(t, exitDenied); !strings.Contains(reason, "modified after it was cached") {
		t.Fatalf("refuse on identity change: %q", reason)
	}
	// images --verify re-hashes and records the identity again.
	if code, out, errs := w.vm(t, "images", "--verify"); code != 0 {
		t.Fatalf("images --verify: %d\n%s\n%s", code, out, errs)
	}
	if class, how, _ := admit(t, 0); class != 1 || how != "identity" {
		t.Fatalf("after images --verify: class %d verified %q", class, how)
	}
}

func policySource(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "internal", "admission", "policy", "default.toml"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
