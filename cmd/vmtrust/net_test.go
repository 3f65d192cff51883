package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/internal/nettest"
)

type netStatusJSON struct {
	Ports []struct {
		Port        string   `json:"port"`
		VM          string   `json:"vm"`
		Quarantined bool     `json:"quarantined"`
		Drift       []string `json:"drift"`
		Kernel      *struct {
			Quarantined bool              `json:"quarantined"`
			Drops       map[string]uint64 `json:"drops"`
		} `json:"kernel"`
	} `json:"ports"`
}

// TestNetCommands drives 'vmtrust net' against a bridge in a network
// namespace with two VMs: spoofing is dropped and counted, quarantine cuts
// the VM off and release restores it, leases are recorded, a lost rule set
// is rebuilt by reconcile, and remove takes everything away.
func TestNetCommands(t *testing.T) {
	nettest.RequireRoot(t)
	nettest.Require(t, "ping", "nft")
	hv := nettest.Hypervisor(t)
	a := hv.AddVM(t, "a", "52:54:00:77:00:02", "10.77.0.2/24")
	b := hv.AddVM(t, "b", "52:54:00:77:00:03", "10.77.0.3/24")
	state := filepath.Join(t.TempDir(), "state")
	nsName := filepath.Base(hv.NSPath())
	vm := func(args ...string) (int, string, string) {
		t.Helper()
		return vmtrust(t, append([]string{"--state", state, "net", "--netns", nsName}, args...)...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	status := func() (int, netStatusJSON) {
		t.Helper()
		code, out, errs := vm("status", "--json")
		var s netStatusJSON
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("net status: %d %v\n%s\n%s", code, err, out, errs)
		}
		return code, s
	}

	for _, v := range []*nettest.VM{a, b} {
		ip := v.IP(0)
		if code, out, errs := vm("apply", "--port", v.HostPort, "--vm", v.Name, "--mac", v.MAC.String(), "--ip", ip, "--class", "2"); code != 0 {
			t.Fatalf("net apply %s: %d\n%s\n%s", v.Name, code, out, errs)
		}
	}
	if !a.Ping(ctx, "10.77.0.3") {
		t.Fatal("legitimate ping a → b fails under containment")
	}
	// IP spoofing from a: dropped and counted.
	if _, errs, err := a.Run(ctx, "ip", "addr", "add", "10.77.0.99/24", "dev", "eth0"); err != nil {
		t.Fatalf("ip addr add: %v %s", err, errs)
	}
	if _, _, err := a.Run(ctx, "ping", "-c", "2", "-W", "1", "-I", "10.77.0.99", "10.77.0.3"); err == nil {
		t.Fatal("a spoofed ping got a reply")
	}
	code, s := status()
	if code != 0 || len(s.Ports) != 2 || s.Ports[0].Kernel == nil || s.Ports[0].Kernel.Drops["ip-spoof"] == 0 && s.Ports[1].Kernel.Drops["ip-spoof"] == 0 {
		t.Fatalf("net status after a spoof: exit %d %+v", code, s)
	}

	// Quarantine: both directions cut at once; release restores.
	if code, _, errs := vm("quarantine", a.HostPort, "--reason", "test alert"); code != 0 {
		t.Fatalf("net quarantine: %d %s", code, errs)
	}
	if a.Ping(ctx, "10.77.0.3") || b.Ping(ctx, "10.77.0.2") {
		t.Fatal("a quarantined VM still talks")
	}
	if _, s := status(); !s.Ports[0].Quarantined && !s.Ports[1].Quarantined {
		t.Fatalf("status does not show the quarantine: %+v", s)
	}
	if code, _, errs := vm("release", a.HostPort); code != 0 {
		t.Fatalf("net release: %d %s", code, errs)
	}
	if !a.Ping(ctx, "10.77.0.3") {
		t.Fatal("released VM cannot talk")
	}

	// The kernel's rules are lost (a restart, a flush): status says so,
	// reconcile rebuilds them.
	if _, errs, err := hv.Run(ctx, "nft", "delete", "table", "bridge", "vmtrust"); err != nil {
		t.Fatalf("nft delete table: %v %s", err, errs)
	}
	if code, _ := status(); code != exitPartial {
		t.Fatalf("status with the rules gone: exit %d, want %d", code, exitPartial)
	}
	if code, out, errs := vm("reconcile"); code != 0 || !strings.Contains(out, "table repaired true") {
		t.Fatalf("net reconcile: %d\n%s\n%s", code, out, errs)
	}
	if code, _ := status(); code != 0 {
		t.Fatalf("status after reconcile: exit %d", code)
	}
	if _, _, err := a.Run(ctx, "ping", "-c", "1", "-W", "1", "-I", "10.77.0.99", "10.77.0.3"); err == nil {
		t.Fatal("spoofing works again after reconcile")
	}

	if code, _, errs := vm("remove", "--port", a.HostPort); code != 0 {
		t.Fatalf("net remove: %d %s", code, errs)
	}
	if code, _, _ := vm("remove", "--port", a.HostPort); code != exitInput {
		t.Fatalf("remove of an unmanaged port: exit %d", code)
	}
	if _, s := status(); len(s.Ports) != 1 || s.Ports[0].Port != b.HostPort {
		t.Fatalf("status after remove: %+v", s)
	}
	for _, bad := range [][]string{
		{"apply", "--port", a.HostPort, "--vm", "a", "--mac", "01:00:5e:00:00:01", "--ip", "10.77.0.2"},
		{"apply", "--port", a.HostPort, "--vm", "a", "--mac", a.MAC.String(), "--ip", "10.77.0.300"},
		{"apply", "--port", a.HostPort, "--vm", "a", "--mac", a.MAC.String(), "--class", "4"},
		{"apply", "--port", "x/y", "--vm", "a", "--mac", a.MAC.String()},
		{"apply", "--port", a.HostPort, "--vm", "a", "--mac", a.MAC.String(), "--profile", "nope"},
	} {
		if code, _, _ := vm(bad...); code != exitUsage {
			t.Errorf("net %v: exit %d, want %d", bad, code, exitUsage)
		}
	}

	// The leases, in order.
	f, err := os.Open(filepath.Join(state, "net", "leases.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e struct{ Event, Port, MAC string }
		json.Unmarshal(sc.Bytes(), &e)
		got = append(got, e.Event+" "+e.Port)
	}
	want := []string{"start " + a.HostPort, "start " + b.HostPort, "quarantine-on " + a.HostPort, "quarantine-off " + a.HostPort, "end " + a.HostPort}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("leases.jsonl: %v, want %v", got, want)
	}
}

// netMetadata is the vmtrust network metadata giving mac the addresses.
func netMetadata(mac string, addrs ...string) string {
	s := `<metadata><vmtrust:net xmlns:vmtrust="https://vmtrust.dev/xmlns/net/1"><vmtrust:interface mac="` + mac + `">`
	for _, a := range addrs {
		s += `<vmtrust:ip address="` + a + `"/>`
	}
	return s + `</vmtrust:interface></vmtrust:net></metadata>`
}

// inNetns runs the test binary as vmtrust inside network namespace ns.
func inNetns(t *testing.T, ns string, stdin []byte, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, os.Args[0]}, args...)...)
	cmd.Env = append(os.Environ(), "VMTRUST_TEST_AS_MAIN=1")
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// TestHookContainment: the hook contains an admitted domain's interface
// when it has started (in the hook's network namespace, with the addresses
// of the domain's metadata and the class of its admission), and removes it
// when libvirt releases the domain.
func TestHookContainment(t *testing.T) {
	nettest.RequireRoot(t)
	nettest.Require(t, "ping")
	w, cached := newCachedWorld(t)
	hv := nettest.Hypervisor(t)
	a := hv.AddVM(t, "a", "52:54:00:77:01:02", "10.77.1.2/24")
	b := hv.AddVM(t, "b", "52:54:00:77:01:03", "10.77.1.3/24")
	ns := filepath.Base(hv.NSPath())
	x := []byte(`<domain type='kvm'><name>vm-a</name><uuid>0f0e0d0c-0b0a-0908-0706-0504030201aa</uuid>` + netMetadata(a.MAC.String(), "10.77.1.2") + `<devices>
  <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='` + cached + `'/><target dev='vda' bus='virtio'/><transient/></disk>
  <interface type='bridge'><mac address='` + a.MAC.String() + `'/><source bridge='br0'/><target dev='` + a.HostPort + `'/></interface>
</devices></domain>`)
	base := []string{"--state", w.state, "--config", w.config(t), "hook", "run", "vm-a"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// Started without an admission by this hook: no plan, the domain stops.
	if code, out := inNetns(t, ns, x, append(base, "started", "begin", "-")...); code != exitDenied || !strings.Contains(out, "no admission plan") {
		t.Fatalf("started without admission: exit %d\n%s", code, out)
	}
	if code, out, errs := vmtrustIn(x, append(base, "prepare", "begin", "-")...); code != 0 {
		t.Fatalf("prepare begin: exit %d\n%s\n%s", code, out, errs)
	}
	if code, out := inNetns(t, ns, x, append(base, "started", "begin", "-")...); code != 0 {
		t.Fatalf("started begin: exit %d\n%s", code, out)
	}
	code, out, errs := vmtrust(t, "--state", w.state, "net", "--netns", ns, "status", "--json")
	var s netStatusJSON
	if err := json.Unmarshal([]byte(out), &s); err != nil || code != 0 || len(s.Ports) != 1 || s.Ports[0].Port != a.HostPort || s.Ports[0].VM != "vm-a" || s.Ports[0].Kernel == nil {
		t.Fatalf("net status after started: exit %d %v\n%s\n%s", code, err, out, errs)
	}
	if !a.Ping(ctx, b.IP(0)) {
		t.Fatal("the contained VM cannot reach its neighbour with its own address")
	}
	a.Run(ctx, "ip", "addr", "add", "10.77.1.99/24", "dev", "eth0")
	if _, _, err := a.Run(ctx, "ping", "-c", "1", "-W", "1", "-I", "10.77.1.99", b.IP(0)); err == nil {
		t.Fatal("a spoofed source got through the hook's containment")
	}
	// An address outside the metadata is a spoof; the class is the admission's.
	var lines []struct {
		Event string `json:"event"`
		VM    string `json:"vm"`
	}
	f, _ := os.ReadFile(filepath.Join(w.state, "net", "leases.jsonl"))
	for _, l := range strings.Split(strings.TrimSpace(string(f)), "\n") {
		var e struct {
			Event string `json:"event"`
			VM    string `json:"vm"`
		}
		json.Unmarshal([]byte(l), &e)
		lines = append(lines, e)
	}
	if len(lines) != 1 || lines[0].Event != "start" || lines[0].VM != "vm-a" {
		t.Fatalf("leases after started: %+v", lines)
	}

	if code, out := inNetns(t, ns, x, append(base, "release", "end", "-")...); code != 0 {
		t.Fatalf("release end: exit %d\n%s", code, out)
	}
	code, out, _ = vmtrust(t, "--state", w.state, "net", "--netns", ns, "status", "--json")
	if err := json.Unmarshal([]byte(out), &s); err != nil || code != 0 || len(s.Ports) != 0 {
		t.Fatalf("net status after release: exit %d %v\n%s", code, err, out)
	}
	if f, _ := os.ReadFile(filepath.Join(w.state, "net", "leases.jsonl")); !strings.Contains(string(f), `"event":"end"`) {
		t.Fatalf("no lease end after release:\n%s", f)
	}
}
