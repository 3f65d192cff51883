package contain

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Names of the table-wide objects.
const (
	setQuarantine = "quarantine"
	mapFromVM     = "from_vm"
	mapToVM       = "to_vm"
	chainPre      = "prerouting"
	chainFwd      = "forward"
	commentPrefix = "vmtrust "
	metaReason    = "meta"
	applyingMark  = "applying"
	operatorMark  = "operator"
	logRatePerSec = 10
	logBurst      = 20
	mapInbound    = "inbound"
	markBase      = 0x76740000 // "vt" in the high 16 bits; the port index in the low 16
	maxIndex      = 0xffff
)

func chainIn(port string) string  { return "in_" + port }
func chainOut(port string) string { return "out_" + port }
func setIP4(port string) string   { return "ip4_" + port }
func setIP6(port string) string   { return "ip6_" + port }
func setPriv4(port string) string { return "priv4_" + port }
func setPriv6(port string) string { return "priv6_" + port }
func chainInb(port string) string { return "inb_" + port }

// markOf is the packet mark that sends frames to port index idx through
// the inet table's per-port inbound chain.
func markOf(idx int) uint32 { return markBase | uint32(idx) }

func markBytes(idx int) []byte { return binaryutil.NativeEndian.PutUint32(markOf(idx)) }

// chainLog is the table-wide chain that logs (rate limited) and drops
// packets for reason r; every port's drop rules for r jump to it.
func chainLog(r Reason) string { return "log_" + string(r) }

// portMeta is stored, as JSON, in the comment of each port's first rule.
type portMeta struct {
	VM      string `json:"vm"`
	MAC     string `json:"mac"`
	Class   int    `json:"class"`
	Inbound string `json:"inbound"`
	Rate    int    `json:"rate"`
	Index   int    `json:"idx,omitempty"` // mark index when inbound is restricted, else 0
	Hash    string `json:"h"`             // digest of everything the rules depend on
}

func metaOf(p Port) portMeta {
	priv := make([]string, len(p.Privileged))
	for i, pr := range p.Privileged {
		priv[i] = pr.String()
	}
	slices.Sort(priv)
	h := sha256.Sum256([]byte(strings.Join([]string{
		"v3", p.Name, p.VM, p.MAC.String(), strconv.Itoa(p.Class), p.Inbound,
		strconv.Itoa(p.RatePPS), strings.Join(priv, ","),
	}, "\x00")))
	return portMeta{VM: p.VM, MAC: p.MAC.String(), Class: p.Class, Inbound: p.Inbound, Rate: p.RatePPS, Hash: hex.EncodeToString(h[:8])}
}

func comment(s string) []byte {
	return userdata.AppendString(nil, userdata.TypeComment, s)
}

func ruleComment(r *nftables.Rule) string {
	s, _ := userdata.GetString(r.UserData, userdata.TypeComment)
	return s
}

func ifname(name string) []byte {
	b := make([]byte, 16)
	copy(b, name)
	return b
}

func ifnameString(b []byte) string {
	if i := slices.Index(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// Expression helpers; everything loads into register 1.
func load(base expr.PayloadBase, off, n uint32) expr.Any {
	return &expr.Payload{DestRegister: 1, Base: base, Offset: off, Len: n}
}
func eq(data ...byte) expr.Any  { return &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data} }
func neq(data ...byte) expr.Any { return &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: data} }
func etherType(t uint16) []expr.Any {
	return []expr.Any{load(expr.PayloadBaseLLHeader, 12, 2), eq(byte(t>>8), byte(t))}
}
func l4proto(p byte) []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, eq(p)}
}
func th(off, n uint32, data ...byte) []expr.Any {
	return []expr.Any{load(expr.PayloadBaseTransportHeader, off, n), eq(data...)}
}
func notIn(set string) expr.Any {
	return &expr.Lookup{SourceRegister: 1, SetName: set, Invert: true}
}
func inSet(set string) expr.Any {
	return &expr.Lookup{SourceRegister: 1, SetName: set}
}
func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

const (
	ethIPv4 = 0x0800
	ethARP  = 0x0806
	ethIPv6 = 0x86dd
)

// portRules is what one port needs in the kernel.
type portRules struct {
	in, out []*nftables.Rule
}

// inboundRestricted reports whether p needs the inet side (no new inbound connections).
func inboundRestricted(p Port) bool { return p.Inbound != InboundAllow }

