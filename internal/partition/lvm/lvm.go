// Package lvm reads an LVM2 physical volume (a disk or a partition) and
// exposes the linear logical volumes stored on it as io.ReaderAt.
//
// Format: the "LABELONE" label in one of the first four sectors, the
// "LVM2 001" PV header with its data and metadata area lists, the metadata
// area header (" LVM2 x[5A%r0N*>") and the volume group text it points to
// (LVM2 text format, "Text Format Volume Group" version 1), as written by
// lvm2 2.02 and 2.03.
//
// Guarantees: the label, metadata area header and metadata text CRCs are
// checked (LVM's CRC32 with initial value 0xf597a6cf) before the text is
// parsed; the text is at most 4 MiB, and the parser is strict (duplicate
// keys, unbalanced braces, bad escapes and values it does not understand
// are errors) and bounded (nesting depth 8, 2^18 values, arrays of 4096).
// When several metadata areas are valid, the highest seqno wins. Every
// segment of a volume must lie inside this PV's extents, and segments must
// tile the volume without gaps or overlaps. Only linear volumes (segment
// type "striped" with one stripe) wholly on this PV can be opened; striped,
// mirror, raid, thin, cache, snapshot and other types, or volumes spanning
// other PVs, are listed but Open refuses them with an error. Only the
// io.ReaderAt given is read, never past the size given.
package lvm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sort"
	"strings"
)

// ErrNoLabel reports a device without an LVM2 label: not a PV.
var ErrNoLabel = errors.New("lvm: no LVM2 label")

const (
	sectorSize    = 512
	labelSectors  = 4
	initialCRC    = 0xf597a6cf
	labelID       = "LABELONE"
	labelType     = "LVM2 001"
	mdaHeaderSize = 512
	mdaMagic      = " LVM2 x[5A%r0N*>"
	rawLocnIgnore = 1
	maxVolumes    = 4096
	maxSegments   = 1024
)

// VolumeGroup is the volume group described by a PV's metadata, seen from
// that PV.
type VolumeGroup struct {
	Name       string
	ID         string
	Seqno      int64
	ExtentSize int64 // bytes
	// PV names this physical volume inside the metadata ("pv0", ...).
	PV string
	// Volumes are the logical volumes in metadata order, hidden ones
	// (thin pool data, raid images, ...) included.
	Volumes []Volume

	r io.ReaderAt
}

// Volume is one logical volume.
type Volume struct {
	Name    string
	ID      string
	Size    int64 // bytes
	Visible bool
	// Type is "linear" for a readable volume, otherwise the segment type
	// that prevents reading it ("striped", "thin", "raid1", ...).
	Type string

	segs []extentMap
	err  error // why Open refuses the volume
}

// extentMap maps a run of volume bytes to PV bytes.
type extentMap struct {
	lvOff, pvOff, n int64
}

// lvmCRC is LVM's CRC32: the IEEE polynomial, initial value 0xf597a6cf and
// no final inversion.
func lvmCRC(b []byte) uint32 {
	return ^crc32.Update(^uint32(initialCRC), crc32.IEEETable, b)
}

// Read reads the PV in r, of size bytes, and its volume group metadata.
// A device without a label gives an error wrapping ErrNoLabel.
func Read(r io.ReaderAt, size int64) (*VolumeGroup, error) {
	if size < labelSectors*sectorSize {
		return nil, ErrNoLabel
	}
	pv, err := readLabel(r)
	if err != nil {
		return nil, err
	}
	if pv.devSize > uint64(size) {
		return nil, fmt.Errorf("lvm: pv header: device size %d exceeds %d", pv.devSize, size)
	}
	var best *section
	var bestSeq int64 = -1
	var errs []error
	for _, m := range pv.mdas {
		root, err := readMetadataArea(r, size, m)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if root == nil {
			continue // an empty or ignored area
		}
		seq, err := seqno(root)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if seq > bestSeq {
			best, bestSeq = root, seq
		}
	}
	if best == nil {
		if len(errs) == 0 {
			return nil, errors.New("lvm: physical volume has no metadata")
		}
		return nil, errors.Join(errs...)
	}
	vg, err := buildVG(best, pv, size)
	if err != nil {
		return nil, err
	}
	vg.r = r
	return vg, nil
}

// area is a (byte offset, byte size) pair of the PV header.
type area struct{ off, size uint64 }

type pvHeader struct {
	uuid    string
	devSize uint64
	data    []area
	mdas    []area
}

