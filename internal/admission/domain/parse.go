package domain

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Bounds enforced by Parse.
const (
	MaxSize         = 4 << 20 // bytes of XML
	MaxDepth        = 64      // element nesting
	MaxElements     = 100_000 // elements in the document
	MaxAttrLen      = 4096    // bytes per attribute value or text node
	MaxMetadata     = 64 << 10
	MaxBackingChain = 32 // <backingStore> levels under one disk
)

// QEMUNamespace is the namespace of libvirt's QEMU passthrough elements.
const QEMUNamespace = "http://libvirt.org/schemas/domain/qemu/1.0"

// Domain is the security-relevant subset of a libvirt domain definition.
type Domain struct {
	Type        string // domain type attribute: qemu, kvm, ...
	Name        string
	UUID        string
	Metadata    []byte // raw <metadata> element, bounded by MaxMetadata
	Disks       []Disk
	Interfaces  []Interface
	Hostdevs    []Hostdev
	Filesystems []Filesystem
	Graphics    []Graphics
	Chardevs    []Chardev
	Seclabels   []Seclabel
	// QEMUCommandline holds the value of every <qemu:arg> under any
	// <qemu:commandline>; HasQEMUCommandline is set even when empty.
	QEMUCommandline     []string
	HasQEMUCommandline  bool
	HasQEMUCapabilities bool
}

// Source is a <source> of a disk or backing store.
type Source struct {
	File, Dev, Dir, Name, Protocol, Pool, Volume string
	Hosts                                        []string // host name[:port] of network sources
}

// BackingStore is one level of a disk's backing chain.
type BackingStore struct {
	Path   string
	Type   string
	Format string
	Source Source
}

// Disk is a <devices><disk>.
type Disk struct {
	Path       string
	Type       string // file, block, network, volume, dir, ...
	Device     string // disk, cdrom, floppy, lun
	DriverType string // raw, qcow2, ...
	Source     Source
	Backing    []BackingStore // outermost first
	ReadOnly   bool
	Shareable  bool
	Transient  bool // <transient/>: writes go to a throw-away overlay
	TargetDev  string
	TargetBus  string
}

// Interface is a <devices><interface>.
type Interface struct {
	Path          string
	Type          string
	MAC           string
	SourceNetwork string
	SourceBridge  string
	SourceDev     string
	SourceMode    string // direct: vepa, bridge, private, passthrough
	Model         string
	FilterRef     string
	TargetDev     string // the host-side device (tap) of a running domain
	Managed       string // hostdev interfaces: "yes", "no" or ""
}

// Hostdev is a <devices><hostdev>.
type Hostdev struct {
	Path    string
	Mode    string // subsystem, capabilities
	Type    string // pci, usb, scsi, scsi_host, mdev
	Managed string // "yes", "no" or ""
}

// Filesystem is a <devices><filesystem>.
type Filesystem struct {
	Path       string
	Type       string // mount, file, block, ram, bind, template, volume
	SourceDir  string
	SourceFile string
	SourceName string
	SourceDev  string
	TargetDir  string
	AccessMode string
	ReadOnly   bool
}

// Listen is a <graphics><listen>.
type Listen struct {
	Type    string // address, network, socket, none
	Address string
	Network string
	Socket  string
}

// Graphics is a <devices><graphics>. The password value is never kept;
// an empty passwd attribute counts as no password.
type Graphics struct {
	Path      string
	Type      string // vnc, spice, rdp, sdl, ...
	Listen    string // listen attribute
	Listens   []Listen
	Port      string
	Autoport  string
	HasPasswd bool
}

// ChardevSource is one <source> of a character device.
type ChardevSource struct {
	Mode    string // bind, connect
	Host    string
	Service string
	Path    string
}

// Chardev is a <serial>, <console>, <channel> or <parallel>.
type Chardev struct {
	Path     string
	Kind     string // serial, console, channel, parallel
	Type     string // pty, tcp, udp, unix, file, ...
	Protocol string // tcp: raw, telnet, telnets, tls
	Sources  []ChardevSource
}

// Seclabel is a domain-level <seclabel>.
type Seclabel struct {
	Path    string
	Type    string // none, dynamic, static
	Model   string
	Relabel string // "yes", "no" or ""
}

