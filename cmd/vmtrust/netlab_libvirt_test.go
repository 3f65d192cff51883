package main

import (
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmtrust/vmtrust/internal/vmtest"
)

// requireTools fails (CI) or skips the test when a command is missing.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err == nil {
			continue
		}
		if _, err := exec.LookPath("/usr/sbin/" + tool); err == nil {
			continue
		}
		if os.Getenv("CI") != "" {
			t.Fatalf("%s needs %s (CI is set, so this test must run)", t.Name(), tool)
		}
		t.Skipf("%s needs %s", t.Name(), tool)
	}
}

// libvirtNetSite is a site subscribed to the test endorser whose admission
// policy is the default one with edits (each old text must occur once),
// and a private libvirtd with the site's vmtrust hook.
func libvirtNetSite(t *testing.T, edits ...[2]string) (*siteWorld, *vmtest.LibvirtEnv) {
	t.Helper()
	bin, _ := buildBinaries(t)
	w := newSiteWorld(t)
	def, err := os.ReadFile(filepath.Join(vmtest.ModuleRoot(t), "internal", "admission", "policy", "default.toml"))
	if err != nil {
		t.Fatal(err)
	}
	pol := string(def)
	for _, e := range edits {
		if n := strings.Count(pol, e[0]); n != 1 {
			t.Fatalf("default.toml holds %q %d times, want once", e[0], n)
		}
		pol = strings.Replace(pol, e[0], e[1], 1)
	}
	polPath := w.write(t, "policy.toml", []byte(pol))
	w.write(t, "vmtrust.toml", []byte("trust_dir = \""+w.caDir+"\"\nretries = 1\nadmission_policy = \""+polPath+"\"\n"))
	w.subscribe(t)
	hook := filepath.Join(w.dir, "hooks", "qemu")
	if code, out, errs := vmtrustProc(t, bin, nil, "--state", w.state, "--config", w.config(t), "hook", "install", "--path", hook); code != 0 {
		t.Fatalf("hook install: %d\n%s\n%s", code, out, errs)
	}
	return w, vmtest.LibvirtWithHook(t, hook)
}

// runOK runs a command, failing t when it fails.
func runOK(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// netPeer builds the bridge br0 in libvirtd's namespace and the peer: a
// namespace of its own (removed at cleanup) whose eth0, with mac and the
// CIDR addresses addrs (IPv6 without DAD), is the veth port vmtpeer0 of
// br0. It returns the peer's namespace.
func netPeer(t *testing.T, env *vmtest.LibvirtEnv, prefix, mac string, addrs []string) string {
	t.Helper()
	hv := func(args ...string) []string { return append([]string{"ip", "-n", env.Netns}, args...) }
	runOK(t, hv("link", "add", "br0", "type", "bridge")...)
	runOK(t, hv("link", "set", "br0", "up")...)
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	ns := prefix + hex.EncodeToString(rnd[:])
	runOK(t, "ip", "netns", "add", ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "delete", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns delete %s: %v %s", ns, err, out)
		}
	})
	peer := func(args ...string) []string { return append([]string{"ip", "-n", ns}, args...) }
	runOK(t, hv("link", "add", "vmtpeer0", "type", "veth", "peer", "name", "vmtpeer1")...)
	runOK(t, hv("link", "set", "vmtpeer1", "netns", ns)...)
	runOK(t, peer("link", "set", "vmtpeer1", "name", "eth0")...)
	runOK(t, peer("link", "set", "eth0", "address", mac)...)
	for _, a := range addrs {
		args := []string{"addr", "add", a, "dev", "eth0"}
		if netip.MustParsePrefix(a).Addr().Is6() {
			args = append(args, "nodad")
		}
		runOK(t, peer(args...)...)
	}
	runOK(t, peer("link", "set", "lo", "up")...)
	runOK(t, peer("link", "set", "eth0", "up")...)
	runOK(t, hv("link", "set", "vmtpeer0", "master", "br0")...)
	runOK(t, hv("link", "set", "vmtpeer0", "up")...)
	return ns
}
