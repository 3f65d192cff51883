package contain

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
)

// require skips (or, under CI, fails) when root or a tool is missing.
func require(t *testing.T, tools ...string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("contain integration test needs %s (CI is set)", strings.Join(missing, ", "))
	}
	t.Skipf("needs %s", strings.Join(missing, ", "))
}

type lab struct {
	t      *testing.T
	hv     string
	sfx    string
	vm     map[string]string // port -> namespace
	host   map[string]int    // port -> last address byte
	hvFile *os.File
	m      *Manager
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// inNS runs a command in namespace ns and reports whether it succeeded.
func inNS(ns string, args ...string) bool {
	return exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).Run() == nil
}

// newLab builds a hypervisor namespace with bridge br0 and two VM namespaces
// on veth ports "pa" (10.77.0.2, fd77::2) and "pb" (10.77.0.3, fd77::3).
func newLab(t *testing.T) *lab {
	require(t, "ip", "ping", "nft")
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	sfx := hex.EncodeToString(b)
	l := &lab{t: t, hv: "vmtrust-hv-" + sfx, sfx: sfx, vm: map[string]string{}, host: map[string]int{}}
	run(t, "ip", "netns", "add", l.hv)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", l.hv).Run() })
	run(t, "ip", "-n", l.hv, "link", "add", "br0", "type", "bridge")
	run(t, "ip", "-n", l.hv, "link", "set", "br0", "up")
	// Inbound deny needs br_netfilter to hand bridged frames to the inet
	// hooks; the setting is per namespace.
	for _, k := range []string{"net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables"} {
		if out, err := exec.Command("ip", "netns", "exec", l.hv, "sysctl", "-n", k).Output(); err == nil && strings.TrimSpace(string(out)) == "0" {
			run(t, "ip", "netns", "exec", l.hv, "sysctl", "-qw", k+"=1")
		}
	}
	l.addVM("pa", 2)
	l.addVM("pb", 3)
	f, err := os.Open("/var/run/netns/" + l.hv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	l.hvFile = f
	l.m, err = New(f, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// addVM adds a VM namespace on veth port "port" of br0 with MAC
// 02:00:00:00:00:<n in hex>, 10.77.0.<n>/24 and fd77::<n>/64.
func (l *lab) addVM(port string, n int) {
	t := l.t
	ns := "vmtrust-" + port + "-" + l.sfx
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	l.vm[port], l.host[port] = ns, n
	last := strconv.Itoa(n)
	run(t, "ip", "-n", l.hv, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
	run(t, "ip", "-n", l.hv, "link", "set", port, "master", "br0", "up")
	run(t, "ip", "-n", ns, "link", "set", "eth0", "address", l.mac(port))
	run(t, "ip", "-n", ns, "addr", "add", "10.77.0."+last+"/24", "dev", "eth0")
	run(t, "ip", "-n", ns, "addr", "add", "fd77::"+last+"/64", "dev", "eth0", "nodad")
	run(t, "ip", "-n", ns, "link", "set", "eth0", "up")
	run(t, "ip", "-n", ns, "link", "set", "lo", "up")
}

func (l *lab) mac(port string) string { return fmt.Sprintf("02:00:00:00:00:%02x", l.host[port]) }
func (l *lab) ip4(port string) string { return "10.77.0." + strconv.Itoa(l.host[port]) }
func (l *lab) ip6(port string) string { return "fd77::" + strconv.Itoa(l.host[port]) }

func (l *lab) port(name string) Port {
	return Port{Name: name, VM: "vm-" + name, MAC: mustMAC(l.t, l.mac(name)),
		IPv4: []netip.Addr{netip.MustParseAddr(l.ip4(name))}, IPv6: []netip.Addr{netip.MustParseAddr(l.ip6(name))},
		Class: 2, Inbound: InboundAllow}
}

func (l *lab) ping(from, to string, extra ...string) bool {
	return inNS(l.vm[from], append([]string{"ping", "-c", "1", "-W", "1"}, append(extra, to)...)...)
}

func (l *lab) drops(port string) map[Reason]uint64 {
	l.t.Helper()
	st, err := l.m.Status(context.Background())
	if err != nil {
		l.t.Fatal(err)
	}
	for _, s := range st {
		if s.Name == port {
			return s.Drops
		}
	}
	l.t.Fatalf("Status has no port %s: %+v", port, st)
	return nil
}

func (l *lab) mustLegit() {
	l.t.Helper()
	if !l.ping("pa", "10.77.0.3") {
		l.t.Fatal("legitimate IPv4 ping a→b failed")
	}
	if !l.ping("pa", "fd77::3") {
		l.t.Fatal("legitimate IPv6 ping a→b failed")
	}
}

func (l *lab) handles() []uint64 {
	l.t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(l.hvFile.Fd())))
	if err != nil {
		l.t.Fatal(err)
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyBridge)
	if err != nil {
		l.t.Fatal(err)
	}
	var hs []uint64
	for _, ch := range chains {
		rules, err := c.GetRules(table, ch)
		if err != nil {
			l.t.Fatal(err)
		}
		for _, r := range rules {
			hs = append(hs, r.Handle)
		}
	}
	return hs
}

func TestAttacks(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	for _, p := range []string{"pa", "pb"} {
		if err := l.m.Apply(ctx, l.port(p)); err != nil {
			t.Fatalf("Apply(%s) = %v", p, err)
		}
	}
	l.mustLegit()
	if out, err := exec.Command("ip", "netns", "exec", l.hv, "nft", "list", "table", "bridge", TableName).CombinedOutput(); err != nil {
		t.Fatalf("nft list: %v\n%s", err, out)
	} else {
		t.Logf("kernel table:\n%s", out)
	}

	attacks := []struct {
		name   string
		tools  []string
		attack func(t *testing.T)
		reason Reason
		min    uint64 // the counter must move by at least this much (0: 1)
	}{
		{"ip addr add + ping", nil, func(t *testing.T) {
			run(t, "ip", "-n", l.vm["pa"], "addr", "add", "10.77.0.99/24", "dev", "eth0")
			defer run(t, "ip", "-n", l.vm["pa"], "addr", "del", "10.77.0.99/24", "dev", "eth0")
			if l.ping("pa", "10.77.0.3", "-I", "10.77.0.99") {
				t.Error("spoofed ping from 10.77.0.99 got a reply")
			}
		}, ReasonIPSpoof, 0},
		{"hping3 -a", []string{"hping3"}, func(t *testing.T) {
			_ = exec.Command("ip", "netns", "exec", l.vm["pa"], "hping3", "-a", "10.77.0.50", "-S", "-p", "80", "-c", "3", "-i", "u10000", "10.77.0.3").Run()
		}, ReasonIPSpoof, 0},
		{"ipv6 source spoof", nil, func(t *testing.T) {
			run(t, "ip", "-n", l.vm["pa"], "addr", "add", "fd77::99/64", "dev", "eth0", "nodad")
			defer run(t, "ip", "-n", l.vm["pa"], "addr", "del", "fd77::99/64", "dev", "eth0")
			if l.ping("pa", "fd77::3", "-I", "fd77::99") {
				t.Error("spoofed ping from fd77::99 got a reply")
			}
		}, ReasonIP6Spoof, 0},
		{"arping -S", []string{"arping"}, func(t *testing.T) {
			if inNS(l.vm["pa"], "arping", "-c", "1", "-w", "1", "-I", "eth0", "-S", "10.77.0.99", "10.77.0.3") {
				t.Error("arping with sender 10.77.0.99 got a reply")
			}
		}, ReasonARPSpoof, 0},
		{"mac change", nil, func(t *testing.T) {
			run(t, "ip", "-n", l.vm["pa"], "link", "set", "eth0", "address", "02:00:00:00:00:99")
			defer run(t, "ip", "-n", l.vm["pa"], "link", "set", "eth0", "address", "02:00:00:00:00:02")
			if l.ping("pa", "10.77.0.3") {
				t.Error("ping from a changed MAC got a reply")
			}
		}, ReasonMACSpoof, 0},
		{"hping3 --rand-source", []string{"hping3"}, func(t *testing.T) {
			_ = exec.Command("ip", "netns", "exec", l.vm["pa"], "hping3", "--rand-source", "-S", "-p", "80", "-c", "20", "-i", "u10000", "10.77.0.3").Run()
		}, ReasonIPSpoof, 16},
		{"arping -s", []string{"arping"}, func(t *testing.T) {
			if inNS(l.vm["pa"], "arping", "-c", "1", "-w", "1", "-I", "eth0", "-s", "02:00:00:00:00:99", "10.77.0.3") {
				t.Error("arping with source MAC 02:00:00:00:00:99 got a reply")
			}
		}, ReasonMACSpoof, 0},
		{"arpspoof", []string{"arpspoof"}, func(t *testing.T) {
			// The victim knows the gateway 10.77.0.1 at 02:00:00:00:00:01.
			run(t, "ip", "-n", l.vm["pb"], "neigh", "replace", "10.77.0.1", "lladdr", "02:00:00:00:00:01", "dev", "eth0", "nud", "stale")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cmd := exec.CommandContext(ctx, "ip", "netns", "exec", l.vm["pa"], "arpspoof", "-i", "eth0", "-t", "10.77.0.3", "10.77.0.1")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			// arpspoof restores the victim's cache when it exits: look while it runs.
			for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
				if n := l.neigh(t, "pb", "10.77.0.1"); strings.Contains(n, l.mac("pa")) {
					t.Fatalf("victim's neighbour entry while arpspoof runs = %q, has the attacker's MAC", n)
				}
			}
			if cmd.ProcessState != nil {
				t.Fatal("arpspoof exited early")
			}
		}, ReasonARPSpoof, 0},
		{"scapy rogue DHCPOFFER", []string{scapy, "tcpdump"}, func(t *testing.T) {
			if n := l.capture(t, "pb", "icmp", func() { l.ping("pa", "10.77.0.3") }); n == 0 {
				t.Fatal("capture control: the victim saw no ICMP during a ping")
			}
			n := l.capture(t, "pb", "udp port 68", func() {
				l.sendScapy(t, "pa", `Ether(src="02:00:00:00:00:02", dst="ff:ff:ff:ff:ff:ff")/IP(src="10.77.0.2", dst="255.255.255.255")/UDP(sport=67, dport=68)/BOOTP(op=2, yiaddr="10.77.0.50", chaddr=mac2str("02:00:00:00:00:03"))/DHCP(options=[("message-type", "offer"), ("server_id", "10.77.0.2"), "end"])`)
			})
			if n != 0 {
				t.Errorf("victim received %d DHCP server frames, want 0", n)
			}
		}, ReasonDHCPServer, 0},
		{"scapy RA", []string{scapy}, func(t *testing.T) {
			before := l.snmp(t, "pb", "Icmp6InRouterAdvertisements")
			l.sendScapy(t, "pa", `Ether(src="02:00:00:00:00:02", dst="33:33:00:00:00:01")/IPv6(src="fe80::ff:fe00:2", dst="ff02::1")/ICMPv6ND_RA()/ICMPv6NDOptPrefixInfo(prefix="2001:db8:bad::", prefixlen=64)`)
			if after := l.snmp(t, "pb", "Icmp6InRouterAdvertisements"); after != before {
				t.Errorf("victim's Icmp6InRouterAdvertisements = %d, want %d", after, before)
			}
		}, ReasonRA, 0},
		{"scapy NA poisoning", []string{scapy}, func(t *testing.T) {
			// The victim knows fd77::1 at 02:00:00:00:00:01; the attacker claims it.
			run(t, "ip", "-n", l.vm["pb"], "neigh", "replace", "fd77::1", "lladdr", "02:00:00:00:00:01", "dev", "eth0", "nud", "stale")
			l.sendScapy(t, "pa", `Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:03")/IPv6(src="fd77::2", dst="fd77::3")/ICMPv6ND_NA(tgt="fd77::1", R=0, S=0, O=1)/ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:02")`)
			if n := l.neigh(t, "pb", "fd77::1"); !strings.Contains(n, "02:00:00:00:00:01") {
				t.Errorf("victim's neighbour entry for fd77::1 = %q, want lladdr 02:00:00:00:00:01", n)
			}
		}, ReasonNDSpoof, 0},
		{"scapy ND option spoof", []string{scapy}, func(t *testing.T) {
			l.sendScapy(t, "pa", `Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:03")/IPv6(src="fd77::2", dst="fd77::3")/ICMPv6ND_NS(tgt="fd77::3")/ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:99")`)
			if n := l.neigh(t, "pb", "fd77::2"); strings.Contains(n, "02:00:00:00:00:99") {
				t.Errorf("victim's neighbour entry for fd77::2 = %q, has the spoofed MAC", n)
			}
		}, ReasonNDSpoof, 0},
		{"scapy other ethertype", []string{scapy, "tcpdump"}, func(t *testing.T) {
			n := l.capture(t, "pb", "ether proto 0x88b5", func() {
				l.sendScapy(t, "pa", `Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:03", type=0x88b5)/Raw(b"vmtrust-ethertype-probe")`)
			})
			if n != 0 {
				t.Errorf("victim received %d frames of ethertype 0x88b5, want 0", n)
			}
		}, ReasonEthertype, 0},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			if len(a.tools) > 0 {
				require(t, a.tools...)
			}
			before := l.drops("pa")[a.reason]
			a.attack(t)
			if after := l.drops("pa")[a.reason]; after < before+max(a.min, 1) {
				t.Errorf("counter %s = %d after the attack, want ≥ %d", a.reason, after, before+max(a.min, 1))
			}
			l.mustLegit()
		})
	}
}

