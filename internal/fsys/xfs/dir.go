package xfs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io/fs"

	"github.com/vmtrust/vmtrust/internal/fsys"
)

const (
	dir2BlockMagic = 0x58443242 // "XD2B": single-block directory, v4
	dir2DataMagic  = 0x58443244 // "XD2D": data block of a leaf/node directory, v4
	dir3BlockMagic = 0x58444233 // "XDB3"
	dir3DataMagic  = 0x58444433 // "XDD3"
	dir2DataHdr    = 16         // magic + 3 bestfree pairs
	dir3DataHdr    = 64         // xfs_dir3_blk_hdr + bestfree + pad
	dir3CRCOff     = 4
	dirBlockTail   = 8 // count and stale of a single-block directory
	dirLeafEntry   = 8 // hash and address
	dirFreeTag     = 0xffff
	// dirLeafOffset is where the leaf/node index space starts (32 GiB):
	// directory entries live only below it.
	dirLeafOffset = 1 << 35
)

// dirList accumulates the entries of one directory with its checks.
type dirList struct {
	f       *FS
	ino     uint64
	seen    map[string]struct{}
	entries []fsys.DirEntry
}

// ReadDir lists directory ino, without "." and "..".
func (f *FS) ReadDir(ino fsys.Ino) ([]fsys.DirEntry, error) {
	ents, err := f.readDir(ino)
	if err != nil {
		return nil, fmt.Errorf("xfs: %w", err)
	}
	return ents, nil
}

func (f *FS) readDir(ino fsys.Ino) ([]fsys.DirEntry, error) {
	in, err := f.readInode(uint64(ino))
	if err != nil {
		return nil, err
	}
	if !in.mode.IsDir() {
		return nil, fmt.Errorf("inode %d is not a directory", ino)
	}
	d := &dirList{f: f, ino: in.ino, seen: make(map[string]struct{})}
	if in.format == fmtLocal {
		err = d.shortform(in)
	} else {
		err = d.blocks(in)
	}
	if err != nil {
		return nil, err
	}
	if d.entries == nil {
		d.entries = []fsys.DirEntry{}
	}
	return d.entries, nil
}

// add checks one entry and appends it; "." and ".." are dropped.
func (d *dirList) add(name []byte, ino uint64, ftype int) error {
	if len(name) == 0 || bytes.IndexByte(name, '/') >= 0 || bytes.IndexByte(name, 0) >= 0 {
		return corrupt("directory %d: bad name %q", d.ino, name)
	}
	if string(name) == "." || string(name) == ".." {
		return nil
	}
	if len(d.entries) >= MaxDirEntries {
		return corrupt("directory %d: more than %d entries", d.ino, MaxDirEntries)
	}
	if _, err := d.f.sb.inodePos(ino); err != nil {
		return fmt.Errorf("directory %d: entry %q: %w", d.ino, name, err)
	}
	e := fsys.DirEntry{Name: string(name), Ino: fsys.Ino(ino)}
	if ftype < 0 {
		e.Unknown = true
	} else {
		t, ok := fileType(ftype)
		if !ok {
			return corrupt("directory %d: entry %q: file type %d", d.ino, name, ftype)
		}
		e.Type, e.Unknown = t, ftype == 0
	}
	if _, dup := d.seen[e.Name]; dup {
		return corrupt("directory %d: duplicate name %q", d.ino, name)
	}
	d.seen[e.Name] = struct{}{}
	d.entries = append(d.entries, e)
	return nil
}

// fileType maps an XFS directory file type (XFS_DIR3_FT_*) to mode bits.
func fileType(ft int) (fs.FileMode, bool) {
	switch ft {
	case 0, 1: // unknown, regular
		return 0, true
	case 2:
		return fs.ModeDir, true
	case 3:
		return fs.ModeDevice | fs.ModeCharDevice, true
	case 4:
		return fs.ModeDevice, true
	case 5:
		return fs.ModeNamedPipe, true
	case 6:
		return fs.ModeSocket, true
	case 7:
		return fs.ModeSymlink, true
	}
	return 0, false
}

// shortform parses a directory stored in the inode: a header (entry count,
// count of 8-byte inode numbers, parent) then packed entries (name length,
// 2-byte offset, name, optional file type, 4- or 8-byte inode number).
func (d *dirList) shortform(in *inode) error {
	if in.size > int64(len(in.fork)) {
		return corrupt("directory %d: inline size %d exceeds fork %d", d.ino, in.size, len(in.fork))
	}
	b := in.fork[:in.size]
	if len(b) < 2 {
		return corrupt("directory %d: inline header truncated", d.ino)
	}
	count := int(b[0])
	inoSize := 4
	if b[1] != 0 {
		inoSize = 8
	}
	pos := 2 + inoSize
	if pos > len(b) {
		return corrupt("directory %d: inline header truncated", d.ino)
	}
	ftypeLen := 0
	if d.f.sb.ftype {
		ftypeLen = 1
	}
	for i := 0; i < count; i++ {
		if pos+3 > len(b) {
			return corrupt("directory %d: inline entry %d truncated", d.ino, i)
		}
		n := int(b[pos])
		end := pos + 3 + n + ftypeLen + inoSize
		if end > len(b) {
			return corrupt("directory %d: inline entry %d overruns the directory", d.ino, i)
		}
		name := b[pos+3 : pos+3+n]
		ftype := -1
		if ftypeLen == 1 {
			ftype = int(b[pos+3+n])
		}
		var ino uint64
		if ib := b[end-inoSize : end]; inoSize == 8 {
			ino = binary.BigEndian.Uint64(ib)
		} else {
			ino = uint64(binary.BigEndian.Uint32(ib))
		}
		if err := d.add(name, ino, ftype); err != nil {
			return err
		}
		pos = end
	}
	if pos != len(b) {
		return corrupt("directory %d: %d stray bytes after inline entries", d.ino, len(b)-pos)
	}
	return nil
}

