// Package xfs is a read-only driver for XFS filesystems (v5 with CRCs, and
// v4 with version 2 directories) that implements fsys.FS over an
// io.ReaderAt, without mounting and without any kernel help.
//
// Guarantees: the image is only read, never written; every on-disk offset,
// length and count is checked against the image size and the fixed limits
// below before it is used, so a hostile image gives an error, never a
// panic, a hang or unbounded memory; on v5 filesystems the CRC, owner and
// self-address of every metadata block and inode read are verified; block
// map btrees are walked depth-first with strictly decreasing levels and
// each block visited at most once (a loop is an error); extents must be
// sorted and must not overlap. Directory lookups never follow links.
//
// Supported: superblock v4/v5 (ftype, sparse inodes, bigtime, nrext64,
// reflink, finobt, rmapbt are read; unknown incompatible features are
// refused); inode core v1/v2/v3; data forks in local, extents and btree
// format; shortform, block, leaf and node directories (data blocks are
// read in order; hash and free index blocks are ignored); inline and
// remote symbolic links. Not supported: realtime files (an error), and
// the external log (never needed for reading).
//
// Compatibility: the API is fsys.FS plus Open and Probe; limits may grow.
package xfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/vmtrust/vmtrust/internal/fsys"
)

// Fixed limits. They are far above what real filesystems need and keep a
// hostile image from making the reader allocate or loop without bound.
const (
	// MaxDirEntries is the most entries ReadDir returns for one directory.
	MaxDirEntries = 1 << 20
	// MaxExtents is the most extents one inode fork may map.
	MaxExtents = 1 << 20
	// maxDirBytes bounds the directory data read for one ReadDir (XFS
	// allows 32 GiB, which extents mapping one block many times could
	// make the reader go through).
	maxDirBytes = 256 << 20
	// maxBtreeLevels bounds the height of a block map btree (XFS itself
	// never needs more than 9 levels for a 64-bit extent count).
	maxBtreeLevels = 10
	// maxBtreeBlocks bounds the btree blocks visited for one fork.
	maxBtreeBlocks = 1 << 16
	// maxSymlinkLen is XFS_SYMLINK_MAXLEN (MAXPATHLEN).
	maxSymlinkLen = 1024
	// cacheSlots is the number of metadata blocks kept in the cache.
	cacheSlots = 64
)

var (
	// ErrCorrupt classifies every error caused by inconsistent on-disk data.
	ErrCorrupt = errors.New("corrupt filesystem")
	// ErrUnsupported classifies features this driver does not read.
	ErrUnsupported = errors.New("unsupported feature")
)

// corrupt returns an error wrapping ErrCorrupt. Internal errors carry no
// "xfs:" prefix: the exported methods add it once.
func corrupt(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrCorrupt)
}

// FS is an opened XFS filesystem. It is safe for concurrent use if the
// underlying io.ReaderAt is.
type FS struct {
	r         io.ReaderAt
	size      int64
	sb        superblock
	verifyCRC bool
	cache     *blockCache
}

var _ fsys.FS = (*FS)(nil)

// Open reads and checks the superblock of the XFS filesystem that fills r
// (size bytes). It fails if the image is smaller than the filesystem.
func Open(r io.ReaderAt, size int64) (*FS, error) {
	f, err := open(r, size, true)
	if err != nil {
		return nil, fmt.Errorf("xfs: %w", err)
	}
	return f, nil
}

// open is Open with CRC verification optional (the fuzz target turns it
// off so that mutations reach the parsers behind the checksums).
func open(r io.ReaderAt, size int64, verifyCRC bool) (*FS, error) {
	if r == nil {
		return nil, errors.New("nil reader")
	}
	if size < sbReadSize {
		return nil, corrupt("image of %d bytes is too small", size)
	}
	buf := make([]byte, sbReadSize)
	if n, err := r.ReadAt(buf, 0); n < len(buf) {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("superblock: %w", err)
	}
	sb, err := parseSuperblock(buf)
	if err != nil {
		return nil, err
	}
	if need := int64(sb.dblocks) << sb.blocklog; need > size {
		return nil, corrupt("filesystem needs %d bytes, image has %d (truncated)", need, size)
	}
	f := &FS{r: r, size: size, sb: sb, verifyCRC: verifyCRC, cache: newBlockCache(cacheSlots)}
	if err := f.checkSuperblockCRC(); err != nil {
		return nil, err
	}
	// The root must be a directory; checking now turns a damaged root
	// into an Open error instead of a surprise later.
	in, err := f.readInode(f.sb.rootino)
	if err != nil {
		return nil, fmt.Errorf("root inode: %w", err)
	}
	if !in.mode.IsDir() {
		return nil, corrupt("root inode %d is not a directory", f.Root())
	}
	return f, nil
}

// Probe reports whether r starts with an XFS superblock. It reads one
// sector and checks the magic number and the basic geometry only.
func Probe(r io.ReaderAt) bool {
	var buf [512]byte
	if n, _ := r.ReadAt(buf[:], 0); n < len(buf) {
		return false
	}
	if binary.BigEndian.Uint32(buf[0:]) != sbMagic {
		return false
	}
	v := binary.BigEndian.Uint16(buf[100:]) & versionNumBits
	bs := binary.BigEndian.Uint32(buf[4:])
	return (v == 4 || v == 5) && bs >= 512 && bs <= 65536 && bs&(bs-1) == 0
}

// Type returns "xfs".
func (f *FS) Type() string { return "xfs" }

// Root returns the root directory's inode number.
func (f *FS) Root() fsys.Ino { return fsys.Ino(f.sb.rootino) }

// readAt reads exactly len(p) bytes at off, which must lie inside the image.
func (f *FS) readAt(p []byte, off int64) error {
	if off < 0 || off > f.size || int64(len(p)) > f.size-off {
		return corrupt("read of %d bytes at %d beyond image end %d", len(p), off, f.size)
	}
	n, err := f.r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read at %d: %w", off, err)
}

// checkCRC verifies the little-endian CRC32c stored at crcOff in b, computed
// over b with that field taken as zero.
func (f *FS) checkCRC(b []byte, crcOff int, what string) error {
	if !f.verifyCRC {
		return nil
	}
	if !crcOK(b, crcOff) {
		return corrupt("%s: bad crc", what)
	}
	return nil
}

// crcOK reports whether b carries a valid XFS CRC32c at crcOff.
func crcOK(b []byte, crcOff int) bool {
	want := binary.LittleEndian.Uint32(b[crcOff:])
	var zero [4]byte
	tab := crc32.MakeTable(crc32.Castagnoli) // the shared, precomputed table
	c := crc32.Update(0, tab, b[:crcOff])
	c = crc32.Update(c, tab, zero[:])
	c = crc32.Update(c, tab, b[crcOff+4:])
	return c == want
}
