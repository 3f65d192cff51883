package partition

import (
	"encoding/binary"
	"hash/crc32"
)

// This file writes partition tables into byte slices, following the UEFI
// and MBR layouts, so tests and fuzz seeds can break exactly one thing.

type mbrSpec struct {
	status byte
	typ    byte
	start  uint32
	count  uint32
}

// putMBR writes a table sector (MBR or EBR) at sector lba.
func putMBR(disk []byte, lba int64, entries ...mbrSpec) {
	s := disk[lba*512:][:512]
	for i, e := range entries {
		b := s[446+16*i:]
		b[0], b[4] = e.status, e.typ
		binary.LittleEndian.PutUint32(b[8:], e.start)
		binary.LittleEndian.PutUint32(b[12:], e.count)
	}
	s[510], s[511] = 0x55, 0xaa
}

// buildLogical returns a disk of sectors with one extended partition at
// extStart holding n logical partitions of size sectors each, every one
// preceded by its EBR.
func buildLogical(sectors int64, extStart uint32, n int, size uint32) []byte {
	disk := make([]byte, sectors*512)
	box := size + 1
	putMBR(disk, 0, mbrSpec{typ: 0x05, start: extStart, count: uint32(n) * box})
	for i := 0; i < n; i++ {
		ebr := int64(extStart) + int64(i)*int64(box)
		link := mbrSpec{}
		if i+1 < n {
			link = mbrSpec{typ: 0x05, start: uint32(i+1) * box, count: box}
		}
		putMBR(disk, ebr, mbrSpec{typ: 0x83, start: 1, count: size}, link)
	}
	return disk
}

type gptSpec struct {
	typ, guid   [16]byte
	first, last uint64
	attrs       uint64
	name        string
}

// guid parses a canonical GUID into its on-disk mixed-endian form.
func guid(s string) [16]byte {
	var b [16]byte
	hex := func(s string) []byte {
		out := make([]byte, len(s)/2)
		for i := range out {
			var v byte
			for _, c := range s[2*i : 2*i+2] {
				v <<= 4
				switch {
				case c >= '0' && c <= '9':
					v |= byte(c - '0')
				default:
					v |= byte(c-'a') + 10
				}
			}
			out[i] = v
		}
		return out
	}
	p := hex(s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36])
	binary.LittleEndian.PutUint32(b[0:], binary.BigEndian.Uint32(p[0:]))
	binary.LittleEndian.PutUint16(b[4:], binary.BigEndian.Uint16(p[4:]))
	binary.LittleEndian.PutUint16(b[6:], binary.BigEndian.Uint16(p[6:]))
	copy(b[8:], p[8:])
	return b
}

// buildGPT returns a disk of sectors (of size ss) with a protective MBR and
// primary and backup GPTs of numEntries entries.
func buildGPT(ss, sectors int64, numEntries int, parts ...gptSpec) []byte {
	disk := make([]byte, ss*sectors)
	putMBR(disk, 0, mbrSpec{typ: 0xee, start: 1, count: uint32(min(sectors-1, 0xffffffff))})
	arr := make([]byte, numEntries*128)
	for i, p := range parts {
		e := arr[i*128:]
		copy(e[0:], p.typ[:])
		copy(e[16:], p.guid[:])
		binary.LittleEndian.PutUint64(e[32:], p.first)
		binary.LittleEndian.PutUint64(e[40:], p.last)
		binary.LittleEndian.PutUint64(e[48:], p.attrs)
		for j, r := range p.name {
			binary.LittleEndian.PutUint16(e[56+2*j:], uint16(r))
		}
	}
	arrSectors := (int64(len(arr)) + ss - 1) / ss
	first, last := uint64(2+arrSectors), uint64(sectors-2-arrSectors)
	copy(disk[2*ss:], arr)
	copy(disk[(sectors-1-arrSectors)*ss:], arr)
	putGPTHeader(disk, ss, 1, uint64(sectors-1), first, last, 2, numEntries, crc32.ChecksumIEEE(arr))
	putGPTHeader(disk, ss, uint64(sectors-1), 1, first, last, uint64(sectors-1-arrSectors), numEntries, crc32.ChecksumIEEE(arr))
	return disk
}

func putGPTHeader(disk []byte, ss int64, my, alt, first, last, entryLBA uint64, n int, arrCRC uint32) {
	h := disk[int64(my)*ss:][:92]
	le := binary.LittleEndian
	copy(h, gptSignature)
	le.PutUint32(h[8:], gptRevision)
	le.PutUint32(h[12:], 92)
	le.PutUint64(h[24:], my)
	le.PutUint64(h[32:], alt)
	le.PutUint64(h[40:], first)
	le.PutUint64(h[48:], last)
	copy(h[56:], []byte("disk-guid-16byte"))
	le.PutUint64(h[72:], entryLBA)
	le.PutUint32(h[80:], uint32(n))
	le.PutUint32(h[84:], 128)
	le.PutUint32(h[88:], arrCRC)
	fixHeaderCRC(disk, ss, my)
}

// fixHeaderCRC recomputes the CRC32 of the GPT header at LBA lba.
func fixHeaderCRC(disk []byte, ss int64, lba uint64) {
	h := disk[int64(lba)*ss:]
	size := binary.LittleEndian.Uint32(h[12:])
	if int64(size) > ss {
		size = 92
	}
	binary.LittleEndian.PutUint32(h[16:], 0)
	binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:size]))
}

// editGPT applies f to both headers and both entry arrays of a valid GPT
// disk (sector size ss), then makes every CRC consistent again, so that
// only the semantic change f made remains.
func editGPT(disk []byte, ss int64, f func(hdr, arr []byte)) {
	le := binary.LittleEndian
	for _, lba := range []uint64{1, uint64(int64(len(disk))/ss - 1)} {
		h := disk[int64(lba)*ss:][:ss]
		entryLBA := le.Uint64(h[72:])
		n := int64(le.Uint32(h[80:])) * int64(le.Uint32(h[84:]))
		arr := disk[int64(entryLBA)*ss:][:n]
		f(h, arr)
		// f may have changed the array's size fields: CRC what is there now.
		n = min(int64(le.Uint32(h[80:]))*int64(le.Uint32(h[84:])), int64(len(disk))-int64(entryLBA)*ss)
		le.PutUint32(h[88:], crc32.ChecksumIEEE(disk[int64(entryLBA)*ss:][:n]))
		fixHeaderCRC(disk, ss, lba)
	}
}
