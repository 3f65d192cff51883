package vmtest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Tests that boot real guests get a private libvirtd from
// scripts/libvirt-env.sh: the guest kit (a Debian kernel, a busybox
// initramfs printing GuestMarker on ttyS0, a tiny qcow2 root disk) is built
// once into $VMTRUST_FIXTURES/libvirt-<recipe>/, <recipe> being the first 16
// hex digits of the sha256 of the script, and every test starts its own
// virtlogd and libvirtd in a fresh network namespace with private
// /etc/libvirt (hooks included), /run/libvirt and /var/lib/libvirt.
const (
	libvirtScript = "scripts/libvirt-env.sh"
	// GuestMarker starts the line the kit's guest prints on its serial
	// console once it is up: "VMTRUST-GUEST-MARKER <name> up".
	GuestMarker = "VMTRUST-GUEST-MARKER"
	// maxScriptOutput bounds what is read of the script's stdout.
	maxScriptOutput = 64 << 10
	// Time limits of the script's steps and of one virsh call.
	buildTimeout = 10 * time.Minute
	startTimeout = 2 * time.Minute
	stopTimeout  = 2 * time.Minute
	virshTimeout = 2 * time.Minute
)

// libvirtTools are the commands the environment needs, with the Debian
// package providing each.
func libvirtTools() [][2]string {
	return [][2]string{
		{"libvirtd", "libvirt-daemon-system"},
		{"virtlogd", "libvirt-daemon-system"},
		{"virsh", "libvirt-clients"},
		{"qemu-system-x86_64", "qemu-system-x86"},
		{"qemu-img", "qemu-utils"},
		{"mkfs.ext4", "e2fsprogs"},
		{"cpio", "cpio"},
		{"ip", "iproute2"},
		{"/bin/busybox", "busybox-static"},
	}
}

// LibvirtEnv is one private libvirtd, stopped when its test ends.
type LibvirtEnv struct {
	URI    string // qemu+unix:///system?socket=<InstanceDir>/sock/libvirt-sock
	Netns  string // the network namespace libvirtd and its guests run in
	KitDir string // the guest kit: vmlinuz, initramfs.cpio.gz, root.qcow2, tools.ext4

	// InstanceDir holds the instance's private libvirt directories as the
	// host sees them: etc/ is its /etc/libvirt (etc/hooks/qemu the hook),
	// run/ its /run/libvirt, lib/ its /var/lib/libvirt.
	InstanceDir string
	// ConsoleDir holds the guests' serial console logs (ConsoleLog).
	ConsoleDir string
	// StartTime is how long starting virtlogd and libvirtd took, up to the
	// first answer on URI.
	StartTime time.Duration
}

// Libvirt starts a private libvirtd (building the guest kit first when it
// is not cached) and registers its stop with t.Cleanup. It needs root and
// the Debian packages of libvirtTools; without them the test is skipped
// with a message naming what to install, except under CI (CI set), where it
// fails.
func Libvirt(t testing.TB) *LibvirtEnv {
	t.Helper()
	return LibvirtWithHook(t, "")
}

// LibvirtWithHook is Libvirt with hook, when not empty, installed as the
// instance's qemu hook (/etc/libvirt/hooks/qemu inside its mount namespace)
// before libvirtd starts, so libvirtd runs it.
func LibvirtWithHook(t testing.TB, hook string) *LibvirtEnv {
	t.Helper()
	if msg := libvirtMissing(os.Geteuid(), lookTool); msg != "" {
		if os.Getenv("CI") != "" {
			t.Fatal(msg + " (CI is set, so this test must run)")
		}
		t.Skip(msg)
	}
	root := ModuleRoot(t)
	script := filepath.Join(root, libvirtScript)
	kit := libvirtKit(t, script)

	consoles := t.TempDir() // removed after the stop below (cleanups run LIFO)
	args := []string{"start", instanceName(t.Name())}
	if hook != "" {
		args = append(args, hook)
	}
	begin := time.Now()
	out, err := runScript(startTimeout, script, args...)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(begin)
	uri, netns, err := parseStartOutput(out)
	if err != nil {
		t.Fatalf("%s start: %v", libvirtScript, err)
	}
	t.Cleanup(func() {
		if _, err := runScript(stopTimeout, script, "stop", netns); err != nil {
			t.Errorf("stopping libvirtd in %s: %v", netns, err)
		}
	})
	sock := strings.TrimPrefix(uri, uriPrefix)
	env := &LibvirtEnv{
		URI:         uri,
		Netns:       netns,
		KitDir:      kit,
		InstanceDir: strings.TrimSuffix(sock, sockSuffix),
		ConsoleDir:  consoles,
		StartTime:   took,
	}
	t.Logf("libvirtd in %s up in %v", netns, took.Round(time.Millisecond))
	return env
}

