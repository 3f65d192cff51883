// Package partition reads a disk's partition table: GPT (UEFI 2.x) or MBR
// with an extended partition's chain of EBRs, and reports each partition as
// a byte range of the disk.
//
// Guarantees: only the io.ReaderAt given is read, and never past the size
// given. A GPT header and its entry array are accepted only when both
// CRC32s match and every field is consistent (signature, revision 1.0,
// header size, own LBA, usable range inside the disk, entry array outside
// the usable range, entry size a multiple of 8 of at least 128 bytes, at most
// 1024 entries); when the primary fails, the backup at the disk's last LBA
// is used and Table.Backup says so. Sector sizes 512 and 4096 are tried. An
// MBR's EBR chain is followed for at most 128 logical partitions and an EBR
// seen twice is an error (a loop). Every partition must lie inside the disk
// (logical partitions inside their extended partition), and no two data
// partitions may overlap. Anything else is an error, never a guess.
//
// A disk without a partition table (no 0x55AA signature, an MBR whose
// status bytes are not 0x00/0x80, as with a bare filesystem, or an MBR with
// no used entry) reads as Scheme "none" with no partitions: the caller then
// treats the whole disk as one filesystem. A protective MBR (type 0xee)
// always means GPT; a broken GPT behind it is an error, not "none".
package partition

import (
	"errors"
	"fmt"
	"io"
	"slices"
)

// Table is a disk's partition table.
type Table struct {
	// Scheme is "gpt", "mbr" or "none".
	Scheme string
	// SectorSize is the logical sector size the table uses (512 or 4096;
	// 512 for MBR and none).
	SectorSize int
	// Partitions are ordered by Index. For MBR the extended partition
	// itself is listed (TypeName "Extended"); it holds no filesystem.
	Partitions []Partition
	// Backup is set when the primary GPT header or entry array was damaged
	// and the backup copy was used.
	Backup bool
}

// Partition is one entry of a partition table.
type Partition struct {
	// Index numbers the partition as Linux does: the GPT entry slot plus
	// one; MBR primaries 1-4 by slot, logical partitions from 5.
	Index int
	// Start and Size are in bytes from the start of the disk.
	Start, Size int64
	// Type is the GPT type GUID in canonical lower-case form, or the MBR
	// type as "0x83".
	Type string
	// TypeName is the well-known name of Type ("Linux filesystem", "EFI
	// System", ...), or "" when the type is not known.
	TypeName string
	// Name is the GPT partition name (UTF-16 in the table); "" for MBR.
	Name string
	// GUID is the GPT unique partition GUID; "" for MBR.
	GUID string
	// Bootable is the MBR active flag, or GPT attribute bit 2 (legacy
	// BIOS bootable).
	Bootable bool
}

// Section returns the partition's bytes of the disk r.
func (p Partition) Section(r io.ReaderAt) *io.SectionReader {
	return io.NewSectionReader(r, p.Start, p.Size)
}

// IsExtended reports whether p is an MBR extended partition (a container
// of logical partitions, not a filesystem).
func (p Partition) IsExtended() bool {
	return p.Type == "0x05" || p.Type == "0x0f" || p.Type == "0x85"
}

// Limits.
const (
	maxLogical    = 128
	maxGPTEntries = 1024
	maxEntrySize  = 4096
)

// Read reads the partition table of the disk r of size bytes.
func Read(r io.ReaderAt, size int64) (*Table, error) {
	if size < 0 {
		return nil, fmt.Errorf("partition: negative disk size %d", size)
	}
	none := &Table{Scheme: "none", SectorSize: 512}
	if size < 512 {
		return none, nil
	}
	var mbr [512]byte
	if err := readFull(r, mbr[:], 0); err != nil {
		return nil, fmt.Errorf("partition: mbr: %w", err)
	}
	entries, ok := parseMBRSector(mbr[:])
	if !ok {
		return none, nil
	}
	used := false
	for _, e := range entries {
		if e.typ == 0xee {
			t, err := readGPT(r, size)
			if err != nil {
				return nil, err
			}
			return t, nil
		}
		used = used || e.typ != 0
	}
	if !used {
		return none, nil
	}
	t, err := readMBR(r, size, entries)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// checkOverlap reports an error if two of the partitions overlap.
func checkOverlap(parts []Partition) error {
	s := slices.Clone(parts)
	slices.SortFunc(s, func(a, b Partition) int {
		switch {
		case a.Start < b.Start:
			return -1
		case a.Start > b.Start:
			return 1
		}
		return 0
	})
	for i := 1; i < len(s); i++ {
		if s[i].Start < s[i-1].Start+s[i-1].Size {
			return fmt.Errorf("partitions %d and %d overlap", s[i-1].Index, s[i].Index)
		}
	}
	return nil
}

var errShort = errors.New("short read")

// readFull reads exactly len(p) bytes at off.
func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = errShort
	}
	return err
}
