package domain

import (
	"fmt"
	"net/netip"
	"strings"
)

// Severities of a Finding.
const (
	Deny = "deny"
	Warn = "warn"
)

// Rule names of findings.
const (
	RuleDomainType    = "domain-type"
	RuleUnknownValue  = "unknown-value"
	RuleHostdev       = "hostdev"
	RuleHostdevIface  = "hostdev-interface"
	RuleFilesystem    = "host-filesystem"
	RuleDirDisk       = "host-dir-disk"
	RuleListen        = "listen-non-loopback"
	RuleNoPassword    = "graphics-no-password"
	RuleChardevListen = "chardev-non-loopback"
	RuleQEMUPassthru  = "qemu-passthrough"
	RuleNoSVirt       = "seclabel-none"
	RuleNoRelabel     = "seclabel-no-relabel"
	RuleShareable     = "shareable-disk"
	RuleDirectIface   = "direct-interface"
	RuleBlockDisk     = "host-block-device"
	RuleNetworkDisk   = "network-disk"
	RuleHostChardev   = "host-chardev"
)

// Finding is one risky configuration found by Check.
type Finding struct {
	Rule     string
	Severity string // Deny or Warn
	Path     string // XPath-like locator, e.g. devices/hostdev[0]
	Reason   string
}

// Options relaxes Check for sites that opt in explicitly.
type Options struct {
	// AllowQEMUPassthrough turns the qemu-passthrough denial into a warning.
	AllowQEMUPassthrough bool
	// AllowNetworkDisks turns the class 3 network-disk denial into a warning.
	AllowNetworkDisks bool
}

// Check returns the findings for d in trust class 1, 2 or 3 with default
// Options. A class outside 1..3 is checked as class 3.
func Check(d *Domain, class int) []Finding {
	return CheckWith(d, class, Options{})
}

// CheckWith is Check with explicit Options.
func CheckWith(d *Domain, class int, opt Options) []Finding {
	if class < 1 || class > 3 {
		class = 3
	}
	c := checker{class: class}
	switch d.Type {
	case "qemu", "kvm":
	default:
		c.add(RuleDomainType, Deny, "@type", fmt.Sprintf("domain type %q is not qemu or kvm", d.Type))
	}
	for _, s := range d.Seclabels {
		switch s.Type {
		case "none":
			c.add(RuleNoSVirt, c.sev(Deny, Deny, Warn), s.Path, "seclabel type none disables sVirt confinement")
		case "dynamic", "static", "":
		default:
			c.unknown(s.Path, "seclabel type", s.Type)
		}
		if s.Relabel == "no" {
			c.add(RuleNoRelabel, c.sev(Deny, Deny, Warn), s.Path, "relabel='no' leaves host labels on the domain's resources")
		}
	}
	if d.HasQEMUCommandline || d.HasQEMUCapabilities {
		sev := Deny
		if opt.AllowQEMUPassthrough {
			sev = Warn
		}
		if d.HasQEMUCommandline {
			c.add(RuleQEMUPassthru, sev, "qemu:commandline", "raw QEMU arguments bypass libvirt's checks")
		}
		if d.HasQEMUCapabilities {
			c.add(RuleQEMUPassthru, sev, "qemu:capabilities", "QEMU capability overrides bypass libvirt's checks")
		}
	}
	for _, k := range d.Disks {
		c.disk(k, opt)
	}
	for _, h := range d.Hostdevs {
		c.hostdev(RuleHostdev, h.Path, h.Mode, h.Type, h.Managed)
	}
	for _, i := range d.Interfaces {
		c.iface(i)
	}
	for _, f := range d.Filesystems {
		switch f.Type {
		case "ram":
		case "mount", "file", "block", "bind", "template", "volume":
			src := firstNonEmpty(f.SourceDir, f.SourceFile, f.SourceDev, f.SourceName)
			c.add(RuleFilesystem, c.sev(Deny, Deny, Warn), f.Path, fmt.Sprintf("filesystem shares host path %q", src))
		default:
			c.unknown(f.Path, "filesystem type", f.Type)
		}
	}
	for _, g := range d.Graphics {
		c.graphics(g)
	}
	for _, ch := range d.Chardevs {
		c.chardev(ch)
	}
	return c.out
}

