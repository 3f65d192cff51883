// Package contain programs the hypervisor's network containment for VM bridge
// ports: one nftables table "bridge vmtrust" and, for stateful inbound deny,
// one table "inet vmtrust", written through netlink, owned by vmtrust alone.
//
// Guarantees, per port the Manager has applied:
//   - a frame from the VM is dropped unless its source MAC is the VM's, its
//     ethertype is IPv4, ARP or IPv6, its ARP sender MAC and IP are the VM's
//     (0.0.0.0 probes allowed), its IPv4 source is one of the VM's addresses
//     (DHCP discover/request from 0.0.0.0 allowed) and its IPv6 source is one
//     of the VM's addresses or the EUI-64 link-local address of its MAC (from
//     "::" only DAD neighbour solicitations, MLD reports and router
//     solicitations); router advertisements, redirects, DHCP and DHCPv6
//     server replies are dropped, and a neighbour advertisement (or a DAD
//     solicitation) must name one of the VM's addresses and, in its first
//     option, the VM's MAC;
//   - above Port.RatePPS, frames from the VM are dropped;
//   - a class 3 VM cannot send to its privileged prefixes (Port.Privileged):
//     they live in two interval sets per port, so the rule count does not
//     grow with the number of prefixes;
//   - Inbound "deny" and "allow-established" mean the same here, as the
//     site policy defines no difference: no new connection (conntrack state
//     new: a TCP SYN, a first UDP datagram, an ICMP echo request) reaches the
//     VM through the bridge; replies to the VM's own connections do.
//     Neighbour discovery and ARP pass. "allow" adds no inbound rule. The
//     port's out chain marks frames for the VM with 0x76740000 | index (the
//     index is kept in the port's settings comment); the inet table's
//     forward chain, reached through br_netfilter, accepts established and
//     related packets and sends the mark through a verdict map to the port's
//     chain, which counts, logs and drops new ones. Apply fails (the port
//     stays quarantined) when bridge-nf-call-iptables or -ip6tables is not 1
//     in the Manager's namespace. Traffic from the hypervisor's own stack is
//     not filtered, and any earlier packet mark on such frames is replaced;
//   - frames to the VM whose unicast destination MAC is not the VM's are
//     dropped (no sniffing of flooded unicast);
//   - a quarantined port is dropped in both directions; quarantine is one set
//     element and takes effect with the next packet;
//   - every drop rule has its own counter and carries "vmtrust REASON PORT" as
//     its comment, so each port has a counter per reason; it jumps to the
//     table-wide chain "log_REASON", which logs to nflog group NFLogGroup
//     with the prefix "vmtrust REASON " and drops. The log is rate limited
//     per reason for all ports together (10 packets/s, burst 20): a flood
//     from one port can crowd other ports' lines of the same reason out of
//     the log, never out of their counters. The port is not in the prefix;
//     the IDS takes it from the packet's interface attributes;
//   - Apply is fail-closed: the port is quarantined in its own batch before
//     its rules change and released only by the batch that installs them
//     (bridge and inet side together), so a failed Apply leaves the port
//     blocked; an Apply that changes nothing writes nothing. Reconcile and
//     ApplyAll keep this order for many ports in O(1) batches: one batch
//     quarantines every port they change, then batches of at most 100 ports
//     install and release them. Remove and Reconcile clean and repair both
//     tables. Apply, Remove, Quarantine and PortStatus read only the
//     skeleton, the quarantine set, the verdict maps and the port's own
//     objects. The quarantine, install and remove batches ask the kernel for
//     errors only, not for an acknowledgement per message; a request sent
//     after each batch on the same socket tells that the kernel has no error
//     left to report, so a batch is reported committed only when it was;
//   - the skeleton (base chains, log chains, sets and maps) is checked on
//     every read; a table made by an earlier layout (a log chain per port)
//     fails that check and is rebuilt by Reconcile.
//
// Per-packet cost does not grow with the number of ports: the base chains
// look the port up in verdict maps (by interface in the bridge table, by mark
// in the inet table) and run only that port's rules. The addresses of a port
// live in named sets, so a lease change is a set element change.
package contain

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// TableName is the name of the bridge-family table vmtrust owns.
const TableName = "vmtrust"

// NFLogGroup is the nflog group that receives rate-limited drop logs.
const NFLogGroup = 7

// MaxVMNameLen bounds Port.VM: it is stored in the kernel with the rules.
const MaxVMNameLen = 64

// MaxAddresses bounds the addresses and privileged prefixes of one port.
const MaxAddresses = 256

// Reason names why a packet was dropped. The strings are stable.
type Reason string

// Drop reasons.
const (
	ReasonQuarantine  Reason = "quarantine"
	ReasonRate        Reason = "rate"
	ReasonMACSpoof    Reason = "mac-spoof"
	ReasonARPSpoof    Reason = "arp-spoof"
	ReasonIPSpoof     Reason = "ip-spoof"
	ReasonIP6Spoof    Reason = "ip6-spoof"
	ReasonDHCPServer  Reason = "dhcp-server"
	ReasonDHCP6Server Reason = "dhcp6-server"
	ReasonRA          Reason = "ra"
	ReasonNDSpoof     Reason = "nd-spoof"
	ReasonEthertype   Reason = "ethertype"
	ReasonSniff       Reason = "sniff"
	ReasonPrivileged  Reason = "privileged"
	ReasonInbound     Reason = "inbound"
)