func TestQuarantine(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	for _, p := range []string{"pa", "pb"} {
		if err := l.m.Apply(ctx, l.port(p)); err != nil {
			t.Fatal(err)
		}
	}
	l.mustLegit()
	start := time.Now()
	if err := l.m.Quarantine(ctx, "pa", true); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Quarantine(on) took %v, want ≤ 100ms", d)
	}
	if l.ping("pa", "10.77.0.3") || l.ping("pb", "10.77.0.2") {
		t.Fatal("quarantined port still passes traffic")
	}
	if d := l.drops("pa")[ReasonQuarantine]; d == 0 {
		t.Error("quarantine counter did not move")
	}
	// Apply while quarantined keeps the quarantine.
	if err := l.m.Apply(ctx, l.port("pa")); err != nil {
		t.Fatal(err)
	}
	if l.ping("pa", "10.77.0.3") {
		t.Fatal("Apply released an operator quarantine")
	}
	start = time.Now()
	if err := l.m.Quarantine(ctx, "pa", false); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Quarantine(off) took %v, want ≤ 100ms", d)
	}
	l.mustLegit()
}

func TestApplyIdempotentReconcileFailClosed(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	pa, pb := l.port("pa"), l.port("pb")
	for _, p := range []Port{pa, pb} {
		if err := l.m.Apply(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	before := l.handles()
	if err := l.m.Apply(ctx, pa); err != nil {
		t.Fatal(err)
	}
	if after := l.handles(); len(before) == 0 || fmtU(before) != fmtU(after) {
		t.Errorf("second Apply changed rule handles: %v → %v", before, after)
	}

	// A lease change is a set change: same rule handles, new address works.
	pa2 := pa
	pa2.IPv4 = append(pa2.IPv4, netip.MustParseAddr("10.77.0.20"))
	if err := l.m.Apply(ctx, pa2); err != nil {
		t.Fatal(err)
	}
	if after := l.handles(); fmtU(before) != fmtU(after) {
		t.Errorf("lease change rewrote rules: %v → %v", before, after)
	}
	run(t, "ip", "-n", l.vm["pa"], "addr", "add", "10.77.0.20/24", "dev", "eth0")
	if !l.ping("pa", "10.77.0.3", "-I", "10.77.0.20") {
		t.Error("ping from a newly leased address failed")
	}

	// Reconcile: pb deleted by hand comes back; a stale port goes.
	stale := l.port("pb")
	stale.Name, stale.VM = "gone0", "gone"
	if err := l.m.Apply(ctx, stale); err != nil {
		t.Fatal(err)
	}
	if err := l.m.Remove(ctx, "pb"); err != nil {
		t.Fatal(err)
	}
	rep, err := l.m.Reconcile(ctx, []Port{pa2, pb})
	if err != nil {
		t.Fatal(err)
	}
	if fmtS(rep.Added) != "pb" || fmtS(rep.Removed) != "gone0" || fmtS(rep.Unchanged) != "pa" {
		t.Errorf("Reconcile = %+v, want added [pb], removed [gone0], unchanged [pa]", rep)
	}
	st, err := l.m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 || st[0].Name != "pa" || st[1].Name != "pb" {
		t.Errorf("Status after Reconcile = %+v, want pa, pb", st)
	}
	l.mustLegit()
	if rep, err := l.m.Reconcile(ctx, []Port{pa2, pb}); err != nil || len(rep.Added)+len(rep.Removed)+len(rep.Updated) != 0 {
		t.Errorf("second Reconcile = %+v, %v; want no change", rep, err)
	}

	// Fail closed: the rule batch fails, the port stays blocked.
	injected := errors.New("injected")
	l.m.beforeCommit = func(stage string) error {
		if stage == "port" {
			return injected
		}
		return nil
	}
	pa3 := pa2
	pa3.RatePPS = 10000
	if err := l.m.Apply(ctx, pa3); !errors.Is(err, injected) {
		t.Fatalf("Apply with a failing batch = %v, want injected", err)
	}
	if l.ping("pa", "10.77.0.3") {
		t.Error("port passes traffic after a failed Apply")
	}
	if st, _ := l.m.Status(ctx); len(st) == 0 || !st[0].Quarantined {
		t.Errorf("Status after a failed Apply = %+v, want pa quarantined", st)
	}
	l.m.beforeCommit = nil
	if err := l.m.Apply(ctx, pa3); err != nil {
		t.Fatal(err)
	}
	l.mustLegit()

	// Table deleted behind our back: Reconcile recreates it.
	run(t, "ip", "netns", "exec", l.hv, "nft", "delete", "table", "bridge", TableName)
	rep, err = l.m.Reconcile(ctx, []Port{pa3, pb})
	if err != nil || !rep.Table || fmtS(rep.Added) != "pa,pb" {
		t.Errorf("Reconcile after table deletion = %+v, %v; want table repaired, added pa,pb", rep, err)
	}
	l.mustLegit()
	if err := l.m.Remove(ctx, "pa"); err != nil {
		t.Fatal(err)
	}
	if st, _ := l.m.Status(ctx); len(st) != 1 {
		t.Errorf("Status after Remove = %+v, want pb only", st)
	}
}

func fmtS(s []string) string { return strings.Join(s, ",") }
func fmtU(u []uint64) string {
	var b strings.Builder
	for _, x := range u {
		b.WriteString(" ")
		b.WriteString(strconv.FormatUint(x, 10))
	}
	return b.String()
}
