package ext4

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/bits"
)

const (
	superOffset = 1024
	superSize   = 1024
	magic       = 0xEF53
	magicOffset = superOffset + 0x38
)

// Feature bits this driver looks at.
const (
	compatHasJournal   = 0x4
	compatSparseSuper2 = 0x200

	incompatCompression = 0x1
	incompatFiletype    = 0x2
	incompatRecover     = 0x4
	incompatJournalDev  = 0x8
	incompatMetaBG      = 0x10
	incompatExtents     = 0x40
	incompat64bit       = 0x80
	incompatMMP         = 0x100
	incompatFlexBG      = 0x200
	incompatEAInode     = 0x400
	incompatDirData     = 0x1000
	incompatCsumSeed    = 0x2000
	incompatLargedir    = 0x4000
	incompatInlineData  = 0x8000
	incompatEncrypt     = 0x10000
	incompatCasefold    = 0x20000

	// incompatKnown are the incompatible features this driver reads.
	// Compression, dirdata and journal devices are refused.
	incompatKnown = incompatFiletype | incompatRecover | incompatMetaBG | incompatExtents |
		incompat64bit | incompatMMP | incompatFlexBG | incompatEAInode | incompatCsumSeed |
		incompatLargedir | incompatInlineData | incompatEncrypt | incompatCasefold

	roCompatSparseSuper  = 0x1
	roCompatGdtCsum      = 0x10
	roCompatMetadataCsum = 0x400
)

// Fixed bounds.
const (
	maxLogBlockSize = 6 // 64 KiB blocks
	maxDescSize     = 1024
	maxGroups       = 1 << 32
)

// super holds the validated superblock values the driver uses.
type super struct {
	blockSize      uint64
	blocksCount    uint64
	firstDataBlock uint64
	blocksPerGroup uint64
	inodesPerGroup uint64
	inodesCount    uint64
	inodeSize      uint64
	descSize       uint64
	groups         uint64
	firstMetaBG    uint64
	backupBGs      [2]uint32
	compat         uint32
	incompat       uint32
	roCompat       uint32
}

func (s *super) has(incompat uint32) bool { return s.incompat&incompat != 0 }

