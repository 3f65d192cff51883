package rpm

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
)

// The NDB format (rpm's lib/backend/ndb/rpmpkg.c, used by SUSE for
// Packages.db), all little-endian:
//
//	header (32 bytes): magic "RpmP", version 0, generation, slot pages, 4 reserved
//	slot pages: (slot pages × 4096 - 32) bytes of 16-byte slots, right after the header:
//	    magic "Slot", package index (0: free), block offset, block count
//	blobs at block offset × 16: magic "BlbS", package index, checksum, length,
//	    then length bytes of header, then a tail
const (
	ndbMagic      = 'R' | 'p'<<8 | 'm'<<16 | 'P'<<24
	ndbSlotMagic  = 'S' | 'l'<<8 | 'o'<<16 | 't'<<24
	ndbBlobMagic  = 'B' | 'l'<<8 | 'b'<<16 | 'S'<<24
	ndbHeaderSize = 32
	ndbSlotSize   = 16
	ndbPageSize   = 4096
	ndbBlockSize  = 16
	// ndbMaxSlotPages is rpm's own sanity limit.
	ndbMaxSlotPages = 2048
)

// readNDB calls fn with each package header blob of the NDB database in r
// (size bytes), in slot order. Every slot, block and length is checked
// against size before it is read, and no two slots may share a block.
// The blob checksums are not verified.
func readNDB(r io.ReaderAt, size int64, fn func(blob []byte) error) error {
	var h [ndbHeaderSize]byte
	if err := readFull(r, h[:], 0, size); err != nil {
		return fmt.Errorf("rpm ndb: header: %w", err)
	}
	if binary.LittleEndian.Uint32(h[0:]) != ndbMagic || binary.LittleEndian.Uint32(h[4:]) != 0 {
		return fmt.Errorf("rpm ndb: bad magic or version")
	}
	pages := int64(binary.LittleEndian.Uint32(h[12:]))
	if pages < 1 || pages > ndbMaxSlotPages || pages*ndbPageSize > size {
		return fmt.Errorf("rpm ndb: %d slot pages in a %d-byte file", pages, size)
	}
	slots := make([]byte, pages*ndbPageSize-ndbHeaderSize)
	if err := readFull(r, slots, ndbHeaderSize, size); err != nil {
		return fmt.Errorf("rpm ndb: slots: %w", err)
	}
	type slot struct {
		pkg         uint32
		off, blocks int64
	}
	var used []slot
	seen := make(map[uint32]bool)
	for i := 0; i+ndbSlotSize <= len(slots); i += ndbSlotSize {
		s := slots[i : i+ndbSlotSize]
		if binary.LittleEndian.Uint32(s[0:]) != ndbSlotMagic {
			return fmt.Errorf("rpm ndb: slot %d: bad magic", i/ndbSlotSize)
		}
		pkg := binary.LittleEndian.Uint32(s[4:])
		if pkg == 0 {
			continue // free slot
		}
		if seen[pkg] {
			return fmt.Errorf("rpm ndb: package index %d in two slots", pkg)
		}
		seen[pkg] = true
		off := int64(binary.LittleEndian.Uint32(s[8:])) * ndbBlockSize
		blocks := int64(binary.LittleEndian.Uint32(s[12:]))
		if off < pages*ndbPageSize || off+blocks*ndbBlockSize > size {
			return fmt.Errorf("rpm ndb: package %d: blocks %d+%d outside the file", pkg, off, blocks*ndbBlockSize)
		}
		used = append(used, slot{pkg, off, blocks})
	}
	// Like rpm, refuse slots whose blocks overlap: nested blobs would let a
	// file be read again for every slot, far beyond its size.
	byOff := slices.Clone(used)
	slices.SortFunc(byOff, func(a, b slot) int { return cmp.Compare(a.off, b.off) })
	for i := 1; i < len(byOff); i++ {
		if prev := byOff[i-1]; byOff[i].off < prev.off+prev.blocks*ndbBlockSize {
			return fmt.Errorf("rpm ndb: packages %d and %d: blocks overlap", prev.pkg, byOff[i].pkg)
		}
	}
	for _, sl := range used {
		pkg, off, blocks := sl.pkg, sl.off, sl.blocks
		var bh [16]byte
		if err := readFull(r, bh[:], off, size); err != nil {
			return fmt.Errorf("rpm ndb: package %d: blob header: %w", pkg, err)
		}
		if binary.LittleEndian.Uint32(bh[0:]) != ndbBlobMagic || binary.LittleEndian.Uint32(bh[4:]) != pkg {
			return fmt.Errorf("rpm ndb: package %d: bad blob header", pkg)
		}
		n := int64(binary.LittleEndian.Uint32(bh[12:]))
		if n > MaxHeaderSize || 16+n > blocks*ndbBlockSize {
			return fmt.Errorf("rpm ndb: package %d: blob of %d bytes in %d blocks", pkg, n, blocks)
		}
		blob := make([]byte, n)
		if err := readFull(r, blob, off+16, size); err != nil {
			return fmt.Errorf("rpm ndb: package %d: blob: %w", pkg, err)
		}
		if err := fn(blob); err != nil {
			return err
		}
	}
	return nil
}

// readFull reads len(b) bytes at off, which must lie within size.
func readFull(r io.ReaderAt, b []byte, off, size int64) error {
	if off < 0 || off > size || int64(len(b)) > size-off {
		return fmt.Errorf("%d bytes at %d beyond the end (%d)", len(b), off, size)
	}
	n, err := r.ReadAt(b, off)
	if n < len(b) {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("short read at %d: %w", off, err)
	}
	return nil
}
