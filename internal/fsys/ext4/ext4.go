// Package ext4 is a read-only driver for ext2, ext3 and ext4 filesystems
// that implements fsys.FS over an io.ReaderAt, without mounting.
//
// It reads 1 KiB to 64 KiB blocks, 32- and 64-bit group descriptors with
// or without meta_bg, extent trees (uninitialized extents read as zeros)
// and ext2/3 indirect block maps, linear and htree directories (read
// linearly), inline data, fast and slow symbolic links, 32-bit owners,
// 64-bit sizes and nanosecond times past 2038. A filesystem with an
// incompatible feature it cannot read (compression, dirdata, a journal
// device, unknown bits) is refused at Open; encrypted files and
// directories are refused when read. The journal is not replayed: a
// filesystem that needs recovery is read as it lies on disk. Only the
// superblock checksum is verified.
//
// Guarantees: nothing is ever written. The image is trusted for nothing:
// every block number, offset, length and count is checked against the
// image size and fixed bounds before it is used (extent depth at most 5,
// with each level's depth checked so a looping tree fails; directories of
// at most 64 MiB and 1M names; link targets of at most 4096 bytes), so a
// hostile image gives errors — never a panic, a hang or unbounded memory.
// An FS is safe for concurrent use.
package ext4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/vmtrust/vmtrust/internal/fsys"
)

// FS is an open ext2/3/4 filesystem.
type FS struct {
	r     io.ReaderAt
	size  int64
	sb    *super
	cache *blockCache
}

var _ fsys.FS = (*FS)(nil)

// rootIno is the inode of the root directory.
const rootIno = 2

// Probe reports whether r holds an ext2/3/4 superblock magic (0xEF53 at
// byte 1080). It does not validate the filesystem; Open does.
func Probe(r io.ReaderAt) bool {
	var b [2]byte
	if _, err := r.ReadAt(b[:], magicOffset); err != nil {
		return false
	}
	return binary.LittleEndian.Uint16(b[:]) == magic
}

// Open reads and validates the superblock of the filesystem in the first
// size bytes of r.
func Open(r io.ReaderAt, size int64) (*FS, error) {
	if size < superOffset+superSize {
		return nil, fmt.Errorf("ext4: image of %d bytes too small", size)
	}
	b := make([]byte, superSize)
	if _, err := r.ReadAt(b, superOffset); err != nil {
		return nil, fmt.Errorf("ext4: reading superblock: %w", err)
	}
	sb, err := parseSuper(b, size)
	if err != nil {
		return nil, err
	}
	f := &FS{r: r, size: size, sb: sb, cache: newBlockCache(sb.blockSize)}
	// The root must be a readable directory.
	info, err := f.Stat(rootIno)
	if err != nil {
		return nil, fmt.Errorf("ext4: root directory: %w", err)
	}
	if !info.Mode.IsDir() {
		return nil, fmt.Errorf("ext4: root inode is %v, not a directory", info.Mode.Type())
	}
	return f, nil
}

// Type returns "ext2", "ext3" or "ext4", from the features in use.
func (f *FS) Type() string { return f.sb.kind() }

// Root returns inode 2.
func (f *FS) Root() fsys.Ino { return rootIno }

// readAt reads exactly len(p) bytes at off, which must lie in the image.
// Its errors, like checkBlocks's and metaBlock's, are for callers to wrap.
func (f *FS) readAt(p []byte, off uint64) error {
	if off > uint64(f.size) || uint64(len(p)) > uint64(f.size)-off {
		return fmt.Errorf("read of %d bytes at %d beyond the image (%d bytes)", len(p), off, f.size)
	}
	n, err := f.r.ReadAt(p, int64(off))
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read at %d: %w", off, err)
}

// checkBlocks reports an error unless blocks [blk, blk+n) are inside the
// filesystem.
func (f *FS) checkBlocks(blk, n uint64) error {
	if blk >= f.sb.blocksCount || n > f.sb.blocksCount-blk {
		return fmt.Errorf("blocks %d+%d beyond the filesystem (%d blocks)", blk, n, f.sb.blocksCount)
	}
	return nil
}

