package main

import (
	"bufio"
	"context"
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

	"github.com/vmtrust/vmtrust/internal/vmtest"
)

// The addresses of TestNetLibvirtTools: the guest G (class 3), the peer P
// on the same bridge, a "gateway" the peer knows at a MAC nobody has, the
// peer's address in the site's privileged network, and an address whose
// frames go to a MAC no port has (flooded unicast, for the sniffer).
const (
	ntGuestMAC = "52:54:00:76:74:05"
	ntPeerMAC  = "52:54:00:76:74:09"
	ntGwMAC    = "02:00:00:00:00:01"
	ntFakeMAC  = "02:00:00:00:00:99" // the ND option spoof's claim
	ntLostMAC  = "52:54:00:99:99:99" // no port has it
	ntRate     = 100                 // the test policy's class-3 rate limit (pps)
	ntFloodSec = 1                   // seconds of hping3 --flood (a TCG guest's virtio queue can stall after longer floods)
)

// ntFrames is the guest's scapy script (python3 from the tools disk): a
// rogue DHCPOFFER, a router advertisement, NA poisoning of the peer's
// gateway fd76::1, an NS whose source link-layer option claims ntFakeMAC,
// and a frame of a foreign ethertype — three of each.
const ntFrames = `from scapy.all import *
conf.verb = 0
M, PM, G = "52:54:00:76:74:05", "52:54:00:76:74:09", "10.76.0.5"
fs = [
  Ether(src=M, dst="ff:ff:ff:ff:ff:ff")/IP(src=G, dst="255.255.255.255")/UDP(sport=67, dport=68)/BOOTP(op=2, yiaddr="10.76.0.50", chaddr=mac2str(PM))/DHCP(options=[("message-type", "offer"), ("server_id", G), "end"]),
  Ether(src=M, dst="33:33:00:00:00:01")/IPv6(src="fe80::5054:ff:fe76:7405", dst="ff02::1")/ICMPv6ND_RA()/ICMPv6NDOptPrefixInfo(prefix="2001:db8:bad::", prefixlen=64),
  Ether(src=M, dst=PM)/IPv6(src="fd76::5", dst="fd76::9")/ICMPv6ND_NA(tgt="fd76::1", R=0, S=0, O=1)/ICMPv6NDOptDstLLAddr(lladdr=M),
  Ether(src=M, dst=PM)/IPv6(src="fd76::5", dst="fd76::9")/ICMPv6ND_NS(tgt="fd76::9")/ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:99"),
  Ether(src=M, dst=PM, type=0x88b5)/Raw(b"vmtrust-ethertype-probe"),
]
for f in fs:
    sendp(f, iface="eth0", count=3, inter=0.05)
print("F sent", 3 * len(fs))
`

