package xfs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"

	"github.com/vmtrust/vmtrust/internal/fsys"
)

const (
	symlinkMagic  = 0x58534c4d // "XSLM": header of a v5 remote symlink block
	symlinkHdr    = 56
	symlinkCRCOff = 12
)

// Open gives random access to regular file ino. The extent map is read and
// checked once, here.
func (f *FS) Open(ino fsys.Ino) (io.ReaderAt, error) {
	in, err := f.readInode(uint64(ino))
	if err != nil {
		return nil, fmt.Errorf("xfs: %w", err)
	}
	if !in.mode.IsRegular() {
		return nil, fmt.Errorf("xfs: inode %d is not a regular file", ino)
	}
	if in.flags&diflagRealtime != 0 {
		return nil, fmt.Errorf("xfs: inode %d: realtime file: %w", ino, ErrUnsupported)
	}
	ext, err := f.extents(in)
	if err != nil {
		return nil, fmt.Errorf("xfs: %w", err)
	}
	return &file{f: f, size: in.size, ext: ext}, nil
}

// file reads a regular file through its extent list. Holes and unwritten
// extents read as zeros.
type file struct {
	f    *FS
	size int64
	ext  []extent
}

// ReadAt implements io.ReaderAt.
func (r *file) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("xfs: negative offset %d", off)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	want := len(p)
	if int64(want) > r.size-off {
		p = p[:r.size-off]
	}
	log := r.f.sb.blocklog
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		lb := uint64(pos) >> log
		inBlock := pos & (int64(1)<<log - 1)
		k := lookup(r.ext, lb)
		chunk := len(p) - n
		if k == len(r.ext) || r.ext[k].off > lb || r.ext[k].unwritten {
			// A hole (or an unwritten extent): zeros up to the next extent.
			if k < len(r.ext) {
				next := r.ext[k].off
				if r.ext[k].off <= lb { // unwritten: to its end
					next = r.ext[k].off + r.ext[k].count
				}
				// Compare in blocks first: a gap of up to 2^54 blocks
				// would overflow in bytes.
				if next-lb <= uint64(chunk>>log)+1 {
					if gap := int64(next-lb)<<log - inBlock; gap < int64(chunk) {
						chunk = int(gap)
					}
				}
			}
			clear(p[n : n+chunk])
			n += chunk
			continue
		}
		e := r.ext[k]
		if avail := int64(e.off+e.count-lb)<<log - inBlock; avail < int64(chunk) {
			chunk = int(avail)
		}
		base, err := r.f.sb.blockPos(e.start, e.count)
		if err != nil {
			return n, fmt.Errorf("xfs: %w", err)
		}
		if err := r.f.readAt(p[n:n+chunk], base+int64(lb-e.off)<<log+inBlock); err != nil {
			return n, fmt.Errorf("xfs: %w", err)
		}
		n += chunk
	}
	if n < want {
		return n, io.EOF
	}
	return n, nil
}

// Readlink returns the target of symbolic link ino.
func (f *FS) Readlink(ino fsys.Ino) (string, error) {
	s, err := f.readlink(ino)
	if err != nil {
		return "", fmt.Errorf("xfs: %w", err)
	}
	return s, nil
}

func (f *FS) readlink(ino fsys.Ino) (string, error) {
	in, err := f.readInode(uint64(ino))
	if err != nil {
		return "", err
	}
	if in.mode.Type() != fs.ModeSymlink {
		return "", fmt.Errorf("inode %d is not a symbolic link", ino)
	}
	if in.size <= 0 || in.size > maxSymlinkLen {
		return "", corrupt("symlink %d: length %d", ino, in.size)
	}
	var target []byte
	if in.format == fmtLocal {
		if in.size > int64(len(in.fork)) {
			return "", corrupt("symlink %d: inline length %d exceeds fork %d", ino, in.size, len(in.fork))
		}
		target = in.fork[:in.size]
	} else {
		target, err = f.remoteSymlink(in)
		if err != nil {
			return "", err
		}
	}
	if bytes.IndexByte(target, 0) >= 0 {
		return "", corrupt("symlink %d: target contains NUL", ino)
	}
	return string(target), nil
}

// remoteSymlink reads a symlink target stored in blocks; on v5 each block
// starts with a self-describing header carrying the target's offset.
func (f *FS) remoteSymlink(in *inode) ([]byte, error) {
	ext, err := f.extents(in)
	if err != nil {
		return nil, err
	}
	be := binary.BigEndian
	out := make([]byte, 0, in.size)
	// Every block read must add bytes, so a target of at most
	// maxSymlinkLen bytes ends within a few blocks.
	blocks := 0
	for _, e := range ext {
		if e.unwritten {
			return nil, corrupt("symlink %d: unwritten extent", in.ino)
		}
		for i := uint64(0); i < e.count && int64(len(out)) < in.size; i++ {
			if blocks++; blocks > maxSymlinkLen/(int(f.sb.blocksize)-symlinkHdr)+1 {
				return nil, corrupt("symlink %d: too many blocks", in.ino)
			}
			pos, err := f.sb.blockPos(e.start+i, 1)
			if err != nil {
				return nil, err
			}
			b, err := f.block(pos)
			if err != nil {
				return nil, err
			}
			data := b
			if f.sb.v5 {
				if be.Uint32(b[0:]) != symlinkMagic || be.Uint64(b[32:]) != in.ino ||
					be.Uint64(b[40:]) != daddr(pos) || !bytes.Equal(b[16:32], f.sb.metaUUID[:]) {
					return nil, corrupt("symlink %d: block at %d: bad header", in.ino, pos)
				}
				if err := f.checkCRC(b, symlinkCRCOff, "symlink block"); err != nil {
					return nil, err
				}
				off, n := int64(be.Uint32(b[4:])), int64(be.Uint32(b[8:]))
				if off != int64(len(out)) || n == 0 || n > int64(len(b)-symlinkHdr) || n > in.size-off {
					return nil, corrupt("symlink %d: block at %d holds %d bytes at %d", in.ino, pos, n, off)
				}
				data = b[symlinkHdr : symlinkHdr+n]
			}
			if rest := in.size - int64(len(out)); int64(len(data)) > rest {
				data = data[:rest]
			}
			out = append(out, data...)
		}
	}
	if int64(len(out)) != in.size {
		return nil, corrupt("symlink %d: %d of %d bytes mapped", in.ino, len(out), in.size)
	}
	return out, nil
}