// readLabel finds and checks the label and PV header.
func readLabel(r io.ReaderAt) (*pvHeader, error) {
	buf := make([]byte, labelSectors*sectorSize)
	if err := readFull(r, buf, 0); err != nil {
		return nil, fmt.Errorf("lvm: label: %w", err)
	}
	le := binary.LittleEndian
	for s := range labelSectors {
		b := buf[s*sectorSize:][:sectorSize]
		if string(b[:8]) != labelID {
			continue
		}
		if got := le.Uint64(b[8:]); got != uint64(s) {
			return nil, fmt.Errorf("lvm: label in sector %d says sector %d", s, got)
		}
		if got, want := lvmCRC(b[20:]), le.Uint32(b[16:]); got != want {
			return nil, fmt.Errorf("lvm: label CRC %#08x, want %#08x", got, want)
		}
		if string(b[24:32]) != labelType {
			return nil, fmt.Errorf("lvm: label type %q, want %q", b[24:32], labelType)
		}
		off := le.Uint32(b[20:])
		if off < 32 || off > sectorSize-72 {
			return nil, fmt.Errorf("lvm: pv header offset %d out of range", off)
		}
		return parsePVHeader(b[off:])
	}
	return nil, ErrNoLabel
}

// parsePVHeader parses the PV header, which ends with the label sector.
func parsePVHeader(b []byte) (*pvHeader, error) {
	le := binary.LittleEndian
	uuid := string(b[:32])
	for _, c := range []byte(uuid) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return nil, fmt.Errorf("lvm: pv header: bad uuid %q", uuid)
		}
	}
	h := &pvHeader{uuid: uuid, devSize: le.Uint64(b[32:])}
	pos := 40
	list := func(what string) ([]area, error) {
		var as []area
		for {
			if pos+16 > len(b) {
				return nil, fmt.Errorf("lvm: pv header: %s list runs past the label sector", what)
			}
			a := area{le.Uint64(b[pos:]), le.Uint64(b[pos+8:])}
			pos += 16
			if a == (area{}) {
				return as, nil
			}
			as = append(as, a)
		}
	}
	var err error
	if h.data, err = list("data area"); err != nil {
		return nil, err
	}
	if h.mdas, err = list("metadata area"); err != nil {
		return nil, err
	}
	if len(h.data) != 1 {
		return nil, fmt.Errorf("lvm: pv header: %d data areas, want 1", len(h.data))
	}
	return h, nil
}

// readMetadataArea checks a metadata area header and returns the parsed
// text it points to, or nil when the area holds none.
func readMetadataArea(r io.ReaderAt, size int64, m area) (*section, error) {
	if m.off < sectorSize || m.size < 2*mdaHeaderSize || m.off > uint64(size) || m.size > uint64(size)-m.off {
		return nil, fmt.Errorf("lvm: metadata area %d+%d outside device", m.off, m.size)
	}
	h := make([]byte, mdaHeaderSize)
	if err := readFull(r, h, int64(m.off)); err != nil {
		return nil, fmt.Errorf("lvm: metadata area at %d: %w", m.off, err)
	}
	le := binary.LittleEndian
	if got, want := lvmCRC(h[4:]), le.Uint32(h[0:]); got != want {
		return nil, fmt.Errorf("lvm: metadata area at %d: header CRC %#08x, want %#08x", m.off, got, want)
	}
	if string(h[4:20]) != mdaMagic || le.Uint32(h[20:]) != 1 {
		return nil, fmt.Errorf("lvm: metadata area at %d: bad magic or version", m.off)
	}
	if le.Uint64(h[24:]) != m.off || le.Uint64(h[32:]) != m.size {
		return nil, fmt.Errorf("lvm: metadata area at %d: header disagrees with pv header", m.off)
	}
	off, n := le.Uint64(h[40:]), le.Uint64(h[48:])
	sum, flags := le.Uint32(h[56:]), le.Uint32(h[60:])
	if off == 0 && n == 0 || flags&rawLocnIgnore != 0 {
		return nil, nil
	}
	// The text lives in a ring after the header and may wrap to its start.
	ring := m.size - mdaHeaderSize
	if off < mdaHeaderSize || off >= m.size || n == 0 || n > maxTextBytes || n > ring {
		return nil, fmt.Errorf("lvm: metadata area at %d: text %d+%d out of range", m.off, off, n)
	}
	text := make([]byte, n)
	first := min(n, m.size-off)
	if err := readFull(r, text[:first], int64(m.off+off)); err != nil {
		return nil, fmt.Errorf("lvm: metadata text: %w", err)
	}
	if first < n {
		if err := readFull(r, text[first:], int64(m.off+mdaHeaderSize)); err != nil {
			return nil, fmt.Errorf("lvm: metadata text: %w", err)
		}
	}
	if got := lvmCRC(text); got != sum {
		return nil, fmt.Errorf("lvm: metadata area at %d: text CRC %#08x, want %#08x", m.off, got, sum)
	}
	return parseText(text)
}