// metaBlock returns a metadata block through the cache.
func (f *FS) metaBlock(blk uint64) ([]byte, error) {
	if b, ok := f.cache.get(blk); ok {
		return b, nil
	}
	if err := f.checkBlocks(blk, 1); err != nil {
		return nil, err
	}
	b := make([]byte, f.sb.blockSize)
	if err := f.readAt(b, blk*f.sb.blockSize); err != nil {
		return nil, err
	}
	f.cache.put(blk, b)
	return b, nil
}

// Inode flags.
const (
	flagEncrypt    = 0x800
	flagExtents    = 0x80000
	flagEAInode    = 0x200000
	flagInlineData = 0x10000000
)

// inode is a parsed on-disk inode.
type inode struct {
	ino      fsys.Ino
	mode     uint16
	info     fsys.Info
	flags    uint32
	blocks   uint64 // i_blocks, in 512-byte units unless huge_file says otherwise
	fileACL  uint64
	iblock   []byte // the 60-byte i_block
	raw      []byte // the whole on-disk inode (inodeSize bytes)
	extraEnd uint64 // end of the fixed fields: 128 + i_extra_isize
}

// POSIX file types in i_mode.
const (
	sIFMT  = 0xF000
	sIFREG = 0x8000
)

// goMode converts a Unix mode to a Go file mode (fsys.UnixMode).
func goMode(m uint16) (fs.FileMode, bool) { return fsys.UnixMode(m) }

// Group descriptor flag: inode table not initialized.
const bgInodeUninit = 0x1

// readInode locates and parses inode ino.
func (f *FS) readInode(ino fsys.Ino) (*inode, error) {
	sb := f.sb
	if ino < 1 || uint64(ino) > sb.inodesCount {
		return nil, fmt.Errorf("ext4: inode %d out of range (1..%d): %w", ino, sb.inodesCount, fs.ErrNotExist)
	}
	group := (uint64(ino) - 1) / sb.inodesPerGroup
	index := (uint64(ino) - 1) % sb.inodesPerGroup
	dblk, doff := sb.descLocation(group)
	db, err := f.metaBlock(dblk)
	if err != nil {
		return nil, fmt.Errorf("ext4: group %d descriptor: %w", group, err)
	}
	desc := db[doff : doff+sb.descSize]
	le := binary.LittleEndian
	table := uint64(le.Uint32(desc[0x08:]))
	if sb.descSize >= 64 {
		table |= uint64(le.Uint32(desc[0x28:])) << 32
	}
	if sb.roCompat&(roCompatGdtCsum|roCompatMetadataCsum) != 0 && le.Uint16(desc[0x12:])&bgInodeUninit != 0 {
		return nil, fmt.Errorf("ext4: inode %d in uninitialized group %d: %w", ino, group, fs.ErrNotExist)
	}
	tableBlocks := (sb.inodesPerGroup*sb.inodeSize + sb.blockSize - 1) / sb.blockSize
	if err := f.checkBlocks(table, tableBlocks); err != nil {
		return nil, fmt.Errorf("ext4: group %d inode table: %w", group, err)
	}
	byteOff := index * sb.inodeSize
	blk, err := f.metaBlock(table + byteOff/sb.blockSize)
	if err != nil {
		return nil, fmt.Errorf("ext4: inode %d: %w", ino, err)
	}
	off := byteOff % sb.blockSize
	return f.parseInode(ino, blk[off:off+sb.inodeSize])
}

func (f *FS) parseInode(ino fsys.Ino, raw []byte) (*inode, error) {
	le := binary.LittleEndian
	in := &inode{ino: ino, raw: raw, mode: le.Uint16(raw[0x00:]), flags: le.Uint32(raw[0x20:]), iblock: raw[0x28:0x64]}
	mode, ok := goMode(in.mode)
	if !ok {
		return nil, fmt.Errorf("ext4: inode %d: invalid file type %#o (unused inode?)", ino, in.mode&sIFMT)
	}
	in.extraEnd = 128
	if f.sb.inodeSize > 128 {
		extra := uint64(le.Uint16(raw[0x80:]))
		if extra%4 != 0 || 128+extra > f.sb.inodeSize {
			return nil, fmt.Errorf("ext4: inode %d: extra size %d invalid", ino, extra)
		}
		in.extraEnd = 128 + extra
	}
	size := uint64(le.Uint32(raw[0x04:]))
	if in.mode&sIFMT == sIFREG || f.sb.has(incompatLargedir) {
		size |= uint64(le.Uint32(raw[0x6C:])) << 32
	}
	if size > 1<<63-1 {
		return nil, fmt.Errorf("ext4: inode %d: size %d invalid", ino, size)
	}
	in.blocks = uint64(le.Uint32(raw[0x1C:])) | uint64(le.Uint16(raw[0x74:]))<<32
	in.fileACL = uint64(le.Uint32(raw[0x68:])) | uint64(le.Uint16(raw[0x76:]))<<32
	in.info = fsys.Info{
		Ino:   ino,
		Mode:  mode,
		Uid:   uint32(le.Uint16(raw[0x02:])) | uint32(le.Uint16(raw[0x78:]))<<16,
		Gid:   uint32(le.Uint16(raw[0x18:])) | uint32(le.Uint16(raw[0x7A:]))<<16,
		Size:  int64(size),
		Nlink: uint32(le.Uint16(raw[0x1A:])),
		Mtime: in.time(0x10, 0x88),
	}
	if mode&fs.ModeType != 0 && mode&fs.ModeSymlink == 0 && !mode.IsDir() {
		in.info.Size = 0 // devices, fifos and sockets have no content
	}
	return in, nil
}

