package bridgeport

import (
	"context"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/internal/nettest"
)

func TestCheckPort(t *testing.T) {
	for _, tc := range []struct {
		port string
		ok   bool
	}{
		{"va", true},
		{"vnet12", true},
		{"abcdefghijklmno", true},
		{"", false},
		{"abcdefghijklmnop", false},
		{"a/b", false},
		{"a b", false},
		{"a:b", false},
		{"..", false},
		{"a\x00", false},
	} {
		if err := CheckPort(tc.port); (err == nil) != tc.ok {
			t.Errorf("CheckPort(%q) = %v, want ok %v", tc.port, err, tc.ok)
		}
	}
}

func TestCheckMAC(t *testing.T) {
	for _, tc := range []struct {
		mac net.HardwareAddr
		ok  bool
	}{
		{net.HardwareAddr{0x02, 0, 0, 0, 0, 1}, true},
		{net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}, true},
		{nil, false},
		{net.HardwareAddr{0x02, 0, 0, 0, 1}, false},
		{net.HardwareAddr{0x02, 0, 0, 0, 0, 0, 0, 1}, false},
		{net.HardwareAddr{0, 0, 0, 0, 0, 0}, false},
		{net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, false},
		{net.HardwareAddr{0x01, 0x00, 0x5e, 0, 0, 1}, false},
		{net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}, false},
	} {
		if err := CheckMAC(tc.mac); (err == nil) != tc.ok {
			t.Errorf("CheckMAC(%v) = %v, want ok %v", tc.mac, err, tc.ok)
		}
	}
}

// lab is a hypervisor with two VMs that talk (a, b) and a sniffer (s).
type lab struct {
	n       *nettest.Net
	a, b, s *nettest.VM
	h       *Handle
}

func newLab(t *testing.T) *lab {
	t.Helper()
	nettest.Require(t, "tcpdump", "busybox", "bridge")
	n := nettest.Hypervisor(t)
	l := &lab{
		n: n,
		a: n.AddVM(t, "a", "02:00:00:00:00:0a", "10.8.0.1/24"),
		b: n.AddVM(t, "b", "02:00:00:00:00:0b", "10.8.0.2/24"),
		s: n.AddVM(t, "s", "02:00:00:00:00:5e", "10.8.0.3/24"),
	}
	h, err := Open(n.NSPath())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	l.h = h
	return l
}

func (l *lab) vms() []*nettest.VM { return []*nettest.VM{l.a, l.b, l.s} }

// sniff runs tcpdump (promiscuous) on the sniffer's eth0 with filter while
// action runs and returns the number of frames it captured.
func (l *lab) sniff(ctx context.Context, t *testing.T, filter string, action func()) int {
	t.Helper()
	p := l.s.Start(t, "tcpdump", "-i", "eth0", "-n", "-e", "-l", filter)
	if err := p.WaitStderr(ctx, "listening on"); err != nil {
		t.Fatal(err)
	}
	action()
	time.Sleep(200 * time.Millisecond)
	if err := p.Stop(); err != nil {
		t.Fatalf("tcpdump: %v: %s", err, p.Stderr())
	}
	m := regexp.MustCompile(`(\d+) packets? captured`).FindStringSubmatch(p.Stderr())
	if m == nil {
		t.Fatalf("tcpdump printed no count: %s", p.Stderr())
	}
	lines := 0
	for _, ln := range strings.Split(strings.TrimSpace(p.Stdout()), "\n") {
		if ln != "" {
			lines++
		}
	}
	if m[1] != "0" && lines == 0 || m[1] == "0" && lines != 0 {
		t.Fatalf("tcpdump: %s captured but %d lines: %s", m[1], lines, p.Stdout())
	}
	return lines
}

// unknownMAC is a destination the bridge never learns: a's frames to it
// are flooded to every port with unicast flooding on.
const (
	unknownIP  = "10.8.0.99"
	unknownMAC = "02:00:00:00:00:99"
)

func (l *lab) sendToUnknown(ctx context.Context, t *testing.T) func() {
	t.Helper()
	if _, stderr, err := l.a.Run(ctx, "ip", "neigh", "replace", unknownIP, "lladdr", unknownMAC, "dev", "eth0", "nud", "permanent"); err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	return func() {
		l.a.Run(ctx, "busybox", "ping", "-c", "3", "-i", "0.1", "-W", "1", "-w", "1", unknownIP) // fails: nobody answers
	}
}