// vgSection returns the name and section of the single volume group.
func vgSection(root *section) (string, *section, error) {
	var name string
	var vg *section
	for _, k := range root.keys {
		if v := root.vals[k]; v.kind == kindSection {
			if vg != nil {
				return "", nil, errors.New("lvm: metadata: more than one volume group")
			}
			name, vg = k, v.sec
		}
	}
	if vg == nil {
		return "", nil, errors.New("lvm: metadata: no volume group")
	}
	return name, vg, nil
}

func seqno(root *section) (int64, error) {
	_, vg, err := vgSection(root)
	if err != nil {
		return 0, err
	}
	n, err := vg.int("seqno")
	if err != nil || n < 0 {
		return 0, fmt.Errorf("lvm: metadata: bad seqno (%v)", err)
	}
	return n, nil
}

// buildVG interprets parsed metadata for the PV pv of a device of size bytes.
func buildVG(root *section, pv *pvHeader, size int64) (*VolumeGroup, error) {
	if c, err := root.str("contents"); err != nil || c != "Text Format Volume Group" {
		return nil, errors.New("lvm: metadata: contents is not \"Text Format Volume Group\"")
	}
	if v, err := root.int("version"); err != nil || v != 1 {
		return nil, errors.New("lvm: metadata: version is not 1")
	}
	name, vs, err := vgSection(root)
	if err != nil {
		return nil, err
	}
	vg := &VolumeGroup{Name: name}
	wrap := func(err error) error { return fmt.Errorf("lvm: volume group %s: %w", name, err) }
	if vg.ID, err = vs.str("id"); err != nil {
		return nil, wrap(err)
	}
	if vg.Seqno, err = vs.int("seqno"); err != nil {
		return nil, wrap(err)
	}
	es, err := vs.int("extent_size")
	if err != nil {
		return nil, wrap(err)
	}
	if es <= 0 || es > 1<<32 {
		return nil, wrap(fmt.Errorf("extent size of %d sectors out of range", es))
	}
	vg.ExtentSize = es * sectorSize

	pvs, err := vs.sub("physical_volumes")
	if err != nil {
		return nil, wrap(err)
	}
	var peStart, peCount int64 = -1, 0
	for _, k := range pvs.keys {
		p, err := pvs.sub(k)
		if err != nil {
			return nil, wrap(err)
		}
		id, err := p.str("id")
		if err != nil {
			return nil, wrap(fmt.Errorf("pv %s: %w", k, err))
		}
		if strings.ReplaceAll(id, "-", "") != pv.uuid {
			continue
		}
		vg.PV = k
		if peStart, err = p.int("pe_start"); err != nil {
			return nil, wrap(fmt.Errorf("pv %s: %w", k, err))
		}
		if peCount, err = p.int("pe_count"); err != nil {
			return nil, wrap(fmt.Errorf("pv %s: %w", k, err))
		}
	}
	if vg.PV == "" {
		return nil, wrap(errors.New("metadata does not list this physical volume"))
	}
	if peStart < 0 || peStart > size/sectorSize || peCount < 0 || peCount > (size-peStart*sectorSize)/vg.ExtentSize {
		return nil, wrap(fmt.Errorf("extents (start sector %d, %d extents) beyond device of %d bytes", peStart, peCount, size))
	}
	if pv.data[0].off != uint64(peStart)*sectorSize {
		return nil, wrap(fmt.Errorf("pe_start %d disagrees with data area at %d", peStart*sectorSize, pv.data[0].off))
	}

	lvs, ok := vs.get("logical_volumes")
	if !ok {
		return vg, nil
	}
	if lvs.kind != kindSection {
		return nil, wrap(errors.New("logical_volumes: not a section"))
	}
	if len(lvs.sec.keys) > maxVolumes {
		return nil, wrap(fmt.Errorf("more than %d logical volumes", maxVolumes))
	}
	for _, k := range lvs.sec.keys {
		ls, err := lvs.sec.sub(k)
		if err != nil {
			return nil, wrap(err)
		}
		lv, err := buildLV(k, ls, vg, peStart*sectorSize, peCount)
		if err != nil {
			return nil, wrap(fmt.Errorf("logical volume %s: %w", k, err))
		}
		vg.Volumes = append(vg.Volumes, lv)
	}
	return vg, nil
}

