package domain

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// head and tail frame a domain as `virsh dumpxml` prints a running TCG guest.
const head = `<domain type='qemu' id='3'>
  <name>guest1</name>
  <uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid>
  <metadata>
    <vmtrust:image xmlns:vmtrust="https://vmtrust.dev/xmlns/domain/1">sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08</vmtrust:image>
  </metadata>
  <memory unit='KiB'>262144</memory>
  <currentMemory unit='KiB'>262144</currentMemory>
  <vcpu placement='static'>1</vcpu>
  <resource>
    <partition>/machine</partition>
  </resource>
  <os>
    <type arch='x86_64' machine='pc-i440fx-8.2'>hvm</type>
    <kernel>/var/lib/vmtrust/boot/vmlinux</kernel>
    <initrd>/var/lib/vmtrust/boot/initrd.img</initrd>
    <cmdline>console=ttyS0</cmdline>
    <boot dev='hd'/>
  </os>
  <features>
    <acpi/>
    <apic/>
  </features>
  <cpu mode='custom' match='exact' check='full'>
    <model fallback='forbid'>qemu64</model>
  </cpu>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/vmtrust/cache/debian-12.qcow2' index='1'/>
      <backingStore/>
      <target dev='vda' bus='virtio'/>
      <alias name='virtio-disk0'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/>
    </disk>
    <controller type='pci' index='0' model='pci-root'>
      <alias name='pci.0'/>
    </controller>
    <interface type='network'>
      <mac address='52:54:00:6b:3c:58'/>
      <source network='default' portid='0a1f6a6e-5c1e-4a57-8a9b-8d1bc0a1e3f1' bridge='virbr0'/>
      <target dev='vnet2'/>
      <model type='virtio'/>
      <filterref filter='clean-traffic'/>
      <alias name='net0'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/>
    </interface>
    <serial type='pty'>
      <source path='/dev/pts/3'/>
      <target type='isa-serial' port='0'>
        <model name='isa-serial'/>
      </target>
      <alias name='serial0'/>
    </serial>
    <console type='pty' tty='/dev/pts/3'>
      <source path='/dev/pts/3'/>
      <target type='serial' port='0'/>
      <alias name='serial0'/>
    </console>
    <graphics type='vnc' port='5900' autoport='yes' listen='127.0.0.1' passwd='s3cret'>
      <listen type='address' address='127.0.0.1'/>
    </graphics>
`

const tail = `    <memballoon model='virtio'>
      <alias name='balloon0'/>
    </memballoon>
  </devices>
  <seclabel type='dynamic' model='apparmor' relabel='yes'>
    <label>libvirt-4dea22b3-1d52-d8f3-2516-782e98ab3fa0</label>
    <imagelabel>libvirt-4dea22b3-1d52-d8f3-2516-782e98ab3fa0</imagelabel>
  </seclabel>
  <seclabel type='dynamic' model='dac' relabel='yes'>
    <label>+64055:+994</label>
    <imagelabel>+64055:+994</imagelabel>
  </seclabel>
</domain>
`

// dom returns the base domain with devices appended inside <devices> and
// top appended after the seclabels; repl pairs are replaced first.
func dom(devices, top string, repl ...string) string {
	s := head + devices + tail
	if top != "" {
		s = strings.Replace(s, "</domain>", top+"</domain>", 1)
	}
	return strings.NewReplacer(repl...).Replace(s)
}

func backingChain(n int) string {
	var b strings.Builder
	b.WriteString("<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/img/top.qcow2'/>")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "<backingStore type='file'><format type='qcow2'/><source file='/img/%d.qcow2'/>", i)
	}
	b.WriteString("<backingStore/>")
	b.WriteString(strings.Repeat("</backingStore>", n))
	b.WriteString("<target dev='vdb' bus='virtio'/></disk>\n")
	return b.String()
}

// findings is the expected result per class 3, 2, 1 as "severity rule path".
type findings [3][]string

