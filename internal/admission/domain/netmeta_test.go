package domain

import (
	"strings"
	"testing"
)

const netMeta = `<metadata><vmtrust:net xmlns:vmtrust="https://vmtrust.dev/xmlns/net/1">
  <vmtrust:interface mac="52:54:00:12:34:56"><vmtrust:ip address="10.1.2.3"/><vmtrust:ip address="2001:db8::3"/></vmtrust:interface>
  <vmtrust:interface mac="52:54:00:AB:CD:EF"/>
</vmtrust:net><other:x xmlns:other="urn:x"><other:y/></other:x></metadata>`

func TestNetAddresses(t *testing.T) {
	got, err := NetAddresses([]byte(netMeta))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || len(got["52:54:00:12:34:56"]) != 2 || got["52:54:00:12:34:56"][1].String() != "2001:db8::3" || len(got["52:54:00:ab:cd:ef"]) != 0 {
		t.Fatalf("NetAddresses = %v", got)
	}
	if got, err := NetAddresses(nil); err != nil || len(got) != 0 {
		t.Fatalf("no metadata: %v %v", got, err)
	}
	if got, err := NetAddresses([]byte(`<metadata><a:b xmlns:a="urn:a"/></metadata>`)); err != nil || len(got) != 0 {
		t.Fatalf("foreign metadata only: %v %v", got, err)
	}
	// Through Parse: the live XML of a running domain.
	d, err := Parse([]byte(`<domain type='kvm'><name>vm</name>` + netMeta + `<devices><interface type='bridge'><mac address='52:54:00:12:34:56'/><source bridge='br0'/><target dev='vnet7'/></interface></devices></domain>`))
	if err != nil {
		t.Fatal(err)
	}
	if d.Interfaces[0].TargetDev != "vnet7" {
		t.Fatalf("TargetDev = %q", d.Interfaces[0].TargetDev)
	}
	if got, err := NetAddresses(d.Metadata); err != nil || len(got) != 2 {
		t.Fatalf("NetAddresses(Parse(...).Metadata) = %v, %v", got, err)
	}
}

func TestNetAddressesRefuses(t *testing.T) {
	ns := `xmlns:vmtrust="https://vmtrust.dev/xmlns/net/1"`
	wrap := func(s string) string { return `<metadata><vmtrust:net ` + ns + `>` + s + `</vmtrust:net></metadata>` }
	iface := func(mac, body string) string {
		return `<vmtrust:interface mac="` + mac + `">` + body + `</vmtrust:interface>`
	}
	ip := func(a string) string { return `<vmtrust:ip address="` + a + `"/>` }
	cases := map[string]string{
		"bad mac":          wrap(iface("52:54:00:12:34", "")),
		"multicast mac":    wrap(iface("01:00:5e:00:00:01", "")),
		"mac twice":        wrap(iface("52:54:00:12:34:56", "") + iface("52:54:00:12:34:56", "")),
		"bad address":      wrap(iface("52:54:00:12:34:56", ip("10.1.2.300"))),
		"zone":             wrap(iface("52:54:00:12:34:56", ip("fe80::1%eth0"))),
		"mapped":           wrap(iface("52:54:00:12:34:56", ip("::ffff:10.0.0.1"))),
		"multicast":        wrap(iface("52:54:00:12:34:56", ip("224.0.0.1"))),
		"unspecified":      wrap(iface("52:54:00:12:34:56", ip("0.0.0.0"))),
		"loopback":         wrap(iface("52:54:00:12:34:56", ip("127.0.0.1"))),
		"unknown element":  wrap(`<vmtrust:route to="0.0.0.0/0"/>`),
		"unknown attr":     wrap(`<vmtrust:interface mac="52:54:00:12:34:56" vlan="3"/>`),
		"ip outside iface": wrap(ip("10.1.2.3")),
		"foreign inside":   wrap(`<x:y xmlns:x="urn:x"/>`),
		"text inside":      wrap(`hello`),
		"two nets":         wrap("") + `<vmtrust:net ` + ns + `/>`,
		"not xml":          `<metadata><vmtrust:net ` + ns + `>`,
		"doctype":          `<!DOCTYPE m [<!ENTITY a "b">]><metadata/>`,
		"entity":           wrap(iface("52:54:00:12:34:56", `<vmtrust:ip address="&a;"/>`)),
		"too many ips":     wrap(iface("52:54:00:12:34:56", strings.Repeat(ip("10.0.0.1"), MaxNetAddresses+1))),
		"no mac":           wrap(`<vmtrust:interface/>`),
	}
	for name, m := range cases {
		if got, err := NetAddresses([]byte(m)); err == nil {
			t.Errorf("%s: NetAddresses = %v, want an error", name, got)
		}
	}
}

func FuzzNetAddresses(f *testing.F) {
	f.Add([]byte(netMeta))
	f.Add([]byte(`<metadata><vmtrust:net xmlns:vmtrust="https://vmtrust.dev/xmlns/net/1"><vmtrust:interface mac="x"/></vmtrust:net></metadata>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := NetAddresses(b)
		if err != nil {
			return
		}
		if len(got) > MaxNetInterfaces {
			t.Fatalf("%d interfaces", len(got))
		}
		for mac, as := range got {
			if len(as) > MaxNetAddresses || mac != strings.ToLower(mac) {
				t.Fatalf("interface %q: %d addresses", mac, len(as))
			}
		}
	})
}
