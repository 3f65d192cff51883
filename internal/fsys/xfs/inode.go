package xfs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io/fs"
	"time"

	"github.com/vmtrust/vmtrust/internal/fsys"
)

const (
	inodeMagic   = 0x494e // "IN"
	coreSizeV2   = 100    // dinode core of v1/v2 inodes
	coreSizeV3   = 176    // dinode core of v3 inodes
	inodeCRCOff  = 100
	bigtimeEpoch = 1 << 31 // bigtime counts from 1901-12-13T20:45:52Z

	fmtDev     = 0
	fmtLocal   = 1
	fmtExtents = 2
	fmtBtree   = 3

	diflagRealtime = 1 << 0
	diflag2Bigtime = 1 << 3
	diflag2Nrext64 = 1 << 4
	sIFMT          = 0o170000
	sIFSOCK        = 0o140000
	sIFLNK         = 0o120000
	sIFREG         = 0o100000
	sIFBLK         = 0o060000
	sIFDIR         = 0o040000
	sIFCHR         = 0o020000
	sIFIFO         = 0o010000
	nanosPerSecond = 1_000_000_000
	maxLegacyNanos = nanosPerSecond - 1
)

// inode is a decoded, checked dinode. fork aliases a cached block and must
// not be modified.
type inode struct {
	ino      uint64
	mode     fs.FileMode
	format   uint8
	uid, gid uint32
	nlink    uint32
	mtime    time.Time
	size     int64
	nextents uint64
	flags    uint16
	fork     []byte // the data fork
}

// readInode reads and validates inode ino.
func (f *FS) readInode(ino uint64) (*inode, error) {
	pos, err := f.sb.inodePos(ino)
	if err != nil {
		return nil, err
	}
	bpos := pos &^ int64(f.sb.blocksize-1)
	blk, err := f.block(bpos)
	if err != nil {
		return nil, err
	}
	off := int(pos - bpos)
	return f.parseInode(ino, blk[off:off+int(f.sb.inodesize)])
}

// parseInode decodes one on-disk inode of sb_inodesize bytes.
func (f *FS) parseInode(ino uint64, b []byte) (*inode, error) {
	be := binary.BigEndian
	if m := be.Uint16(b[0:]); m != inodeMagic {
		return nil, corrupt("inode %d: bad magic %#04x", ino, m)
	}
	version := b[4]
	core := coreSizeV2
	switch {
	case f.sb.v5 && version == 3:
		core = coreSizeV3
		if f.verifyCRC && !crcOK(b, inodeCRCOff) {
			return nil, corrupt("inode %d: bad crc", ino)
		}
		if got := be.Uint64(b[152:]); got != ino {
			return nil, corrupt("inode %d: records number %d", ino, got)
		}
		if !bytes.Equal(b[160:176], f.sb.metaUUID[:]) {
			return nil, corrupt("inode %d: foreign uuid", ino)
		}
	case !f.sb.v5 && (version == 1 || version == 2):
	default:
		return nil, corrupt("inode %d: version %d", ino, version)
	}
	rawMode := be.Uint16(b[2:])
	mode, ok := goMode(rawMode)
	if !ok {
		return nil, corrupt("inode %d: mode %#o (not in use or bad type)", ino, rawMode)
	}
	in := &inode{
		ino:    ino,
		mode:   mode,
		format: b[5],
		uid:    be.Uint32(b[8:]),
		gid:    be.Uint32(b[12:]),
		nlink:  be.Uint32(b[16:]),
		flags:  be.Uint16(b[90:]),
	}
	if version == 1 {
		in.nlink = uint32(be.Uint16(b[6:]))
	}
	var flags2 uint64
	if version == 3 {
		flags2 = be.Uint64(b[120:])
	}
	mt, err := timestamp(be.Uint64(b[40:]), flags2&diflag2Bigtime != 0)
	if err != nil {
		return nil, corrupt("inode %d: mtime: %v", ino, err)
	}
	in.mtime = mt
	size := int64(be.Uint64(b[56:]))
	if size < 0 {
		return nil, corrupt("inode %d: size %d", ino, size)
	}
	in.size = size
	if flags2&diflag2Nrext64 != 0 {
		if !f.sb.nrext64 {
			return nil, corrupt("inode %d: nrext64 inode without the feature", ino)
		}
		in.nextents = be.Uint64(b[24:])
	} else {
		in.nextents = uint64(be.Uint32(b[76:]))
	}
	lit := len(b) - core
	forkSize := lit
	if fo := int(b[82]) * 8; fo != 0 {
		if fo >= lit {
			return nil, corrupt("inode %d: fork offset %d beyond literal area %d", ino, fo, lit)
		}
		forkSize = fo
	}
	in.fork = b[core : core+forkSize]
	if err := in.checkFormat(); err != nil {
		return nil, err
	}
	return in, nil
}

// checkFormat checks that the data fork format suits the file type.
func (in *inode) checkFormat() error {
	ok := false
	switch in.mode.Type() {
	case 0: // regular
		ok = in.format == fmtExtents || in.format == fmtBtree
	case fs.ModeDir, fs.ModeSymlink:
		ok = in.format == fmtLocal || in.format == fmtExtents || in.format == fmtBtree
	default: // devices, fifos, sockets
		ok = in.format == fmtDev
	}
	if !ok {
		return corrupt("inode %d: data fork format %d for mode %v", in.ino, in.format, in.mode)
	}
	return nil
}

// timestamp decodes an inode timestamp in legacy or bigtime encoding.
func timestamp(ts uint64, bigtime bool) (time.Time, error) {
	if bigtime {
		sec := int64(ts/nanosPerSecond) - bigtimeEpoch
		return time.Unix(sec, int64(ts%nanosPerSecond)).UTC(), nil
	}
	sec := int64(int32(ts >> 32))
	nsec := uint32(ts)
	if nsec > maxLegacyNanos {
		return time.Time{}, fmt.Errorf("nanoseconds %d out of range", nsec)
	}
	return time.Unix(sec, int64(nsec)).UTC(), nil
}

// goMode converts a Unix mode to a Go file mode (fsys.UnixMode).
func goMode(m uint16) (fs.FileMode, bool) { return fsys.UnixMode(m) }

// Stat describes inode ino.
func (f *FS) Stat(ino fsys.Ino) (fsys.Info, error) {
	in, err := f.readInode(uint64(ino))
	if err != nil {
		return fsys.Info{}, fmt.Errorf("xfs: %w", err)
	}
	return fsys.Info{
		Ino:   ino,
		Mode:  in.mode,
		Uid:   in.uid,
		Gid:   in.gid,
		Size:  in.size,
		Nlink: in.nlink,
		Mtime: in.mtime,
	}, nil
}
