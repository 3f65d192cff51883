package contain

import (
	"errors"
	"net"
	"net/netip"
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
	pr := build(p)
	if n := len(pr.in[0].UserData); n > 255 {
		t.Errorf("meta comment is %d bytes, want ≤ 255", n)
	}
}
