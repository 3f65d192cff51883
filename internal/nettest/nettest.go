// Package nettest builds throw-away hosts in network namespaces for the
// containment tests. It is test-only: it is imported from _test.go files and
// never by production code.
//
// Guarantees: every namespace it creates is named "vmtrust-hv-<random>" or
// "vmtrust-vm-<name>-<random>", and every interface it creates lives in one of
// them (the veth pair is created inside the hypervisor namespace with its VM
// end placed directly in the VM namespace), so no test traffic and no change
// ever reaches the root namespace. t.Cleanup kills, by PID, every process
// started through a Net or VM and then deletes its namespaces, also when the
// test fails. A missing tool or missing root is a t.Skip naming the Debian
// package, or a t.Fatal when the environment variable CI is set.
package nettest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// DefaultTimeout bounds a Run whose context has no deadline.
const DefaultTimeout = 30 * time.Second

// Bridge is the name of the hypervisor's bridge.
const Bridge = "br0"

// SystemPython is Debian's python, which has scapy (the pyenv python first
// on PATH does not).
const SystemPython = "/usr/bin/python3"

// Package returns the Debian package that provides tool ("scapy" for the
// Python module), or tool itself when it is not one the tests use.
func Package(tool string) string {
	switch tool {
	case "ip", "bridge":
		return "iproute2"
	case "arpspoof":
		return "dsniff"
	case "nft":
		return "nftables"
	case "busybox":
		return "busybox-static"
	case "scapy":
		return "python3-scapy"
	}
	return tool // hping3, arping, tcpdump, nmap, iperf3: same name
}

// missing stops the test: t.Fatal under CI, t.Skip otherwise.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI is set, so this test may not be skipped)", msg)
	}
	t.Skip(msg)
}

// Require stops the test unless every tool is available: each on PATH, and
// "scapy" importable by /usr/bin/python3.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if tool == "scapy" {
			if err := exec.Command(SystemPython, "-c", "import scapy").Run(); err != nil {
				missing(t, "scapy is required by this test: %s -c 'import scapy': %v (install the Debian package python3-scapy)", SystemPython, err)
			}
			continue
		}
		if _, err := exec.LookPath(tool); err != nil {
			missing(t, "%s is required by this test but not on PATH (install the Debian package %s)", tool, Package(tool))
		}
	}
}

// RequireRoot stops the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "this test needs root to create network namespaces (euid %d)", os.Geteuid())
	}
}

// suffix returns 8 random hex digits.
func suffix(t testing.TB) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("nettest: random suffix: %v", err)
	}
	return hex.EncodeToString(b)
}

// Net is a hypervisor: a namespace holding the bridge br0 and the host ends
// of the VMs' veth pairs.
type Net struct {
	// NS is the hypervisor's namespace name ("vmtrust-hv-<random>").
	NS string

	mu    sync.Mutex
	vms   map[string]*VM
	procs []*Proc
}

// VM is a guest: its own namespace with eth0 connected to br0.
type VM struct {
	Name     string           // as given to AddVM
	NS       string           // "vmtrust-vm-<name>-<random>"
	HostPort string           // the veth end on br0, in the hypervisor namespace
	MAC      net.HardwareAddr // eth0's MAC
	Addrs    []string         // eth0's addresses, CIDR notation

	net *Net
}

// Proc is a background process started in a namespace.
type Proc struct {
	Cmd *exec.Cmd

	stdout, stderr *syncBuffer
	done           chan struct{}
	waitErr        error
}

// Hypervisor creates a namespace with br0 up and br_netfilter's
// bridge-nf-call-iptables/ip6tables set to 1 inside it. Everything it and
// its VMs create is removed at cleanup.
func Hypervisor(t testing.TB) *Net {
	t.Helper()
	RequireRoot(t)
	Require(t, "ip", "bridge")
	n := &Net{NS: "vmtrust-hv-" + suffix(t), vms: map[string]*VM{}}
	addNS(t, n.NS)
	t.Cleanup(n.cleanup)
	ctx := context.Background()
	mustRun(t, "ip", "-n", n.NS, "link", "set", "lo", "up")
	for _, k := range []string{"net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad"} {
		mustRun(t, "ip", "netns", "exec", n.NS, "sysctl", "-qw", k+"=0")
	}
	mustRun(t, "ip", "-n", n.NS, "link", "add", Bridge, "type", "bridge")
	mustRun(t, "ip", "-n", n.NS, "link", "set", Bridge, "up")
	for _, k := range []string{"net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables"} {
		if _, stderr, err := n.Run(ctx, "sysctl", "-qw", k+"=1"); err != nil {
			missing(t, "br_netfilter is required (module br_netfilter): sysctl %s=1 in %s: %v: %s", k, n.NS, err, stderr)
		}
	}
	return n
}