// buildLV interprets one logical volume. peBase is the byte offset of
// extent 0 on this PV, which has peCount extents.
func buildLV(name string, s *section, vg *VolumeGroup, peBase, peCount int64) (Volume, error) {
	lv := Volume{Name: name, Type: "linear"}
	var err error
	if lv.ID, err = s.str("id"); err != nil {
		return lv, err
	}
	status, err := s.strings("status")
	if err != nil {
		return lv, err
	}
	for _, f := range status {
		lv.Visible = lv.Visible || f == "VISIBLE"
	}
	n, err := s.int("segment_count")
	if err != nil {
		return lv, err
	}
	if n < 1 || n > maxSegments {
		return lv, fmt.Errorf("segment_count %d out of range 1..%d", n, maxSegments)
	}
	var next int64 // next logical extent
	for i := int64(1); i <= n; i++ {
		seg, err := s.sub(fmt.Sprintf("segment%d", i))
		if err != nil {
			return lv, err
		}
		start, err := seg.int("start_extent")
		if err != nil {
			return lv, fmt.Errorf("segment%d: %w", i, err)
		}
		count, err := seg.int("extent_count")
		if err != nil {
			return lv, fmt.Errorf("segment%d: %w", i, err)
		}
		if start != next || count < 1 || count > (1<<62)/vg.ExtentSize-next {
			return lv, fmt.Errorf("segment%d: extents %d+%d do not follow extent %d", i, start, count, next)
		}
		next += count
		typ, err := seg.str("type")
		if err != nil {
			return lv, fmt.Errorf("segment%d: %w", i, err)
		}
		pe, reason, err := linearPE(seg, typ, vg.PV)
		if err != nil {
			return lv, fmt.Errorf("segment%d: %w", i, err)
		}
		if reason != "" {
			if lv.err == nil {
				lv.Type = typ
				lv.err = fmt.Errorf("lvm: volume %s: %s: only linear volumes on this physical volume can be read", name, reason)
			}
			continue
		}
		if pe < 0 || pe > peCount || count > peCount-pe {
			return lv, fmt.Errorf("segment%d: physical extents %d+%d beyond the %d of this volume", i, pe, count, peCount)
		}
		lv.segs = append(lv.segs, extentMap{lvOff: start * vg.ExtentSize, pvOff: peBase + pe*vg.ExtentSize, n: count * vg.ExtentSize})
	}
	lv.Size = next * vg.ExtentSize
	if lv.err != nil {
		lv.segs = nil
	}
	return lv, nil
}

// linearPE returns the first physical extent of a linear segment on this
// PV, or a reason why the segment is not one.
func linearPE(seg *section, typ, pvName string) (int64, string, error) {
	if typ != "striped" {
		return 0, fmt.Sprintf("segment type %q", typ), nil
	}
	sc, err := seg.int("stripe_count")
	if err != nil {
		return 0, "", err
	}
	if sc != 1 {
		return 0, fmt.Sprintf("striped over %d stripes", sc), nil
	}
	v, ok := seg.get("stripes")
	if !ok || v.kind != kindArray || len(v.arr) != 2 || v.arr[0].kind != kindString || v.arr[1].kind != kindInt {
		return 0, "", errors.New("stripes: want [\"pvN\", extent]")
	}
	if v.arr[0].str != pvName {
		return 0, fmt.Sprintf("segment on physical volume %q", v.arr[0].str), nil
	}
	return v.arr[1].num, "", nil
}

// Open returns a reader for the linear volume name.
func (vg *VolumeGroup) Open(name string) (*Reader, error) {
	for _, lv := range vg.Volumes {
		if lv.Name != name {
			continue
		}
		if lv.err != nil {
			return nil, lv.err
		}
		return &Reader{r: vg.r, size: lv.Size, segs: lv.segs}, nil
	}
	return nil, fmt.Errorf("lvm: volume group %s has no logical volume %q", vg.Name, name)
}

// Reader reads a linear logical volume. It is safe for concurrent use when
// the underlying io.ReaderAt is.
type Reader struct {
	r    io.ReaderAt
	size int64
	segs []extentMap // sorted by lvOff, tiling 0..size
}

// Size is the volume size in bytes.
func (v *Reader) Size() int64 { return v.size }

// ReadAt reads volume bytes at off, following io.ReaderAt.
func (v *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("lvm: negative offset %d", off)
	}
	if off >= v.size {
		return 0, io.EOF
	}
	var eof error
	if rest := v.size - off; int64(len(p)) > rest {
		p, eof = p[:rest], io.EOF
	}
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		i := sort.Search(len(v.segs), func(i int) bool { return v.segs[i].lvOff+v.segs[i].n > pos })
		s := v.segs[i] // segments tile the volume, so i is in range
		within := pos - s.lvOff
		chunk := p[n:min(len(p), n+int(min(s.n-within, int64(len(p)-n))))]
		if err := readFull(v.r, chunk, s.pvOff+within); err != nil {
			return n, fmt.Errorf("lvm: read at %d: %w", pos, err)
		}
		n += len(chunk)
	}
	return n, eof
}

// readFull reads exactly len(p) bytes at off.
func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}