// parseSuper validates the superblock b (superSize bytes) against an image
// of size bytes.
func parseSuper(b []byte, size int64) (*super, error) {
	le := binary.LittleEndian
	if le.Uint16(b[0x38:]) != magic {
		return nil, fmt.Errorf("ext4: bad superblock magic %#x", le.Uint16(b[0x38:]))
	}
	s := &super{
		inodesCount:    uint64(le.Uint32(b[0x00:])),
		blocksCount:    uint64(le.Uint32(b[0x04:])),
		firstDataBlock: uint64(le.Uint32(b[0x14:])),
		blocksPerGroup: uint64(le.Uint32(b[0x20:])),
		inodesPerGroup: uint64(le.Uint32(b[0x28:])),
		compat:         le.Uint32(b[0x5C:]),
		incompat:       le.Uint32(b[0x60:]),
		roCompat:       le.Uint32(b[0x64:]),
		firstMetaBG:    uint64(le.Uint32(b[0x104:])),
		backupBGs:      [2]uint32{le.Uint32(b[0x24C:]), le.Uint32(b[0x250:])},
	}
	if s.roCompat&roCompatMetadataCsum != 0 {
		// crc32c as the kernel computes it: seed ~0, no final inversion.
		want := le.Uint32(b[0x3FC:])
		if got := ^crc32.Checksum(b[:0x3FC], crc32.MakeTable(crc32.Castagnoli)); got != want {
			return nil, fmt.Errorf("ext4: superblock checksum %#x, want %#x", got, want)
		}
	}
	if unknown := s.incompat &^ incompatKnown; unknown != 0 {
		return nil, fmt.Errorf("ext4: unsupported incompatible features %#x", unknown)
	}
	logBS := le.Uint32(b[0x18:])
	if logBS > maxLogBlockSize {
		return nil, fmt.Errorf("ext4: block size 2^%d KiB out of range", logBS)
	}
	s.blockSize = 1024 << logBS
	switch rev := le.Uint32(b[0x4C:]); rev {
	case 0:
		s.inodeSize = 128
	case 1:
		s.inodeSize = uint64(le.Uint16(b[0x58:]))
	default:
		return nil, fmt.Errorf("ext4: unknown revision %d", rev)
	}
	if s.inodeSize < 128 || s.inodeSize > s.blockSize || bits.OnesCount64(s.inodeSize) != 1 {
		return nil, fmt.Errorf("ext4: inode size %d invalid", s.inodeSize)
	}
	s.descSize = 32
	if s.has(incompat64bit) {
		s.blocksCount |= uint64(le.Uint32(b[0x150:])) << 32
		s.descSize = uint64(le.Uint16(b[0xFE:]))
		if s.descSize < 64 || s.descSize > maxDescSize || bits.OnesCount64(s.descSize) != 1 {
			return nil, fmt.Errorf("ext4: group descriptor size %d invalid", s.descSize)
		}
	}
	if s.blocksPerGroup == 0 || s.blocksPerGroup > 8*s.blockSize {
		return nil, fmt.Errorf("ext4: %d blocks per group invalid", s.blocksPerGroup)
	}
	if s.inodesPerGroup == 0 || s.inodesPerGroup > 8*s.blockSize {
		return nil, fmt.Errorf("ext4: %d inodes per group invalid", s.inodesPerGroup)
	}
	if s.firstDataBlock >= s.blocksCount {
		return nil, fmt.Errorf("ext4: first data block %d beyond %d blocks", s.firstDataBlock, s.blocksCount)
	}
	if img := uint64(size) / s.blockSize; s.blocksCount > img {
		return nil, fmt.Errorf("ext4: filesystem of %d blocks of %d bytes larger than the image (%d bytes)", s.blocksCount, s.blockSize, size)
	}
	s.groups = (s.blocksCount - s.firstDataBlock + s.blocksPerGroup - 1) / s.blocksPerGroup
	if s.groups == 0 || s.groups > maxGroups {
		return nil, fmt.Errorf("ext4: %d block groups invalid", s.groups)
	}
	if s.inodesCount < 2 || s.inodesCount > s.groups*s.inodesPerGroup {
		return nil, fmt.Errorf("ext4: %d inodes invalid for %d groups of %d", s.inodesCount, s.groups, s.inodesPerGroup)
	}
	descBlocks := (s.groups*s.descSize + s.blockSize - 1) / s.blockSize
	if s.has(incompatMetaBG) && s.firstMetaBG > descBlocks {
		return nil, fmt.Errorf("ext4: first meta block group %d beyond %d descriptor blocks", s.firstMetaBG, descBlocks)
	}
	if !s.has(incompatMetaBG) && s.firstDataBlock+1+descBlocks > s.blocksCount {
		return nil, fmt.Errorf("ext4: %d group descriptor blocks do not fit", descBlocks)
	}
	return s, nil
}

// hasSuper reports whether group g holds a superblock backup (and so, with
// meta_bg, whether its descriptor block follows one).
func (s *super) hasSuper(g uint64) bool {
	if g == 0 {
		return true
	}
	if s.compat&compatSparseSuper2 != 0 {
		return g == uint64(s.backupBGs[0]) || g == uint64(s.backupBGs[1])
	}
	if g <= 1 || s.roCompat&roCompatSparseSuper == 0 {
		return true
	}
	if g&1 == 0 {
		return false
	}
	return isPower(g, 3) || isPower(g, 5) || isPower(g, 7)
}

func isPower(n, base uint64) bool {
	for n%base == 0 {
		n /= base
	}
	return n == 1
}

// descLocation returns the block and byte offset within it of group g's
// descriptor (ext2fs_descriptor_block_loc2).
func (s *super) descLocation(g uint64) (blk, off uint64) {
	perBlock := s.blockSize / s.descSize
	idx := g / perBlock
	off = (g % perBlock) * s.descSize
	first := s.firstDataBlock
	if first == 0 && s.blockSize == 1024 {
		first = 1 // 1 KiB blocks with bigalloc
	}
	if !s.has(incompatMetaBG) || idx < s.firstMetaBG {
		return first + idx + 1, off
	}
	bg := idx * perBlock
	blk = s.firstDataBlock + bg*s.blocksPerGroup
	if s.hasSuper(bg) {
		blk++
	}
	return blk, off
}

// kind names the filesystem the way blkid does.
func (s *super) kind() string {
	const ext4Only = incompatExtents | incompat64bit | incompatFlexBG | incompatInlineData |
		incompatEAInode | incompatLargedir | incompatCsumSeed | incompatEncrypt | incompatCasefold | incompatMMP
	switch {
	case s.incompat&ext4Only != 0 || s.roCompat&^0x7 != 0:
		return "ext4"
	case s.compat&compatHasJournal != 0:
		return "ext3"
	}
	return "ext2"
}