// addNS creates a namespace and schedules its deletion.
func addNS(t testing.TB, name string) {
	t.Helper()
	if _, stderr, err := run(context.Background(), "ip", "netns", "add", name); err != nil {
		t.Fatalf("nettest: ip netns add %s: %v: %s", name, err, stderr)
	}
}

func (n *Net) cleanup() {
	n.mu.Lock()
	procs := n.procs
	n.procs = nil
	var names []string
	for _, vm := range n.vms {
		names = append(names, vm.NS)
	}
	n.mu.Unlock()
	for _, p := range procs {
		p.kill()
	}
	// Deleting the VM namespaces destroys their veth ends and so the pairs.
	for _, name := range append(names, n.NS) {
		run(context.Background(), "ip", "netns", "del", name)
	}
}

// NSPath is the hypervisor namespace's bind mount, for code that opens the
// namespace itself (netns.GetFromPath, netlink.NewHandleAt).
func (n *Net) NSPath() string { return "/run/netns/" + n.NS }

// NSFile opens the hypervisor namespace (for nftables.WithNetNSFd or
// netns.NsHandle); it is closed at cleanup.
func (n *Net) NSFile(t testing.TB) *os.File {
	t.Helper()
	f, err := os.Open(n.NSPath())
	if err != nil {
		t.Fatalf("nettest: open namespace %s: %v", n.NS, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// Run runs args in the hypervisor namespace.
func (n *Net) Run(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	return run(ctx, append([]string{"ip", "netns", "exec", n.NS}, args...)...)
}

// Start runs args in the background in the hypervisor namespace; the
// process is killed by PID at cleanup.
func (n *Net) Start(t testing.TB, args ...string) *Proc {
	t.Helper()
	return n.start(t, n.NS, args)
}

// AddVM creates a namespace "vmtrust-vm-<name>-<random>" whose eth0 has mac
// and addrs (IPv4/IPv6 CIDRs), joined by a veth pair to br0 through the host
// port "v<name>". Both ends are up, with IPv6 DAD off. name is 1 to 14
// letters or digits, unique in n.
func (n *Net) AddVM(t testing.TB, name, mac string, addrs ...string) *VM {
	t.Helper()
	if err := checkVMName(name); err != nil {
		t.Fatalf("nettest: %v", err)
	}
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		t.Fatalf("nettest: vm %s: bad MAC %q", name, mac)
	}
	for _, a := range addrs {
		if _, _, err := net.ParseCIDR(a); err != nil {
			t.Fatalf("nettest: vm %s: address %q: %v", name, a, err)
		}
	}
	vm := &VM{Name: name, NS: "vmtrust-vm-" + name + "-" + suffix(t), HostPort: "v" + name, MAC: hw, Addrs: addrs, net: n}
	n.mu.Lock()
	if _, dup := n.vms[name]; dup {
		n.mu.Unlock()
		t.Fatalf("nettest: vm %s added twice", name)
	}
	n.mu.Unlock()
	addNS(t, vm.NS)
	n.mu.Lock()
	n.vms[name] = vm
	n.mu.Unlock()

	for _, k := range []string{"net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad"} {
		mustRun(t, "ip", "netns", "exec", vm.NS, "sysctl", "-qw", k+"=0")
	}
	mustRun(t, "ip", "-n", vm.NS, "link", "set", "lo", "up")
	mustRun(t, "ip", "-n", n.NS, "link", "add", vm.HostPort, "type", "veth",
		"peer", "name", "eth0", "address", hw.String(), "netns", vm.NS)
	mustRun(t, "ip", "netns", "exec", n.NS, "sysctl", "-qw", "net.ipv6.conf."+vm.HostPort+".accept_dad=0")
	mustRun(t, "ip", "netns", "exec", vm.NS, "sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0")
	mustRun(t, "ip", "-n", n.NS, "link", "set", vm.HostPort, "master", Bridge)
	mustRun(t, "ip", "-n", n.NS, "link", "set", vm.HostPort, "up")
	for _, a := range addrs {
		args := []string{"ip", "-n", vm.NS, "addr", "add", a, "dev", "eth0"}
		if strings.Contains(a, ":") {
			args = append(args, "nodad")
		}
		mustRun(t, args...)
	}
	mustRun(t, "ip", "-n", vm.NS, "link", "set", "eth0", "up")
	return vm
}

func checkVMName(name string) error {
	if name == "" || len(name) > 14 {
		return fmt.Errorf("vm name %q: want 1 to 14 characters", name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return fmt.Errorf("vm name %q: want letters and digits only", name)
		}
	}
	return nil
}

// Run runs args in the VM's namespace.
func (vm *VM) Run(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	return run(ctx, append([]string{"ip", "netns", "exec", vm.NS}, args...)...)
}

// Start runs args in the background in the VM's namespace; the process is
// killed by PID at cleanup.
func (vm *VM) Start(t testing.TB, args ...string) *Proc {
	t.Helper()
	return vm.net.start(t, vm.NS, args)
}

// IP returns the VM's i-th address without its prefix length.
func (vm *VM) IP(i int) string {
	ip, _, _ := net.ParseCIDR(vm.Addrs[i])
	return ip.String()
}

// Ping reports whether one echo request to dst (IPv4 or IPv6) is answered
// within a second (busybox ping: Debian's iputils-ping is not installed).
func (vm *VM) Ping(ctx context.Context, dst string) bool {
	_, _, err := vm.Run(ctx, "busybox", "ping", "-c", "1", "-W", "1", dst)
	return err == nil
}

// Neighbour returns the MAC in the VM's neighbour table for ip on eth0,
// or "" when there is none (or it is incomplete/failed).
func (vm *VM) Neighbour(ctx context.Context, ip string) string {
	out, _, err := vm.Run(ctx, "ip", "neigh", "show", "to", ip, "dev", "eth0")
	if err != nil {
		return ""
	}
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "lladdr" {
			return f[i+1]
		}
	}
	return ""
}

// Scapy runs a Python snippet with Debian's /usr/bin/python3 (which has
// scapy) inside the VM's namespace, returning its standard output.
func Scapy(ctx context.Context, vm *VM, script string) (string, error) {
	out, stderr, err := vm.Run(ctx, SystemPython, "-c", script)
	if err != nil {
		return out, fmt.Errorf("scapy in %s: %w: %s", vm.NS, err, strings.TrimSpace(stderr))
	}
	return out, nil
}

func (n *Net) start(t testing.TB, ns string, args []string) *Proc {
	t.Helper()
	if len(args) == 0 {
		t.Fatalf("nettest: start in %s: no command", ns)
	}
	// ip netns exec execs the command, so the PID is the tool's own.
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	p := &Proc{Cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("nettest: start %v in %s: %v", args, ns, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	n.mu.Lock()
	n.procs = append(n.procs, p)
	n.mu.Unlock()
	t.Cleanup(p.kill) // also at the end of a subtest; kill is idempotent
	return p
}

// PID is the process's id.
func (p *Proc) PID() int { return p.Cmd.Process.Pid }

// Stdout returns what the process has written to standard output so far.
func (p *Proc) Stdout() string { return p.stdout.String() }

// Stderr returns what the process has written to standard error so far.
func (p *Proc) Stderr() string { return p.stderr.String() }

// WaitStderr waits until the process's standard error contains s (tcpdump's
// "listening on"), it exits, or ctx ends.
func (p *Proc) WaitStderr(ctx context.Context, s string) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if strings.Contains(p.stderr.String(), s) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("process %d: waiting for %q: %w (stderr: %s)", p.PID(), s, ctx.Err(), p.Stderr())
		case <-p.done:
			if strings.Contains(p.stderr.String(), s) {
				return nil
			}
			return fmt.Errorf("process %d: exited before %q: %v (stderr: %s)", p.PID(), s, p.waitErr, p.Stderr())
		case <-tick.C:
		}
	}
}

// Stop sends SIGTERM (so tcpdump prints its counts), waits up to five
// seconds, then kills; it returns the exit error, if any, other than the
// termination itself.
func (p *Proc) Stop() error {
	select {
	case <-p.done:
		return p.waitErr
	default:
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.kill()
	}
	var ee *exec.ExitError
	if errors.As(p.waitErr, &ee) && !ee.Exited() {
		return nil // ended by our signal
	}
	return p.waitErr
}

// kill sends SIGKILL to the process by PID and reaps it.
func (p *Proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.Cmd.Process.Kill()
	<-p.done
}

// run runs a command with a timeout (DefaultTimeout unless ctx has a
// deadline).
func run(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	var o, e bytes.Buffer
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s: %w", strings.Join(args, " "), err)
	}
	return o.String(), e.String(), err
}

func mustRun(t testing.TB, args ...string) {
	t.Helper()
	if _, stderr, err := run(context.Background(), args...); err != nil {
		t.Fatalf("nettest: %v: %s", err, strings.TrimSpace(stderr))
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