func (l *lab) pingAll(ctx context.Context, t *testing.T) {
	t.Helper()
	for _, from := range l.vms() {
		for _, to := range l.vms() {
			if from != to && !from.Ping(ctx, to.IP(0)) {
				t.Errorf("%s: ping %s (%s) failed: legitimate traffic blocked", from.Name, to.Name, to.IP(0))
			}
		}
	}
}

func (l *lab) bridgeShow(ctx context.Context, t *testing.T, args ...string) string {
	t.Helper()
	out, stderr, err := l.n.Run(ctx, append([]string{"bridge"}, args...)...)
	if err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	return out
}

func TestHardenRelease(t *testing.T) {
	l := newLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	flood := l.sendToUnknown(ctx, t)
	l.pingAll(ctx, t)

	// Before: the bridge floods unknown unicast, and a's frames for b once
	// b's entry is gone (aged out, or never learned), to the sniffer.
	for _, vm := range l.vms() {
		st, err := State(l.h, vm.HostPort)
		if err != nil {
			t.Fatal(err)
		}
		if want := (PortState{Port: vm.HostPort, Bridge: nettest.Bridge, Learning: true, Flood: true}); !statesEqual(st, want) {
			t.Errorf("State(%s) before = %+v, want defaults %+v", vm.HostPort, st, want)
		}
	}
	if got := l.sniff(ctx, t, "ether dst "+unknownMAC, flood); got == 0 {
		t.Fatal("before Harden: the sniffer saw no flooded unknown unicast; the test cannot show a change")
	}
	forgetB := func() {
		l.n.Run(ctx, "bridge", "fdb", "del", l.b.MAC.String(), "dev", l.b.HostPort, "master")
		if !l.a.Ping(ctx, l.b.IP(0)) {
			t.Error("a: ping b failed")
		}
	}
	if got := l.sniff(ctx, t, "icmp and ether src "+l.a.MAC.String()+" and ether dst "+l.b.MAC.String(), forgetB); got == 0 {
		t.Fatal("before Harden: the sniffer saw none of a's flooded frames for b")
	}

	// Harden every port, twice: the second is a no-op.
	for i := 0; i < 2; i++ {
		for _, vm := range l.vms() {
			if err := Harden(ctx, l.h, vm.HostPort, vm.MAC); err != nil {
				t.Fatalf("Harden(%s) #%d: %v", vm.HostPort, i+1, err)
			}
		}
	}
	for _, vm := range l.vms() {
		st, err := State(l.h, vm.HostPort)
		if err != nil {
			t.Fatal(err)
		}
		want := PortState{Port: vm.HostPort, Bridge: nettest.Bridge, NeighSuppress: true, StaticMACs: []net.HardwareAddr{vm.MAC}}
		if !statesEqual(st, want) || !st.Hardened(vm.MAC) {
			t.Errorf("State(%s) after Harden = %+v, want %+v", vm.HostPort, st, want)
		}
		link := l.bridgeShow(ctx, t, "-d", "link", "show", "dev", vm.HostPort)
		for _, w := range []string{"learning off", "flood off", "neigh_suppress on", "master " + nettest.Bridge} {
			if !strings.Contains(link, w) {
				t.Errorf("bridge -d link show dev %s = %q, want %q", vm.HostPort, link, w)
			}
		}
		fdb := l.bridgeShow(ctx, t, "fdb", "show", "dev", vm.HostPort)
		if want := vm.MAC.String() + " master " + nettest.Bridge + " static"; !strings.Contains(fdb, want) {
			t.Errorf("bridge fdb show dev %s = %q, want %q", vm.HostPort, fdb, want)
		}
		// No learned entries are left: only static and the port's own permanent ones.
		for _, ln := range strings.Split(strings.TrimSpace(fdb), "\n") {
			if strings.Contains(ln, "master") && !strings.Contains(ln, "static") && !strings.Contains(ln, "permanent") {
				t.Errorf("bridge fdb show dev %s: learned entry %q left after Harden", vm.HostPort, ln)
			}
		}
	}

	// After: legitimate traffic flows; the sniffer sees neither flooded
	// unknown unicast nor a's frames for b.
	if got := l.sniff(ctx, t, "ether dst "+unknownMAC, flood); got != 0 {
		t.Errorf("after Harden: the sniffer saw %d flooded unknown-unicast frames, want 0", got)
	}
	if got := l.sniff(ctx, t, "icmp and ether src "+l.a.MAC.String()+" and ether dst "+l.b.MAC.String(), func() { l.pingAll(ctx, t) }); got != 0 {
		t.Errorf("after Harden: the sniffer saw %d of a's frames for b, want 0", got)
	}
	// Learning is off: b's entry stays the static one, on b's port.
	if fdb := l.bridgeShow(ctx, t, "fdb", "show", "br", nettest.Bridge); strings.Count(fdb, l.b.MAC.String()) != 1 {
		t.Errorf("bridge fdb show br %s = %q, want b's MAC once", nettest.Bridge, fdb)
	}

	// Release restores the defaults, twice.
	for i := 0; i < 2; i++ {
		for _, vm := range l.vms() {
			if err := Release(ctx, l.h, vm.HostPort, vm.MAC); err != nil {
				t.Fatalf("Release(%s) #%d: %v", vm.HostPort, i+1, err)
			}
		}
	}
	for _, vm := range l.vms() {
		st, err := State(l.h, vm.HostPort)
		if err != nil {
			t.Fatal(err)
		}
		if want := (PortState{Port: vm.HostPort, Bridge: nettest.Bridge, Learning: true, Flood: true}); !statesEqual(st, want) {
			t.Errorf("State(%s) after Release = %+v, want %+v", vm.HostPort, st, want)
		}
		link := l.bridgeShow(ctx, t, "-d", "link", "show", "dev", vm.HostPort)
		for _, w := range []string{"learning on", "flood on", "neigh_suppress off"} {
			if !strings.Contains(link, w) {
				t.Errorf("after Release: bridge -d link show dev %s = %q, want %q", vm.HostPort, link, w)
			}
		}
		if fdb := l.bridgeShow(ctx, t, "fdb", "show", "dev", vm.HostPort); strings.Contains(fdb, "static") {
			t.Errorf("after Release: bridge fdb show dev %s = %q, want no static entry", vm.HostPort, fdb)
		}
	}
	l.pingAll(ctx, t)
	if got := l.sniff(ctx, t, "ether dst "+unknownMAC, flood); got == 0 {
		t.Error("after Release: the sniffer saw no flooded unknown unicast, want flooding restored")
	}
}

