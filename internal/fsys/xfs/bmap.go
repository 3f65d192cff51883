package xfs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"
)

const (
	bmapMagicV4  = 0x424d4150 // "BMAP"
	bmapMagicV5  = 0x424d4133 // "BMA3"
	bmbtHdrV4    = 24
	bmbtHdrV5    = 72
	bmbtCRCOff   = 64
	bmbtRecSize  = 16
	bmdrHdrSize  = 4
	maxFileBlock = 1 << 54 // startoff is 54 bits wide
)

// extent maps count logical blocks at off to filesystem block start.
type extent struct {
	off       uint64
	start     uint64 // filesystem block number (AG number << agblklog | AG block)
	count     uint64
	unwritten bool
}

// unpackExtent decodes a packed 128-bit bmbt record: 1 bit unwritten flag,
// 54 bits logical offset, 52 bits start block, 21 bits block count.
func unpackExtent(b []byte) extent {
	l0 := binary.BigEndian.Uint64(b[0:])
	l1 := binary.BigEndian.Uint64(b[8:])
	return extent{
		unwritten: l0>>63 != 0,
		off:       (l0 & (1<<63 - 1)) >> 9,
		start:     (l0&(1<<9-1))<<43 | l1>>21,
		count:     l1 & (1<<21 - 1),
	}
}

// extentList collects extents, checking each as it is added.
type extentList struct {
	f   *FS
	ino uint64
	ext []extent
}

func (l *extentList) add(e extent) error {
	if len(l.ext) >= MaxExtents {
		return corrupt("inode %d: more than %d extents", l.ino, MaxExtents)
	}
	if e.count == 0 || e.off >= maxFileBlock || e.count > maxFileBlock-e.off {
		return corrupt("inode %d: extent at block %d of %d blocks", l.ino, e.off, e.count)
	}
	if n := len(l.ext); n > 0 {
		if p := l.ext[n-1]; e.off < p.off+p.count {
			return corrupt("inode %d: extent at block %d overlaps or precedes the one at %d", l.ino, e.off, p.off)
		}
	}
	if _, err := l.f.sb.blockPos(e.start, e.count); err != nil {
		return fmt.Errorf("inode %d: extent at block %d: %w", l.ino, e.off, err)
	}
	l.ext = append(l.ext, e)
	return nil
}

// extents returns the checked, sorted extent list of an inode's data fork
// in extents or btree format.
func (f *FS) extents(in *inode) ([]extent, error) {
	l := &extentList{f: f, ino: in.ino}
	switch in.format {
	case fmtExtents:
		if in.nextents > uint64(len(in.fork)/bmbtRecSize) {
			return nil, corrupt("inode %d: %d extents do not fit the fork", in.ino, in.nextents)
		}
		for i := 0; i < int(in.nextents); i++ {
			if err := l.add(unpackExtent(in.fork[i*bmbtRecSize:])); err != nil {
				return nil, err
			}
		}
	case fmtBtree:
		if err := f.walkBtree(in, l); err != nil {
			return nil, err
		}
		if uint64(len(l.ext)) != in.nextents {
			return nil, corrupt("inode %d: btree holds %d extents, inode records %d", in.ino, len(l.ext), in.nextents)
		}
	default:
		return nil, corrupt("inode %d: data fork format %d has no extents", in.ino, in.format)
	}
	return l.ext, nil
}

// btreeWalk is the state of one depth-first block map btree walk.
type btreeWalk struct {
	f       *FS
	ino     uint64
	list    *extentList
	visited map[uint64]bool
}

// walkBtree reads the btree root in the inode fork and every block below.
func (f *FS) walkBtree(in *inode, l *extentList) error {
	be := binary.BigEndian
	if len(in.fork) < bmdrHdrSize+bmbtRecSize {
		return corrupt("inode %d: fork too small for a btree root", in.ino)
	}
	level := int(be.Uint16(in.fork[0:]))
	numrecs := int(be.Uint16(in.fork[2:]))
	maxrecs := (len(in.fork) - bmdrHdrSize) / bmbtRecSize
	if level < 1 || level > maxBtreeLevels || numrecs < 1 || numrecs > maxrecs {
		return corrupt("inode %d: btree root level %d with %d records", in.ino, level, numrecs)
	}
	w := &btreeWalk{f: f, ino: in.ino, list: l, visited: make(map[uint64]bool)}
	ptrs := in.fork[bmdrHdrSize+maxrecs*8:]
	for i := 0; i < numrecs; i++ {
		if err := w.visit(be.Uint64(ptrs[i*8:]), level-1); err != nil {
			return err
		}
	}
	return nil
}

// visit reads the btree block fsbno, which must be at the given level.
func (w *btreeWalk) visit(fsbno uint64, level int) error {
	f := w.f
	be := binary.BigEndian
	if w.visited[fsbno] {
		return corrupt("inode %d: btree block %d reached twice (loop)", w.ino, fsbno)
	}
	if len(w.visited) >= maxBtreeBlocks {
		return corrupt("inode %d: btree has more than %d blocks", w.ino, maxBtreeBlocks)
	}
	w.visited[fsbno] = true
	pos, err := f.sb.blockPos(fsbno, 1)
	if err != nil {
		return fmt.Errorf("inode %d: btree pointer: %w", w.ino, err)
	}
	b, err := f.block(pos)
	if err != nil {
		return err
	}
	hdr := bmbtHdrV4
	magic := uint32(bmapMagicV4)
	if f.sb.v5 {
		hdr, magic = bmbtHdrV5, bmapMagicV5
	}
	if m := be.Uint32(b[0:]); m != magic {
		return corrupt("inode %d: btree block %d: bad magic %#08x", w.ino, fsbno, m)
	}
	if f.sb.v5 {
		if err := w.checkV5Header(b, pos, fsbno); err != nil {
			return err
		}
	}
	maxrecs := (len(b) - hdr) / bmbtRecSize
	numrecs := int(be.Uint16(b[6:]))
	if got := int(be.Uint16(b[4:])); got != level || numrecs < 1 || numrecs > maxrecs {
		return corrupt("inode %d: btree block %d: level %d (want %d), %d records", w.ino, fsbno, got, level, numrecs)
	}
	if level == 0 {
		for i := 0; i < numrecs; i++ {
			if err := w.list.add(unpackExtent(b[hdr+i*bmbtRecSize:])); err != nil {
				return err
			}
		}
		return nil
	}
	ptrs := b[hdr+maxrecs*8:]
	for i := 0; i < numrecs; i++ {
		if err := w.visit(be.Uint64(ptrs[i*8:]), level-1); err != nil {
			return err
		}
	}
	return nil
}

// checkV5Header checks the self-describing part of a v5 btree block.
func (w *btreeWalk) checkV5Header(b []byte, pos int64, fsbno uint64) error {
	be := binary.BigEndian
	f := w.f
	if be.Uint64(b[24:]) != daddr(pos) || be.Uint64(b[56:]) != w.ino || !bytes.Equal(b[40:56], f.sb.metaUUID[:]) {
		return corrupt("inode %d: btree block %d: wrong address, owner or uuid", w.ino, fsbno)
	}
	return f.checkCRC(b, bmbtCRCOff, "btree block")
}

// lookup returns the index of the first extent that ends after logical
// block lb, or len(ext) if none does.
func lookup(ext []extent, lb uint64) int {
	return sort.Search(len(ext), func(i int) bool { return ext[i].off+ext[i].count > lb })
}