type testCase struct {
	name    string
	xml     string
	wantErr string // substring of the Parse error; "" when Parse succeeds
	want    findings
	opt     Options
	valid   bool // schema-valid per virt-xml-validate
}

func cases() []testCase {
	noPW := "warn graphics-no-password devices/graphics[0]"
	return []testCase{
		{name: "virsh dumpxml clean", xml: dom("", ""), valid: true},
		{name: "kvm domain", xml: dom("", "", "<domain type='qemu' id='3'>", "<domain type='kvm'>"), valid: true},
		{name: "minimal defined domain", xml: "<domain type='qemu'><name>m</name></domain>", valid: true},
		{name: "xml declaration utf-8", xml: "<?xml version='1.0' encoding='UTF-8'?>\n" + dom("", ""), valid: true},
		{name: "managed pci hostdev",
			xml:  dom("<hostdev mode='subsystem' type='pci' managed='yes'>\n<source><address domain='0x0000' bus='0x03' slot='0x00' function='0x0'/></source>\n</hostdev>\n", ""),
			want: findings{{"deny hostdev devices/hostdev[0]"}, {"warn hostdev devices/hostdev[0]"}, nil}, valid: true},
		{name: "unmanaged pci hostdev",
			xml:  dom("<hostdev mode='subsystem' type='pci' managed='no'>\n<source><address domain='0x0000' bus='0x03' slot='0x00' function='0x0'/></source>\n</hostdev>\n", ""),
			want: findings{{"deny hostdev devices/hostdev[0]"}, {"warn hostdev devices/hostdev[0]"}, {"warn hostdev devices/hostdev[0]"}}, valid: true},
		{name: "usb hostdev",
			xml:  dom("<hostdev mode='subsystem' type='usb' managed='yes'>\n<source><vendor id='0x1234'/><product id='0xbeef'/></source>\n</hostdev>\n", ""),
			want: findings{{"deny hostdev devices/hostdev[0]"}, {"warn hostdev devices/hostdev[0]"}, {"warn hostdev devices/hostdev[0]"}}, valid: true},
		{name: "mdev hostdev",
			xml:  dom("<hostdev mode='subsystem' type='mdev' model='vfio-pci'>\n<source><address uuid='c2177883-f1bb-47f0-914d-32a22e3a8804'/></source>\n</hostdev>\n", ""),
			want: findings{{"deny hostdev devices/hostdev[0]"}, {"warn hostdev devices/hostdev[0]"}, {"warn hostdev devices/hostdev[0]"}}, valid: true},
		{name: "hostdev interface",
			xml:  dom("<interface type='hostdev' managed='yes'>\n<mac address='52:54:00:6d:90:02'/>\n<source><address type='pci' domain='0x0000' bus='0x00' slot='0x07' function='0x0'/></source>\n</interface>\n", ""),
			want: findings{{"deny hostdev-interface devices/interface[1]"}, {"warn hostdev-interface devices/interface[1]"}, nil}, valid: true},
		{name: "9p host share",
			xml:  dom("<filesystem type='mount' accessmode='passthrough'>\n<source dir='/srv/share'/>\n<target dir='share'/>\n<readonly/>\n</filesystem>\n", ""),
			want: findings{{"deny host-filesystem devices/filesystem[0]"}, {"deny host-filesystem devices/filesystem[0]"}, {"warn host-filesystem devices/filesystem[0]"}}, valid: true},
		{name: "virtiofs host share",
			xml:  dom("<filesystem type='mount' accessmode='passthrough'>\n<driver type='virtiofs'/>\n<source dir='/'/>\n<target dir='rootfs'/>\n</filesystem>\n", ""),
			want: findings{{"deny host-filesystem devices/filesystem[0]"}, {"deny host-filesystem devices/filesystem[0]"}, {"warn host-filesystem devices/filesystem[0]"}}, valid: true},
		{name: "ram filesystem", xml: dom("<filesystem type='ram'>\n<source usage='1024' units='KiB'/>\n<target dir='/tmp'/>\n</filesystem>\n", ""), valid: true},
		{name: "vnc on all addresses without password",
			xml: dom("", "", "listen='127.0.0.1' passwd='s3cret'", "listen='0.0.0.0'", "address='127.0.0.1'", "address='0.0.0.0'"),
			want: findings{
				{"deny listen-non-loopback devices/graphics[0]", "deny listen-non-loopback devices/graphics[0]", "deny graphics-no-password devices/graphics[0]"},
				{"deny listen-non-loopback devices/graphics[0]", "deny listen-non-loopback devices/graphics[0]", "deny graphics-no-password devices/graphics[0]"},
				{"warn listen-non-loopback devices/graphics[0]", "warn listen-non-loopback devices/graphics[0]", "warn graphics-no-password devices/graphics[0]"}},
			valid: true},
		{name: "vnc on ipv6 any with password",
			xml:  dom("", "", "listen='127.0.0.1' ", "", "address='127.0.0.1'", "address='::'"),
			want: findings{{"deny listen-non-loopback devices/graphics[0]"}, {"deny listen-non-loopback devices/graphics[0]"}, {"warn listen-non-loopback devices/graphics[0]"}}, valid: true},
		{name: "spice on routable address",
			xml:  dom("<graphics type='spice' autoport='yes' passwd='x'>\n<listen type='address' address='192.0.2.10'/>\n</graphics>\n", ""),
			want: findings{{"deny listen-non-loopback devices/graphics[1]"}, {"deny listen-non-loopback devices/graphics[1]"}, {"warn listen-non-loopback devices/graphics[1]"}}, valid: true},
		{name: "vnc on libvirt network",
			xml:  dom("", "", "listen='127.0.0.1' ", "", "<listen type='address' address='127.0.0.1'/>", "<listen type='network' network='default'/>"),
			want: findings{{"deny listen-non-loopback devices/graphics[0]"}, {"deny listen-non-loopback devices/graphics[0]"}, {"warn listen-non-loopback devices/graphics[0]"}}, valid: true},
		{name: "vnc loopback without password",
			xml:  dom("", "", " passwd='s3cret'", ""),
			want: findings{{noPW}, {noPW}, {noPW}}, valid: true},
		{name: "vnc empty password",
			xml:  dom("", "", "passwd='s3cret'", "passwd=''"),
			want: findings{{noPW}, {noPW}, {noPW}}, valid: true},
		{name: "vnc socket without password",
			xml: dom("", "", "<graphics type='vnc' port='5900' autoport='yes' listen='127.0.0.1' passwd='s3cret'>\n      <listen type='address' address='127.0.0.1'/>",
				"<graphics type='vnc'>\n<listen type='socket' socket='/run/libvirt/qemu/guest1.vnc'/>"), valid: true},
		{name: "tcp telnet serial on all addresses",
			xml:  dom("<serial type='tcp'>\n<source mode='bind' host='0.0.0.0' service='2445'/>\n<protocol type='telnet'/>\n<target port='1'/>\n</serial>\n", ""),
			want: findings{{"deny chardev-non-loopback devices/serial[1]"}, {"deny chardev-non-loopback devices/serial[1]"}, {"warn chardev-non-loopback devices/serial[1]"}}, valid: true},
		{name: "tcp serial bind without host",
			xml:  dom("<serial type='tcp'>\n<source mode='bind' service='2445'/>\n<target port='1'/>\n</serial>\n", ""),
			want: findings{{"deny chardev-non-loopback devices/serial[1]"}, {"deny chardev-non-loopback devices/serial[1]"}, {"warn chardev-non-loopback devices/serial[1]"}}, valid: true},
		{name: "tcp serial on loopback", xml: dom("<serial type='tcp'>\n<source mode='bind' host='127.0.0.1' service='2445'/>\n<target port='1'/>\n</serial>\n", ""), valid: true},
		{name: "udp channel",
			xml:  dom("<channel type='udp'>\n<source mode='bind' host='0.0.0.0' service='2445'/>\n<source mode='connect' host='192.0.2.1' service='2445'/>\n<target type='guestfwd' address='10.0.2.1' port='4600'/>\n</channel>\n", ""),
			want: findings{{"deny chardev-non-loopback devices/channel[0]"}, {"deny chardev-non-loopback devices/channel[0]"}, {"warn chardev-non-loopback devices/channel[0]"}}, valid: true},
		{name: "unix channel", xml: dom("<channel type='unix'>\n<source mode='bind' path='/var/lib/libvirt/qemu/f16x86_64.agent'/>\n<target type='virtio' name='org.qemu.guest_agent.0'/>\n</channel>\n", ""), valid: true},
		{name: "qemu commandline",
			xml:  dom("", "  <qemu:commandline>\n    <qemu:arg value='-set'/>\n    <qemu:arg value='device.virtio-disk0.iommu_platform=off'/>\n  </qemu:commandline>\n", "<domain type='qemu' id='3'>", "<domain type='qemu' id='3' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>"),
			want: findings{{"deny qemu-passthrough qemu:commandline"}, {"deny qemu-passthrough qemu:commandline"}, {"deny qemu-passthrough qemu:commandline"}}, valid: true},
		{name: "qemu commandline opted in",
			xml:  dom("", "  <qemu:commandline>\n    <qemu:arg value='-no-reboot'/>\n  </qemu:commandline>\n", "<domain type='qemu' id='3'>", "<domain type='qemu' id='3' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>"),
			opt:  Options{AllowQEMUPassthrough: true},
			want: findings{{"warn qemu-passthrough qemu:commandline"}, {"warn qemu-passthrough qemu:commandline"}, {"warn qemu-passthrough qemu:commandline"}}, valid: true},
		{name: "qemu capabilities",
			xml:  dom("", "  <qemu:capabilities>\n    <qemu:del capability='sandbox'/>\n  </qemu:capabilities>\n", "<domain type='qemu' id='3'>", "<domain type='qemu' id='3' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>"),
			want: findings{{"deny qemu-passthrough qemu:capabilities"}, {"deny qemu-passthrough qemu:capabilities"}, {"deny qemu-passthrough qemu:capabilities"}}, valid: true},
		{name: "commandline outside qemu namespace ignored", xml: dom("", "  <commandline><arg value='-x'/></commandline>\n")},
		{name: "seclabel none",
			xml: dom("", "", "<seclabel type='dynamic' model='apparmor' relabel='yes'>\n    <label>libvirt-4dea22b3-1d52-d8f3-2516-782e98ab3fa0</label>\n    <imagelabel>libvirt-4dea22b3-1d52-d8f3-2516-782e98ab3fa0</imagelabel>\n  </seclabel>",
				"<seclabel type='none' model='apparmor'/>"),
			want: findings{{"deny seclabel-none seclabel[0]"}, {"deny seclabel-none seclabel[0]"}, {"warn seclabel-none seclabel[0]"}}, valid: true},
		{name: "seclabel relabel no",
			xml:  dom("", "", "<seclabel type='dynamic' model='dac' relabel='yes'>\n    <label>+64055:+994</label>\n    <imagelabel>+64055:+994</imagelabel>", "<seclabel type='static' model='dac' relabel='no'>\n    <label>+0:+0</label>"),
			want: findings{{"deny seclabel-no-relabel seclabel[1]"}, {"deny seclabel-no-relabel seclabel[1]"}, {"warn seclabel-no-relabel seclabel[1]"}}, valid: true},
		{name: "writable shareable disk",
			xml:  dom("<disk type='file' device='disk'>\n<driver name='qemu' type='raw' cache='none'/>\n<source file='/var/lib/libvirt/images/shared.img'/>\n<target dev='vdb' bus='virtio'/>\n<shareable/>\n</disk>\n", ""),
			want: findings{{"deny shareable-disk devices/disk[1]"}, {"warn shareable-disk devices/disk[1]"}, {"warn shareable-disk devices/disk[1]"}}, valid: true},
		{name: "read-only shareable cdrom", xml: dom("<disk type='file' device='cdrom'>\n<driver name='qemu' type='raw'/>\n<source file='/srv/iso/seed.iso'/>\n<target dev='sda' bus='sata'/>\n<readonly/>\n<shareable/>\n</disk>\n", ""), valid: true},
		{name: "direct passthrough",
			xml:  dom("<interface type='direct'>\n<mac address='52:54:00:aa:bb:cc'/>\n<source dev='eth0' mode='passthrough'/>\n<model type='virtio'/>\n</interface>\n", ""),
			want: findings{{"deny direct-interface devices/interface[1]"}, {"warn direct-interface devices/interface[1]"}, {"warn direct-interface devices/interface[1]"}}, valid: true},
		{name: "direct private",
			xml:  dom("<interface type='direct'>\n<source dev='eth0' mode='private'/>\n</interface>\n", ""),
			want: findings{{"deny direct-interface devices/interface[1]"}, {"warn direct-interface devices/interface[1]"}, {"warn direct-interface devices/interface[1]"}}, valid: true},
		{name: "direct vepa",
			xml:  dom("<interface type='direct'>\n<source dev='eth0' mode='vepa'/>\n</interface>\n", ""),
			want: findings{{"warn direct-interface devices/interface[1]"}, nil, nil}, valid: true},
		{name: "host block device",
			xml:  dom("<disk type='block' device='disk'>\n<driver name='qemu' type='raw'/>\n<source dev='/dev/sdb'/>\n<target dev='vdb' bus='virtio'/>\n</disk>\n", ""),
			want: findings{{"deny host-block-device devices/disk[1]"}, {"deny host-block-device devices/disk[1]"}, {"warn host-block-device devices/disk[1]"}}, valid: true},
		{name: "block device as backing store",
			xml:  dom("<disk type='file' device='disk'>\n<driver name='qemu' type='qcow2'/>\n<source file='/img/overlay.qcow2'/>\n<backingStore type='block' index='2'>\n<format type='raw'/>\n<source dev='/dev/vg0/base'/>\n<backingStore/>\n</backingStore>\n<target dev='vdb' bus='virtio'/>\n</disk>\n", ""),
			want: findings{{"deny host-block-device devices/disk[1]/backingStore[0]"}, {"deny host-block-device devices/disk[1]/backingStore[0]"}, {"warn host-block-device devices/disk[1]/backingStore[0]"}}, valid: true},
		{name: "nbd network disk",
			xml:  dom("<disk type='network' device='disk'>\n<driver name='qemu' type='raw'/>\n<source protocol='nbd' name='export'>\n<host name='192.0.2.5' port='10809'/>\n</source>\n<target dev='vdb' bus='virtio'/>\n</disk>\n", ""),
			want: findings{{"deny network-disk devices/disk[1]"}, {"warn network-disk devices/disk[1]"}, {"warn network-disk devices/disk[1]"}}, valid: true},
		{name: "rbd network disk allowed",
			xml:  dom("<disk type='network' device='disk'>\n<driver name='qemu' type='raw'/>\n<source protocol='rbd' name='pool/image'>\n<host name='mon1.example' port='6789'/>\n</source>\n<target dev='vdb' bus='virtio'/>\n</disk>\n", ""),
			opt:  Options{AllowNetworkDisks: true},
			want: findings{{"warn network-disk devices/disk[1]"}, {"warn network-disk devices/disk[1]"}, {"warn network-disk devices/disk[1]"}}, valid: true},
		{name: "directory disk",
			xml:  dom("<disk type='dir' device='disk'>\n<driver name='qemu' type='fat'/>\n<source dir='/home'/>\n<target dev='vdb' bus='virtio'/>\n</disk>\n", ""),
			want: findings{{"deny host-dir-disk devices/disk[1]"}, {"deny host-dir-disk devices/disk[1]"}, {"warn host-dir-disk devices/disk[1]"}}, valid: true},
		{name: "xen domain type",
			xml:  dom("", "", "<domain type='qemu' id='3'>", "<domain type='xen'>"),
			want: findings{{"deny domain-type @type"}, {"deny domain-type @type"}, {"deny domain-type @type"}}, valid: true},
		{name: "unknown disk type",
			xml:  dom("<disk type='vhostuser' device='disk'>\n<source type='unix' path='/tmp/vhost-blk.sock'/>\n<target dev='vdb' bus='virtio'/>\n</disk>\n", ""),
			want: findings{{"deny unknown-value devices/disk[1]"}, {"deny unknown-value devices/disk[1]"}, {"warn unknown-value devices/disk[1]"}}},
		{name: "backing chain of 20", xml: dom(backingChain(20), "")},

		// Hostile and malformed documents.
		{name: "billion laughs", wantErr: "DOCTYPE or ENTITY declaration refused", xml: `<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<domain type='qemu'><name>&lol9;</name></domain>`},
		{name: "external entity", wantErr: "DOCTYPE or ENTITY declaration refused",
			xml: "<?xml version='1.0'?>\n<!DOCTYPE domain [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\n<domain type='qemu'><name>&xxe;</name></domain>"},
		{name: "undefined entity", wantErr: "entity", xml: "<domain type='qemu'><name>&xxe;</name></domain>"},
		{name: "ten megabytes", wantErr: "exceeds", xml: dom("<!--"+strings.Repeat("x", 10<<20)+"-->", "")},
		{name: "ten thousand deep", wantErr: "nesting deeper than 64",
			xml: "<domain type='qemu'><name>d</name>" + strings.Repeat("<a>", 10000) + strings.Repeat("</a>", 10000) + "</domain>"},
		{name: "invalid utf-8", wantErr: "not valid UTF-8", xml: dom("", "", "guest1", "guest\xff\xfe")},
		{name: "latin-1 declared", wantErr: "only UTF-8", xml: "<?xml version='1.0' encoding='ISO-8859-1'?>\n" + dom("", "")},
		{name: "byte order mark", wantErr: "byte order mark", xml: "\xef\xbb\xbf" + dom("", "")},
		{name: "duplicate uuid", wantErr: "duplicate <uuid>", xml: dom("", "", "<uuid>", "<uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa1</uuid><uuid>")},
		{name: "duplicate name", wantErr: "duplicate <name>", xml: dom("", "", "<name>guest1</name>", "<name>guest1</name><name>other</name>")},
		{name: "malformed uuid", wantErr: "uuid", xml: dom("", "", "4dea22b3-1d52-d8f3-2516-782e98ab3fa0", "4dea22b3-1d52-d8f3-2516-782e98ab3fz0")},
		{name: "unclosed tags", wantErr: "unexpected EOF", xml: dom("", "", "</domain>\n", "")},
		{name: "mismatched end tag", wantErr: "syntax error", xml: dom("", "", "</devices>", "</device>")},
		{name: "backing chain of 100", wantErr: "nesting deeper than 64", xml: dom(backingChain(100), "")},
		{name: "backing chain of 40", wantErr: "backing chain longer than 32", xml: dom(backingChain(40), "")},
		{name: "second root element", wantErr: "content after the root element", xml: dom("", "") + "<domain type='qemu'><name>x</name></domain>"},
		{name: "text after root", wantErr: "text outside the root element", xml: dom("", "") + "junk"},
		{name: "wrong root", wantErr: "is not <domain>", xml: "<network><name>default</name></network>"},
		{name: "namespaced root", wantErr: "is not <domain>", xml: "<x:domain xmlns:x='urn:x' type='qemu'><name>d</name></x:domain>"},
		{name: "missing type", wantErr: "type attribute missing", xml: "<domain><name>d</name></domain>"},
		{name: "missing name", wantErr: "<name> missing", xml: "<domain type='qemu'><uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid></domain>"},
		{name: "empty document", wantErr: "no <domain> element", xml: ""},
		{name: "huge metadata", wantErr: "metadata longer than", xml: dom("", "", "sha256:", strings.Repeat("a", 70<<10))},
		{name: "huge attribute", wantErr: "longer than 4096", xml: dom("", "", "file='/var/lib/vmtrust/cache/debian-12.qcow2'", "file='/"+strings.Repeat("a", 5000)+"'")},
		{name: "too many elements", wantErr: "more than 100000 elements", xml: dom(strings.Repeat("<x/>", 100_001), "")},
		{name: "duplicate devices", wantErr: "duplicate <devices>", xml: dom("", "  <devices/>\n")},
	}
}

