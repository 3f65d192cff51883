package nettest

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestPackage(t *testing.T) {
	for _, tc := range []struct{ tool, want string }{
		{"hping3", "hping3"},
		{"arping", "arping"},
		{"arpspoof", "dsniff"},
		{"tcpdump", "tcpdump"},
		{"nmap", "nmap"},
		{"iperf3", "iperf3"},
		{"nft", "nftables"},
		{"scapy", "python3-scapy"},
		{"bridge", "iproute2"},
		{"busybox", "busybox-static"},
	} {
		if got := Package(tc.tool); got != tc.want {
			t.Errorf("Package(%q) = %q, want %q", tc.tool, got, tc.want)
		}
	}
}

func TestCheckVMName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"attacker", true},
		{"abcdefghijklmn", true},
		{"", false},
		{"abcdefghijklmno", false},
		{"a-b", false},
		{"a/b", false},
		{"a b", false},
	} {
		if err := checkVMName(tc.name); (err == nil) != tc.ok {
			t.Errorf("checkVMName(%q) = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

// Two VMs reach each other over br0 (IPv4 and IPv6), learn each other's
// MAC, background processes run in their namespace; afterwards no
// namespace and no process is left.
func TestHarness(t *testing.T) {
	var names []string
	var pid int
	t.Run("net", func(t *testing.T) {
		Require(t, "busybox")
		n := Hypervisor(t)
		a := n.AddVM(t, "a", "02:00:00:00:00:0a", "10.9.0.1/24", "fd00:9::1/64")
		b := n.AddVM(t, "b", "02:00:00:00:00:0b", "10.9.0.2/24", "fd00:9::2/64")
		names = []string{n.NS, a.NS, b.NS}
		for _, name := range names {
			if !strings.HasPrefix(name, "vmtrust-") {
				t.Errorf("namespace %q lacks the vmtrust- prefix", name)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()

		for _, tc := range []struct {
			from, to *VM
			ip       int
		}{{a, b, 0}, {b, a, 0}, {a, b, 1}, {b, a, 1}} {
			if !tc.from.Ping(ctx, tc.to.IP(tc.ip)) {
				t.Errorf("%s: ping %s failed", tc.from.Name, tc.to.IP(tc.ip))
			}
		}
		if got, want := a.Neighbour(ctx, b.IP(0)), b.MAC.String(); got != want {
			t.Errorf("a.Neighbour(%s) = %q, want %q", b.IP(0), got, want)
		}
		if got := a.Neighbour(ctx, "10.9.0.77"); got != "" {
			t.Errorf("a.Neighbour(unknown) = %q, want \"\"", got)
		}
		if a.Ping(ctx, "10.9.0.77") {
			t.Error("ping to an absent address succeeded")
		}

		out, _, err := n.Run(ctx, "bridge", "link", "show")
		if err != nil {
			t.Fatal(err)
		}
		for _, port := range []string{a.HostPort, b.HostPort} {
			if !strings.Contains(out, port+"@") || !strings.Contains(out, "master "+Bridge) {
				t.Errorf("bridge link show in %s = %q, want %s on %s", n.NS, out, port, Bridge)
			}
		}
		for _, k := range []string{"bridge-nf-call-iptables", "bridge-nf-call-ip6tables"} {
			out, _, err := n.Run(ctx, "cat", "/proc/sys/net/bridge/"+k)
			if err != nil || strings.TrimSpace(out) != "1" {
				t.Errorf("%s in %s = %q (%v), want 1", k, n.NS, out, err)
			}
		}
		out, _, err = a.Run(ctx, "ip", "-6", "addr", "show", "dev", "eth0")
		if err != nil || strings.Contains(out, "tentative") {
			t.Errorf("a's IPv6 addresses = %q (%v), want none tentative", out, err)
		}
		if f := n.NSFile(t); f.Fd() == 0 {
			t.Error("NSFile returned no descriptor")
		}

		t.Run("scapy", func(t *testing.T) {
			Require(t, "scapy")
			out, err := Scapy(ctx, a, `from scapy.all import *
r = srp1(Ether(dst="ff:ff:ff:ff:ff:ff")/ARP(pdst="10.9.0.2"), iface="eth0", timeout=3, verbose=0)
print(r[ARP].hwsrc if r else "none")`)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(out); got != b.MAC.String() {
				t.Errorf("scapy ARP who-has 10.9.0.2 from a = %q, want %s", got, b.MAC)
			}
			if _, err := Scapy(ctx, a, "raise SystemExit(3)"); err == nil {
				t.Error("Scapy(failing script) = nil error")
			}
		})

		p := a.Start(t, "sleep", "1000")
		pid = p.PID()
		out, _, err = a.Run(ctx, "cat", "/proc/net/dev")
		if err != nil || strings.Contains(out, Bridge) {
			t.Errorf("VM namespace sees %s: %q (%v)", Bridge, out, err)
		}
	})
	if names == nil {
		return // skipped
	}
	out, _, err := run(context.Background(), "ip", "netns", "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if strings.Contains(out, name) {
			t.Errorf("namespace %s left after cleanup: %q", name, out)
		}
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("process %d started through the harness alive after cleanup (kill 0: %v)", pid, err)
	}
}
