package ext4

import (
	"encoding/binary"
	"fmt"
	"io"
	"sort"
)

// run maps consecutive logical blocks of a file.
type run struct {
	phys  uint64 // first physical block, when !zero
	count uint64 // at least 1
	zero  bool   // a hole or an unwritten extent: reads as zeros
}

// mapBlocks maps logical block lblk of in and up to want-1 blocks after
// it (want >= 1).
func (f *FS) mapBlocks(in *inode, lblk, want uint64) (run, error) {
	if in.flags&flagExtents != 0 {
		return f.mapExtent(in, lblk, want)
	}
	return f.mapIndirect(in, lblk, want)
}

const (
	extMagic       = 0xF30A
	extHeaderSize  = 12
	extEntrySize   = 12
	maxExtentDepth = 5
	maxLogical     = 1 << 32 // extents address 32-bit logical blocks
	initMaxLen     = 32768   // longer ee_len values mark unwritten extents
)

// extNode is a validated extent tree node.
type extNode struct {
	depth   int
	entries []byte // entries * 12 bytes
	n       int
}

func parseExtNode(b []byte, ino uint64) (extNode, error) {
	le := binary.LittleEndian
	if len(b) < extHeaderSize || le.Uint16(b) != extMagic {
		return extNode{}, fmt.Errorf("ext4: inode %d: bad extent header", ino)
	}
	entries, max, depth := int(le.Uint16(b[2:])), int(le.Uint16(b[4:])), int(le.Uint16(b[6:]))
	capacity := (len(b) - extHeaderSize) / extEntrySize
	if max > capacity || entries > max {
		return extNode{}, fmt.Errorf("ext4: inode %d: extent node of %d/%d entries, room for %d", ino, entries, max, capacity)
	}
	if depth > maxExtentDepth {
		return extNode{}, fmt.Errorf("ext4: inode %d: extent tree depth %d over %d", ino, depth, maxExtentDepth)
	}
	nd := extNode{depth: depth, entries: b[extHeaderSize : extHeaderSize+entries*extEntrySize], n: entries}
	// Keys strictly increase; leaf extents do not overlap.
	var end uint64
	for i := range entries {
		start := nd.key(i)
		if i > 0 && start < end {
			return extNode{}, fmt.Errorf("ext4: inode %d: extent entries out of order", ino)
		}
		end = start + 1
		if depth == 0 {
			length, _ := nd.extLen(i)
			if length == 0 || start+length > maxLogical {
				return extNode{}, fmt.Errorf("ext4: inode %d: extent %d+%d invalid", ino, start, length)
			}
			end = start + length
		}
	}
	return nd, nil
}

func (nd extNode) key(i int) uint64 {
	return uint64(binary.LittleEndian.Uint32(nd.entries[i*extEntrySize:]))
}

// extLen returns a leaf extent's length and whether it is unwritten.
func (nd extNode) extLen(i int) (uint64, bool) {
	l := uint64(binary.LittleEndian.Uint16(nd.entries[i*extEntrySize+4:]))
	if l > initMaxLen {
		return l - initMaxLen, true
	}
	return l, false
}

// extStart returns a leaf extent's first physical block.
func (nd extNode) extStart(i int) uint64 {
	e := nd.entries[i*extEntrySize:]
	le := binary.LittleEndian
	return uint64(le.Uint16(e[6:]))<<32 | uint64(le.Uint32(e[8:]))
}

// child returns an index entry's child block.
func (nd extNode) child(i int) uint64 {
	e := nd.entries[i*extEntrySize:]
	le := binary.LittleEndian
	return uint64(le.Uint16(e[8:]))<<32 | uint64(le.Uint32(e[4:]))
}

// find returns the last entry whose key is <= lblk, or -1.
func (nd extNode) find(lblk uint64) int {
	return sort.Search(nd.n, func(i int) bool { return nd.key(i) > lblk }) - 1
}