func TestParseAndCheck(t *testing.T) {
	for _, tc := range cases() {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Parse([]byte(tc.xml))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse() error = %v, want containing %q", err, tc.wantErr)
				}
				if d != nil {
					t.Fatalf("Parse() = %+v on error, want nil", d)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse() error = %v, want nil", err)
			}
			for i, class := range []int{3, 2, 1} {
				var got []string
				for _, f := range CheckWith(d, class, tc.opt) {
					if f.Reason == "" {
						t.Errorf("class %d: finding %+v has no reason", class, f)
					}
					got = append(got, f.Severity+" "+f.Rule+" "+f.Path)
				}
				if !reflect.DeepEqual(got, tc.want[i]) {
					t.Errorf("Check(class %d) = %q, want %q", class, got, tc.want[i])
				}
			}
		})
	}
}

func TestParseFields(t *testing.T) {
	x := dom("<hostdev mode='subsystem' type='pci' managed='yes'><source/></hostdev>\n"+
		"<serial type='tcp'><source mode='bind' host='::' service='23'/><protocol type='telnet'/></serial>\n"+backingChain(2), "")
	d, err := Parse([]byte(x))
	if err != nil {
		t.Fatalf("Parse() error = %v", err)
	}
	if d.Name != "guest1" || d.UUID != "4dea22b3-1d52-d8f3-2516-782e98ab3fa0" || d.Type != "qemu" {
		t.Errorf("Parse() name, uuid, type = %q, %q, %q", d.Name, d.UUID, d.Type)
	}
	if !bytes.HasPrefix(d.Metadata, []byte("<metadata>")) || !bytes.HasSuffix(d.Metadata, []byte("</metadata>")) {
		t.Errorf("Parse() metadata = %q, want the raw element", d.Metadata)
	}
	wantDisk := Disk{Path: "devices/disk[0]", Type: "file", Device: "disk", DriverType: "qcow2",
		Source: Source{File: "/var/lib/vmtrust/cache/debian-12.qcow2"}, TargetDev: "vda", TargetBus: "virtio"}
	if len(d.Disks) != 2 || !reflect.DeepEqual(d.Disks[0], wantDisk) {
		t.Errorf("Parse() disks[0] = %+v, want %+v", d.Disks, wantDisk)
	}
	if len(d.Disks) == 2 && (len(d.Disks[1].Backing) != 2 || d.Disks[1].Backing[1].Source.File != "/img/1.qcow2") {
		t.Errorf("Parse() disks[1].Backing = %+v, want 2 levels ending /img/1.qcow2", d.Disks[1].Backing)
	}
	wantIf := Interface{Path: "devices/interface[0]", Type: "network", MAC: "52:54:00:6b:3c:58",
		SourceNetwork: "default", SourceBridge: "virbr0", Model: "virtio", FilterRef: "clean-traffic", TargetDev: "vnet2"}
	if len(d.Interfaces) != 1 || d.Interfaces[0] != wantIf {
		t.Errorf("Parse() interfaces = %+v, want %+v", d.Interfaces, wantIf)
	}
	if len(d.Graphics) != 1 || !d.Graphics[0].HasPasswd || d.Graphics[0].Listens[0].Address != "127.0.0.1" {
		t.Errorf("Parse() graphics = %+v", d.Graphics)
	}
	if strings.Contains(fmt.Sprintf("%+v", d), "s3cret") {
		t.Errorf("Parse() kept the graphics password")
	}
	if len(d.Chardevs) != 3 || d.Chardevs[2].Protocol != "telnet" || d.Chardevs[2].Sources[0].Host != "::" {
		t.Errorf("Parse() chardevs = %+v", d.Chardevs)
	}
	if len(d.Seclabels) != 2 || d.Seclabels[0].Model != "apparmor" || d.Seclabels[1].Relabel != "yes" {
		t.Errorf("Parse() seclabels = %+v", d.Seclabels)
	}
}

