package xfs

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
)

const (
	sbMagic    = 0x58465342 // "XFSB"
	sbReadSize = 512        // the superblock fields all lie in the first sector
	sbCRCOff   = 224

	versionNumBits  = 0x000f
	versionOKBits   = 0xffff &^ 0x0200 // every v4 bit but SHAREDBIT
	versionDirV2    = 0x2000
	versionMoreBits = 0x8000

	features2FType  = 0x00000200
	features2OKBits = 0x00000002 | 0x00000008 | 0x00000080 | features2FType

	incompatFType    = 1 << 0
	incompatSpinodes = 1 << 1
	incompatMetaUUID = 1 << 2
	incompatBigtime  = 1 << 3
	incompatRepair   = 1 << 4 // needsrepair: the on-disk format is unchanged
	incompatNrext64  = 1 << 5
	incompatExchange = 1 << 6 // exchange-range: no format change for readers
	incompatParent   = 1 << 7 // parent pointers live in xattrs
	incompatKnown    = incompatFType | incompatSpinodes | incompatMetaUUID |
		incompatBigtime | incompatRepair | incompatNrext64 | incompatExchange |
		incompatParent

	minAGBlocks = 64
)

// superblock holds the fields of the primary superblock the driver uses,
// all checked for consistency by parseSuperblock.
type superblock struct {
	blocksize uint32
	blocklog  uint8
	dblocks   uint64
	rootino   uint64
	agblocks  uint32
	agcount   uint32
	sectsize  uint16
	inodesize uint16
	inodelog  uint8
	inopblog  uint8
	agblklog  uint8
	dirblklog uint8
	v5        bool
	ftype     bool
	nrext64   bool // only decides whether inodes may use the nrext64 layout
	metaUUID  [16]byte
}

// parseSuperblock decodes and validates the first sector of the image.
// On v5 the CRC covers a whole sector of sb_sectsize bytes, which may be
// larger than buf: checkSuperblockCRC verifies it once the size is known.
func parseSuperblock(buf []byte) (superblock, error) {
	be := binary.BigEndian
	var sb superblock
	if len(buf) < sbReadSize {
		return sb, corrupt("superblock: short buffer")
	}
	if m := be.Uint32(buf[0:]); m != sbMagic {
		return sb, corrupt("superblock: bad magic %#08x", m)
	}
	sb.blocksize = be.Uint32(buf[4:])
	sb.dblocks = be.Uint64(buf[8:])
	copy(sb.metaUUID[:], buf[32:48])
	sb.rootino = be.Uint64(buf[56:])
	sb.agblocks = be.Uint32(buf[84:])
	sb.agcount = be.Uint32(buf[88:])
	version := be.Uint16(buf[100:])
	sb.sectsize = be.Uint16(buf[102:])
	sb.inodesize = be.Uint16(buf[104:])
	inopblock := be.Uint16(buf[106:])
	sb.blocklog = buf[120]
	sectlog := buf[121]
	sb.inodelog = buf[122]
	sb.inopblog = buf[123]
	sb.agblklog = buf[124]
	inprogress := buf[126]
	sb.dirblklog = buf[192]
	features2 := be.Uint32(buf[200:])
	incompat := be.Uint32(buf[216:])

	switch version & versionNumBits {
	case 5:
		sb.v5 = true
		if incompat&^incompatKnown != 0 {
			return sb, fmt.Errorf("superblock: incompatible features %#x: %w", incompat&^incompatKnown, ErrUnsupported)
		}
		sb.ftype = incompat&incompatFType != 0
		sb.nrext64 = incompat&incompatNrext64 != 0
		if incompat&incompatMetaUUID != 0 {
			copy(sb.metaUUID[:], buf[248:264])
		}
	case 4:
		if version&versionDirV2 == 0 || version&^versionOKBits != 0 {
			return sb, fmt.Errorf("superblock: v4 feature bits %#x: %w", version, ErrUnsupported)
		}
		if version&versionMoreBits != 0 {
			if features2&^features2OKBits != 0 {
				return sb, fmt.Errorf("superblock: v4 features2 %#x: %w", features2, ErrUnsupported)
			}
			sb.ftype = features2&features2FType != 0
		}
	default:
		return sb, fmt.Errorf("superblock: version %d: %w", version&versionNumBits, ErrUnsupported)
	}
	if inprogress != 0 {
		return sb, corrupt("superblock: mkfs in progress")
	}

	// Geometry: every size is a power of two whose log is stored too, and
	// both must agree; the limits are those of the on-disk format.
	minBlock := uint32(512)
	if sb.v5 {
		minBlock = 1024
	}
	if !pow2(uint64(sb.blocksize), uint64(minBlock), 65536) || log2(uint64(sb.blocksize)) != sb.blocklog {
		return sb, corrupt("superblock: block size %d (log %d)", sb.blocksize, sb.blocklog)
	}
	if !pow2(uint64(sb.sectsize), 512, 32768) || log2(uint64(sb.sectsize)) != sectlog || uint32(sb.sectsize) > sb.blocksize {
		return sb, corrupt("superblock: sector size %d (log %d)", sb.sectsize, sectlog)
	}
	minInode := uint64(256)
	if sb.v5 {
		minInode = 512
	}
	if !pow2(uint64(sb.inodesize), minInode, 2048) || log2(uint64(sb.inodesize)) != sb.inodelog ||
		uint32(sb.inodesize) > sb.blocksize {
		return sb, corrupt("superblock: inode size %d (log %d)", sb.inodesize, sb.inodelog)
	}
	if uint32(inopblock) != sb.blocksize/uint32(sb.inodesize) || sb.inopblog != sb.blocklog-sb.inodelog {
		return sb, corrupt("superblock: %d inodes per block (log %d)", inopblock, sb.inopblog)
	}
	if sb.agblocks < minAGBlocks || sb.agblklog != uint8(bits.Len32(sb.agblocks-1)) {
		return sb, corrupt("superblock: %d blocks per allocation group (log %d)", sb.agblocks, sb.agblklog)
	}
	if int(sb.agblklog)+int(sb.inopblog) > 32 {
		return sb, corrupt("superblock: allocation group inode numbers exceed 32 bits")
	}
	// The AG count must match the size: all but the last AG are full.
	total := uint64(sb.agcount) * uint64(sb.agblocks)
	if sb.agcount == 0 || sb.dblocks > total || sb.dblocks <= total-uint64(sb.agblocks) {
		return sb, corrupt("superblock: %d allocation groups of %d blocks for %d blocks", sb.agcount, sb.agblocks, sb.dblocks)
	}
	if sb.dblocks > uint64(math.MaxInt64)>>sb.blocklog {
		return sb, corrupt("superblock: %d blocks overflow", sb.dblocks)
	}
	if int(sb.blocklog)+int(sb.dirblklog) > 16 {
		return sb, corrupt("superblock: directory block log %d", sb.dirblklog)
	}
	if _, err := sb.inodePos(sb.rootino); err != nil {
		return sb, fmt.Errorf("superblock: root inode: %w", err)
	}
	return sb, nil
}

