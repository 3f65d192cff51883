package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmtrust/vmtrust/internal/vmtest"
)

type userImageJSON struct {
	MessageType string `json:"message_type"`
	Registered  bool   `json:"registered"`
	Image       struct {
		SHA512     string `json:"sha512"`
		Path       string `json:"path"`
		Owner      string `json:"owner"`
		Format     string `json:"format"`
		Inspection struct {
			Blocking    int    `json:"blocking"`
			MaxSeverity string `json:"max_severity"`
			OS          string `json:"os"`
		} `json:"inspection"`
	} `json:"image"`
}

// TestUserImages registers real debootstrap images: the dirty one is
// refused and leaves nothing behind, the clean one is admitted in class 3
// only, never with passthrough, and not after it was removed.
func TestUserImages(t *testing.T) {
	w := newSiteWorld(t)
	dirty, clean := vmtest.Fixture(t, "debian12-dirty.qcow2"), vmtest.Fixture(t, "debian12-clean.qcow2")
	userDir := filepath.Join(w.state, "user")

	code, out, errs := w.vm(t, "user-images", "register", dirty, "--owner", "alice", "--json")
	var r userImageJSON
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != exitFindings || r.Registered || r.Image.Inspection.Blocking == 0 {
		t.Fatalf("register dirty: exit %d (%v)\n%s\n%s", code, err, out, errs)
	}
	if ents, _ := os.ReadDir(userDir); len(ents) != 0 {
		t.Fatalf("a refused registration left %v in %s", ents, userDir)
	}
	if code, out, _ := w.vm(t, "user-images", "list", "--json"); code != 0 || strings.Contains(out, "alice") {
		t.Fatalf("list after a refusal: %d %s", code, out)
	}

	for _, bad := range [][]string{
		{"user-images", "register", clean, "--owner", "alice; rm"},
		{"user-images", "register", clean, "--owner", "alice", "--block-on", "severe"},
		{"user-images", "register", vmtest.Fixture(t, "overlay.qcow2"), "--owner", "alice"},
		{"user-images", "register", filepath.Join(w.dir, "missing.qcow2"), "--owner", "alice"},
	} {
		if code, _, errs := w.vm(t, bad...); code != exitUsage && code != exitInput {
			t.Errorf("%v: exit %d, want usage or input error\n%s", bad, code, errs)
		}
	}
	if ents, _ := os.ReadDir(userDir); len(ents) != 0 {
		t.Fatalf("refused registrations left %v in %s", ents, userDir)
	}

	code, out, errs = w.vm(t, "user-images", "register", clean, "--owner", "alice", "--json")
	r = userImageJSON{}
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 0 || !r.Registered || r.Image.Owner != "alice" || r.Image.Format != "qcow2" ||
		!strings.HasPrefix(r.Image.Path, userDir+"/") || !strings.Contains(r.Image.Inspection.OS, "Debian") {
		t.Fatalf("register clean: exit %d (%v)\n%s\n%s", code, err, out, errs)
	}
	if fi, err := os.Stat(r.Image.Path); err != nil || fi.Mode().Perm()&0o222 != 0 {
		t.Fatalf("registered copy: %v %v", fi, err)
	}
	if code, out, _ := w.vm(t, "user-images", "register", clean, "--owner", "alice"); code != 0 || !strings.Contains(out, "already") {
		t.Fatalf("register again: %d %s", code, out)
	}

	admit := func(name, disk, extra string) (int, string) {
		x := `<domain type='kvm'><name>` + name + `</name><uuid>0f0e0d0c-0b0a-0908-0706-050403020101</uuid><devices>
  <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='` + disk + `'/><target dev='vda' bus='virtio'/><transient/></disk>` + extra + `
</devices></domain>`
		code, out, errs := w.vm(t, "admit", "--json", w.write(t, name+".xml", []byte(x)))
		return code, out + errs
	}
	if code, out := admit("user", r.Image.Path, ""); code != 0 || !strings.Contains(out, `"class": 3`) || !strings.Contains(out, `"state": "user-registered"`) {
		t.Fatalf("admit a registered user image: %d\n%s", code, out)
	}
	if code, out := admit("original", clean, ""); code != exitDenied || !strings.Contains(out, "is unknown") {
		t.Fatalf("admit the original file: %d\n%s", code, out)
	}
	hostdev := `<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></source></hostdev>`
	if code, out := admit("hostdev", r.Image.Path, hostdev); code != exitDenied || !strings.Contains(out, "may not have host device passthrough") {
		t.Fatalf("admit a user image with a hostdev: %d\n%s", code, out)
	}
	share := `<filesystem type='mount'><source dir='/srv/data'/><target dir='data'/></filesystem>`
	if code, out := admit("share", r.Image.Path, share); code != exitDenied || !strings.Contains(out, "host filesystem shares") {
		t.Fatalf("admit a user image with a host share: %d\n%s", code, out)
	}

	if code, _, errs := w.vm(t, "user-images", "remove", r.Image.SHA512[:20]); code != 0 {
		t.Fatalf("remove: %d %s", code, errs)
	}
	if _, err := os.Stat(r.Image.Path); !os.IsNotExist(err) {
		t.Fatalf("removed image's copy: %v", err)
	}
	if code, _ := admit("user", r.Image.Path, ""); code != exitDenied {
		t.Fatalf("admit a removed user image: %d", code)
	}
}