// build returns the rules of p; idx is its mark index (0 when inbound is
// allowed). The chains must be set by the caller.
func build(p Port, idx int) portRules {
	var pr portRules
	mac := []byte(p.MAC)
	pm := metaOf(p)
	pm.Index = idx
	meta, _ := json.Marshal(pm)
	pr.in = append(pr.in, &nftables.Rule{
		Exprs:    []expr.Any{&expr.Counter{}},
		UserData: comment(commentPrefix + metaReason + " " + p.Name + " " + string(meta)),
	})
	drop := func(list *[]*nftables.Rule, r Reason, match ...expr.Any) {
		ex := append(slices.Clone(match), &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictJump, Chain: chainLog(r)})
		*list = append(*list, &nftables.Rule{Exprs: ex, UserData: comment(commentPrefix + string(r) + " " + p.Name)})
	}
	accept := func(list *[]*nftables.Rule, match ...expr.Any) {
		ex := append(slices.Clone(match), &expr.Verdict{Kind: expr.VerdictAccept})
		*list = append(*list, &nftables.Rule{Exprs: ex})
	}
	in := &pr.in

	if p.RatePPS > 0 {
		burst := uint32(max(p.RatePPS/10, 5))
		drop(in, ReasonRate, &expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(p.RatePPS), Unit: expr.LimitTimeSecond, Over: true, Burst: burst})
	}
	drop(in, ReasonMACSpoof, load(expr.PayloadBaseLLHeader, 6, 6), neq(mac...))
	// Only ARP, IPv4 and IPv6; what passes every rule below falls off the
	// chain's end and is accepted.
	drop(in, ReasonEthertype, load(expr.PayloadBaseLLHeader, 12, 2),
		neq(ethARP>>8, ethARP&0xff), neq(ethIPv4>>8, ethIPv4&0xff), neq(ethIPv6>>8, ethIPv6&0xff))

	// ARP: Ethernet/IPv4 only, sender MAC and IP the VM's (0.0.0.0 probes allowed).
	drop(in, ReasonARPSpoof, cat(etherType(ethARP), []expr.Any{load(expr.PayloadBaseNetworkHeader, 0, 6), neq(0, 1, 8, 0, 6, 4)})...)
	drop(in, ReasonARPSpoof, cat(etherType(ethARP), []expr.Any{load(expr.PayloadBaseNetworkHeader, 8, 6), neq(mac...)})...)
	drop(in, ReasonARPSpoof, cat(etherType(ethARP), []expr.Any{load(expr.PayloadBaseNetworkHeader, 14, 4), neq(0, 0, 0, 0), notIn(setIP4(p.Name))})...)

	// IPv4.
	drop(in, ReasonDHCPServer, cat(etherType(ethIPv4), l4proto(unix.IPPROTO_UDP), th(0, 4, 0, 67, 0, 68))...)
	accept(in, cat(etherType(ethIPv4), []expr.Any{load(expr.PayloadBaseNetworkHeader, 12, 4), eq(0, 0, 0, 0)}, l4proto(unix.IPPROTO_UDP), th(0, 4, 0, 68, 0, 67))...)
	drop(in, ReasonIPSpoof, cat(etherType(ethIPv4), []expr.Any{load(expr.PayloadBaseNetworkHeader, 12, 4), notIn(setIP4(p.Name))})...)
	if len(privElems(p.Privileged, true)) > 0 {
		drop(in, ReasonPrivileged, cat(etherType(ethIPv4), []expr.Any{load(expr.PayloadBaseNetworkHeader, 16, 4), inSet(setPriv4(p.Name))})...)
	}

	// IPv6.
	icmp6 := func(typ byte) []expr.Any { return cat(etherType(ethIPv6), l4proto(unix.IPPROTO_ICMPV6), th(0, 1, typ)) }
	unspec := []expr.Any{load(expr.PayloadBaseNetworkHeader, 8, 16), eq(make([]byte, 16)...)}
	drop(in, ReasonRA, icmp6(134)...)
	drop(in, ReasonRA, icmp6(137)...)
	drop(in, ReasonDHCP6Server, cat(etherType(ethIPv6), l4proto(unix.IPPROTO_UDP), th(0, 2, 547>>8, 547&0xff))...)
	// NA target must be the VM's; so must a DAD solicitation's.
	drop(in, ReasonNDSpoof, cat(icmp6(136), []expr.Any{load(expr.PayloadBaseTransportHeader, 8, 16), notIn(setIP6(p.Name))})...)
	drop(in, ReasonNDSpoof, cat(icmp6(135), unspec, []expr.Any{load(expr.PayloadBaseTransportHeader, 8, 16), notIn(setIP6(p.Name))})...)
	// First option: source (NS, type 1) or target (NA, type 2) link-layer address must be the VM's MAC.
	drop(in, ReasonNDSpoof, cat(icmp6(135), th(24, 2, 1, 1), []expr.Any{load(expr.PayloadBaseTransportHeader, 26, 6), neq(mac...)})...)
	drop(in, ReasonNDSpoof, cat(icmp6(136), th(24, 2, 2, 1), []expr.Any{load(expr.PayloadBaseTransportHeader, 26, 6), neq(mac...)})...)
	// From "::" only MLDv1/v2 reports, RS and DAD NS.
	for _, typ := range []byte{131, 133, 135, 143} {
		accept(in, cat(etherType(ethIPv6), unspec, l4proto(unix.IPPROTO_ICMPV6), th(0, 1, typ))...)
	}
	// Any other source, "::" included, must be in the VM's set (which never holds "::").
	drop(in, ReasonIP6Spoof, cat(etherType(ethIPv6), []expr.Any{load(expr.PayloadBaseNetworkHeader, 8, 16), notIn(setIP6(p.Name))})...)
	if len(privElems(p.Privileged, false)) > 0 {
		drop(in, ReasonPrivileged, cat(etherType(ethIPv6), []expr.Any{load(expr.PayloadBaseNetworkHeader, 24, 16), inSet(setPriv6(p.Name))})...)
	}

	// To the VM: unicast must be addressed to the VM's MAC.
	pr.out = append(pr.out, &nftables.Rule{
		Exprs:    []expr.Any{&expr.Counter{}},
		UserData: comment(commentPrefix + metaReason + " " + p.Name),
	})
	if idx > 0 {
		// br_netfilter hands the frame to the inet hooks after this chain
		// (bridge forward, priority -300 < -1): the mark tells the inet
		// forward chain which port the frame is for.
		pr.out = append(pr.out, &nftables.Rule{Exprs: []expr.Any{
			&expr.Immediate{Register: 1, Data: markBytes(idx)},
			&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
		}})
	}
	drop(&pr.out, ReasonSniff,
		load(expr.PayloadBaseLLHeader, 0, 6),
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 6, Mask: []byte{1, 0, 0, 0, 0, 0}, Xor: make([]byte, 6)},
		eq(0, 0, 0, 0, 0, 0),
		load(expr.PayloadBaseLLHeader, 0, 6), neq(mac...))
	return pr
}