// ntAttack is the guest's attack script (busybox sh, the tools chrooted
// from the read-only tools disk at /t). round A runs under containment at
// boot, before the marker (arpspoof is killed with SIGKILL: its restore
// would wait for the gateway, which does not exist); round C is the control, run once the peer shows
// it has taken the port out of containment (the trigger: the peer answers
// at 10.76.0.8). Each round sniffs for frames to 10.76.0.77 (which the
// bridge floods: no port has their MAC) while it runs the real tools; the
// lines it prints ("<round> <probe> …") are what the host checks, with the
// peer's view and the port's counters.
const ntAttack = `for d in proc sys dev; do mount --bind /$d /t/$d; done
mount -t tmpfs tmpfs /t/tmp
T(){ HOME=/tmp chroot /t "$@"; } # absolute names: busybox's chroot prefers its own applets (arping)
P=10.76.0.9
r(){ k=$1;shift;if o=$("$@" 2>&1);then echo "$R $k ok";else echo "$R $k fail: $(echo "$o"|tail -n 2|tr '\n' ' ')";fi;}
h(){ k=$1;shift;echo "$R $k $(T /usr/sbin/hping3 "$@" 2>&1|grep -o '[0-9]* packets tr[a-z]*, [0-9]* packets rec')";}
round(){
R=$1
HOME=/tmp chroot /t /usr/bin/tcpdump -n -l -i eth0 dst host 10.76.0.77 >/tmp/sniff.$R 2>/tmp/sniff-err.$R &
S=$!
sleep 3
r ping ping -c 2 -W 2 $P
r ping6 ping -6 -c 2 -W 2 fd76::9
r priv ping -c 2 -W 1 10.78.0.9
r priv6 ping -6 -c 2 -W 1 fd78::9
h hping-a -a 10.76.0.99 -S -p 80 -c 3 -i u100000 $P
h hping-rand --rand-source -S -p 80 -c 20 -i u20000 $P
r arping-S T /usr/sbin/arping -c 2 -w 3 -i eth0 -S 10.76.0.99 $P
r arping-s T /usr/sbin/arping -c 2 -w 3 -i eth0 -s 02:00:00:00:00:98 $P
T /usr/sbin/arpspoof -i eth0 -t $P 10.76.0.1 >/dev/null 2>&1 &
A=$!
sleep 4
kill -9 $A
wait $A
echo "$R arpspoof done"
echo "$R $(T /usr/bin/python3 /frames.py 2>&1|tail -n 1)"
echo "$R flood $(timeout -s INT $FLOOD chroot /t /usr/sbin/hping3 --flood -S -p 80 $P 2>&1|grep -o '[0-9]* packets tr[a-z]*')"
sleep 1
a(){ i=0;while [ $i -lt 15 ];do ping -c 1 -W 1 $P && return 0;i=$((i+1));done;return 1;}
r after a
if kill $S;then wait $S;echo "$R sniffed $(grep -c . /tmp/sniff.$R)";grep . /tmp/sniff.$R|head -n 3|sed "s/^/$R sniff: /";else echo "$R sniffer died: $(tail -n 2 /tmp/sniff-err.$R|tr '\n' ' ')";fi
echo "$R end"
}
ip route add 10.78.0.0/24 dev eth0
ip -6 route add fd78::/64 dev eth0
round A
(until ping -c 1 -W 1 10.76.0.8 >/dev/null 2>&1;do sleep 0.5;done;round C) &
`