// libvirtKit returns the guest kit directory, building it when absent.
func libvirtKit(t testing.TB, script string) string {
	t.Helper()
	data, err := os.ReadFile(script)
	if err != nil {
		t.Fatalf("libvirt kit: recipe: %v", err)
	}
	base := os.Getenv(fixturesEnv)
	if base == "" {
		base = defaultFixturesBase
	}
	want := filepath.Join(base, "libvirt-"+recipe(data))
	if _, err := os.Stat(want); err == nil {
		return want
	}
	out, err := runScript(buildTimeout, script, "build")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if got := lines[len(lines)-1]; got != want {
		t.Fatalf("%s build printed %q, want %q", libvirtScript, got, want)
	}
	return want
}

// runScript runs the script with a timeout and returns its stdout; the error
// carries the end of its stderr.
func runScript(timeout time.Duration, script string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &limitedBuffer{buf: &stdout, max: maxScriptOutput}
	cmd.Stderr = &limitedBuffer{buf: &stderr, max: maxScriptOutput}
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", libvirtScript, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// limitedBuffer keeps the first max bytes written and discards the rest.
type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// Virsh runs virsh against the instance (virsh -c URI ARGS...) with a
// two-minute timeout.
func (e *LibvirtEnv) Virsh(args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), virshTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "virsh", append([]string{"-c", e.URI}, args...)...)
	var o, s bytes.Buffer
	cmd.Stdout = &limitedBuffer{buf: &o, max: 16 << 20}
	cmd.Stderr = &limitedBuffer{buf: &s, max: maxScriptOutput}
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("virsh %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(s.String()))
	}
	return o.String(), s.String(), err
}

// ConsoleLog is the file DomainXML logs domain name's serial console to.
func (e *LibvirtEnv) ConsoleLog(name string) string {
	return filepath.Join(e.ConsoleDir, GuestName(name)+".console.log")
}

// DomainXML is a minimal TCG domain (type='qemu', no network interface)
// named name, booting the kit's kernel and initramfs with diskPath (a qcow2
// image) attached as vda with <transient/> (writes go to a throw-away
// overlay, never to the image) and the serial console logged to
// ConsoleLog(name).
// The guest prints MarkerLine(name) and powers off; the domain then stops.
func (e *LibvirtEnv) DomainXML(name, diskPath string) string {
	return e.domainXML(name, diskPath, domainOpts{})
}

// DomainXMLHold is DomainXML for a guest that stays up after printing its
// marker (for save, restore, suspend and snapshot tests), with its disk
// <readonly/> instead of <transient/> (libvirt cannot save a domain with a
// transient disk).
func (e *LibvirtEnv) DomainXMLHold(name, diskPath string) string {
	return e.domainXML(name, diskPath, domainOpts{hold: true, readonly: true})
}

// MaxCmdline is the longest kernel command line the guest takes (x86's
// COMMAND_LINE_SIZE is 2048 bytes with its terminating NUL).
const MaxCmdline = 2047