// TestSchema validates the cases marked valid with libvirt's own schema.
func TestSchema(t *testing.T) {
	if testing.Short() {
		t.Skip("interop test skipped in -short mode")
	}
	tool := lookTool(t, "virt-xml-validate", "libvirt-clients")
	lookTool(t, "xmllint", "libxml2-utils") // virt-xml-validate runs it
	dir := t.TempDir()
	for _, tc := range cases() {
		if !tc.valid {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, "d.xml")
			if err := os.WriteFile(p, []byte(tc.xml), 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(tool, p, "domain").CombinedOutput(); err != nil {
				t.Errorf("virt-xml-validate = %v: %s", err, out)
			}
		})
	}
}

// TestFuzzSeeds keeps testdata/fuzz/FuzzParse in step with cases();
// VMTRUST_UPDATE_SEEDS=1 rewrites it.
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	update := os.Getenv("VMTRUST_UPDATE_SEEDS") == "1"
	for _, tc := range cases() {
		if len(tc.xml) > 64<<10 {
			continue // bombs are tested above, not carried as seeds
		}
		sum := sha256.Sum256([]byte(tc.xml))
		p := filepath.Join(dir, fmt.Sprintf("%x", sum[:8]))
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", tc.xml)
		if update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != want {
			t.Errorf("seed %s for case %q missing or stale; rerun with VMTRUST_UPDATE_SEEDS=1", p, tc.name)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Parse(b)
		if err != nil {
			if d != nil {
				t.Fatalf("Parse() = %+v with error %v, want nil", d, err)
			}
			return
		}
		for class := 0; class <= 4; class++ {
			for _, fd := range CheckWith(d, class, Options{}) {
				if fd.Severity != Deny && fd.Severity != Warn || fd.Rule == "" || fd.Reason == "" {
					t.Fatalf("Check(class %d) finding %+v malformed", class, fd)
				}
			}
		}
	})
}

// lookTool finds a tool: t.Fatal when CI is set, else t.Skip naming the
// Debian package.
func lookTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not found (Debian package %s)", name, pkg)
		}
		t.Skipf("%s not found; install Debian package %s", name, pkg)
	}
	return p
}

// TestDocMatrix checks that the package doc's matrix names every rule.
func TestDocMatrix(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "check.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	ast.Inspect(f, func(x ast.Node) bool {
		vs, ok := x.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || !strings.HasPrefix(vs.Names[0].Name, "Rule") {
			return true
		}
		n++
		rule, _ := strconv.Unquote(vs.Values[0].(*ast.BasicLit).Value)
		if !bytes.Contains(doc, []byte("//\t"+rule+" ")) {
			t.Errorf("doc.go matrix lacks rule %q", rule)
		}
		return true
	})
	if n < 15 {
		t.Errorf("found %d Rule constants, want at least 15", n)
	}
}