// TestNetLibvirtTools runs the real attack tools — hping3, arping,
// arpspoof, tcpdump and scapy, copied from the host's packages onto a
// read-only disk the guest chroots into — from inside a real libvirt
// guest, through its tap. The guest is class 3 (the test policy admits the
// endorsed image into profile dmz with a rate limit of ntRate pps and the
// privileged networks 10.78.0.0/24 and fd78::/64); the vmtrust hook
// contains it at start. Round A runs contained: every attack fails, its
// counter moves on the tap, and the peer — the victim, watched by the host
// the whole time — never sees a spoofed frame, a rogue DHCP offer, an RA,
// a foreign ethertype, a poisoned neighbour entry, nor more SYNs of the
// flood than the rate limit lets through; the guest's sniffer sees none of
// the flooded unicast; its legitimate pings work. With the guest up, new
// inbound connections from the peer are dropped. Then the port is taken
// out of containment and round C, the control, runs the same tools: each
// attack now reaches the victim, so the checks of round A could fail.
func TestNetLibvirtTools(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a guest under libvirt")
	}
	requireTools(t, "ip", "qemu-img", "hping3", "tcpdump", "debugfs", "/bin/busybox")
	w, env := libvirtNetSite(t,
		[2]string{"class = 2\nprofile = \"endorsed\"", "class = 3\nprofile = \"dmz\""},
		[2]string{"rate_limit_pps = 10000", fmt.Sprintf("rate_limit_pps = %d", ntRate)},
		[2]string{"privileged_networks = []", `privileged_networks = ["10.78.0.0/24", "fd78::/64"]`})

	// Two endorsed images: an empty first disk, and the tools disk with
	// the scripts added.
	disk := filepath.Join(w.dir, "net.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", disk, "16M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v\n%s", err, out)
	}
	attack := strings.ReplaceAll(ntAttack, "$FLOOD", strconv.Itoa(ntFloodSec))
	tools := env.ToolsDisk(t, filepath.Join(w.dir, "tools.ext4"), map[string][]byte{
		"attack.sh": []byte(attack), "frames.py": []byte(ntFrames)})
	const img2 = img2ID
	imgs := map[string][]byte{}
	for id, p := range map[string]string{img1: disk, img2: tools} {
		var err error
		if imgs[id], err = os.ReadFile(p); err != nil {
			t.Fatal(err)
		}
	}
	w.publish(t, "1", imgs)
	if code, out, errs := w.vm(t, "update"); code != 0 {
		t.Fatalf("update: %d\n%s\n%s", code, out, errs)
	}
	_, ims := w.images(t)
	for _, id := range []string{img1, img2} {
		if ims[id].State != "cached" || ims[id].Path == "" {
			t.Fatalf("images: %s is %+v", id, ims[id])
		}
	}

	peerNS := netPeer(t, env, "vmtrust-tpeer-", ntPeerMAC, []string{"10.76.0.9/24", "10.78.0.9/24", "fd76::9/64", "fd78::9/64"})
	run := func(args ...string) string { t.Helper(); return runOK(t, args...) }
	peer := func(args ...string) []string { return append([]string{"ip", "-n", peerNS}, args...) }
	const peerPort = "vmtpeer0"
	// What the peer believes: its gateway, and where 10.76.0.77 is.
	seed := func() {
		run(peer("neigh", "replace", "10.76.0.1", "lladdr", ntGwMAC, "dev", "eth0", "nud", "stale")...)
		run(peer("neigh", "replace", "fd76::1", "lladdr", ntGwMAC, "dev", "eth0", "nud", "stale")...)
	}
	seed()
	run(peer("neigh", "replace", "10.76.0.77", "lladdr", ntLostMAC, "dev", "eth0", "nud", "permanent")...)
	netvm := func(args ...string) (int, string, string) {
		return vmtrust(t, append([]string{"--state", w.state, "net", "--netns", env.Netns}, args...)...)
	}
	if code, out, errs := netvm("apply", "--port", peerPort, "--vm", "peer", "--mac", ntPeerMAC,
		"--ip", "10.76.0.9", "--ip", "10.76.0.8", "--ip", "10.78.0.9", "--ip", "fd76::9", "--ip", "fd78::9", "--class", "2"); code != 0 {
		t.Fatalf("net apply of the peer: %d\n%s\n%s", code, out, errs)
	}

	const dom = "net-tools"
	x, err := env.DomainXMLGuest(dom, ims[img1].Path, vmtest.NetGuest{
		MAC: ntGuestMAC, Bridge: "br0", IPs: []string{"10.76.0.5/24", "fd76::5/64"},
		Script:   "mkdir /t;mount -t ext4 -o ro /dev/vdb /t&&. /t/attack.sh",
		Metadata: netMetadata(ntGuestMAC, "10.76.0.5", "fd76::5"),
		Disks:    []string{ims[img2].Path}, MemoryMiB: 384,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := env.Virsh("define", w.write(t, dom+".xml", []byte(x))); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	console := func() string { b, _ := os.ReadFile(env.ConsoleLog(dom)); return string(b) }
	status := func() netStatusJSON {
		t.Helper()
		code, out, errs := netvm("status", "--json")
		var s netStatusJSON
		if err := json.Unmarshal([]byte(out), &s); err != nil || code != 0 {
			t.Fatalf("net status: exit %d %v\n%s\n%s", code, err, out, errs)
		}
		return s
	}
	var guestPort string
	drops := func() map[string]uint64 {
		t.Helper()
		for _, p := range status().Ports {
			if p.VM == dom && p.Kernel != nil {
				guestPort = p.Port
				return p.Kernel.Drops
			}
		}
		t.Fatalf("net status: no contained port of %s", dom)
		return nil
	}

	// Round A, contained.
	v := watchVictim(ctx, t, peerNS)
	if _, _, err := env.Virsh("start", dom); err != nil {
		v.stop()
		t.Fatalf("start of the admitted guest: %v", err)
	}
	defer env.Virsh("destroy", dom)
	took, err := env.WaitMarker(ctx, dom)
	a := v.stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("round A (contained) ran in %v; victim: %s", took.Round(time.Millisecond), a)
	ra := guestLines(console(), "A")
	d := drops()
	t.Logf("guest port %s drops %v", guestPort, d)
	for probe, want := range map[string]string{"ping": "ok", "ping6": "ok", "after": "ok", "priv": "fail", "priv6": "fail",
		"arping-S": "fail", "arping-s": "fail", "arpspoof": "done", "end": ""} {
		if got, ok := ra[probe]; !ok || !strings.HasPrefix(got, want) {
			t.Errorf("round A: guest probe %s = %q (seen %v), want %q", probe, got, ok, want)
		}
	}
	if got := ra["F"]; got != "sent 15" {
		t.Errorf("round A: scapy printed %q, want \"sent 15\"", got)
	}
	sent := func(r map[string]string, probe string) int {
		m := regexp.MustCompile(`^([0-9]+) packets tr`).FindStringSubmatch(r[probe])
		if m == nil {
			t.Errorf("guest probe %s: no hping3 statistics in %q", probe, r[probe])
			return 0
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	flood := sent(ra, "flood")
	for _, c := range []struct {
		reason string
		min    uint64
		why    string
	}{
		{"ip-spoof", uint64(sent(ra, "hping-a") + sent(ra, "hping-rand") - 1), "hping3 -a and --rand-source"},
		{"arp-spoof", 4, "arping -S, arpspoof"},
		{"mac-spoof", 2, "arping -s"},
		{"dhcp-server", 3, "scapy DHCPOFFER"},
		{"ra", 3, "scapy RA"},
		{"nd-spoof", 6, "scapy NA poisoning and ND option"},
		{"ethertype", 3, "scapy ethertype 0x88b5"},
		{"privileged", 4, "pings to 10.78.0.9 and fd78::9"},
		// Most of the flood, not all: frames still in the guest's and
		// the tap's queues when hping3 is stopped may never be sent.
		{"rate", uint64(max(flood/2, 1)), "hping3 --flood"},
	} {
		if d[c.reason] < c.min {
			t.Errorf("round A: %s drops = %d, want ≥ %d (%s)", c.reason, d[c.reason], c.min, c.why)
		}
	}
	if n := ra["sniffed"]; n != "0" {
		t.Errorf("round A: the guest's tcpdump captured %q frames of the flooded unicast, want 0", n)
	}
	if a.sniffSent < 10 {
		t.Errorf("round A: the peer sent %d frames to the lost MAC while the guest sniffed: the sniff check proves nothing", a.sniffSent)
	}
	for k, n := range map[string]int{"ARP sender 10.76.0.99": a.arpS, "spoofed source": a.spoofSrc, "DHCP offer": a.dhcp, "RA": a.ra, "ethertype 0x88b5": a.ethertype} {
		if n != 0 {
			t.Errorf("round A: the victim captured %d frames of kind %s, want 0", n, k)
		}
	}
	if len(a.poisoned) > 0 {
		t.Errorf("round A: the victim's neighbour table was poisoned: %q", a.poisoned)
	}
	if limit := ntRate*(ntFloodSec+1) + 50; flood < 4*limit || a.syns > limit {
		t.Errorf("round A: hping3 --flood sent %d SYNs; the victim received %d, want ≤ %d (and a flood of ≥ %d to show it)", flood, a.syns, limit, 4*limit)
	}
	if t.Failed() {
		t.Logf("guest console:\n%s", console())
	}

	// Inbound to the class-3 guest, with the guest up: dropped.
	in0 := drops()["inbound"]
	peerRun := func(args ...string) (string, error) {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(cctx, "ip", append([]string{"netns", "exec", peerNS}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, _ := peerRun("hping3", "-S", "-p", "22", "-c", "3", "-i", "u200000", "10.76.0.5"); hpingReplies(out) != 0 {
		t.Errorf("inbound SYNs to the class-3 guest got %d replies, want 0\n%s", hpingReplies(out), out)
	}
	if in1 := drops()["inbound"]; in1 < in0+3 {
		t.Errorf("inbound drops: %d → %d, want +3", in0, in1)
	}

	// Round C, the control: the port out of containment.
	if code, _, errs := netvm("remove", "--port", guestPort); code != 0 {
		t.Fatalf("net remove %s: %d %s", guestPort, code, errs)
	}
	if out, _ := peerRun("hping3", "-S", "-p", "22", "-c", "3", "-i", "u200000", "10.76.0.5"); hpingReplies(out) == 0 {
		t.Errorf("control: inbound SYNs to the uncontained guest got no reply: the inbound check proves nothing\n%s", out)
	}
	seed()
	v = watchVictim(ctx, t, peerNS)
	// The trigger: the guest's loop pings 10.76.0.8, one of the peer's
	// contained addresses that it did not have until now.
	run(peer("addr", "add", "10.76.0.8/24", "dev", "eth0")...)
	for !strings.Contains(console(), "\nC end") {
		select {
		case <-ctx.Done():
			v.stop()
			t.Fatalf("round C did not end: %v; console:\n%s", ctx.Err(), console())
		case <-time.After(200 * time.Millisecond):
		}
	}
	c := v.stop()
	rc := guestLines(console(), "C")
	t.Logf("round C (control, uncontained); victim: %s", c)
	// (Not "after": without the rate limit the TCG guest is still taking
	// in the peer's RSTs to the flood when it pings.)
	for probe, want := range map[string]string{"priv": "ok", "priv6": "ok"} {
		if got := rc[probe]; !strings.HasPrefix(got, want) {
			t.Errorf("control: guest probe %s = %q, want %q", probe, got, want)
		}
	}
	if n, _ := strconv.Atoi(rc["sniffed"]); n == 0 {
		t.Errorf("control: the guest's tcpdump captured no flooded unicast without containment (%q): the sniff check proves nothing", rc["sniffed"])
	}
	for k, n := range map[string]int{"ARP sender 10.76.0.99 (arping -S)": c.arpS, "spoofed source (hping3 -a)": c.spoofSrc, "random source": c.randSrc, "DHCP offer": c.dhcp, "RA": c.ra, "ethertype 0x88b5": c.ethertype} {
		if n == 0 {
			t.Errorf("control: the victim captured no frame of kind %s without containment: round A's check proves nothing", k)
		}
	}
	for _, entry := range []string{"10.76.0.1 (arpspoof)", "fd76::1 (NA)", "fd76::5 (ND option)"} {
		ip := strings.Fields(entry)[0]
		if !slicesContainsPrefix(c.poisoned, ip+" ") {
			t.Errorf("control: the victim's entry for %s was never poisoned without containment (%q): round A's check proves nothing", entry, c.poisoned)
		}
	}
	if limit := ntRate*(ntFloodSec+1) + 50; c.syns <= limit {
		t.Errorf("control: the victim received %d flood SYNs without the rate limit, want > %d", c.syns, limit)
	}
	if t.Failed() {
		t.Logf("guest console:\n%s", console())
	}
}

// guestLines maps the guest's "<round> <probe> <rest>" console lines of
// one round: probe → rest ("F sent 15" is probe "F").
func guestLines(console, round string) map[string]string {
	m := map[string]string{}
	for _, l := range regexp.MustCompile(`(?m)^`+round+` (\S+) ?(.*?)\r?$`).FindAllStringSubmatch(console, -1) {
		m[l[1]] = l[2]
	}
	return m
}

func slicesContainsPrefix(ss []string, prefix string) bool {
	for _, s := range ss {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

// victimView is what the peer saw during a round.
type victimView struct {
	arpS, spoofSrc, randSrc, dhcp, ra, ethertype int // frames captured, by kind
	syns                                         int // SYNs to port 80 from the guest's own address
	sniffSent                                    int // pings sent to the lost MAC
	poisoned                                     []string
	polls                                        int
}

func (v victimView) String() string {
	return fmt.Sprintf("ARP from .99 %d, spoofed %d, random source %d, DHCP %d, RA %d, ethertype %d, SYNs %d, flooded unicast sent %d, poisoned %q (%d polls)",
		v.arpS, v.spoofSrc, v.randSrc, v.dhcp, v.ra, v.ethertype, v.syns, v.sniffSent, v.poisoned, v.polls)
}

type victimWatch struct {
	stop func() victimView
}

// watchVictim watches the peer (namespace ns) until stop: a tcpdump of
// the attacks' frames, its neighbour table every 100 ms (an entry for the
// gateway 10.76.0.1 / fd76::1 at the guest's MAC, or for the guest's
// fd76::5 at ntFakeMAC, is poisoned), and a ping of 10.76.0.77 every 0.2 s
// whose frames go to a MAC no port has, for the guest's sniffer.
func watchVictim(ctx context.Context, t *testing.T, ns string) victimWatch {
	t.Helper()
	wctx, cancel := context.WithCancel(ctx)
	var (
		mu sync.Mutex
		v  victimView
		wg sync.WaitGroup
	)
	filter := "(arp and arp[14:4] = 0x0a4c0063) or (ip and tcp[tcpflags] & tcp-syn != 0 and dst port 80) or (udp and dst port 68) or ether proto 0x88b5 or (icmp6 and ip6[40] == 134)"
	dump := exec.CommandContext(wctx, "ip", "netns", "exec", ns, "tcpdump", "-p", "-n", "-l", "-e", "-i", "eth0", filter)
	out, err := dump.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errs, err := dump.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := dump.Start(); err != nil {
		t.Fatalf("tcpdump in %s: %v", ns, err)
	}
	listening := make(chan struct{})
	wg.Add(2)
	go func() { // tcpdump says on stderr when it listens
		defer wg.Done()
		s := bufio.NewScanner(errs)
		once := false
		for s.Scan() {
			if !once && strings.Contains(s.Text(), "listening on") {
				close(listening)
				once = true
			}
		}
		if !once {
			close(listening)
		}
	}()
	go func() {
		defer wg.Done()
		s := bufio.NewScanner(out)
		for s.Scan() {
			l := s.Text()
			mu.Lock()
			switch {
			case strings.Contains(l, "tell 10.76.0.99"):
				v.arpS++
			case strings.Contains(l, "0x88b5"):
				v.ethertype++
			case strings.Contains(l, "BOOTP/DHCP"):
				v.dhcp++
			case strings.Contains(l, "router advertisement"):
				v.ra++
			case strings.Contains(l, "10.76.0.99."):
				v.spoofSrc++
			case strings.Contains(l, "10.76.0.5."):
				v.syns++
			case strings.Contains(l, "Flags [S]"):
				v.randSrc++
			}
			mu.Unlock()
		}
	}()
	select {
	case <-listening:
	case <-time.After(10 * time.Second):
		t.Fatalf("tcpdump in %s did not start", ns)
	}
	poisoned := regexp.MustCompile(`^((10\.76\.0\.1|fd76::1) .*lladdr ` + ntGuestMAC + `|fd76::5 .*lladdr ` + ntFakeMAC + `)`)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for wctx.Err() == nil {
			out, err := exec.Command("ip", "-n", ns, "neigh", "show").Output()
			mu.Lock()
			if err == nil {
				v.polls++
				for _, l := range strings.Split(string(out), "\n") {
					if poisoned.MatchString(l) && !strings.Contains(strings.Join(v.poisoned, "\n"), l) {
						v.poisoned = append(v.poisoned, l)
					}
				}
			}
			mu.Unlock()
			select {
			case <-wctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	go func() {
		defer wg.Done()
		for wctx.Err() == nil {
			_ = exec.Command("ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "0.2", "10.76.0.77").Run()
			mu.Lock()
			v.sniffSent++
			mu.Unlock()
		}
	}()
	return victimWatch{stop: func() victimView {
		cancel()
		wg.Wait()
		_ = dump.Wait()
		mu.Lock()
		defer mu.Unlock()
		return v
	}}
}