// node is the bounded intermediate tree Parse builds.
type node struct {
	name  xml.Name
	attrs []xml.Attr
	kids  []*node
	text  []byte
}

func (n *node) attr(local string) string {
	for _, a := range n.attrs {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// children returns the libvirt-namespace (no namespace) children named local.
func (n *node) children(local string) []*node {
	var out []*node
	for _, k := range n.kids {
		if k.name.Space == "" && k.name.Local == local {
			out = append(out, k)
		}
	}
	return out
}

func (n *node) child(local string) *node {
	for _, k := range n.kids {
		if k.name.Space == "" && k.name.Local == local {
			return k
		}
	}
	return nil
}

// Parse decodes a libvirt domain XML document within the bounds above. It
// refuses DOCTYPE and ENTITY declarations, undefined entities, encodings
// other than UTF-8 and documents that are not well-formed.
func Parse(b []byte) (*Domain, error) {
	root, meta, err := parseTree(b)
	if err != nil {
		return nil, fmt.Errorf("domain xml: %w", err)
	}
	d, err := extract(root)
	if err != nil {
		return nil, fmt.Errorf("domain xml: %w", err)
	}
	d.Metadata = meta
	return d, nil
}

func parseTree(b []byte) (*node, []byte, error) {
	if len(b) > MaxSize {
		return nil, nil, fmt.Errorf("document of %d bytes exceeds %d", len(b), MaxSize)
	}
	if !utf8.Valid(b) {
		return nil, nil, errors.New("document is not valid UTF-8")
	}
	if bytes.HasPrefix(b, []byte("\xef\xbb\xbf")) {
		return nil, nil, errors.New("byte order mark refused")
	}
	dec := xml.NewDecoder(bytes.NewReader(b))
	dec.Strict = true
	dec.Entity = nil
	dec.CharsetReader = func(label string, _ io.Reader) (io.Reader, error) {
		return nil, fmt.Errorf("encoding %q refused, only UTF-8", label)
	}
	var (
		stack     []*node
		root      *node
		count     int
		meta      []byte
		metaStart int64 = -1
		metaDepth int
	)
	for {
		off := dec.InputOffset()
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if root != nil && len(stack) == 0 {
				return nil, nil, errors.New("content after the root element")
			}
			count++
			if count > MaxElements {
				return nil, nil, fmt.Errorf("more than %d elements", MaxElements)
			}
			if len(stack) >= MaxDepth {
				return nil, nil, fmt.Errorf("nesting deeper than %d", MaxDepth)
			}
			for _, a := range t.Attr {
				if len(a.Value) > MaxAttrLen {
					return nil, nil, fmt.Errorf("attribute %s of <%s> longer than %d bytes", a.Name.Local, t.Name.Local, MaxAttrLen)
				}
			}
			n := &node{name: t.Name, attrs: t.Attr}
			if len(stack) == 0 {
				if t.Name.Space != "" || t.Name.Local != "domain" {
					return nil, nil, fmt.Errorf("root element <%s> is not <domain>", t.Name.Local)
				}
				root = n
			} else {
				p := stack[len(stack)-1]
				p.kids = append(p.kids, n)
				if len(stack) == 1 && t.Name.Space == "" && t.Name.Local == "metadata" {
					if metaStart >= 0 {
						return nil, nil, errors.New("duplicate <metadata>")
					}
					metaStart, metaDepth = off, len(stack)
				}
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
			if metaStart >= 0 && meta == nil && len(stack) == metaDepth {
				end := dec.InputOffset()
				if end-metaStart > MaxMetadata {
					return nil, nil, fmt.Errorf("metadata longer than %d bytes", MaxMetadata)
				}
				meta = bytes.Clone(b[metaStart:end])
			}
		case xml.CharData:
			if len(stack) == 0 {
				if len(bytes.TrimSpace(t)) != 0 {
					return nil, nil, errors.New("text outside the root element")
				}
				continue
			}
			n := stack[len(stack)-1]
			if len(n.text)+len(t) > MaxAttrLen {
				if n.name.Space == "" && (n.name.Local == "name" || n.name.Local == "uuid") {
					return nil, nil, fmt.Errorf("<%s> longer than %d bytes", n.name.Local, MaxAttrLen)
				}
				continue // text of other elements is not used
			}
			n.text = append(n.text, t...)
		case xml.Directive:
			return nil, nil, errors.New("DOCTYPE or ENTITY declaration refused")
		case xml.ProcInst, xml.Comment:
		}
	}
	if root == nil {
		return nil, nil, errors.New("no <domain> element")
	}
	if len(stack) != 0 {
		return nil, nil, errors.New("unclosed element")
	}
	return root, meta, nil
}

func extract(root *node) (*Domain, error) {
	d := &Domain{Type: root.attr("type")}
	if d.Type == "" {
		return nil, errors.New("domain type attribute missing")
	}
	var err error
	if d.Name, err = single(root, "name", true); err != nil {
		return nil, err
	}
	if d.UUID, err = single(root, "uuid", false); err != nil {
		return nil, err
	}
	if d.UUID != "" && !validUUID(d.UUID) {
		return nil, fmt.Errorf("uuid %q malformed", d.UUID)
	}
	for i, s := range root.children("seclabel") {
		d.Seclabels = append(d.Seclabels, Seclabel{
			Path: fmt.Sprintf("seclabel[%d]", i), Type: s.attr("type"),
			Model: s.attr("model"), Relabel: s.attr("relabel"),
		})
	}
	for _, k := range root.kids {
		if k.name.Space != QEMUNamespace {
			continue
		}
		switch k.name.Local {
		case "commandline":
			d.HasQEMUCommandline = true
			for _, a := range k.kids {
				if a.name.Space == QEMUNamespace && a.name.Local == "arg" {
					d.QEMUCommandline = append(d.QEMUCommandline, a.attr("value"))
				}
			}
		case "capabilities":
			d.HasQEMUCapabilities = true
		}
	}
	devs := root.children("devices")
	if len(devs) > 1 {
		return nil, errors.New("duplicate <devices>")
	}
	if len(devs) == 0 {
		return d, nil
	}
	idx := map[string]int{}
	path := func(kind string) string {
		i := idx[kind]
		idx[kind]++
		return fmt.Sprintf("devices/%s[%d]", kind, i)
	}
	for _, k := range devs[0].kids {
		if k.name.Space != "" {
			continue
		}
		switch k.name.Local {
		case "disk":
			disk, err := parseDisk(k, path("disk"))
			if err != nil {
				return nil, err
			}
			d.Disks = append(d.Disks, disk)
		case "interface":
			d.Interfaces = append(d.Interfaces, parseInterface(k, path("interface")))
		case "hostdev":
			d.Hostdevs = append(d.Hostdevs, Hostdev{Path: path("hostdev"),
				Mode: k.attr("mode"), Type: k.attr("type"), Managed: k.attr("managed")})
		case "filesystem":
			d.Filesystems = append(d.Filesystems, parseFilesystem(k, path("filesystem")))
		case "graphics":
			d.Graphics = append(d.Graphics, parseGraphics(k, path("graphics")))
		case "serial", "console", "channel", "parallel":
			d.Chardevs = append(d.Chardevs, parseChardev(k, path(k.name.Local)))
		}
	}
	return d, nil
}

// single returns the trimmed text of the one child named local, refusing
// duplicates and, when required, absence.
func single(n *node, local string, required bool) (string, error) {
	cs := n.children(local)
	switch {
	case len(cs) > 1:
		return "", fmt.Errorf("duplicate <%s>", local)
	case len(cs) == 0 && required:
		return "", fmt.Errorf("<%s> missing", local)
	case len(cs) == 0:
		return "", nil
	}
	if len(cs[0].kids) != 0 {
		return "", fmt.Errorf("<%s> has child elements", local)
	}
	s := strings.TrimSpace(string(cs[0].text))
	if required && s == "" {
		return "", fmt.Errorf("<%s> empty", local)
	}
	return s, nil
}

func validUUID(s string) bool {
	hex := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
			hex++
		case c == '-' && len(s) == 36 && (i == 8 || i == 13 || i == 18 || i == 23):
		default:
			return false
		}
	}
	return hex == 32 && (len(s) == 32 || len(s) == 36)
}

