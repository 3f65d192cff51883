package contain

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func mustMAC(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestValidate(t *testing.T) {
	good := Port{Name: "vnet3", VM: "vm1", MAC: mustMAC(t, "52:54:00:12:34:56"),
		IPv4: []netip.Addr{netip.MustParseAddr("10.0.0.2")}, IPv6: []netip.Addr{netip.MustParseAddr("2001:db8::2")},
		Class: 3, Inbound: InboundDeny, RatePPS: 1000, Privileged: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")}}
	if err := good.Validate(); err != nil {
		t.Fatalf("Validate(good) = %v, want nil", err)
	}
	tests := []struct {
		name string
		mod  func(p *Port)
	}{
		{"empty name", func(p *Port) { p.Name = "" }},
		{"long name", func(p *Port) { p.Name = "0123456789abcdef" }},
		{"slash in name", func(p *Port) { p.Name = "a/b" }},
		{"space in name", func(p *Port) { p.Name = "a b" }},
		{"dot name", func(p *Port) { p.Name = ".." }},
		{"non-ascii name", func(p *Port) { p.Name = "vnét" }},
		{"short mac", func(p *Port) { p.MAC = p.MAC[:5] }},
		{"multicast mac", func(p *Port) { p.MAC = mustMAC(t, "01:00:5e:00:00:01") }},
		{"broadcast mac", func(p *Port) { p.MAC = mustMAC(t, "ff:ff:ff:ff:ff:ff") }},
		{"zero mac", func(p *Port) { p.MAC = mustMAC(t, "00:00:00:00:00:00") }},
		{"eui64 mac", func(p *Port) { p.MAC = mustMAC(t, "00:11:22:33:44:55:66:77") }},
		{"class 0", func(p *Port) { p.Class = 0 }},
		{"class 4", func(p *Port) { p.Class = 4 }},
		{"inbound unknown", func(p *Port) { p.Inbound = "maybe" }},
		{"negative rate", func(p *Port) { p.RatePPS = -1 }},
		{"ipv6 in ipv4", func(p *Port) { p.IPv4 = []netip.Addr{netip.MustParseAddr("2001:db8::1")} }},
		{"ipv4 in ipv6", func(p *Port) { p.IPv6 = []netip.Addr{netip.MustParseAddr("10.0.0.1")} }},
		{"ipv4-mapped in ipv6", func(p *Port) { p.IPv6 = []netip.Addr{netip.MustParseAddr("::ffff:10.0.0.1")} }},
		{"zero ipv4", func(p *Port) { p.IPv4 = []netip.Addr{{}} }},
		{"unspecified ipv4", func(p *Port) { p.IPv4 = []netip.Addr{netip.MustParseAddr("0.0.0.0")} }},
		{"broadcast ipv4", func(p *Port) { p.IPv4 = []netip.Addr{netip.MustParseAddr("255.255.255.255")} }},
		{"multicast ipv6", func(p *Port) { p.IPv6 = []netip.Addr{netip.MustParseAddr("ff02::1")} }},
		{"zoned ipv6", func(p *Port) { p.IPv6 = []netip.Addr{netip.MustParseAddr("fe80::1%eth0")} }},
		{"privileged on class 2", func(p *Port) { p.Class = 2 }},
		{"privileged host bits", func(p *Port) { p.Privileged = []netip.Prefix{netip.MustParsePrefix("192.168.1.1/16")} }},
		{"privileged invalid", func(p *Port) { p.Privileged = []netip.Prefix{{}} }},
		{"long vm name", func(p *Port) { p.VM = string(make([]byte, MaxVMNameLen+1)) }},
		{"quote in vm name", func(p *Port) { p.VM = `a"b` }},
		{"too many addresses", func(p *Port) { p.IPv4 = make([]netip.Addr, MaxAddresses+1) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := good
			p.IPv4 = append([]netip.Addr(nil), good.IPv4...)
			tt.mod(&p)
			if err := p.Validate(); !errors.Is(err, ErrInvalidPort) {
				t.Errorf("Validate() = %v, want ErrInvalidPort", err)
			}
		})
	}
}

func TestLinkLocal(t *testing.T) {
	got := LinkLocal(mustMAC(t, "52:54:00:12:34:56"))
	if want := netip.MustParseAddr("fe80::5054:ff:fe12:3456"); got != want {
		t.Errorf("LinkLocal = %v, want %v", got, want)
	}
}

func TestMetaFitsUserData(t *testing.T) {
	p := Port{Name: "0123456789abcde", VM: string(make([]byte, MaxVMNameLen)), MAC: mustMAC(t, "52:54:00:12:34:56"),
		Class: 3, Inbound: InboundAllowEstablished, RatePPS: 1 << 40}
	p.VM = "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"
	pr := build(p, maxIndex)
	if n := len(pr.in[0].UserData); n > 255 {
		t.Errorf("meta comment is %d bytes, want ≤ 255", n)
	}
}

func TestPrivElems(t *testing.T) {
	pfx := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	tests := []struct {
		name string
		in   []netip.Prefix
		v4   bool
		want string // key, "-" before an interval end
	}{
		{"none", nil, true, ""},
		{"other family only", pfx("fd00::/8"), true, ""},
		{"one host", pfx("10.0.0.1/32"), true, "-0.0.0.0 10.0.0.1 -10.0.0.2"},
		{"nested merged", pfx("10.99.4.0/24", "10.99.0.0/16"), true, "-0.0.0.0 10.99.0.0 -10.100.0.0"},
		{"adjacent merged", pfx("10.0.0.0/25", "10.0.0.128/25"), true, "-0.0.0.0 10.0.0.0 -10.0.1.0"},
		{"disjoint sorted", pfx("192.168.0.0/16", "10.0.0.0/8"), true, "-0.0.0.0 10.0.0.0 -11.0.0.0 192.168.0.0 -192.169.0.0"},
		{"everything", pfx("0.0.0.0/0"), true, "0.0.0.0"},
		{"last address", pfx("255.255.255.255/32"), true, "-0.0.0.0 255.255.255.255"},
		{"ipv6", pfx("10.0.0.0/8", "fd77::200/128"), false, "-:: fd77::200 -fd77::201"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, e := range privElems(tt.in, tt.v4) {
				a, _ := netip.AddrFromSlice(e.Key)
				s := a.String()
				if e.IntervalEnd {
					s = "-" + s
				}
				got = append(got, s)
			}
			if g := strings.Join(got, " "); g != tt.want {
				t.Errorf("privElems(%v, %v) = %q, want %q", tt.in, tt.v4, g, tt.want)
			}
		})
	}
}

// The privileged prefixes live in interval sets: the rules do not grow with them.
func TestPrivilegedRuleCountFlat(t *testing.T) {
	p := Port{Name: "vnet0", MAC: mustMAC(t, "52:54:00:12:34:56"), Class: 3, Inbound: InboundDeny,
		Privileged: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("fd00::/64")}}
	few := len(build(p, 1).in)
	for i := range 200 {
		p.Privileged = append(p.Privileged, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 1, byte(i), 0}), 24))
	}
	if many := len(build(p, 1).in); many != few {
		t.Errorf("rules with 202 privileged prefixes = %d, want %d (as with 2)", many, few)
	}
}