// checkSuperblockCRC verifies the v5 superblock CRC over the first sector.
func (f *FS) checkSuperblockCRC() error {
	if !f.sb.v5 {
		return nil
	}
	sect := make([]byte, f.sb.sectsize)
	if err := f.readAt(sect, 0); err != nil {
		return err
	}
	return f.checkCRC(sect, sbCRCOff, "superblock")
}

// pow2 reports whether v is a power of two in [lo, hi].
func pow2(v, lo, hi uint64) bool {
	return v >= lo && v <= hi && v&(v-1) == 0
}

// log2 returns the base-2 logarithm of a power of two.
func log2(v uint64) uint8 {
	return uint8(bits.TrailingZeros64(v))
}

// inodePos returns the byte offset of inode ino after checking that its AG
// number, AG block and offset all lie inside the filesystem.
func (sb *superblock) inodePos(ino uint64) (int64, error) {
	aginoLog := uint(sb.agblklog) + uint(sb.inopblog)
	agno := ino >> aginoLog
	agino := ino & (1<<aginoLog - 1)
	agbno := agino >> sb.inopblog
	idx := agino & (1<<sb.inopblog - 1)
	if ino == 0 || agno >= uint64(sb.agcount) || agbno >= uint64(sb.agblocks) {
		return 0, corrupt("inode number %d out of range", ino)
	}
	blk := agno*uint64(sb.agblocks) + agbno
	if blk >= sb.dblocks {
		return 0, corrupt("inode number %d beyond the last block", ino)
	}
	return int64(blk)<<sb.blocklog + int64(idx)<<sb.inodelog, nil
}

// blockPos converts a filesystem block number (AG number and AG block
// packed by agblklog) and a run of n blocks to a byte offset, checking that
// the run stays inside one allocation group and the filesystem.
func (sb *superblock) blockPos(fsbno, n uint64) (int64, error) {
	agno := fsbno >> sb.agblklog
	agbno := fsbno & (1<<sb.agblklog - 1)
	if agno >= uint64(sb.agcount) || agbno >= uint64(sb.agblocks) || n > uint64(sb.agblocks)-agbno {
		return 0, corrupt("block %d (+%d) out of range", fsbno, n)
	}
	blk := agno*uint64(sb.agblocks) + agbno
	if blk+n > sb.dblocks {
		return 0, corrupt("block %d (+%d) beyond the last block", fsbno, n)
	}
	return int64(blk) << sb.blocklog, nil
}

// daddr converts a byte offset to the 512-byte sector address stored in
// v5 self-describing headers.
func daddr(pos int64) uint64 { return uint64(pos) >> 9 }