func parseSource(n *node) Source {
	var s Source
	if n == nil {
		return s
	}
	s = Source{File: n.attr("file"), Dev: n.attr("dev"), Dir: n.attr("dir"),
		Name: n.attr("name"), Protocol: n.attr("protocol"),
		Pool: n.attr("pool"), Volume: n.attr("volume")}
	for _, h := range n.children("host") {
		host := h.attr("name")
		if p := h.attr("port"); p != "" {
			host += ":" + p
		}
		if sock := h.attr("socket"); sock != "" {
			host = "unix:" + sock
		}
		s.Hosts = append(s.Hosts, host)
	}
	return s
}

func parseDisk(n *node, path string) (Disk, error) {
	d := Disk{Path: path, Type: n.attr("type"), Device: n.attr("device"),
		Source:    parseSource(n.child("source")),
		ReadOnly:  n.child("readonly") != nil,
		Shareable: n.child("shareable") != nil,
		Transient: n.child("transient") != nil}
	if d.Device == "" {
		d.Device = "disk"
	}
	if drv := n.child("driver"); drv != nil {
		d.DriverType = drv.attr("type")
	}
	if t := n.child("target"); t != nil {
		d.TargetDev, d.TargetBus = t.attr("dev"), t.attr("bus")
	}
	bs := n.child("backingStore")
	for i := 0; bs != nil; i++ {
		if i >= MaxBackingChain {
			return Disk{}, fmt.Errorf("%s: backing chain longer than %d", path, MaxBackingChain)
		}
		if len(bs.kids) == 0 && len(bs.attrs) == 0 {
			break // <backingStore/>: explicitly no backing file
		}
		b := BackingStore{Path: fmt.Sprintf("%s/backingStore[%d]", path, i),
			Type: bs.attr("type"), Source: parseSource(bs.child("source"))}
		if f := bs.child("format"); f != nil {
			b.Format = f.attr("type")
		}
		d.Backing = append(d.Backing, b)
		bs = bs.child("backingStore")
	}
	return d, nil
}

