package main

import (
	"context"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// netLibvirtScript runs inside the guest (busybox sh) through its real
// tap: a legitimate ping over IPv4 and IPv6 (which also fills the guest's
// neighbour cache, so the spoofed pings leave with their spoofed source),
// then each attack. Every probe prints "R <name> ok|fail". The guest's own
// addresses are 10.76.0.5 and fd76::5; the peer's are 10.76.0.9 and
// fd76::9. busybox arping -s binds to its source, so the claim of the
// peer's address first puts it on eth0; an unsolicited (-U) claim expects
// no answer and exits 0 once sent: its proof is the host's counter.
// After the MAC spoof the guest takes its own MAC back ("R back"), sends
// a burst of 60 pings 10 ms apart, well above the site policy's rate
// limit (netLibvirtRate), and prints "B <n> packets rec" (replies
// received). Then it leaves two jobs running past its marker: a rogue
// DHCP server (busybox udhcpd on eth0, offering 10.76.0.100-110, its ARP
// check of an offered address cut to 100 ms) and a ping of the peer every
// 0.3 s, printing "Q ok|fail <n>", n counting the attempts.
const netLibvirtScript = `P=10.76.0.9
r(){ n=$1;shift;if "$@" >/dev/null 2>&1;then echo "R $n ok";else echo "R $n fail";fi;}
r ping ping -c 2 -W 2 $P
r ping6 ping -6 -c 2 -W 2 fd76::9
ip addr add 10.76.0.99/24 dev eth0
r ipspoof ping -c 2 -W 1 -I 10.76.0.99 $P
r arpspoof arping -c 2 -w 3 -s 10.76.0.99 -I eth0 $P
ip -6 addr add fd76::99/64 dev eth0
r ip6spoof ping -6 -c 2 -W 1 -I fd76::99 fd76::9
ip addr add $P/32 dev eth0
r arppeer arping -U -c 2 -w 2 -s $P -I eth0 $P
ip addr del $P/32 dev eth0
ip addr del 10.76.0.99/24 dev eth0
m(){ ip link set eth0 down;ip link set eth0 address $1;ip link set eth0 up;}
m 52:54:00:de:ad:01
r macspoof ping -c 2 -W 1 $P
m 52:54:00:76:74:05
r back ping -c 2 -W 2 $P
echo "B $(ping -q -c 60 -i 0.01 -W 2 $P|grep -o '[0-9]* packets rec')"
printf 'interface eth0\nstart 10.76.0.100\nend 10.76.0.110\nlease_file /tmp/l\n'>/tmp/d
udhcpd -f -a 100 /tmp/d &
(n=0;while :;do n=$((n+1));if ping -c 1 -W 1 $P>/dev/null;then echo "Q ok $n";else echo "Q fail $n";fi;sleep .3;done)&
`

// netLibvirtRate is the rate limit (packets per second) the test's site
// policy gives the endorsed profile: a TCG guest's ping burst exceeds it,
// its ordinary probes (a few packets a second) do not.
const netLibvirtRate = 20

// TestNetLibvirt is issue 6's attack suite against a real libvirt guest:
// the vmtrust hook contains the tap of an admitted guest (class 2, profile
// endorsed) on a bridge whose other port is a contained peer namespace;
// the guest's busybox attacks from inside. Legitimate pings work, every
// spoof fails and moves its counter on the guest's port, the peer's
// neighbour table never learns a spoofed binding, and destroying the
// domain removes the port. The site policy is the default one with the
// endorsed profile's rate limit lowered to netLibvirtRate, which the
// admission plan carries to the tap: the guest's ping burst is cut down
// and counted. With the guest up: new inbound connections from the peer
// (hping3 SYNs, pings) are dropped and counted while the guest's own pings
// flow; a quarantine of the tap cuts the guest's ping loop and a release
// restores it; the guest's rogue DHCP server never gives the peer a
// lease, with controls showing what each rule prevents.
func TestNetLibvirt(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a guest under libvirt")
	}
	requireTools(t, "ip", "qemu-img", "ping", "hping3", "/bin/busybox")
	// The site policy: the default with a rate limit the guest can exceed
	// (the endorsed profile's is 50000).
	w, env := libvirtNetSite(t, [2]string{"rate_limit_pps = 50000", fmt.Sprintf("rate_limit_pps = %d", netLibvirtRate)})

	disk := filepath.Join(w.dir, "net.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", disk, "16M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v\n%s", err, out)
	}
	b, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	w.publish(t, "1", map[string][]byte{img1: b})
	sum := sha512.Sum512(b)
	imgSum := hex.EncodeToString(sum[:])
	if code, out, errs := w.vm(t, "update"); code != 0 {
		t.Fatalf("update: %d\n%s\n%s", code, out, errs)
	}
	_, ims := w.images(t)
	cached := ims[img1].Path
	if ims[img1].State != "cached" || cached == "" {
		t.Fatalf("images: %+v", ims)
	}

	// The bridge in libvirtd's namespace, and the peer: a namespace of its
	// own on a veth port of the bridge, contained like any VM.
	const (
		peerMAC  = "52:54:00:76:74:09"
		guestMAC = "52:54:00:76:74:05"
		spoofMAC = "52:54:00:de:ad:01"
		peerPort = "vmtpeer0"
	)
	peerNS := netPeer(t, env, "vmtrust-peer-", peerMAC, []string{"10.76.0.9/24", "fd76::9/64"})
	netvm := func(args ...string) (int, string, string) {
		return vmtrust(t, append([]string{"--state", w.state, "net", "--netns", env.Netns}, args...)...)
	}
	if code, out, errs := netvm("apply", "--port", peerPort, "--vm", "peer", "--mac", peerMAC, "--ip", "10.76.0.9", "--ip", "fd76::9", "--class", "2"); code != 0 {
		t.Fatalf("net apply of the peer: %d\n%s\n%s", code, out, errs)
	}

	const dom = "net-guest"
	x, err := env.DomainXMLNet(dom, cached, guestMAC, "br0", []string{"10.76.0.5/24", "fd76::5/64"},
		netLibvirtScript, netMetadata(guestMAC, "10.76.0.5", "fd76::5"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := env.Virsh("define", w.write(t, dom+".xml", []byte(x))); err != nil {
		t.Fatal(err)
	}

	// The peer's neighbour table, watched from the start until the
	// marker: it must never bind an address to the spoofed MAC, nor the
	// spoofed addresses to any MAC; it must learn the guest's real binding.
	poisoned := regexp.MustCompile(`^(10\.76\.0\.99|fd76::99) .*lladdr|lladdr ` + spoofMAC)
	var (
		mu     sync.Mutex
		bad    []string
		legit  bool
		polled int
	)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	watchCtx, stopWatch := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for watchCtx.Err() == nil {
			out, err := exec.Command("ip", "-n", peerNS, "neigh", "show").Output()
			mu.Lock()
			if err == nil {
				polled++
				for _, l := range strings.Split(string(out), "\n") {
					if poisoned.MatchString(l) {
						bad = append(bad, l)
					}
					legit = legit || strings.HasPrefix(l, "10.76.0.5 ") && strings.Contains(l, "lladdr "+guestMAC)
				}
			}
			mu.Unlock()
			select {
			case <-watchCtx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()

	if _, _, err := env.Virsh("start", dom); err != nil {
		stopWatch()
		wg.Wait()
		t.Fatalf("start of the admitted guest: %v", err)
	}
	defer env.Virsh("destroy", dom)
	took, err := env.WaitMarker(ctx, dom)
	stopWatch()
	wg.Wait()
	console, _ := os.ReadFile(env.ConsoleLog(dom))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("guest ran its script in %v", took.Round(time.Millisecond))
	during := time.Now().UTC() // the guest is up, its port contained

	// What the guest saw.
	results := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^R ([a-z0-9]+) (ok|fail)\r?$`).FindAllStringSubmatch(string(console), -1) {
		results[m[1]] = m[2]
	}
	for _, tc := range []struct{ probe, want string }{
		{"ping", "ok"},
		{"ping6", "ok"},
		{"ipspoof", "fail"},
		{"arpspoof", "fail"},
		{"ip6spoof", "fail"},
		{"arppeer", "ok"}, // sent; dropped per the counter below
		{"macspoof", "fail"},
		{"back", "ok"}, // its own MAC again
	} {
		if got := results[tc.probe]; got != tc.want {
			t.Errorf("guest probe %s = %q, want %q", tc.probe, got, tc.want)
		}
	}

	// What the host counted on the guest's tap.
	status := func() netStatusJSON {
		t.Helper()
		code, out, errs := netvm("status", "--json")
		var s netStatusJSON
		if err := json.Unmarshal([]byte(out), &s); err != nil || code != 0 {
			t.Fatalf("net status: exit %d %v\n%s\n%s", code, err, out, errs)
		}
		return s
	}
	s := status()
	var guestPort string
	for _, p := range s.Ports {
		if p.VM != dom {
			continue
		}
		guestPort = p.Port
		if !strings.HasPrefix(p.Port, "vnet") || p.Kernel == nil {
			t.Fatalf("net status: guest port %+v, want a vnetN tap with kernel state", p)
		}
		// Each spoofing probe sends 2 packets; the two arpings 4 ARP
		// frames with a false sender address.
		for _, c := range []struct {
			reason string
			min    uint64
		}{{"ip-spoof", 2}, {"arp-spoof", 4}, {"ip6-spoof", 2}, {"mac-spoof", 1}} {
			if got := p.Kernel.Drops[c.reason]; got < c.min {
				t.Errorf("net status: %s drops on %s = %d, want >= %d (drops %v)", c.reason, p.Port, got, c.min, p.Kernel.Drops)
			}
		}
		t.Logf("guest port %s drops %v", p.Port, p.Kernel.Drops)
	}
	if guestPort == "" {
		t.Fatalf("net status: no port of %s in %+v", dom, s)
	}
	// drops is the guest port's counter of reason now.
	drops := func(reason string) uint64 {
		t.Helper()
		for _, p := range status().Ports {
			if p.Port == guestPort && p.Kernel != nil {
				return p.Kernel.Drops[reason]
			}
		}
		t.Fatalf("net status: no kernel state for %s", guestPort)
		return 0
	}

	// The burst: 60 pings in ~0.6 s against 20 pps (burst 5). Some got
	// through; every one that did not was the rate limit's.
	if m := regexp.MustCompile(`(?m)^B ([0-9]+) packets rec\r?$`).FindStringSubmatch(string(console)); m == nil {
		t.Errorf("guest console: no burst result line")
	} else if got, _ := strconv.ParseUint(m[1], 10, 64); got == 0 || got >= 60 || drops("rate") < 60-got {
		t.Errorf("burst of 60 pings at %d pps: %d replies, %d rate drops; want some replies and a rate drop for each missing one", netLibvirtRate, got, drops("rate"))
	} else {
		t.Logf("burst of 60 pings at %d pps: %d replies, %d rate drops", netLibvirtRate, got, drops("rate"))
	}

	mu.Lock()
	if len(bad) > 0 {
		t.Errorf("the peer's neighbour table was poisoned: %q", bad)
	}
	if !legit || polled == 0 {
		t.Errorf("the peer never saw 10.76.0.5 at %s (%d polls): the watch proves nothing", guestMAC, polled)
	}
	mu.Unlock()
	if t.Failed() {
		t.Logf("guest console:\n%s", console)
	}

	peerCmd := func(ctx context.Context, args ...string) (string, error) {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(cctx, "ip", append([]string{"netns", "exec", peerNS}, args...)...).CombinedOutput()
		return string(out), err
	}
	liveCtx, cancelLive := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancelLive()
	netLibvirtLive(liveCtx, t, netLibvirtWorld{
		console: func() string { b, _ := os.ReadFile(env.ConsoleLog(dom)); return string(b) },
		peer:    peerCmd,
		net:     netvm,
		drops:   drops,
		port:    guestPort,
		dom:     dom,
		mac:     guestMAC,
	})
	if t.Failed() {
		c, _ := os.ReadFile(env.ConsoleLog(dom))
		t.Logf("guest console after the live phases:\n%s", c)
	}

	// The ledger: who had the guest's address while it ran (its port
	// contained; the live phases ended that lease with net remove) — the
	// domain (by UUID), on this host, from the admitted image; after it
	// stopped, the answer for that time is the same, and "now" has none.
	uuidOut, _, err := env.Virsh("domuuid", dom)
	if err != nil {
		t.Fatal(err)
	}
	uuid := strings.TrimSpace(uuidOut)
	whoHad := func(at time.Time) (int, whoHadJSON) {
		t.Helper()
		code, out, errs := vmtrust(t, "--state", w.state, "--config", w.config(t), "who-had", "10.76.0.5", "--at", at.Format(time.RFC3339Nano), "--json")
		var a whoHadJSON
		if code == 0 {
			if err := json.Unmarshal([]byte(out), &a); err != nil {
				t.Fatalf("who-had: %v\n%s", err, out)
			}
		} else {
			t.Logf("who-had at %s: exit %d %s", at, code, errs)
		}
		return code, a
	}
	if code, a := whoHad(during); code != 0 || a.Lease.VM != uuid || a.Run == nil || a.Run.Image != imgSum || a.Run.Name != dom || len(a.Proofs) < 2 {
		t.Errorf("who-had 10.76.0.5 while %s ran: exit %d, %+v; want the domain %s, image %s, proven", dom, code, a, uuid, imgSum)
	}

	// The hook's release takes the port away when the guest stops.
	if _, _, err := env.Virsh("destroy", dom); err != nil {
		t.Fatal(err)
	}
	if code, a := whoHad(during); code != 0 || a.Lease.VM != uuid || a.Lease.To.IsZero() || a.Run == nil {
		t.Errorf("who-had 10.76.0.5 at %s after the stop: exit %d, %+v; want the ended lease of %s", during, code, a, uuid)
	}
	if code, _ := whoHad(time.Now().Add(time.Second)); code != 3 {
		t.Errorf("who-had 10.76.0.5 now, after the stop: exit %d, want 3 (no lease)", code)
	}
	for _, p := range status().Ports {
		if p.VM == dom || p.Port == guestPort {
			t.Fatalf("net status after virsh destroy still has %+v", p)
		}
	}
}

// whoHadJSON is the part of who-had --json the tests read.
type whoHadJSON struct {
	Lease struct {
		VM, Host, MAC string
		From, To      time.Time
	} `json:"lease"`
	Run *struct {
		Name, Image, Host string
	} `json:"run"`
	Proofs []json.RawMessage `json:"proofs"`
}

// netLibvirtWorld is what the live phases of TestNetLibvirt act on: the
// guest's console, commands in the peer's namespace, 'vmtrust net' in
// libvirtd's namespace and the guest port's counters.
type netLibvirtWorld struct {
	console func() string
	peer    func(ctx context.Context, args ...string) (string, error)
	net     func(args ...string) (int, string, string)
	drops   func(reason string) uint64
	port    string // the guest's tap
	dom     string // its domain
	mac     string // its MAC
}

// pingAttempt is one "Q ok|fail N" line of the guest's ping loop.
type pingAttempt struct {
	ok bool
	n  int
}

// pingAttempts parses the ping loop's lines out of the guest's console.
func pingAttempts(console string) []pingAttempt {
	var as []pingAttempt
	for _, m := range regexp.MustCompile(`(?m)^Q (ok|fail) ([0-9]+)\r?$`).FindAllStringSubmatch(console, -1) {
		n, _ := strconv.Atoi(m[2])
		as = append(as, pingAttempt{ok: m[1] == "ok", n: n})
	}
	return as
}

// hpingReplies counts the replies hping3 printed (one "flags=" line each).
func hpingReplies(out string) int { return strings.Count(out, " flags=") }

// netLibvirtLive runs the phases that need the guest up, in an order in
// which each leaves the next a known state: inbound (the plan's rules),
// quarantine (on and off), DHCP (ends with the port out of containment).
func netLibvirtLive(ctx context.Context, t *testing.T, w netLibvirtWorld) {
	const guest = "10.76.0.5"
	// wait polls the guest's ping loop until done holds, or fails.
	wait := func(what string, done func([]pingAttempt) bool) []pingAttempt {
		t.Helper()
		for {
			as := pingAttempts(w.console())
			if done(as) {
				return as
			}
			select {
			case <-ctx.Done():
				c := w.console()
				t.Fatalf("guest ping loop: no %s: %v; console ends with %q", what, ctx.Err(), c[max(0, len(c)-1024):])
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	last := func(as []pingAttempt) int {
		if len(as) == 0 {
			return 0
		}
		return as[len(as)-1].n
	}
	oksAfter := func(n int) func([]pingAttempt) bool {
		return func(as []pingAttempt) bool {
			k := 0
			for _, a := range as {
				if a.n > n && a.ok {
					k++
				}
			}
			return k >= 3
		}
	}

	// 1. Inbound: the endorsed profile allows established connections
	// only. Without the rule the guest's kernel answers a SYN to its
	// closed port 22 with a RST and a ping with a reply (the DHCP phase's
	// control shows both).
	wait("3 pings", oksAfter(0))
	in0 := w.drops("inbound")
	out, _ := w.peer(ctx, "hping3", "-S", "-p", "22", "-c", "3", "-i", "u200000", guest)
	if n := hpingReplies(out); n != 0 {
		t.Errorf("hping3 -S -p 22 from the peer: %d replies from the guest, want 0\n%s", n, out)
	}
	if out, err := w.peer(ctx, "ping", "-c", "2", "-W", "1", guest); err == nil {
		t.Errorf("ping from the peer to the guest got a reply under allow-established\n%s", out)
	}
	if in1 := w.drops("inbound"); in1 < in0+5 {
		t.Errorf("inbound drops on %s: %d → %d, want +5 (3 SYNs, 2 echo requests)", w.port, in0, in1)
	} else {
		t.Logf("inbound drops on %s: %d → %d", w.port, in0, in1)
	}
	n0 := last(wait("a ping after the inbound probes", oksAfter(last(pingAttempts(w.console())))))
	for _, a := range pingAttempts(w.console()) {
		if a.n <= n0 && !a.ok {
			t.Errorf("guest ping %d failed before the quarantine: the guest's own pings must flow", a.n)
		}
	}

	// 2. Quarantine of the real tap while the guest pings: attempts that
	// start after the quarantine and end before the release fail; those
	// after the release succeed.
	if code, _, errs := w.net("quarantine", w.port, "--reason", "test"); code != 0 {
		t.Fatalf("net quarantine %s: %d %s", w.port, code, errs)
	}
	nq := last(pingAttempts(w.console()))
	// The first attempt wholly inside the quarantine is nq+2.
	wait("ping failing under quarantine", func(as []pingAttempt) bool { return last(as) >= nq+2 })
	if q := w.drops("quarantine"); q == 0 {
		t.Errorf("quarantine drops on %s: 0 while the guest pings", w.port)
	}
	time.Sleep(time.Second)
	nr := last(pingAttempts(w.console()))
	if code, _, errs := w.net("release", w.port); code != 0 {
		t.Fatalf("net release %s: %d %s", w.port, code, errs)
	}
	as := wait("3 pings after release", oksAfter(nr+1))
	var during, after []string
	failed := 0
	for _, a := range as {
		switch {
		case a.n > nq+1 && a.n <= nr && a.ok:
			during = append(during, strconv.Itoa(a.n))
		case a.n > nq+1 && a.n <= nr:
			failed++
		case a.n > nr+1 && !a.ok:
			after = append(after, strconv.Itoa(a.n))
		}
	}
	if len(during) > 0 || len(after) > 0 || failed == 0 {
		t.Errorf("guest pings: ok under quarantine %v (attempts %d..%d), failed after release %v (after %d)", during, nq+2, nr, after, nr+1)
	}
	t.Logf("guest pings: ok to %d, quarantined %d..%d, ok again after %d", n0, nq+1, nr, nr+1)

	// 3. The guest's rogue DHCP server (udhcpd). Under the plan's rules
	// the peer's DHCPDISCOVER, a new inbound "connection" to the guest,
	// never reaches it; with inbound allowed it does and the offer is
	// dropped; with the port out of containment the peer gets a lease,
	// so the rules, not the setup, are what kept it from one. udhcpc's
	// script is /bin/true: nothing is configured, in any namespace.
	udhcpc := func() (string, bool) {
		out, err := w.peer(ctx, "/bin/busybox", "udhcpc", "-n", "-q", "-t", "3", "-T", "1", "-s", "/bin/true", "-i", "eth0")
		return out, err == nil && strings.Contains(out, "obtained")
	}
	if out, leased := udhcpc(); leased {
		t.Errorf("the peer got a lease from the guest under the plan's rules:\n%s", out)
	}
	if code, out, errs := w.net("apply", "--port", w.port, "--vm", w.dom, "--mac", w.mac, "--ip", guest, "--ip", "fd76::5",
		"--class", "2", "--inbound", "allow", "--rate", strconv.Itoa(netLibvirtRate)); code != 0 {
		t.Fatalf("net apply %s with inbound allow: %d\n%s\n%s", w.port, code, out, errs)
	}
	if out, _ := w.peer(ctx, "hping3", "-S", "-p", "22", "-c", "3", "-i", "u200000", guest); hpingReplies(out) == 0 {
		t.Errorf("control: hping3 from the peer got no RST with inbound allowed: the inbound drops prove nothing\n%s", out)
	}
	if out, err := w.peer(ctx, "ping", "-c", "1", "-W", "2", guest); err != nil {
		t.Errorf("control: ping from the peer failed with inbound allowed: %v\n%s", err, out)
	}
	if out, leased := udhcpc(); leased {
		t.Errorf("the peer got a lease from the guest's rogue DHCP server:\n%s", out)
	}
	if d := w.drops("dhcp-server"); d == 0 {
		t.Errorf("dhcp-server drops on %s: 0 after the peer's DHCPDISCOVERs reached the guest's udhcpd", w.port)
	} else {
		t.Logf("dhcp-server drops on %s: %d", w.port, d)
	}
	if code, _, errs := w.net("remove", "--port", w.port); code != 0 {
		t.Fatalf("net remove %s: %d %s", w.port, code, errs)
	}
	if out, leased := udhcpc(); !leased {
		t.Errorf("control: the peer got no lease from the guest with its port out of containment: the DHCP checks prove nothing\n%s", out)
	} else {
		t.Logf("control, port out of containment: %s", regexp.MustCompile(`lease of [0-9.]+ obtained from [0-9.]+`).FindString(out))
	}
}
