// Package bridgeport hardens a VM's port on a Linux bridge against sniffing:
// the half of network containment that is bridge configuration, not
// nftables.
//
// Harden sets, through netlink in the namespace of a Handle: a static FDB
// entry "MAC dev PORT master static" (added first, so the VM stays
// reachable throughout), learning off, unicast flooding off and neighbour
// suppression on for the port, and removes the dynamic FDB entries the
// port had learned. Afterwards frames whose destination the bridge does not
// know are no longer copied to the port, frames for the VM reach only its
// port, and a MAC the VM claims cannot move entries in the FDB. Harden and
// Release are idempotent; Release removes the static entry and restores the
// kernel defaults (learning on, flood on, neigh_suppress off). Neither is
// atomic: on an error the port is left partly configured and the caller
// (which keeps the nftables drop rules in place) must retry or block it.
// Neighbour suppression (IFLA_BRPORT_NEIGH_SUPPRESS) needs Linux ≥ 4.15; a
// kernel without it fails Harden.
//
// Inputs are validated before any change: a port name is 1 to 15 bytes
// without '/', ':' or white space, and the MAC is a 6-byte unicast address
// other than zero.
package bridgeport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// MaxNameLen is the longest interface name Linux accepts (IFNAMSIZ - 1).
const MaxNameLen = 15

// Handle is a netlink connection to one network namespace.
type Handle struct {
	nl *netlink.Handle
}

// Open returns a Handle on the namespace bound at nsPath (for example
// /run/netns/NAME or /proc/PID/ns/net); "" means the caller's namespace.
func Open(nsPath string) (*Handle, error) {
	if nsPath == "" {
		h, err := netlink.NewHandle()
		if err != nil {
			return nil, fmt.Errorf("netlink handle: %w", err)
		}
		return &Handle{nl: h}, nil
	}
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, fmt.Errorf("namespace %s: %w", nsPath, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("namespace %s: netlink handle: %w", nsPath, err)
	}
	return &Handle{nl: h}, nil
}

// Close releases the netlink sockets.
func (h *Handle) Close() error {
	h.nl.Close()
	return nil
}

// PortState is a bridge port's anti-sniffing configuration as the kernel
// reports it.
type PortState struct {
	Port          string
	Bridge        string // the master bridge's name
	Learning      bool
	Flood         bool // unicast flooding to this port
	NeighSuppress bool
	// StaticMACs are the port's static FDB entries on the bridge ("master
	// static"), in the kernel's order.
	StaticMACs []net.HardwareAddr
}

// Hardened reports whether the port is configured as Harden leaves it for mac.
func (s PortState) Hardened(mac net.HardwareAddr) bool {
	if s.Learning || s.Flood || !s.NeighSuppress {
		return false
	}
	for _, m := range s.StaticMACs {
		if m.String() == mac.String() {
			return true
		}
	}
	return false
}

// CheckPort validates an interface name.
func CheckPort(port string) error {
	if port == "" || len(port) > MaxNameLen {
		return fmt.Errorf("port %q: want 1 to %d bytes", port, MaxNameLen)
	}
	if port == "." || port == ".." || strings.ContainsAny(port, "/: \t\n\r\x00") {
		return fmt.Errorf("port %q: not a valid interface name", port)
	}
	return nil
}

// CheckMAC validates a VM's MAC: 6 bytes, unicast, not zero.
func CheckMAC(mac net.HardwareAddr) error {
	if len(mac) != 6 {
		return fmt.Errorf("mac %q: want 6 bytes, got %d", mac, len(mac))
	}
	if mac[0]&1 != 0 {
		return fmt.Errorf("mac %s: multicast or broadcast, want unicast", mac)
	}
	if mac.String() == "00:00:00:00:00:00" {
		return fmt.Errorf("mac %s: zero address", mac)
	}
	return nil
}

// bridgePort validates port and mac and returns the port's link, which must
// be enslaved to a bridge.
func (h *Handle) bridgePort(port string, mac net.HardwareAddr) (netlink.Link, error) {
	if err := CheckPort(port); err != nil {
		return nil, err
	}
	if mac != nil {
		if err := CheckMAC(mac); err != nil {
			return nil, fmt.Errorf("port %s: %w", port, err)
		}
	}
	link, err := h.nl.LinkByName(port)
	if err != nil {
		return nil, fmt.Errorf("port %s: %w", port, err)
	}
	master := link.Attrs().MasterIndex
	if master == 0 {
		return nil, fmt.Errorf("port %s: not enslaved to a bridge", port)
	}
	br, err := h.nl.LinkByIndex(master)
	if err != nil {
		return nil, fmt.Errorf("port %s: master %d: %w", port, master, err)
	}
	if br.Type() != "bridge" {
		return nil, fmt.Errorf("port %s: master %s is a %s, not a bridge", port, br.Attrs().Name, br.Type())
	}
	return link, nil
}

