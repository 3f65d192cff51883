package contain

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestAttacksWorkUncontained is the control for TestAttacks: without
// containment the same attacks poison the victim, so the victim checks
// there can fail.
func TestAttacksWorkUncontained(t *testing.T) {
	l := newLab(t)
	require(t, "arpspoof", scapy)

	run(t, "ip", "-n", l.vm["pb"], "neigh", "replace", "10.77.0.1", "lladdr", "02:00:00:00:00:01", "dev", "eth0", "nud", "stale")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", l.vm["pa"], "arpspoof", "-i", "eth0", "-t", "10.77.0.3", "10.77.0.1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	poisoned := false
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end) && !poisoned; time.Sleep(200 * time.Millisecond) {
		poisoned = strings.Contains(l.neigh(t, "pb", "10.77.0.1"), l.mac("pa"))
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if !poisoned {
		t.Error("uncontained arpspoof did not poison the victim within 3s")
	}

	run(t, "ip", "-n", l.vm["pb"], "neigh", "replace", "fd77::1", "lladdr", "02:00:00:00:00:01", "dev", "eth0", "nud", "stale")
	l.sendScapy(t, "pa", `Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:03")/IPv6(src="fd77::2", dst="fd77::3")/ICMPv6ND_NA(tgt="fd77::1", R=0, S=0, O=1)/ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:02")`)
	if n := l.neigh(t, "pb", "fd77::1"); !strings.Contains(n, l.mac("pa")) {
		t.Errorf("uncontained NA poisoning: victim's entry = %q, want the attacker's MAC", n)
	}
	l.sendScapy(t, "pa", `Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:03")/IPv6(src="fd77::2", dst="fd77::3")/ICMPv6ND_NS(tgt="fd77::3")/ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:99")`)
	if n := l.neigh(t, "pb", "fd77::2"); !strings.Contains(n, "02:00:00:00:00:99") {
		t.Errorf("uncontained ND option spoof: victim's entry = %q, want 02:00:00:00:00:99", n)
	}
	before := l.snmp(t, "pb", "Icmp6InRouterAdvertisements")
	l.sendScapy(t, "pa", `Ether(src="02:00:00:00:00:02", dst="33:33:00:00:00:01")/IPv6(src="fe80::ff:fe00:2", dst="ff02::1")/ICMPv6ND_RA()/ICMPv6NDOptPrefixInfo(prefix="2001:db8:bad::", prefixlen=64)`)
	if after := l.snmp(t, "pb", "Icmp6InRouterAdvertisements"); after == before {
		t.Error("uncontained RA: the victim's Icmp6InRouterAdvertisements did not move")
	}
}