// privElems returns the interval-set elements of the prefixes of one family,
// merged into disjoint ranges, in the form nft writes them (a leading
// interval end at the zero address, no end after the last address).
func privElems(pfxs []netip.Prefix, v4 bool) []nftables.SetElement {
	type rng struct{ lo, hi netip.Addr }
	var rs []rng
	for _, p := range pfxs {
		if p.Addr().Is4() != v4 {
			continue
		}
		lo := p.Masked().Addr()
		b := lo.AsSlice()
		for i := p.Bits(); i < len(b)*8; i++ {
			b[i/8] |= 0x80 >> (i % 8)
		}
		hi, _ := netip.AddrFromSlice(b)
		rs = append(rs, rng{lo, hi})
	}
	slices.SortFunc(rs, func(a, b rng) int { return a.lo.Compare(b.lo) })
	var merged []rng
	for _, r := range rs {
		if n := len(merged); n > 0 {
			last := &merged[n-1]
			if next := last.hi.Next(); !next.IsValid() || r.lo.Compare(next) <= 0 {
				if r.hi.Compare(last.hi) > 0 {
					last.hi = r.hi
				}
				continue
			}
		}
		merged = append(merged, r)
	}
	if len(merged) == 0 {
		return nil
	}
	var out []nftables.SetElement
	zero := netip.IPv6Unspecified()
	if v4 {
		zero = netip.IPv4Unspecified()
	}
	if merged[0].lo != zero {
		out = append(out, nftables.SetElement{Key: zero.AsSlice(), IntervalEnd: true})
	}
	for _, r := range merged {
		out = append(out, nftables.SetElement{Key: r.lo.AsSlice()})
		if next := r.hi.Next(); next.IsValid() {
			out = append(out, nftables.SetElement{Key: next.AsSlice(), IntervalEnd: true})
		}
	}
	return out
}

// buildInbound returns the rules of p's chain in the inet table: DHCP and
// DHCPv6 server replies are let in (conntrack cannot tie a reply to a
// broadcast request; rogue servers are stopped at their own ports, reason
// dhcp-server), then new connections to the VM are counted, then logged and
// dropped by the table-wide chain of ReasonInbound.
func buildInbound(p Port) []*nftables.Rule {
	zero := make([]byte, 4)
	dhcpReply := func(sport, dport uint16) *nftables.Rule {
		return &nftables.Rule{Exprs: cat(l4proto(17), th(0, 4, byte(sport>>8), byte(sport), byte(dport>>8), byte(dport)),
			[]expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}})}
	}
	return []*nftables.Rule{dhcpReply(67, 68), dhcpReply(547, 546), {
		Exprs: []expr.Any{
			&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitNEW), Xor: zero},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: zero},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictJump, Chain: chainLog(ReasonInbound)},
		},
		UserData: comment(commentPrefix + string(ReasonInbound) + " " + p.Name),
	}}
}