// DomainXMLNet is DomainXML for a guest with a virtio network interface
// with MAC address mac on bridge (libvirt names its tap vnetN), which stays
// up after its marker (its disk stays <transient/>). The guest loads its
// NIC drivers, brings eth0 up with IPv6 DAD off, adds ips (CIDR addresses,
// IPv4 or IPv6) to it and, when script is not empty, runs script with
// busybox sh, its output going to the serial console, before it prints its
// marker: MarkerLine(name) means the script has finished. The script
// travels base64-encoded on the kernel command line, so it must be small.
// metadata, when not empty, is put verbatim in the domain (a <metadata>
// element, such as vmtrust's network metadata). The error says what makes
// the command line invalid: a bad MAC, bridge or address, or a command line
// longer than MaxCmdline.
func (e *LibvirtEnv) DomainXMLNet(name, diskPath, mac, bridge string, ips []string, script, metadata string) (string, error) {
	return e.DomainXMLGuest(name, diskPath, NetGuest{MAC: mac, Bridge: bridge, IPs: ips, Script: script, Metadata: metadata})
}

// NetGuest is what DomainXMLGuest puts in a networked guest's domain.
type NetGuest struct {
	MAC, Bridge string   // its interface: a virtio NIC with MAC on Bridge
	IPs         []string // CIDR addresses the guest puts on eth0
	Script      string   // busybox sh run before the marker ("" for none)
	Metadata    string   // the domain's <metadata> element, verbatim
	// Disks are raw images attached <readonly/> after the first disk, as
	// vdb, vdc, … (such as a copy of ToolsImage made by ToolsDisk).
	Disks []string
	// MemoryMiB is the guest's memory (128 when 0); a guest running
	// python from the tools image wants 384.
	MemoryMiB int
}

// DomainXMLGuest is DomainXMLNet with g's extra disks and memory.
func (e *LibvirtEnv) DomainXMLGuest(name, diskPath string, g NetGuest) (string, error) {
	if _, err := net.ParseMAC(g.MAC); err != nil {
		return "", fmt.Errorf("domain %s: mac: %w", name, err)
	}
	if !bridgeRE.MatchString(g.Bridge) {
		return "", fmt.Errorf("domain %s: bridge %q is not an interface name", name, g.Bridge)
	}
	for _, a := range g.IPs {
		if _, err := netip.ParsePrefix(a); err != nil {
			return "", fmt.Errorf("domain %s: address: %w", name, err)
		}
	}
	if len(g.Disks) > 20 {
		return "", fmt.Errorf("domain %s: %d extra disks, at most 20", name, len(g.Disks))
	}
	if g.MemoryMiB < 0 || g.MemoryMiB > 4096 {
		return "", fmt.Errorf("domain %s: memory of %d MiB, want 0..4096", name, g.MemoryMiB)
	}
	o := domainOpts{hold: true, mac: g.MAC, bridge: g.Bridge, ips: g.IPs, script: g.Script, metadata: g.Metadata,
		disks: g.Disks, memory: g.MemoryMiB}
	if n := len(o.cmdline(name)); n > MaxCmdline {
		return "", fmt.Errorf("domain %s: kernel command line of %d bytes, more than %d: make the script smaller", name, n, MaxCmdline)
	}
	return e.domainXML(name, diskPath, o), nil
}

// ToolsImage is the guest kit's image of attack tools (hping3, arping,
// arpspoof, tcpdump, ip, python3 with scapy: see scripts/libvirt-env.sh), a
// raw ext4 filesystem a guest mounts read-only and chroots into.
func (e *LibvirtEnv) ToolsImage() string { return filepath.Join(e.KitDir, "tools.ext4") }

// ToolsDisk writes to dst a copy of ToolsImage with files added at the
// root of its filesystem (name → content, mode 0755), such as the script
// a guest runs from it, and returns dst.
func (e *LibvirtEnv) ToolsDisk(t testing.TB, dst string, files map[string][]byte) string {
	t.Helper()
	if out, err := exec.Command("cp", "--sparse=always", "--", e.ToolsImage(), dst).CombinedOutput(); err != nil {
		t.Fatalf("copy of the tools image: %v\n%s", err, out)
	}
	debugfs, err := lookTool("debugfs")
	if err != nil {
		t.Fatalf("ToolsDisk needs debugfs (e2fsprogs): %v", err)
	}
	dir := t.TempDir()
	for name, content := range files {
		if !fileNameRE.MatchString(name) {
			t.Fatalf("ToolsDisk: file name %q: want [A-Za-z0-9._-]+", name)
		}
		src := filepath.Join(dir, name)
		if err := os.WriteFile(src, content, 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(debugfs, "-w", "-R", "write "+src+" "+name, dst).CombinedOutput()
		if err != nil || strings.Contains(string(out), "rror") || strings.Contains(string(out), "xists") {
			t.Fatalf("debugfs write %s into %s: %v\n%s", name, dst, err, out)
		}
	}
	return dst
}

var fileNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

var bridgeRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)

