package domain

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
)

// NetNamespace is the XML namespace of vmtrust's network metadata in a
// domain's <metadata>: the addresses each interface may use, which network
// containment enforces.
//
//	<metadata>
//	  <vmtrust:net xmlns:vmtrust="https://vmtrust.dev/xmlns/net/1">
//	    <vmtrust:interface mac="52:54:00:12:34:56">
//	      <vmtrust:ip address="10.1.2.3"/>
//	      <vmtrust:ip address="2001:db8::3"/>
//	    </vmtrust:interface>
//	  </vmtrust:net>
//	</metadata>
const NetNamespace = "https://vmtrust.dev/xmlns/net/1"

// Bounds of the network metadata.
const (
	MaxNetInterfaces = 64
	MaxNetAddresses  = 16 // per interface
)

// NetAddresses returns the addresses the vmtrust network metadata in
// meta (a raw <metadata> element, as Domain.Metadata holds it) gives each
// MAC (lower case). No vmtrust:net element gives an empty map. It is strict:
// an unknown element or attribute in the vmtrust namespace, a second
// vmtrust:net, a bad MAC or address, a MAC given twice or too many entries
// are errors.
func NetAddresses(meta []byte) (map[string][]netip.Addr, error) {
	out := map[string][]netip.Addr{}
	if len(meta) == 0 {
		return out, nil
	}
	if len(meta) > MaxMetadata {
		return nil, fmt.Errorf("metadata longer than %d bytes", MaxMetadata)
	}
	d := xml.NewDecoder(bytes.NewReader(meta))
	d.Strict = true
	d.Entity = nil
	var (
		depth, netDepth int
		mac             string
		seenNet         bool
	)
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("network metadata: %w", err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return nil, errors.New("network metadata: directives are not allowed")
		case xml.StartElement:
			depth++
			if depth > MaxDepth {
				return nil, errors.New("network metadata: nested too deep")
			}
			if t.Name.Space != NetNamespace {
				if netDepth > 0 {
					return nil, fmt.Errorf("network metadata: foreign element <%s> inside vmtrust:net", t.Name.Local)
				}
				continue
			}
			switch {
			case t.Name.Local == "net" && netDepth == 0:
				if seenNet {
					return nil, errors.New("network metadata: more than one vmtrust:net")
				}
				if err := onlyAttrs(t, nil); err != nil {
					return nil, err
				}
				seenNet, netDepth = true, depth
			case t.Name.Local == "interface" && netDepth > 0 && depth == netDepth+1:
				if err := onlyAttrs(t, []string{"mac"}); err != nil {
					return nil, err
				}
				hw, err := net.ParseMAC(attrOf(t, "mac"))
				if err != nil || len(hw) != 6 || hw[0]&1 != 0 {
					return nil, fmt.Errorf("network metadata: interface mac %q is not a unicast 48-bit MAC", attrOf(t, "mac"))
				}
				mac = hw.String()
				if _, dup := out[mac]; dup {
					return nil, fmt.Errorf("network metadata: interface %s given twice", mac)
				}
				if len(out) >= MaxNetInterfaces {
					return nil, fmt.Errorf("network metadata: more than %d interfaces", MaxNetInterfaces)
				}
				out[mac] = []netip.Addr{}
			case t.Name.Local == "ip" && mac != "" && depth == netDepth+2:
				if err := onlyAttrs(t, []string{"address"}); err != nil {
					return nil, err
				}
				a, err := netip.ParseAddr(attrOf(t, "address"))
				if err != nil || a.Zone() != "" || a.Is4In6() || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() {
					return nil, fmt.Errorf("network metadata: interface %s: %q is not a unicast address", mac, attrOf(t, "address"))
				}
				if len(out[mac]) >= MaxNetAddresses {
					return nil, fmt.Errorf("network metadata: interface %s: more than %d addresses", mac, MaxNetAddresses)
				}
				out[mac] = append(out[mac], a)
			default:
				return nil, fmt.Errorf("network metadata: unexpected <vmtrust:%s>", t.Name.Local)
			}
		case xml.EndElement:
			if t.Name.Space == NetNamespace {
				switch {
				case depth == netDepth:
					netDepth = 0
				case depth == netDepth+1:
					mac = ""
				}
			}
			depth--
		case xml.CharData:
			if netDepth > 0 && len(bytes.TrimSpace(t)) > 0 {
				return nil, errors.New("network metadata: text inside vmtrust:net")
			}
		}
	}
	return out, nil
}

func attrOf(t xml.StartElement, local string) string {
	for _, a := range t.Attr {
		if a.Name.Space == "" && a.Name.Local == local {
			return strings.TrimSpace(a.Value)
		}
	}
	return ""
}

// onlyAttrs refuses attributes other than namespace declarations and those
// allowed, and a missing allowed one.
func onlyAttrs(t xml.StartElement, allowed []string) error {
	seen := map[string]bool{}
	for _, a := range t.Attr {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		ok := false
		for _, x := range allowed {
			ok = ok || (a.Name.Space == "" && a.Name.Local == x)
		}
		if !ok || seen[a.Name.Local] {
			return fmt.Errorf("network metadata: <vmtrust:%s> has an unexpected attribute %q", t.Name.Local, a.Name.Local)
		}
		seen[a.Name.Local] = true
	}
	for _, x := range allowed {
		if !seen[x] {
			return fmt.Errorf("network metadata: <vmtrust:%s> needs %q", t.Name.Local, x)
		}
	}
	return nil
}