// Inbound policies (policy.Profile.Inbound).
const (
	InboundDeny             = "deny"
	InboundAllowEstablished = "allow-established"
	InboundAllow            = "allow"
)

// Port is one VM's bridge port and what the VM may do on it.
type Port struct {
	Name       string           // host-side interface on the bridge, 1..15 bytes
	VM         string           // domain name, for status
	MAC        net.HardwareAddr // the VM's unicast MAC
	IPv4       []netip.Addr     // source addresses the VM may use
	IPv6       []netip.Addr     // global IPv6 addresses; the EUI-64 link-local is always allowed
	Class      int              // trust class 1, 2 or 3
	Inbound    string           // InboundDeny, InboundAllowEstablished or InboundAllow
	RatePPS    int              // 0: no limit; from-VM packets above it are dropped
	Privileged []netip.Prefix   // class 3 only: destinations the VM may never reach
}

// ErrInvalidPort classifies every validation error of a Port.
var ErrInvalidPort = errors.New("invalid port")

func invalid(name, format string, args ...any) error {
	return fmt.Errorf("port %q: %s: %w", name, fmt.Sprintf(format, args...), ErrInvalidPort)
}

// ValidName reports an error unless name can be a Linux interface name.
func validName(name string) error {
	switch {
	case name == "":
		return invalid(name, "empty interface name")
	case len(name) > 15:
		return invalid(name, "interface name longer than 15 bytes")
	case name == "." || name == "..":
		return invalid(name, "interface name is %q", name)
	case strings.ContainsAny(name, "/: \t\n\x00"):
		return invalid(name, "interface name contains '/', ':', a space or NUL")
	}
	for _, r := range name {
		if r < 0x21 || r > 0x7e {
			return invalid(name, "interface name has a non-printable or non-ASCII byte")
		}
	}
	return nil
}

// Validate reports the first defect of p, wrapping ErrInvalidPort.
func (p Port) Validate() error {
	if err := validName(p.Name); err != nil {
		return err
	}
	if len(p.VM) > MaxVMNameLen {
		return invalid(p.Name, "vm name longer than %d bytes", MaxVMNameLen)
	}
	if strings.ContainsAny(p.VM, "\x00\n\"\\") {
		return invalid(p.Name, "vm name contains NUL, newline, quote or backslash")
	}
	if len(p.MAC) != 6 {
		return invalid(p.Name, "mac %q is not 6 bytes", p.MAC.String())
	}
	if p.MAC[0]&1 != 0 {
		return invalid(p.Name, "mac %s is multicast", p.MAC)
	}
	if [6]byte(p.MAC) == ([6]byte{}) {
		return invalid(p.Name, "mac is all zeros")
	}
	if p.Class < 1 || p.Class > 3 {
		return invalid(p.Name, "class %d is not 1, 2 or 3", p.Class)
	}
	switch p.Inbound {
	case InboundDeny, InboundAllowEstablished, InboundAllow:
	default:
		return invalid(p.Name, "inbound %q is not deny, allow-established or allow", p.Inbound)
	}
	if p.RatePPS < 0 {
		return invalid(p.Name, "rate %d is negative", p.RatePPS)
	}
	if len(p.IPv4) > MaxAddresses || len(p.IPv6) > MaxAddresses || len(p.Privileged) > MaxAddresses {
		return invalid(p.Name, "more than %d addresses or prefixes", MaxAddresses)
	}
	for _, a := range p.IPv4 {
		if !a.Is4() {
			return invalid(p.Name, "ipv4 address %s is not IPv4", a)
		}
		if a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			return invalid(p.Name, "ipv4 address %s is unspecified, multicast or broadcast", a)
		}
	}
	for _, a := range p.IPv6 {
		if !a.Is6() || a.Is4In6() {
			return invalid(p.Name, "ipv6 address %s is not IPv6", a)
		}
		if a.Zone() != "" {
			return invalid(p.Name, "ipv6 address %s has a zone", a)
		}
		if a.IsUnspecified() || a.IsMulticast() {
			return invalid(p.Name, "ipv6 address %s is unspecified or multicast", a)
		}
	}
	if len(p.Privileged) > 0 && p.Class != 3 {
		return invalid(p.Name, "privileged prefixes are for class 3 only")
	}
	for _, pr := range p.Privileged {
		if !pr.IsValid() || pr.Addr().Is4In6() || pr.Addr().Zone() != "" {
			return invalid(p.Name, "privileged prefix %s is not valid", pr)
		}
		if pr.Masked() != pr {
			return invalid(p.Name, "privileged prefix %s has host bits set", pr)
		}
	}
	return nil
}

// LinkLocal returns the EUI-64 link-local IPv6 address of mac.
func LinkLocal(mac net.HardwareAddr) netip.Addr {
	var b [16]byte
	b[0], b[1] = 0xfe, 0x80
	if len(mac) == 6 {
		b[8], b[9], b[10] = mac[0]^2, mac[1], mac[2]
		b[11], b[12] = 0xff, 0xfe
		b[13], b[14], b[15] = mac[3], mac[4], mac[5]
	}
	return netip.AddrFrom16(b)
}
