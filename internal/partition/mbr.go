package partition

import (
	"encoding/binary"
	"fmt"
	"io"
)

const mbrSector = 512

// mbrEntry is one 16-byte partition entry of an MBR or EBR.
type mbrEntry struct {
	status byte
	typ    byte
	start  uint32 // LBA, relative to what the table says
	count  uint32 // sectors
}

func isExtendedType(t byte) bool { return t == 0x05 || t == 0x0f || t == 0x85 }

// parseMBRSector returns the four entries of an MBR or EBR sector, or false
// when the sector has no 0x55AA signature or a status byte other than 0x00
// and 0x80 (then it is not a partition table, e.g. a filesystem's boot
// sector).
func parseMBRSector(b []byte) ([4]mbrEntry, bool) {
	var es [4]mbrEntry
	if b[510] != 0x55 || b[511] != 0xaa {
		return es, false
	}
	for i := range es {
		e := b[446+16*i:]
		es[i] = mbrEntry{
			status: e[0],
			typ:    e[4],
			start:  binary.LittleEndian.Uint32(e[8:]),
			count:  binary.LittleEndian.Uint32(e[12:]),
		}
		if es[i].status != 0 && es[i].status != 0x80 {
			return es, false
		}
	}
	return es, true
}

func mbrPartition(index int, e mbrEntry, startLBA int64) Partition {
	typ := fmt.Sprintf("0x%02x", e.typ)
	return Partition{
		Index:    index,
		Start:    startLBA * mbrSector,
		Size:     int64(e.count) * mbrSector,
		Type:     typ,
		TypeName: mbrTypeName(e.typ),
		Bootable: e.status == 0x80,
	}
}

// readMBR builds the table from the primary entries and the EBR chain.
func readMBR(r io.ReaderAt, size int64, entries [4]mbrEntry) (*Table, error) {
	sectors := size / mbrSector
	t := &Table{Scheme: "mbr", SectorSize: mbrSector}
	var data []Partition // partitions that must not overlap
	var ext *Partition
	for i, e := range entries {
		if e.typ == 0 || e.count == 0 {
			continue // unused slot; Linux keeps slot numbers
		}
		if e.start == 0 {
			return nil, fmt.Errorf("partition: mbr: partition %d starts at sector 0", i+1)
		}
		if int64(e.start)+int64(e.count) > sectors {
			return nil, fmt.Errorf("partition: mbr: partition %d (sectors %d+%d) beyond disk end (%d sectors)", i+1, e.start, e.count, sectors)
		}
		p := mbrPartition(i+1, e, int64(e.start))
		if isExtendedType(e.typ) {
			if ext != nil {
				return nil, fmt.Errorf("partition: mbr: second extended partition %d", i+1)
			}
			ext = &p
		}
		data = append(data, p) // the extended range must not overlap primaries either
		t.Partitions = append(t.Partitions, p)
	}
	if err := checkOverlap(data); err != nil {
		return nil, fmt.Errorf("partition: mbr: %w", err)
	}
	if ext != nil {
		logical, err := readEBRChain(r, ext)
		if err != nil {
			return nil, err
		}
		if err := checkOverlap(logical); err != nil {
			return nil, fmt.Errorf("partition: mbr: %w", err)
		}
		t.Partitions = append(t.Partitions, logical...)
	}
	return t, nil
}

// readEBRChain follows the linked list of EBRs inside the extended
// partition ext. Each EBR's first entry is a logical partition relative to
// that EBR; its second entry links to the next EBR, relative to the start
// of the extended partition.
func readEBRChain(r io.ReaderAt, ext *Partition) ([]Partition, error) {
	extStart := ext.Start / mbrSector
	extEnd := extStart + ext.Size/mbrSector // exclusive
	var logical []Partition
	seen := map[int64]bool{}
	ebr := extStart
	var sector [mbrSector]byte
	for hops := 0; ; hops++ {
		if hops == maxLogical {
			return nil, fmt.Errorf("partition: mbr: more than %d EBRs in the extended partition", maxLogical)
		}
		if seen[ebr] {
			return nil, fmt.Errorf("partition: mbr: EBR chain loops back to sector %d", ebr)
		}
		seen[ebr] = true
		if err := readFull(r, sector[:], ebr*mbrSector); err != nil {
			return nil, fmt.Errorf("partition: mbr: EBR at sector %d: %w", ebr, err)
		}
		es, ok := parseMBRSector(sector[:])
		if !ok {
			return nil, fmt.Errorf("partition: mbr: EBR at sector %d: no valid signature or status", ebr)
		}
		if es[2] != (mbrEntry{}) || es[3] != (mbrEntry{}) {
			return nil, fmt.Errorf("partition: mbr: EBR at sector %d: entries 3 and 4 are not empty", ebr)
		}
		if l := es[0]; l.typ != 0 && l.count != 0 {
			if isExtendedType(l.typ) {
				return nil, fmt.Errorf("partition: mbr: EBR at sector %d: first entry is an extended partition", ebr)
			}
			start := ebr + int64(l.start)
			if l.start == 0 || start+int64(l.count) > extEnd {
				return nil, fmt.Errorf("partition: mbr: logical partition at sector %d+%d outside extended partition %d..%d", start, l.count, extStart, extEnd)
			}
			logical = append(logical, mbrPartition(5+len(logical), l, start))
		}
		link := es[1]
		if link.typ == 0 && link.start == 0 && link.count == 0 {
			return logical, nil
		}
		if !isExtendedType(link.typ) {
			return nil, fmt.Errorf("partition: mbr: EBR at sector %d: link of type %#02x", ebr, link.typ)
		}
		next := extStart + int64(link.start)
		if next >= extEnd || next+int64(link.count) > extEnd {
			return nil, fmt.Errorf("partition: mbr: EBR at sector %d: link to sector %d+%d outside extended partition", ebr, next, link.count)
		}
		ebr = next
	}
}
