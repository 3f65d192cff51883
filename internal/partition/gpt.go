package partition

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"unicode/utf16"
)

const (
	gptSignature   = "EFI PART"
	gptRevision    = 0x00010000
	gptMinHeader   = 92
	gptMinEntry    = 128
	gptNameOffset  = 56
	gptNameBytes   = 72
	attrLegacyBoot = 1 << 2
)

// gptHeader holds the fields of a GPT header.
type gptHeader struct {
	myLBA, altLBA           uint64
	firstUsable, lastUsable uint64
	entryLBA                uint64
	numEntries, entrySize   uint32
	entriesCRC              uint32
	lbas                    uint64 // sectors on the disk
}

// readGPT reads the GPT behind a protective MBR, trying 512- and 4096-byte
// sectors and the primary before the backup header.
func readGPT(r io.ReaderAt, size int64) (*Table, error) {
	var errs []error
	for _, backup := range []bool{false, true} {
		for _, ss := range []int64{512, 4096} {
			t, err := readGPTAt(r, size, ss, backup)
			if err == nil {
				return t, nil
			}
			if !errors.Is(err, errNoSignature) {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) == 0 {
		return nil, errors.New("partition: gpt: protective MBR but no GPT header")
	}
	return nil, fmt.Errorf("partition: gpt: no valid header: %w", errors.Join(errs...))
}

var errNoSignature = errors.New("no GPT signature")

// readGPTAt reads and checks the primary (LBA 1) or backup (last LBA)
// header and its entry array for sector size ss.
func readGPTAt(r io.ReaderAt, size, ss int64, backup bool) (*Table, error) {
	lbas := size / ss
	if lbas < 3 {
		return nil, errNoSignature
	}
	lba, which := int64(1), "primary"
	if backup {
		lba, which = lbas-1, "backup"
	}
	buf := make([]byte, ss)
	if err := readFull(r, buf, lba*ss); err != nil {
		return nil, fmt.Errorf("%s header (sector size %d): %w", which, ss, err)
	}
	if string(buf[:8]) != gptSignature {
		return nil, errNoSignature
	}
	h, err := parseGPTHeader(buf, uint64(lba), uint64(lbas))
	if err != nil {
		return nil, fmt.Errorf("%s header (sector size %d): %w", which, ss, err)
	}
	parts, err := readGPTEntries(r, h, ss, backup)
	if err != nil {
		return nil, fmt.Errorf("%s header (sector size %d): %w", which, ss, err)
	}
	return &Table{Scheme: "gpt", SectorSize: int(ss), Partitions: parts, Backup: backup}, nil
}

// parseGPTHeader checks the header in b, read from LBA lba of a disk of
// lbas sectors.
func parseGPTHeader(b []byte, lba, lbas uint64) (gptHeader, error) {
	le := binary.LittleEndian
	if rev := le.Uint32(b[8:]); rev != gptRevision {
		return gptHeader{}, fmt.Errorf("revision %#x, want 1.0", rev)
	}
	hsize := le.Uint32(b[12:])
	if hsize < gptMinHeader || int(hsize) > len(b) {
		return gptHeader{}, fmt.Errorf("header size %d out of range", hsize)
	}
	want := le.Uint32(b[16:])
	tmp := bytes.Clone(b[:hsize])
	clear(tmp[16:20])
	if got := crc32.ChecksumIEEE(tmp); got != want {
		return gptHeader{}, fmt.Errorf("header CRC32 %#08x, want %#08x", got, want)
	}
	if le.Uint32(b[20:]) != 0 {
		return gptHeader{}, errors.New("reserved field not zero")
	}
	h := gptHeader{
		myLBA:       le.Uint64(b[24:]),
		altLBA:      le.Uint64(b[32:]),
		firstUsable: le.Uint64(b[40:]),
		lastUsable:  le.Uint64(b[48:]),
		entryLBA:    le.Uint64(b[72:]),
		numEntries:  le.Uint32(b[80:]),
		entrySize:   le.Uint32(b[84:]),
		entriesCRC:  le.Uint32(b[88:]),
		lbas:        lbas,
	}
	switch {
	case h.myLBA != lba:
		return h, fmt.Errorf("header says it is at LBA %d, read at %d", h.myLBA, lba)
	case h.firstUsable > h.lastUsable || h.lastUsable >= lbas || h.firstUsable < 2:
		return h, fmt.Errorf("usable LBAs %d..%d outside disk of %d sectors", h.firstUsable, h.lastUsable, lbas)
	case h.numEntries == 0 || h.numEntries > maxGPTEntries:
		return h, fmt.Errorf("%d partition entries, want 1..%d", h.numEntries, maxGPTEntries)
	case h.entrySize < gptMinEntry || h.entrySize%8 != 0 || h.entrySize > maxEntrySize:
		return h, fmt.Errorf("partition entry size %d, want a multiple of 8 in %d..%d", h.entrySize, gptMinEntry, maxEntrySize)
	}
	return h, nil
}

// readGPTEntries reads the entry array of h, checks its CRC32 and returns
// the used entries.
func readGPTEntries(r io.ReaderAt, h gptHeader, ss int64, backup bool) ([]Partition, error) {
	n := int64(h.numEntries) * int64(h.entrySize)
	arrLBAs := uint64((n + ss - 1) / ss)
	// The array lies outside the usable area: before it for the primary,
	// after it (and before the backup header) for the backup.
	if h.entryLBA < 2 || h.entryLBA >= h.lbas {
		return nil, fmt.Errorf("entry array at LBA %d out of range", h.entryLBA)
	}
	end := h.entryLBA + arrLBAs // exclusive
	if backup {
		if h.entryLBA <= h.lastUsable || end > h.myLBA {
			return nil, fmt.Errorf("backup entry array at LBAs %d..%d overlaps usable area or header", h.entryLBA, end-1)
		}
	} else if h.entryLBA <= h.myLBA || end > h.firstUsable {
		return nil, fmt.Errorf("entry array at LBAs %d..%d overlaps usable area or header", h.entryLBA, end-1)
	}
	arr := make([]byte, n)
	if err := readFull(r, arr, int64(h.entryLBA)*ss); err != nil {
		return nil, fmt.Errorf("entry array: %w", err)
	}
	if got := crc32.ChecksumIEEE(arr); got != h.entriesCRC {
		return nil, fmt.Errorf("entry array CRC32 %#08x, want %#08x", got, h.entriesCRC)
	}
	var parts []Partition
	for i := range int(h.numEntries) {
		e := arr[i*int(h.entrySize):][:h.entrySize]
		if bytes.Equal(e[:16], make([]byte, 16)) {
			continue // unused entry
		}
		first := binary.LittleEndian.Uint64(e[32:])
		last := binary.LittleEndian.Uint64(e[40:])
		if first < h.firstUsable || last > h.lastUsable || first > last {
			return nil, fmt.Errorf("partition %d (LBAs %d..%d) outside usable LBAs %d..%d", i+1, first, last, h.firstUsable, h.lastUsable)
		}
		typ := formatGUID(e[0:16])
		parts = append(parts, Partition{
			Index:    i + 1,
			Start:    int64(first) * ss,
			Size:     int64(last-first+1) * ss,
			Type:     typ,
			TypeName: gptTypeName(typ),
			Name:     decodeName(e[gptNameOffset : gptNameOffset+gptNameBytes]),
			GUID:     formatGUID(e[16:32]),
			Bootable: binary.LittleEndian.Uint64(e[48:])&attrLegacyBoot != 0,
		})
	}
	if err := checkOverlap(parts); err != nil {
		return nil, err
	}
	return parts, nil
}

// formatGUID formats a GUID stored in the mixed-endian on-disk layout.
func formatGUID(b []byte) string {
	le := binary.LittleEndian
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", le.Uint32(b[0:]), le.Uint16(b[4:]), le.Uint16(b[6:]), b[8:10], b[10:16])
}

// decodeName decodes a NUL-terminated UTF-16LE name; invalid code units
// become U+FFFD and control characters are dropped.
func decodeName(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, string(utf16.Decode(u)))
}