func fdbEntry(link netlink.Link, mac net.HardwareAddr) *netlink.Neigh {
	return &netlink.Neigh{
		LinkIndex:    link.Attrs().Index,
		Family:       unix.AF_BRIDGE,
		State:        netlink.NUD_NOARP, // "static"
		Flags:        netlink.NTF_MASTER,
		HardwareAddr: mac,
	}
}

// Harden configures port for the VM with mac: static FDB entry, learning
// off, unicast flood off, neigh_suppress on, learned entries flushed.
func Harden(ctx context.Context, h *Handle, port string, mac net.HardwareAddr) error {
	link, err := h.bridgePort(port, mac)
	if err != nil {
		return err
	}
	// The static entry first: once learning is off the bridge would flood
	// frames for the VM, and with flood off they would not reach it.
	if err := h.nl.NeighSet(fdbEntry(link, mac)); err != nil {
		return fmt.Errorf("port %s: static fdb %s: %w", port, mac, err)
	}
	steps := []struct {
		what string
		set  func(netlink.Link, bool) error
		on   bool
	}{
		{"learning off", h.nl.LinkSetLearning, false},
		{"flood off", h.nl.LinkSetFlood, false},
		{"neigh_suppress on", h.nl.LinkSetBrNeighSuppress, true},
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("port %s: %w", port, err)
		}
		if err := s.set(link, s.on); err != nil {
			return fmt.Errorf("port %s: %s: %w", port, s.what, err)
		}
	}
	return h.flushLearned(ctx, link, mac)
}

// flushLearned deletes the dynamic (learned) bridge FDB entries on link
// other than keep: with learning off they would otherwise stay until they
// age out, and could point another VM's MAC at this port.
func (h *Handle) flushLearned(ctx context.Context, link netlink.Link, keep net.HardwareAddr) error {
	entries, err := h.fdb(link)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("port %s: %w", link.Attrs().Name, err)
		}
		if e.State&(netlink.NUD_NOARP|netlink.NUD_PERMANENT) != 0 || e.HardwareAddr.String() == keep.String() {
			continue
		}
		del := fdbEntry(link, e.HardwareAddr)
		del.State, del.Vlan = e.State, e.Vlan
		if err := h.nl.NeighDel(del); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("port %s: delete learned fdb %s: %w", link.Attrs().Name, e.HardwareAddr, err)
		}
	}
	return nil
}

// Release removes the static FDB entry for mac and restores the defaults:
// learning on, unicast flood on, neigh_suppress off.
func Release(ctx context.Context, h *Handle, port string, mac net.HardwareAddr) error {
	link, err := h.bridgePort(port, mac)
	if err != nil {
		return err
	}
	if err := h.nl.NeighDel(fdbEntry(link, mac)); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("port %s: delete static fdb %s: %w", port, mac, err)
	}
	steps := []struct {
		what string
		set  func(netlink.Link, bool) error
		on   bool
	}{
		{"neigh_suppress off", h.nl.LinkSetBrNeighSuppress, false},
		{"learning on", h.nl.LinkSetLearning, true},
		{"flood on", h.nl.LinkSetFlood, true},
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("port %s: %w", port, err)
		}
		if err := s.set(link, s.on); err != nil {
			return fmt.Errorf("port %s: %s: %w", port, s.what, err)
		}
	}
	return nil
}

// fdb lists the bridge ("master") FDB entries on link.
func (h *Handle) fdb(link netlink.Link) ([]netlink.Neigh, error) {
	all, err := h.nl.NeighList(link.Attrs().Index, unix.AF_BRIDGE)
	if err != nil {
		return nil, fmt.Errorf("port %s: fdb: %w", link.Attrs().Name, err)
	}
	var out []netlink.Neigh
	for _, n := range all {
		if n.MasterIndex == 0 || n.HardwareAddr == nil {
			continue // the device's own ("self") entries
		}
		out = append(out, n)
	}
	return out, nil
}

// State reads port's learning, flood and neigh_suppress flags and its
// static FDB entries.
func State(h *Handle, port string) (PortState, error) {
	link, err := h.bridgePort(port, nil)
	if err != nil {
		return PortState{}, err
	}
	pi, err := h.nl.LinkGetProtinfo(link)
	if err != nil {
		return PortState{}, fmt.Errorf("port %s: protinfo: %w", port, err)
	}
	br, err := h.nl.LinkByIndex(link.Attrs().MasterIndex)
	if err != nil {
		return PortState{}, fmt.Errorf("port %s: master: %w", port, err)
	}
	s := PortState{Port: port, Bridge: br.Attrs().Name, Learning: pi.Learning, Flood: pi.Flood, NeighSuppress: pi.NeighSuppress}
	entries, err := h.fdb(link)
	if err != nil {
		return PortState{}, err
	}
	for _, e := range entries {
		if e.State&netlink.NUD_NOARP != 0 {
			s.StaticMACs = append(s.StaticMACs, e.HardwareAddr)
		}
	}
	return s, nil
}