type checker struct {
	class int
	out   []Finding
}

// sev picks the severity for the checker's class; "" means no finding.
func (c *checker) sev(class3, class2, class1 string) string {
	switch c.class {
	case 3:
		return class3
	case 2:
		return class2
	}
	return class1
}

func (c *checker) add(rule, sev, path, reason string) {
	if sev == "" {
		return
	}
	c.out = append(c.out, Finding{Rule: rule, Severity: sev, Path: path, Reason: reason})
}

func (c *checker) unknown(path, what, v string) {
	c.add(RuleUnknownValue, c.sev(Deny, Deny, Warn), path, fmt.Sprintf("%s %q is not known to vmtrust", what, v))
}

func (c *checker) disk(k Disk, opt Options) {
	switch k.Device {
	case "disk", "cdrom", "floppy":
	case "lun":
		c.add(RuleBlockDisk, c.sev(Deny, Deny, Warn), k.Path, "device='lun' passes SCSI commands to a host device")
	default:
		c.unknown(k.Path, "disk device", k.Device)
	}
	if k.Shareable && !k.ReadOnly {
		c.add(RuleShareable, c.sev(Deny, Warn, Warn), k.Path, "writable <shareable/> disk can be shared with another domain")
	}
	c.diskSource(k.Path, k.Type, k.Source, opt)
	for _, b := range k.Backing {
		c.diskSource(b.Path, b.Type, b.Source, opt)
	}
}

func (c *checker) diskSource(path, typ string, s Source, opt Options) {
	switch typ {
	case "file", "volume":
	case "block":
		c.add(RuleBlockDisk, c.sev(Deny, Deny, Warn), path, fmt.Sprintf("disk is host block device %q", s.Dev))
	case "dir":
		c.add(RuleDirDisk, c.sev(Deny, Deny, Warn), path, fmt.Sprintf("disk exposes host directory %q", s.Dir))
	case "network":
		sev := c.sev(Deny, Warn, Warn)
		if opt.AllowNetworkDisks && sev == Deny {
			sev = Warn
		}
		c.add(RuleNetworkDisk, sev, path, fmt.Sprintf("network disk %s %q is not an admitted local image", s.Protocol, s.Name))
	default:
		c.unknown(path, "disk type", typ)
	}
}

// hostdev applies the passthrough rule: deny class 3, warn class 2, and in
// class 1 allow only managed PCI subsystem devices (bound to vfio by libvirt,
// IOMMU-isolated), warning on everything else.
func (c *checker) hostdev(rule, path, mode, typ, managed string) {
	reason := fmt.Sprintf("%s %s device passthrough (device DMA, host driver trust)", mode, typ)
	if c.class == 1 && mode == "subsystem" && typ == "pci" && managed == "yes" {
		return
	}
	c.add(rule, c.sev(Deny, Warn, Warn), path, reason)
}

func (c *checker) iface(i Interface) {
	switch i.Type {
	case "network", "bridge", "ethernet", "user", "vhostuser":
	case "hostdev":
		c.hostdev(RuleHostdevIface, i.Path, "subsystem", "pci", i.Managed)
	case "direct":
		switch i.SourceMode {
		case "passthrough", "private":
			c.add(RuleDirectIface, c.sev(Deny, Warn, Warn), i.Path, fmt.Sprintf("macvtap %s mode on host device %q bypasses host filtering", i.SourceMode, i.SourceDev))
		case "", "vepa", "bridge":
			c.add(RuleDirectIface, c.sev(Warn, "", ""), i.Path, fmt.Sprintf("macvtap on host device %q bypasses the containment bridge", i.SourceDev))
		default:
			c.unknown(i.Path, "direct interface mode", i.SourceMode)
		}
	default:
		c.unknown(i.Path, "interface type", i.Type)
	}
}