// time decodes a timestamp: signed 32-bit seconds at off, extended by the
// epoch bits and nanoseconds of the extra field at extraOff when the inode
// has it.
func (in *inode) time(off, extraOff uint64) time.Time {
	le := binary.LittleEndian
	sec := int64(int32(le.Uint32(in.raw[off:])))
	var nsec int64
	if extraOff+4 <= in.extraEnd {
		extra := le.Uint32(in.raw[extraOff:])
		sec += int64(extra&3) << 32
		nsec = int64(extra >> 2)
		if nsec > 999_999_999 {
			nsec = 0
		}
	}
	return time.Unix(sec, nsec)
}

// Stat describes inode ino.
func (f *FS) Stat(ino fsys.Ino) (fsys.Info, error) {
	in, err := f.readInode(ino)
	if err != nil {
		return fsys.Info{}, err
	}
	return in.info, nil
}

var errEncrypted = errors.New("ext4: encrypted content not readable")

// Readlink returns a symbolic link's target.
func (f *FS) Readlink(ino fsys.Ino) (string, error) {
	in, err := f.readInode(ino)
	if err != nil {
		return "", err
	}
	if in.info.Mode&fs.ModeSymlink == 0 {
		return "", fmt.Errorf("ext4: inode %d: %w", ino, fsys.ErrNotSymlink)
	}
	if in.flags&flagEncrypt != 0 {
		return "", fmt.Errorf("ext4: inode %d: %w", ino, errEncrypted)
	}
	size := in.info.Size
	if size > fsys.MaxLinkTarget {
		return "", fmt.Errorf("ext4: inode %d: link target of %d bytes too long", ino, size)
	}
	if f.isFastSymlink(in) {
		if size >= int64(len(in.iblock)) {
			return "", fmt.Errorf("ext4: inode %d: fast link target of %d bytes too long", ino, size)
		}
		return string(in.iblock[:size]), nil
	}
	buf := make([]byte, size)
	if _, err := f.newReader(in).ReadAt(buf, 0); err != nil && !(err == io.EOF && size == 0) {
		return "", fmt.Errorf("ext4: inode %d: link target: %w", ino, err)
	}
	return string(buf), nil
}

// isFastSymlink reports whether a link's target lies in i_block: no
// extents or inline data, and no data blocks besides an xattr block.
func (f *FS) isFastSymlink(in *inode) bool {
	if in.flags&(flagExtents|flagInlineData) != 0 {
		return false
	}
	return in.blocks == 0 || (in.fileACL != 0 && in.blocks == f.sb.blockSize>>9)
}

// Open gives random access to a regular file's content.
func (f *FS) Open(ino fsys.Ino) (io.ReaderAt, error) {
	in, err := f.readInode(ino)
	if err != nil {
		return nil, err
	}
	switch {
	case in.info.Mode.IsDir():
		return nil, fmt.Errorf("ext4: inode %d: %w", ino, fsys.ErrIsDir)
	case !in.info.Mode.IsRegular():
		return nil, fmt.Errorf("ext4: inode %d: %w", ino, fsys.ErrNotRegular)
	case in.flags&flagEncrypt != 0:
		return nil, fmt.Errorf("ext4: inode %d: %w", ino, errEncrypted)
	}
	return f.newReader(in), nil
}