// blocks parses a directory in block, leaf or node form: every directory
// block mapped below the leaf offset is a data block, read in order.
func (d *dirList) blocks(in *inode) error {
	f := d.f
	ext, err := f.extents(in)
	if err != nil {
		return err
	}
	per := uint64(1) << f.sb.dirblklog // filesystem blocks per directory block
	limit := uint64(dirLeafOffset) >> f.sb.blocklog
	buf := make([]byte, f.sb.blocksize<<f.sb.dirblklog)
	maxBlocks := maxDirBytes / len(buf)
	nblocks := 0
	for _, e := range ext {
		if e.off >= limit {
			break
		}
		if e.unwritten {
			return corrupt("directory %d: unwritten extent", d.ino)
		}
		first := (e.off + per - 1) &^ (per - 1)
		for lb := first; lb < e.off+e.count && lb < limit; lb += per {
			if nblocks++; nblocks > maxBlocks {
				return corrupt("directory %d: more than %d bytes of blocks", d.ino, maxDirBytes)
			}
			pos, err := d.readDirBlock(ext, lb, buf)
			if err != nil {
				return err
			}
			if err := d.dataBlock(buf, pos); err != nil {
				return err
			}
		}
	}
	return nil
}

// readDirBlock reads the directory block starting at logical block lb,
// whose filesystem blocks may lie in several extents, and returns the byte
// position of its first block.
func (d *dirList) readDirBlock(ext []extent, lb uint64, buf []byte) (int64, error) {
	f := d.f
	bs := int(f.sb.blocksize)
	var first int64
	for i := 0; i < len(buf)/bs; i++ {
		l := lb + uint64(i)
		k := lookup(ext, l)
		if k == len(ext) || ext[k].off > l || ext[k].unwritten {
			return 0, corrupt("directory %d: block %d is not mapped", d.ino, l)
		}
		pos, err := f.sb.blockPos(ext[k].start+(l-ext[k].off), 1)
		if err != nil {
			return 0, err
		}
		if i == 0 {
			first = pos
		}
		if err := f.readAt(buf[i*bs:(i+1)*bs], pos); err != nil {
			return 0, err
		}
	}
	return first, nil
}

// dataBlock parses one directory data block (single-block form included).
func (d *dirList) dataBlock(b []byte, pos int64) error {
	f := d.f
	be := binary.BigEndian
	magic := be.Uint32(b[0:])
	hdr := dir2DataHdr
	single := false
	switch {
	case !f.sb.v5 && (magic == dir2BlockMagic || magic == dir2DataMagic):
		single = magic == dir2BlockMagic
	case f.sb.v5 && (magic == dir3BlockMagic || magic == dir3DataMagic):
		single = magic == dir3BlockMagic
		hdr = dir3DataHdr
		if be.Uint64(b[8:]) != daddr(pos) || be.Uint64(b[40:]) != d.ino || !bytes.Equal(b[24:40], f.sb.metaUUID[:]) {
			return corrupt("directory %d: block at %d: wrong address, owner or uuid", d.ino, pos)
		}
		if err := f.checkCRC(b, dir3CRCOff, "directory block"); err != nil {
			return err
		}
	default:
		return corrupt("directory %d: block at %d: bad magic %#08x", d.ino, pos, magic)
	}
	end := len(b)
	if single {
		// The hash index and tail sit at the end of a single-block directory.
		count := int64(be.Uint32(b[len(b)-dirBlockTail:]))
		if count > int64(len(b)-hdr-dirBlockTail)/dirLeafEntry {
			return corrupt("directory %d: block tail count %d", d.ino, count)
		}
		end = len(b) - dirBlockTail - int(count)*dirLeafEntry
	}
	ftypeLen := 0
	if f.sb.ftype {
		ftypeLen = 1
	}
	for p := hdr; p < end; {
		if end-p < 8 {
			return corrupt("directory %d: entry at %d truncated", d.ino, p)
		}
		if be.Uint16(b[p:]) == dirFreeTag {
			n := int(be.Uint16(b[p+2:]))
			if n < 8 || n%8 != 0 || n > end-p {
				return corrupt("directory %d: free space at %d of length %d", d.ino, p, n)
			}
			p += n
			continue
		}
		namelen := int(b[p+8])
		n := (8 + 1 + namelen + ftypeLen + 2 + 7) &^ 7
		if n > end-p {
			return corrupt("directory %d: entry at %d of length %d overruns the block", d.ino, p, n)
		}
		if tag := int(be.Uint16(b[p+n-2:])); tag != p {
			return corrupt("directory %d: entry at %d has tag %d", d.ino, p, tag)
		}
		ftype := -1
		if ftypeLen == 1 {
			ftype = int(b[p+9+namelen])
		}
		if err := d.add(b[p+9:p+9+namelen], be.Uint64(b[p:]), ftype); err != nil {
			return err
		}
		p += n
	}
	return nil
}