// domainOpts are what sets the domains of domainXML apart.
type domainOpts struct {
	hold     bool // the guest stays up after its marker
	readonly bool // the disk is <readonly/>, not <transient/>
	// An interface: mac on bridge (when bridge is not empty), addresses,
	// a script and the domain's <metadata>.
	mac, bridge string
	ips         []string
	script      string
	metadata    string
	disks       []string // raw, read-only, after the first
	memory      int      // MiB; 0 is 128
}

// cmdline is the kernel command line of domain name's guest.
func (o domainOpts) cmdline(name string) string {
	c := "console=ttyS0 panic=-1 quiet vmtrust.name=" + GuestName(name)
	if o.hold {
		c += " vmtrust.hold=1"
	}
	if o.bridge != "" {
		c += " vmtrust.net=1"
		if len(o.ips) > 0 {
			c += " vmtrust.ip=" + strings.Join(o.ips, ",")
		}
	}
	if o.script != "" {
		c += " vmtrust.run=" + base64.StdEncoding.EncodeToString([]byte(o.script))
	}
	return c
}

func (e *LibvirtEnv) domainXML(name, diskPath string, o domainOpts) string {
	cmdline := o.cmdline(name)
	// libvirt 9 refuses to save or migrate a domain with a transient
	// disk, so a guest to be saved gets its disk read-only instead.
	protect := "<transient/>"
	if o.readonly {
		protect = "<readonly/>"
	}
	x := func(s string) string {
		var b strings.Builder
		_ = xml.EscapeText(&b, []byte(s)) // writes to a strings.Builder do not fail
		return strings.ReplaceAll(b.String(), "'", "&#39;")
	}
	var iface string
	if o.bridge != "" {
		iface = `
    <interface type='bridge'>
      <mac address='` + x(o.mac) + `'/>
      <source bridge='` + x(o.bridge) + `'/>
      <model type='virtio'/>
    </interface>`
	}
	var extra string
	for i, d := range o.disks {
		extra += `
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='` + x(d) + `'/>
      <target dev='vd` + string(rune('b'+i)) + `' bus='virtio'/>
      <readonly/>
    </disk>`
	}
	memory := 128
	if o.memory > 0 {
		memory = o.memory
	}
	var md string
	if o.metadata != "" {
		md = "\n  " + o.metadata
	}
	return `<domain type='qemu'>
  <name>` + x(name) + `</name>` + md + `
  <memory unit='MiB'>` + strconv.Itoa(memory) + `</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>` + x(filepath.Join(e.KitDir, "vmlinuz")) + `</kernel>
    <initrd>` + x(filepath.Join(e.KitDir, "initramfs.cpio.gz")) + `</initrd>
    <cmdline>` + x(cmdline) + `</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='` + x(diskPath) + `'/>
      <target dev='vda' bus='virtio'/>
      ` + protect + `
    </disk>` + extra + `
    <serial type='file'>
      <source path='` + x(e.ConsoleLog(name)) + `'/>
      <target port='0'/>
    </serial>` + iface + `
    <memballoon model='none'/>
  </devices>
</domain>
`
}