func (f *FS) mapExtent(in *inode, lblk, want uint64) (run, error) {
	if lblk >= maxLogical {
		return run{zero: true, count: want}, nil
	}
	ino := uint64(in.ino)
	node := in.iblock
	limit := uint64(maxLogical) // the end of the range the current node covers
	parentDepth := -1
	for {
		nd, err := parseExtNode(node, ino)
		if err != nil {
			return run{}, err
		}
		if parentDepth >= 0 && nd.depth != parentDepth-1 {
			return run{}, fmt.Errorf("ext4: inode %d: extent node depth %d under depth %d", ino, nd.depth, parentDepth)
		}
		i := nd.find(lblk)
		if i+1 < nd.n {
			limit = min(limit, nd.key(i+1))
		}
		if nd.depth == 0 {
			if i >= 0 {
				start := nd.key(i)
				length, unwritten := nd.extLen(i)
				if lblk < start+length {
					n := min(start+length-lblk, want)
					if unwritten {
						return run{zero: true, count: n}, nil
					}
					phys := nd.extStart(i)
					if err := f.checkBlocks(phys, length); err != nil {
						return run{}, fmt.Errorf("ext4: inode %d: extent: %w", ino, err)
					}
					return run{phys: phys + (lblk - start), count: n}, nil
				}
			}
			return run{zero: true, count: min(limit-lblk, want)}, nil
		}
		if i < 0 {
			return run{zero: true, count: min(limit-lblk, want)}, nil
		}
		node, err = f.metaBlock(nd.child(i))
		if err != nil {
			return run{}, fmt.Errorf("ext4: inode %d: extent index: %w", ino, err)
		}
		parentDepth = nd.depth
	}
}

// Indirect block maps: 12 direct pointers, then single, double and triple
// indirect blocks.
const nDirect = 12

func (f *FS) mapIndirect(in *inode, lblk, want uint64) (run, error) {
	le := binary.LittleEndian
	k := f.sb.blockSize / 4
	ino := uint64(in.ino)
	var arr []byte // the pointer array holding lblk's entry
	var idx uint64 // lblk's index in arr
	if lblk < nDirect {
		arr, idx = in.iblock[:nDirect*4], lblk
	} else {
		l := lblk - nDirect
		levels, span := uint64(1), k // span: blocks under the top pointer
		for l >= span {
			l -= span
			levels++
			if levels > 3 {
				return run{zero: true, count: want}, nil // beyond the map
			}
			span *= k
		}
		blk := uint64(le.Uint32(in.iblock[(nDirect+levels-1)*4:]))
		for {
			if blk == 0 {
				return run{zero: true, count: min(span-l, want)}, nil
			}
			b, err := f.metaBlock(blk)
			if err != nil {
				return run{}, fmt.Errorf("ext4: inode %d: indirect block: %w", ino, err)
			}
			span /= k // blocks under each pointer of b
			if span == 1 {
				arr, idx = b, l
				break
			}
			blk = uint64(le.Uint32(b[(l/span)*4:]))
			l %= span
		}
	}
	ptrs := uint64(len(arr) / 4)
	first := uint64(le.Uint32(arr[idx*4:]))
	n := uint64(1)
	for idx+n < ptrs && n < want {
		next := uint64(le.Uint32(arr[(idx+n)*4:]))
		if (first == 0 && next != 0) || (first != 0 && next != first+n) {
			break
		}
		n++
	}
	if first == 0 {
		return run{zero: true, count: n}, nil
	}
	if err := f.checkBlocks(first, n); err != nil {
		return run{}, fmt.Errorf("ext4: inode %d: data block: %w", ino, err)
	}
	return run{phys: first, count: n}, nil
}

// reader reads a regular file's (or a link's or directory's) content.
type reader struct {
	f  *FS
	in *inode
}

func (f *FS) newReader(in *inode) *reader { return &reader{f: f, in: in} }

// ReadAt implements io.ReaderAt: reads past the size return io.EOF and
// holes read as zeros.
func (r *reader) ReadAt(p []byte, off int64) (int, error) {
	size := r.in.info.Size
	if off < 0 {
		return 0, fmt.Errorf("ext4: inode %d: negative offset %d", r.in.ino, off)
	}
	if off >= size {
		return 0, io.EOF
	}
	n := len(p)
	var eof error
	if int64(n) > size-off {
		n, eof = int(size-off), io.EOF
	}
	if r.in.flags&flagInlineData != 0 {
		data, err := r.f.inlineData(r.in)
		if err != nil {
			return 0, err
		}
		if int64(len(data)) < size {
			return 0, fmt.Errorf("ext4: inode %d: %d bytes of inline data for size %d", r.in.ino, len(data), size)
		}
		return copy(p[:n], data[off:]), eof
	}
	bs := r.f.sb.blockSize
	done := 0
	for done < n {
		pos := uint64(off) + uint64(done)
		lblk, within := pos/bs, pos%bs
		left := uint64(n - done)
		rn, err := r.f.mapBlocks(r.in, lblk, (within+left+bs-1)/bs)
		if err != nil {
			return done, err
		}
		m := int(min(rn.count*bs-within, left))
		if rn.zero {
			clear(p[done : done+m])
		} else if err := r.f.readAt(p[done:done+m], rn.phys*bs+within); err != nil {
			return done, fmt.Errorf("ext4: inode %d: %w", r.in.ino, err)
		}
		done += m
	}
	return n, eof
}
