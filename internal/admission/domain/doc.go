// Package domain parses libvirt domain XML and checks it for configurations
// that break a trust class's containment.
//
// # Parsing
//
// [Parse] accepts at most [MaxSize] bytes of UTF-8 (no byte order mark, no
// other declared encoding), nesting at most [MaxDepth] elements deep, at most
// [MaxElements] elements, attribute values and texts of at most [MaxAttrLen]
// bytes, a raw <metadata> of at most [MaxMetadata] bytes and backing chains
// of at most [MaxBackingChain] levels. It refuses any DOCTYPE or ENTITY
// declaration before anything is expanded or read (no external entity is
// ever resolved), decodes in encoding/xml's Strict mode so undefined entities
// are errors, and requires exactly one well-formed <domain> root with a type
// attribute and exactly one <name>; <uuid>, <metadata> and <devices> may
// appear at most once and a uuid must be 32 hex digits, optionally in the
// 8-4-4-4-12 form. Unknown elements and attributes are ignored; unknown
// values of the attributes Check relies on are kept verbatim and Check
// treats them as risky. On error Parse returns a nil *Domain. Graphics
// passwords are never kept, only whether one is set.
//
// # Checks
//
// [Check] is pure: it reads only the *Domain. Findings are "deny" or "warn";
// the caller refuses a domain with any deny. A class outside 1..3 is checked
// as class 3 (fail closed). The matrix, for classes 3 / 2 / 1
// (- means no finding):
//
//	rule                  condition                                         3     2     1
//	domain-type           <domain type> other than qemu or kvm              deny  deny  deny
//	hostdev               <hostdev> pci/usb/scsi/mdev passthrough           deny  warn  warn
//	                      ... mode=subsystem type=pci managed=yes           deny  warn  -
//	hostdev-interface     <interface type='hostdev'> (SR-IOV VF)            deny  warn  warn
//	                      ... managed=yes                                   deny  warn  -
//	host-filesystem       <filesystem> of type mount/file/block/bind/
//	                      template/volume (host path share; ram is fine)    deny  deny  warn
//	host-dir-disk         <disk type='dir'> (host directory as a disk)      deny  deny  warn
//	host-block-device     <disk type='block'>, device='lun', in backing too deny  deny  warn
//	network-disk          <disk type='network'> (nbd, iscsi, rbd, ...)      deny  warn  warn
//	                      ... with Options.AllowNetworkDisks                warn  warn  warn
//	shareable-disk        writable <shareable/> disk                        deny  warn  warn
//	direct-interface      type='direct' mode passthrough or private         deny  warn  warn
//	                      type='direct' mode vepa or bridge                 warn  -     -
//	listen-non-loopback   vnc/spice/rdp listening on 0.0.0.0, ::, a
//	                      routable address, a host name or a network listen deny  deny  warn
//	graphics-no-password  vnc/spice/rdp off-host and without passwd         deny  deny  warn
//	                      vnc/spice on loopback without passwd              warn  warn  warn
//	chardev-non-loopback  serial/console/channel/parallel of type tcp/udp
//	                      (raw or telnet) bound to a non-loopback address
//	                      or to all addresses (empty host)                  deny  deny  warn
//	host-chardev          chardev of type dev (host serial/parallel port)   deny  warn  warn
//	qemu-passthrough      <qemu:commandline> or <qemu:capabilities>         deny  deny  deny
//	                      ... with Options.AllowQEMUPassthrough             warn  warn  warn
//	seclabel-none         <seclabel type='none'> (no sVirt)                 deny  deny  warn
//	seclabel-no-relabel   <seclabel relabel='no'>                           deny  deny  warn
//	unknown-value         an unknown disk/interface/filesystem/graphics/
//	                      chardev/seclabel type, disk device or listen type deny  deny  warn
//
// Class 1 allows managed PCI passthrough because libvirt then detaches the
// device from its host driver and binds it to vfio, so the IOMMU confines
// its DMA; unmanaged devices, USB, SCSI and mdev keep a host driver in the
// path and only warn. A graphics device without a listen address uses
// libvirt's default (qemu.conf vnc_listen/spice_listen, 127.0.0.1 unless the
// site changed it); socket and none listens are local. Whether disk sources
// are admitted images is not decided here.
//
// Compatibility: rule names and the Domain fields are stable; new rules may
// be added, and a rule may only become stricter.
package domain