// GuestName is name as the guest sees it (its hostname, in its marker):
// characters other than ASCII letters, digits, '.', '_' and '-' become '_',
// and at most 63 are kept.
func GuestName(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	if len(b) > 63 {
		b = b[:63]
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}

// MarkerLine is the line the guest of domain name prints once it is up.
func MarkerLine(name string) string {
	return GuestMarker + " " + GuestName(name) + " up"
}

// WaitMarker polls ConsoleLog(name) until it holds MarkerLine(name) and
// returns how long that took, or an error at ctx's end.
func (e *LibvirtEnv) WaitMarker(ctx context.Context, name string) (time.Duration, error) {
	begin := time.Now()
	want := []byte(MarkerLine(name))
	for {
		data, err := os.ReadFile(e.ConsoleLog(name))
		if err == nil && bytes.Contains(data, want) {
			return time.Since(begin), nil
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, fmt.Errorf("console of %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			tail := data[max(0, len(data)-2048):]
			return 0, fmt.Errorf("console of %s: no %q: %w; console ends with %q", name, want, ctx.Err(), tail)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// instanceName makes a test name into a NAME for the script.
func instanceName(test string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(test) {
		switch {
		case 'a' <= c && c <= 'z' || '0' <= c && c <= '9':
			b.WriteRune(c)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
		if b.Len() == 16 {
			break
		}
	}
	s := strings.TrimRight(b.String(), "-")
	if s == "" {
		return "test"
	}
	return s
}

// lookTool finds a command on PATH or in /usr/sbin and /sbin; an absolute
// name is checked as is.
func lookTool(name string) (string, error) {
	if filepath.IsAbs(name) {
		if _, err := os.Stat(name); err != nil {
			return "", err
		}
		return name, nil
	}
	if p, err := lookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found", name)
}

// libvirtMissing says what the environment lacks, or "" when nothing.
func libvirtMissing(euid int, look func(string) (string, error)) string {
	var missing []string
	for _, tool := range libvirtTools() {
		if _, err := look(tool[0]); err != nil {
			missing = append(missing, tool[0]+" (Debian package "+tool[1]+")")
		}
	}
	switch {
	case len(missing) > 0:
		return "libvirt test environment: missing " + strings.Join(missing, ", ") + ": run scripts/setup.sh as root"
	case euid != 0:
		return "libvirt test environment: needs root (private libvirtd, network namespaces)"
	}
	return ""
}

const (
	uriPrefix  = "qemu+unix:///system?socket="
	sockSuffix = "/sock/libvirt-sock"
)

var (
	netnsRE = regexp.MustCompile(`^vmtrust-[a-z0-9][a-z0-9-]{0,23}-[0-9a-f]{8}$`)
	sockRE  = regexp.MustCompile(`^/[A-Za-z0-9._/-]+$`)
)

// parseStartOutput parses what `libvirt-env.sh start` prints on stdout:
// exactly the two lines VMTRUST_LIBVIRT_URI=<uri> and
// VMTRUST_LIBVIRT_NETNS=<netns>, each ending in a newline, the socket being
// a clean absolute path <dir>/<netns>/sock/libvirt-sock.
func parseStartOutput(out []byte) (uri, netns string, err error) {
	if len(out) > maxScriptOutput {
		return "", "", fmt.Errorf("start output: longer than %d bytes", maxScriptOutput)
	}
	s := string(out)
	if !strings.HasSuffix(s, "\n") {
		return "", "", errors.New("start output: does not end in a newline")
	}
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if len(lines) != 2 {
		return "", "", fmt.Errorf("start output: %d lines, want 2", len(lines))
	}
	u, ok1 := strings.CutPrefix(lines[0], "VMTRUST_LIBVIRT_URI=")
	n, ok2 := strings.CutPrefix(lines[1], "VMTRUST_LIBVIRT_NETNS=")
	if !ok1 || !ok2 {
		return "", "", errors.New("start output: want VMTRUST_LIBVIRT_URI= then VMTRUST_LIBVIRT_NETNS=")
	}
	if !netnsRE.MatchString(n) {
		return "", "", fmt.Errorf("start output: netns %q is not vmtrust-NAME-<8 hex>", n)
	}
	sock, ok := strings.CutPrefix(u, uriPrefix)
	if !ok || !sockRE.MatchString(sock) || filepath.Clean(sock) != sock {
		return "", "", fmt.Errorf("start output: uri %q is not %s<clean absolute path>", u, uriPrefix)
	}
	if !strings.HasSuffix(sock, "/"+n+sockSuffix) {
		return "", "", fmt.Errorf("start output: socket %q is not in the directory of netns %s", sock, n)
	}
	return u, n, nil
}