func parseInterface(n *node, path string) Interface {
	i := Interface{Path: path, Type: n.attr("type"), Managed: n.attr("managed")}
	if m := n.child("mac"); m != nil {
		i.MAC = m.attr("address")
	}
	if s := n.child("source"); s != nil {
		i.SourceNetwork, i.SourceBridge, i.SourceDev, i.SourceMode =
			s.attr("network"), s.attr("bridge"), s.attr("dev"), s.attr("mode")
	}
	if m := n.child("model"); m != nil {
		i.Model = m.attr("type")
	}
	if f := n.child("filterref"); f != nil {
		i.FilterRef = f.attr("filter")
	}
	if t := n.child("target"); t != nil {
		i.TargetDev = t.attr("dev")
	}
	return i
}

func parseFilesystem(n *node, path string) Filesystem {
	f := Filesystem{Path: path, Type: n.attr("type"), AccessMode: n.attr("accessmode"),
		ReadOnly: n.child("readonly") != nil}
	if f.Type == "" {
		f.Type = "mount"
	}
	if s := n.child("source"); s != nil {
		f.SourceDir, f.SourceFile, f.SourceName, f.SourceDev =
			s.attr("dir"), s.attr("file"), s.attr("name"), s.attr("dev")
	}
	if t := n.child("target"); t != nil {
		f.TargetDir = t.attr("dir")
	}
	return f
}

func parseGraphics(n *node, path string) Graphics {
	g := Graphics{Path: path, Type: n.attr("type"), Listen: n.attr("listen"),
		Port: n.attr("port"), Autoport: n.attr("autoport"), HasPasswd: n.attr("passwd") != ""}
	for _, l := range n.children("listen") {
		g.Listens = append(g.Listens, Listen{Type: l.attr("type"), Address: l.attr("address"),
			Network: l.attr("network"), Socket: l.attr("socket")})
	}
	return g
}

func parseChardev(n *node, path string) Chardev {
	c := Chardev{Path: path, Kind: n.name.Local, Type: n.attr("type")}
	if c.Type == "" {
		c.Type = "pty"
	}
	if p := n.child("protocol"); p != nil {
		c.Protocol = p.attr("type")
	}
	for _, s := range n.children("source") {
		c.Sources = append(c.Sources, ChardevSource{Mode: s.attr("mode"), Host: s.attr("host"),
			Service: s.attr("service"), Path: s.attr("path")})
	}
	return c
}
