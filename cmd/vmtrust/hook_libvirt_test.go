package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/internal/vmtest"
)

// Images of the libvirt test's list (img1 is the good one).
const (
	imgModified  = "8c0a7d1e-1111-4c4c-8d8d-000000000002"
	imgWithdrawn = "8c0a7d1e-1111-4c4c-8d8d-000000000003"
)

// admissionLine is one line of STATE/admission.jsonl.
type admissionLine struct {
	MessageType string `json:"message_type"`
	Domain      string `json:"domain"`
	Allow       bool   `json:"allow"`
	Reason      string `json:"reason"`
}

// admissionLines returns the decisions (message_type "admission") of
// STATE/admission.jsonl.
func admissionLines(t *testing.T, state string) []admissionLine {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(state, "admission.jsonl"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []admissionLine
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if l == "" {
			continue
		}
		var a admissionLine
		if err := json.Unmarshal([]byte(l), &a); err != nil {
			t.Fatalf("admission.jsonl: %v: %q", err, l)
		}
		if a.MessageType == "admission" { // not the lifecycle lines
			out = append(out, a)
		}
	}
	return out
}

// TestHookLibvirt boots real guests under one private libvirtd that runs the
// hook installed by `vmtrust hook install`, and shows through virsh that
// only admitted images start or restore, with vmtrust's reason otherwise.
func TestHookLibvirt(t *testing.T) {
	if testing.Short() {
		t.Skip("boots guests under libvirt")
	}
	bin, _ := buildBinaries(t)
	w := newSiteWorld(t)
	w.subscribe(t)
	vm := func(args ...string) (int, string, string) {
		return vmtrustProc(t, bin, nil, append([]string{"--state", w.state, "--config", w.config(t)}, args...)...)
	}
	hook := filepath.Join(w.dir, "hooks", "qemu")
	if code, out, errs := vm("hook", "install", "--path", hook); code != 0 {
		t.Fatalf("hook install: %d\n%s\n%s", code, out, errs)
	}
	env := vmtest.LibvirtWithHook(t, hook)

	// Any qcow2 will do: the guest boots from the kit's kernel and
	// initramfs. Different virtual sizes make the images' bytes differ.
	disks := map[string][]byte{}
	for i, id := range []string{img1, imgModified, imgWithdrawn} {
		p := filepath.Join(w.dir, id+".qcow2")
		if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", p, []string{"16M", "17M", "18M"}[i]).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img: %v\n%s", err, out)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		disks[id] = b
	}
	w.publish(t, "1", disks)
	if code, out, errs := w.vm(t, "update"); code != 0 {
		t.Fatalf("update: %d\n%s\n%s", code, out, errs)
	}
	_, ims := w.images(t)
	cached := map[string]string{}
	for id := range disks {
		if ims[id].State != "cached" || ims[id].Path == "" {
			t.Fatalf("images: %+v", ims)
		}
		cached[id] = ims[id].Path
	}

	define := func(t *testing.T, name, xml string) {
		t.Helper()
		x := w.write(t, name+".xml", []byte(xml))
		if _, _, err := env.Virsh("define", x); err != nil {
			t.Fatal(err)
		}
	}
	notRunning := func(t *testing.T, name string) {
		t.Helper()
		out, _, err := env.Virsh("domstate", name)
		if err != nil || strings.TrimSpace(out) == "running" {
			t.Errorf("virsh domstate %s = %q, %v; want not running", name, strings.TrimSpace(out), err)
		}
	}
	// refused runs virsh args, which must fail with the hook's refusal of
	// domain name for reason; the decision log gains one line saying so.
	refused := func(t *testing.T, name, reason string, args ...string) {
		t.Helper()
		before := len(admissionLines(t, w.state))
		_, errs, err := env.Virsh(args...)
		if err == nil || !strings.Contains(errs, "vmtrust: error: refused domain "+name+": ") || !strings.Contains(errs, reason) {
			t.Errorf("virsh %s: %v\nstderr %q\nwant a failure with %q and %q", strings.Join(args, " "), err, errs,
				"vmtrust: error: refused domain "+name+": ", reason)
		}
		t.Logf("virsh %s: %s", strings.Join(args, " "), strings.TrimSpace(errs))
		notRunning(t, name)
		ls := admissionLines(t, w.state)
		if len(ls) != before+1 {
			t.Errorf("admission.jsonl: %d new decisions after virsh %s, want 1: %+v", len(ls)-before, args[0], ls[before:])
			return
		}
		if l := ls[before]; l.Domain != name || l.Allow || !strings.Contains(l.Reason, reason) {
			t.Errorf("admission.jsonl decision = %+v, want domain %s denied for %q", l, name, reason)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("endorsed", func(t *testing.T) {
		define(t, "hook-good", env.DomainXML("hook-good", cached[img1]))
		before := len(admissionLines(t, w.state))
		if _, _, err := env.Virsh("start", "hook-good"); err != nil {
			t.Fatalf("start of an admitted domain: %v", err)
		}
		if _, err := env.WaitMarker(ctx, "hook-good"); err != nil {
			t.Fatal(err)
		}
		if ls := admissionLines(t, w.state); len(ls) != before+1 || !ls[before].Allow || ls[before].Domain != "hook-good" {
			t.Fatalf("admission.jsonl after the start: %+v, want one allow for hook-good", ls[before:])
		}
	})

	t.Run("unknown", func(t *testing.T) {
		cp := filepath.Join(w.dir, "copy.qcow2")
		if err := os.WriteFile(cp, disks[img1], 0o444); err != nil {
			t.Fatal(err)
		}
		define(t, "hook-unknown", env.DomainXML("hook-unknown", cp))
		refused(t, "hook-unknown", "no rule allows this domain (disk vda: "+cp+" is unknown: not a cached image of the catalog)", "start", "hook-unknown")
	})

	t.Run("modified", func(t *testing.T) {
		// Root writes to the read-only cached file; size and mode stay.
		p := cached[imgModified]
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		last := disks[imgModified][len(disks[imgModified])-1]
		if _, err := f.WriteAt([]byte{last ^ 0xff}, fi.Size()-1); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		define(t, "hook-modified", env.DomainXML("hook-modified", p))
		refused(t, "hook-modified", "an image was modified after it was cached", "start", "hook-modified")
	})

	// Withdrawn: a guest on imgWithdrawn is saved while up; the endorser then
	// publishes a list without the image and the site updates.
	save := filepath.Join(w.dir, "hook-saved.save")
	withdrawnReason := "an image was withdrawn by its endorser (disk vda: " + cached[imgWithdrawn] + " is revoked: retired from the cache to "
	t.Run("withdrawn", func(t *testing.T) {
		define(t, "hook-saved", env.DomainXMLHold("hook-saved", cached[imgWithdrawn]))
		if _, _, err := env.Virsh("start", "hook-saved"); err != nil {
			t.Fatalf("start of an admitted domain: %v", err)
		}
		if _, err := env.WaitMarker(ctx, "hook-saved"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := env.Virsh("save", "hook-saved", save); err != nil {
			t.Fatal(err)
		}
		w.publish(t, "2", map[string][]byte{img1: disks[img1], imgModified: disks[imgModified]})
		if code, out, errs := w.vm(t, "update"); code != 0 {
			t.Fatalf("update: %d\n%s\n%s", code, out, errs)
		}
		if _, ims := w.images(t); ims[imgWithdrawn].State != "revoked" || ims[imgWithdrawn].Admissible {
			t.Fatalf("images after the withdrawal: %+v", ims[imgWithdrawn])
		}
		// The update moved the file out of cache/; the domain still names
		// the image's former path, which admission recognises.
		define(t, "hook-withdrawn", env.DomainXML("hook-withdrawn", cached[imgWithdrawn]))
		refused(t, "hook-withdrawn", withdrawnReason, "start", "hook-withdrawn")
	})

	t.Run("restore-withdrawn", func(t *testing.T) {
		refused(t, "hook-saved", withdrawnReason, "restore", save)
	})

	// Class 3: a user-supplied image registered after inspection starts;
	// with host device passthrough or a host filesystem share it does not.
	t.Run("user-image", func(t *testing.T) {
		code, out, errs := w.vm(t, "user-images", "register", vmtest.Fixture(t, "debian12-clean.qcow2"), "--owner", "alice", "--json")
		var r userImageJSON
		if err := json.Unmarshal([]byte(out), &r); err != nil || code != 0 || !r.Registered {
			t.Fatalf("register: %d %v\n%s\n%s", code, err, out, errs)
		}
		user := r.Image.Path
		define(t, "hook-user", env.DomainXML("hook-user", user))
		before := len(admissionLines(t, w.state))
		if _, _, err := env.Virsh("start", "hook-user"); err != nil {
			t.Fatalf("start of a registered user image: %v", err)
		}
		if _, err := env.WaitMarker(ctx, "hook-user"); err != nil {
			t.Fatal(err)
		}
		if ls := admissionLines(t, w.state); len(ls) != before+1 || !ls[before].Allow || !strings.Contains(ls[before].Reason, "user-supplied images registered") {
			t.Fatalf("admission.jsonl after the start: %+v, want one class-3 allow", ls[before:])
		}
		with := func(name, extra string) string {
			return strings.Replace(env.DomainXML(name, user), "<memballoon", extra+"\n    <memballoon", 1)
		}
		const passthrough = "a user-supplied image may not have host device passthrough or host filesystem shares"
		define(t, "hook-user-hostdev", with("hook-user-hostdev",
			`<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x00' slot='0x1f' function='0x7'/></source></hostdev>`))
		refused(t, "hook-user-hostdev", passthrough, "start", "hook-user-hostdev")
		share := filepath.Join(w.dir, "share")
		if err := os.Mkdir(share, 0o755); err != nil {
			t.Fatal(err)
		}
		define(t, "hook-user-share", with("hook-user-share",
			`<filesystem type='mount' accessmode='mapped'><source dir='`+share+`'/><target dir='share'/></filesystem>`))
		refused(t, "hook-user-share", passthrough, "start", "hook-user-share")
	})

	// The same decisions through the admission service: the hook file is
	// rewritten in place (libvirtd runs the path it found at start).
	t.Run("service", func(t *testing.T) {
		if code, out, errs := vm("hook", "install", "--service", "--path", hook); code != 0 {
			t.Fatalf("hook install --service: %d\n%s\n%s", code, out, errs)
		}
		defer func() {
			if code, out, errs := vm("hook", "install", "--path", hook); code != 0 {
				t.Fatalf("hook install: %d\n%s\n%s", code, out, errs)
			}
		}()
		serve := exec.Command(bin, "--state", w.state, "--config", w.config(t), "hook", "serve")
		var serveLog bytes.Buffer
		serve.Stderr = &serveLog
		if err := serve.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { serve.Process.Signal(syscall.SIGTERM); serve.Wait() }()
		for i := 0; i < 100; i++ {
			if _, err := os.Stat(filepath.Join(w.state, "hook.sock")); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		env.Virsh("destroy", "hook-user") // it may still be powering off from its first boot
		if err := os.Remove(env.ConsoleLog("hook-user")); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if _, _, err := env.Virsh("start", "hook-user"); err != nil {
			t.Fatalf("start through the service: %v\n%s", err, serveLog.String())
		}
		if _, err := env.WaitMarker(ctx, "hook-user"); err != nil {
			t.Fatal(err)
		}
		refused(t, "hook-user-hostdev", "a user-supplied image may not have host device passthrough", "start", "hook-user-hostdev")
		if !strings.Contains(serveLog.String(), "admission service listening") {
			t.Errorf("service log: %s", serveLog.String())
		}
	})

	// A guest with a network interface on a bridge in libvirtd's namespace:
	// the hook contains its tap when it has started, with the admission's
	// class and the addresses of its metadata, and removes it at release.
	t.Run("network", func(t *testing.T) {
		if out, err := exec.Command("ip", "netns", "exec", env.Netns, "ip", "link", "add", "br0", "type", "bridge").CombinedOutput(); err != nil {
			t.Fatalf("bridge: %v %s", err, out)
		}
		if out, err := exec.Command("ip", "netns", "exec", env.Netns, "ip", "link", "set", "br0", "up").CombinedOutput(); err != nil {
			t.Fatalf("bridge up: %v %s", err, out)
		}
		const mac = "52:54:00:76:74:01"
		x := env.DomainXMLHold("hook-net", cached[img1])
		x = strings.Replace(x, "<memballoon", "<interface type='bridge'><mac address='"+mac+"'/><source bridge='br0'/><model type='virtio'/></interface>\n    <memballoon", 1)
		x = strings.Replace(x, "<os>", netMetadata(mac, "10.76.0.5", "fd76::5")+"\n  <os>", 1)
		define(t, "hook-net", x)
		if _, _, err := env.Virsh("start", "hook-net"); err != nil {
			t.Fatalf("start of a domain with an interface: %v", err)
		}
		defer env.Virsh("destroy", "hook-net")
		code, out, errs := vmtrust(t, "--state", w.state, "net", "--netns", env.Netns, "status", "--json")
		var s netStatusJSON
		if err := json.Unmarshal([]byte(out), &s); err != nil || code != 0 || len(s.Ports) != 1 || s.Ports[0].VM != "hook-net" || s.Ports[0].Kernel == nil {
			t.Fatalf("net status with the guest up: exit %d %v\n%s\n%s", code, err, out, errs)
		}
		t.Logf("contained %s (%s)", s.Ports[0].Port, out)
		if _, _, err := env.Virsh("destroy", "hook-net"); err != nil {
			t.Fatal(err)
		}
		code, out, _ = vmtrust(t, "--state", w.state, "net", "--netns", env.Netns, "status", "--json")
		if err := json.Unmarshal([]byte(out), &s); err != nil || code != 0 || len(s.Ports) != 0 {
			t.Fatalf("net status after the guest stopped: exit %d %v\n%s", code, err, out)
		}
	})

	t.Run("unreadable-state", func(t *testing.T) {
		// Root reads any file, so the catalog is replaced by one that is not
		// a database; its WAL and shared memory go aside with it.
		db := filepath.Join(w.state, "catalog.db")
		aside := filepath.Join(w.dir, "catalog-aside")
		if err := os.Mkdir(aside, 0o700); err != nil {
			t.Fatal(err)
		}
		var moved []string
		for _, sfx := range []string{"", "-wal", "-shm"} {
			if err := os.Rename(db+sfx, filepath.Join(aside, "catalog.db"+sfx)); err == nil {
				moved = append(moved, sfx)
			} else if !os.IsNotExist(err) {
				t.Fatal(err)
			}
		}
		restore := func() {
			if moved == nil {
				return
			}
			os.Remove(db)
			for _, sfx := range moved {
				if err := os.Rename(filepath.Join(aside, "catalog.db"+sfx), db+sfx); err != nil {
					t.Fatal(err)
				}
			}
			moved = nil
		}
		defer restore()
		if err := os.WriteFile(db, bytes.Repeat([]byte("not a database\n"), 512), 0o600); err != nil {
			t.Fatal(err)
		}
		before := len(admissionLines(t, w.state))
		_, errs, err := env.Virsh("start", "hook-good")
		if err == nil || !strings.Contains(errs, "vmtrust: error: refused domain hook-good (prepare begin): catalog: ") || !strings.Contains(errs, "not a database") {
			t.Errorf("virsh start with an unreadable catalog: %v\nstderr %q", err, errs)
		}
		t.Logf("virsh start hook-good: %s", strings.TrimSpace(errs))
		notRunning(t, "hook-good")
		// The refusal is recorded, with what failed.
		if ls := admissionLines(t, w.state)[before:]; len(ls) != 1 || ls[0].Allow || ls[0].Domain != "hook-good" || !strings.Contains(ls[0].Reason, "not a database") {
			t.Errorf("admission.jsonl with an unreadable catalog: %+v, want one refusal naming the failure", ls)
		}

		restore()
		if err := os.Remove(env.ConsoleLog("hook-good")); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if _, _, err := env.Virsh("start", "hook-good"); err != nil {
			t.Fatalf("start once the state is back: %v", err)
		}
		if _, err := env.WaitMarker(ctx, "hook-good"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("expired", func(t *testing.T) {
		// The list the site accepts now expires a few seconds later; until
		// the next update the image is still in cache/ (what a site has
		// between updates).
		expires := time.Now().Add(6 * time.Second)
		w.publishExpiring(t, "3", map[string][]byte{img1: disks[img1]}, expires)
		if code, out, errs := w.vm(t, "update"); code != 0 {
			t.Fatalf("update: %d\n%s\n%s", code, out, errs)
		}
		if _, ims := w.images(t); ims[img1].State != "cached" || !ims[img1].Admissible {
			t.Fatalf("images before the expiry: %+v", ims[img1])
		}
		time.Sleep(time.Until(expires.Truncate(time.Second)) + time.Second)
		if _, ims := w.images(t); ims[img1].State != "cached" || ims[img1].Admissible {
			t.Errorf("images after the expiry = %+v, want cached and not admissible", ims[img1])
		}
		refused(t, "hook-good", "an image comes from an expired image list", "start", "hook-good")

		// The next update retires the image: it leaves cache/.
		code, out, errs := w.vm(t, "update")
		t.Logf("update after the expiry: exit %d\n%s%s", code, out, errs)
		if _, ims := w.images(t); ims[img1].State != "expired" || ims[img1].Admissible {
			t.Errorf("images after the update = %+v, want expired", ims[img1])
		}
		refused(t, "hook-good", "an image comes from an expired image list (disk vda: "+cached[img1]+" is expired: retired from the cache to ", "start", "hook-good")
	})

	// A hook written after libvirtd started is not active.
	if code, out, errs := vm("hook", "install", "--path", hook); code != 0 {
		t.Fatalf("hook install again: %d\n%s\n%s", code, out, errs)
	}
	code, r := hookCheck(t, vm, hook)
	stale := false
	for _, p := range r.Libvirtd {
		stale = stale || p.BeforeHook
	}
	if code != exitPartial || r.OK || !stale || r.Action != "restart libvirtd" || !r.Ours || !r.BinaryExists || r.Binary != bin {
		t.Fatalf("hook check after a reinstall: exit %d %+v", code, r)
	}
}