// Bad input and ports that are not bridge ports change nothing.
func TestHardenRefuses(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	if _, stderr, err := l.n.Run(ctx, "ip", "link", "add", "loose0", "type", "veth", "peer", "name", "loose1"); err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	good := l.a.MAC
	for _, tc := range []struct {
		name string
		port string
		mac  net.HardwareAddr
	}{
		{"long name", "abcdefghijklmnop", good},
		{"empty name", "", good},
		{"slash", "va/b", good},
		{"multicast MAC", l.a.HostPort, net.HardwareAddr{0x01, 0, 0x5e, 0, 0, 1}},
		{"broadcast MAC", l.a.HostPort, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{"zero MAC", l.a.HostPort, net.HardwareAddr{0, 0, 0, 0, 0, 0}},
		{"short MAC", l.a.HostPort, net.HardwareAddr{2, 0, 0, 0, 1}},
		{"no such port", "vnone", good},
		{"not enslaved", "loose0", good},
		{"the bridge itself", nettest.Bridge, good},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Harden(ctx, l.h, tc.port, tc.mac); err == nil {
				t.Errorf("Harden(%q, %v) = nil, want an error", tc.port, tc.mac)
			}
			if err := Release(ctx, l.h, tc.port, tc.mac); err == nil {
				t.Errorf("Release(%q, %v) = nil, want an error", tc.port, tc.mac)
			}
		})
	}
	st, err := State(l.h, l.a.HostPort)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Learning || !st.Flood || st.NeighSuppress || len(st.StaticMACs) != 0 {
		t.Errorf("State(%s) after refused calls = %+v, want defaults", l.a.HostPort, st)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := Harden(cctx, l.h, l.a.HostPort, good); err == nil {
		t.Error("Harden with a cancelled context = nil, want an error")
	}
	if _, err := State(l.h, "loose0"); err == nil {
		t.Error("State(loose0) = nil error, want not a bridge port")
	}
}

func statesEqual(a, b PortState) bool {
	if a.Port != b.Port || a.Bridge != b.Bridge || a.Learning != b.Learning || a.Flood != b.Flood || a.NeighSuppress != b.NeighSuppress || len(a.StaticMACs) != len(b.StaticMACs) {
		return false
	}
	for i := range a.StaticMACs {
		if a.StaticMACs[i].String() != b.StaticMACs[i].String() {
			return false
		}
	}
	return true
}