// exposure says where a listener is reachable: "" loopback or local only,
// otherwise a description of the non-loopback exposure.
func exposure(host string) string {
	h := strings.Trim(host, "[]")
	if h == "localhost" {
		return ""
	}
	a, err := netip.ParseAddr(h)
	if err != nil {
		return fmt.Sprintf("host name %q", host)
	}
	if a.Unmap().IsLoopback() {
		return ""
	}
	return fmt.Sprintf("address %s", a)
}

func (c *checker) graphics(g Graphics) {
	switch g.Type {
	case "vnc", "spice", "rdp":
	case "sdl", "desktop", "egl-headless", "dbus":
		return // local display, no network listener
	default:
		c.unknown(g.Path, "graphics type", g.Type)
		return
	}
	// tcp is set when the device has a TCP listener; exposed lists the
	// non-loopback ones. An absent address is libvirt's default listen
	// (qemu.conf vnc_listen/spice_listen, 127.0.0.1 unless changed).
	var exposed []string
	tcp := len(g.Listens) == 0
	if g.Listen != "" {
		tcp = true
		if e := exposure(g.Listen); e != "" {
			exposed = append(exposed, e)
		}
	}
	for _, l := range g.Listens {
		switch l.Type {
		case "address", "":
			tcp = true
			if l.Address != "" {
				if e := exposure(l.Address); e != "" {
					exposed = append(exposed, e)
				}
			}
		case "network":
			tcp = true
			exposed = append(exposed, fmt.Sprintf("libvirt network %q", l.Network))
		case "socket", "none":
		default:
			c.unknown(g.Path, "graphics listen type", l.Type)
		}
	}
	for _, e := range exposed {
		c.add(RuleListen, c.sev(Deny, Deny, Warn), g.Path, fmt.Sprintf("%s console listens on %s", g.Type, e))
	}
	if tcp && !g.HasPasswd && len(exposed) == 0 && g.Type != "rdp" {
		c.add(RuleNoPassword, Warn, g.Path, fmt.Sprintf("%s console on loopback has no password", g.Type))
	}
	if tcp && !g.HasPasswd && len(exposed) != 0 {
		c.add(RuleNoPassword, c.sev(Deny, Deny, Warn), g.Path, fmt.Sprintf("%s console reachable off-host has no password", g.Type))
	}
}

func (c *checker) chardev(ch Chardev) {
	switch ch.Type {
	case "tcp", "udp", "telnet":
	case "pty", "file", "unix", "null", "vc", "stdio", "spicevmc", "spiceport", "qemu-vdagent", "dbus", "pipe", "nmdm":
		return
	case "dev":
		c.add(RuleHostChardev, c.sev(Deny, Warn, Warn), ch.Path, fmt.Sprintf("%s is host device %q", ch.Kind, firstPath(ch.Sources)))
		return
	default:
		c.unknown(ch.Path, ch.Kind+" type", ch.Type)
		return
	}
	proto := ch.Type
	if ch.Protocol != "" {
		proto = ch.Type + "/" + ch.Protocol
	}
	for _, s := range ch.Sources {
		// A udp chardev binds its local end; a tcp chardev listens only in
		// bind mode. An empty bind host means all addresses.
		if s.Mode != "bind" && !(ch.Type == "udp" && s.Mode == "") {
			continue
		}
		e := "all addresses"
		if s.Host != "" {
			e = exposure(s.Host)
		}
		if e != "" {
			c.add(RuleChardevListen, c.sev(Deny, Deny, Warn), ch.Path, fmt.Sprintf("%s %s listens on %s", ch.Kind, proto, e))
		}
	}
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func firstPath(ss []ChardevSource) string {
	for _, s := range ss {
		if s.Path != "" {
			return s.Path
		}
	}
	return ""
}
