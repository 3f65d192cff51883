package xfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmtrust/vmtrust/internal/fsys"
)

// patch replaces len(data) bytes of an image at off.
type patch struct {
	off  int64
	data []byte
}

// patchedImage reads a base image with patches laid over it, and
// optionally pretends the image ends at limit (short reads past it).
type patchedImage struct {
	base    io.ReaderAt
	patches []patch
	limit   int64 // 0: no limit
}

func (p *patchedImage) ReadAt(b []byte, off int64) (int, error) {
	want := len(b)
	if p.limit > 0 && off+int64(len(b)) > p.limit {
		if off >= p.limit {
			return 0, io.EOF
		}
		b = b[:p.limit-off]
	}
	n, err := p.base.ReadAt(b, off)
	for _, pt := range p.patches {
		lo, hi := max(off, pt.off), min(off+int64(n), pt.off+int64(len(pt.data)))
		if lo < hi {
			copy(b[lo-off:hi-off], pt.data[lo-pt.off:hi-pt.off])
		}
	}
	if err == nil && n < want {
		err = io.EOF
	}
	return n, err
}

// hostile is a small real XFS image and what the cases need to know
// about it, all learned through xfs_db.
type hostile struct {
	t         *testing.T
	img       *os.File
	size      int64
	blocksize int
	inodesize int
	ino       map[string]uint64 // guest path -> inode number
	imgPath   string
}

func (h *hostile) read(off int64, n int) []byte {
	h.t.Helper()
	b := make([]byte, n)
	if _, err := h.img.ReadAt(b, off); err != nil {
		h.t.Fatal(err)
	}
	return b
}

// superblock returns a patch of the first sector, edited and re-summed.
func (h *hostile) superblock(edit func(b []byte)) patch {
	b := h.read(0, 512)
	edit(b)
	fixCRC(b, sbCRCOff)
	return patch{0, b}
}

// inode returns a patch of a guest path's inode; crc tells whether the
// inode CRC is recomputed after the edit.
func (h *hostile) inode(guest string, crc bool, edit func(b []byte)) patch {
	h.t.Helper()
	pos := dbByte(h.t, h.imgPath, fmt.Sprintf("ino %d", h.ino[guest]))
	b := h.read(pos, h.inodesize)
	edit(b)
	if crc {
		fixCRC(b, inodeCRCOff)
	}
	return patch{pos, b}
}

// block returns a patch of the filesystem block fsbno, with the CRC at
// crcOff recomputed unless crcOff < 0.
func (h *hostile) block(fsbno uint64, crcOff int, edit func(b []byte)) patch {
	h.t.Helper()
	pos := dbByte(h.t, h.imgPath, fmt.Sprintf("fsblock %d", fsbno))
	b := h.read(pos, h.blocksize)
	edit(b)
	if crcOff >= 0 {
		fixCRC(b, crcOff)
	}
	return patch{pos, b}
}

// firstBlock returns the first filesystem block of a guest path's data.
func (h *hostile) firstBlock(guest string) uint64 {
	h.t.Helper()
	ext := dbExtents(h.t, h.imgPath, guest)
	if len(ext) == 0 {
		h.t.Fatalf("%s has no extents", guest)
	}
	return ext[0].start
}

const fork3 = coreSizeV3 // data fork offset in a v3 inode

// buildHostile makes the small image the hostile cases corrupt.
func buildHostile(t *testing.T) *hostile {
	t.Helper()
	dir := t.TempDir()
	write := func(rel, data string) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"a", "b", "c"} {
		write("d/"+n, n)
	}
	for i := range 300 {
		write(fmt.Sprintf("leaf/f%04d", i), "x")
	}
	// Enough names, interleaved by mkfs with their files' blocks, for the
	// directory's extent list to outgrow the inode: a block map btree.
	for i := range 3000 {
		write(fmt.Sprintf("bt/entry-%05d-with-a-longer-name-to-fill-blocks", i), "y")
	}
	write("f", strings.Repeat("0123456789", 1000))
	if err := os.Symlink("d/a", filepath.Join(dir, "l")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(strings.Repeat("r/", 450), filepath.Join(dir, "rl")); err != nil {
		t.Fatal(err)
	}
	img := buildImage(t, dir, 300<<20, true)
	fh, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fh.Close() })
	st, _ := fh.Stat()
	sb := dbFields(t, img, "sb 0", "print blocksize inodesize dirblklog")
	if sb["dirblklog"] != 0 {
		t.Fatalf("dirblklog %d, want 0", sb["dirblklog"])
	}
	h := &hostile{t: t, img: fh, size: st.Size(), blocksize: int(sb["blocksize"]), inodesize: int(sb["inodesize"]),
		ino: map[string]uint64{}, imgPath: img}
	for _, g := range []string{"/", "/d", "/leaf", "/bt", "/f", "/l", "/rl"} {
		h.ino[g] = inodeOf(t, img, g)
	}
	if fm := dbFields(t, img, fmt.Sprintf("inode %d", h.ino["/bt"]), "print core.format"); fm["core.format"] != fmtBtree {
		t.Fatalf("/bt has format %d, want a btree", fm["core.format"])
	}
	return h
}

// op runs one operation on a guest path and returns its error.
func op(f *FS, what string, ino fsys.Ino) error {
	switch what {
	case "stat":
		_, err := f.Stat(ino)
		return err
	case "readdir":
		ents, err := f.ReadDir(ino)
		if err == nil && len(ents) == 0 {
			return errors.New("empty listing")
		}
		return err
	case "readlink":
		_, err := f.Readlink(ino)
		return err
	case "read":
		r, err := f.Open(ino)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, io.NewSectionReader(r, 0, 1<<20))
		return err
	}
	panic("unknown op " + what)
}

// TestHostile corrupts a real image in the ways a hostile one would and
// checks each damage is reported as an error wrapping ErrCorrupt or
// ErrUnsupported — by Open when it is global, by the operation touching
// it otherwise — with no panic.
func TestHostile(t *testing.T) {
	h := buildHostile(t)
	be := binary.BigEndian
	type hcase struct {
		name    string
		patches func() []patch
		size    int64 // 0: the image size
		limit   int64 // reader pretends the image ends here
		op      string
		path    string   // guest path of the operation (its pristine inode)
		ino     fsys.Ino // or an explicit inode number
		openErr bool     // Open itself must fail
		short   bool     // Open or the operation must fail with a short read
		ok      bool     // positive case: everything must succeed
	}
	none := func() []patch { return nil }
	sb := func(edit func(b []byte)) func() []patch {
		return func() []patch { return []patch{h.superblock(edit)} }
	}
	ind := func(guest string, edit func(b []byte)) func() []patch {
		return func() []patch { return []patch{h.inode(guest, true, edit)} }
	}
	// btRoot edits the bmdr btree root in the inode of /bt; ptrs start
	// after the keys, whose room depends on the fork size.
	rootMax := (h.inodesize - fork3 - bmdrHdrSize) / bmbtRecSize
	btPtr := func(i int) int { return fork3 + bmdrHdrSize + rootMax*8 + 8*i }
	leafOfBt := func() uint64 {
		b := h.read(dbByte(t, h.imgPath, fmt.Sprintf("ino %d", h.ino["/bt"])), h.inodesize)
		return be.Uint64(b[btPtr(0):])
	}
	fData := dbByte(t, h.imgPath, fmt.Sprintf("fsblock %d", h.firstBlock("/f")))
	cases := []hcase{
		// Positive cases: the pristine image.
		{name: "pristine readdir shortform", patches: none, op: "readdir", path: "/d", ok: true},
		{name: "pristine readdir leaf", patches: none, op: "readdir", path: "/leaf", ok: true},
		{name: "pristine readdir btree", patches: none, op: "readdir", path: "/bt", ok: true},
		{name: "pristine read file", patches: none, op: "read", path: "/f", ok: true},
		{name: "pristine readlink inline", patches: none, op: "readlink", path: "/l", ok: true},
		{name: "pristine readlink remote", patches: none, op: "readlink", path: "/rl", ok: true},
		{name: "pristine stat root", patches: none, op: "stat", path: "/", ok: true},

		// Superblock.
		{name: "superblock bad magic", patches: sb(func(b []byte) { b[0] = 'Y' }), openErr: true},
		{name: "superblock bad crc", patches: func() []patch {
			b := h.read(0, 512)
			b[108] ^= 1 // the label, covered by the CRC only
			return []patch{{0, b}}
		}, openErr: true},
		{name: "absurd agcount", patches: sb(func(b []byte) { be.PutUint32(b[88:], 0xffffffff) }), openErr: true},
		{name: "zero agcount", patches: sb(func(b []byte) { be.PutUint32(b[88:], 0) }), openErr: true},
		{name: "block size not a power of two", patches: sb(func(b []byte) { be.PutUint32(b[4:], 3000) }), openErr: true},
		{name: "block size 1 MiB", patches: sb(func(b []byte) { be.PutUint32(b[4:], 1<<20); b[120] = 20 }), openErr: true},
		{name: "block log disagrees", patches: sb(func(b []byte) { b[120] = 13 }), openErr: true},
		{name: "inode size above block size", patches: sb(func(b []byte) { be.PutUint16(b[104:], 8192); b[122] = 13 }), openErr: true},
		{name: "agblklog disagrees", patches: sb(func(b []byte) { b[124] += 3 }), openErr: true},
		{name: "dblocks beyond agcount", patches: sb(func(b []byte) { be.PutUint64(b[8:], 1<<40) }), openErr: true},
		{name: "unknown incompat feature", patches: sb(func(b []byte) { b[216] |= 0x80 }), openErr: true},
		{name: "root inode beyond filesystem", patches: sb(func(b []byte) { be.PutUint64(b[56:], 1<<50) }), openErr: true},
		{name: "root inode is a file", patches: sb(func(b []byte) { be.PutUint64(b[56:], h.ino["/f"]) }), openErr: true},
		{name: "dirblklog too big", patches: sb(func(b []byte) { b[192] = 9 }), openErr: true},
		{name: "mkfs in progress", patches: sb(func(b []byte) { b[126] = 1 }), openErr: true},
		{name: "truncated image", patches: none, size: h.size - 1<<20, openErr: true},
		{name: "tiny image", patches: none, size: 100, openErr: true},

		// Inodes.
		{name: "inode number beyond filesystem", patches: none, op: "stat", ino: 1 << 50},
		{name: "inode number in a missing AG", patches: none, op: "stat", ino: fsys.Ino(4 << 40)},
		{name: "inode zero", patches: none, op: "stat", ino: 0},
		{name: "inode bad crc", patches: func() []patch {
			return []patch{h.inode("/f", false, func(b []byte) { b[8] ^= 1 })}
		}, op: "stat", path: "/f"},
		{name: "inode bad magic", patches: ind("/f", func(b []byte) { b[0] = 'X' }), op: "stat", path: "/f"},
		{name: "inode records another number", patches: ind("/f", func(b []byte) { b[159]++ }), op: "stat", path: "/f"},
		{name: "inode not in use", patches: ind("/f", func(b []byte) { be.PutUint16(b[2:], 0) }), op: "stat", path: "/f"},
		{name: "inode bad version", patches: ind("/f", func(b []byte) { b[4] = 2 }), op: "stat", path: "/f"},
		{name: "inode negative size", patches: ind("/f", func(b []byte) { b[56] = 0x80 }), op: "stat", path: "/f"},
		{name: "fork offset beyond inode", patches: ind("/f", func(b []byte) { b[82] = 0xff }), op: "stat", path: "/f"},
		{name: "file in local format", patches: ind("/f", func(b []byte) { b[5] = fmtLocal }), op: "stat", path: "/f"},
		{name: "nrext64 inode without the feature", patches: ind("/f", func(b []byte) { b[127] |= diflag2Nrext64 }), op: "stat", path: "/f"},
		{name: "legacy nanoseconds out of range", patches: ind("/f", func(b []byte) {
			b[127] &^= diflag2Bigtime
			be.PutUint32(b[44:], 2e9)
		}), op: "stat", path: "/f"},

		// Shortform directory /d.
		{name: "shortform entry inode beyond filesystem", patches: ind("/d", func(b []byte) {
			// First entry: namelen(1) offset(2) name(1) ftype(1) ino(4).
			be.PutUint32(b[fork3+6+5:], 0xfffffff0)
		}), op: "readdir", path: "/d"},
		{name: "shortform name with a slash", patches: ind("/d", func(b []byte) { b[fork3+6+3] = '/' }), op: "readdir", path: "/d"},
		{name: "shortform name overruns", patches: ind("/d", func(b []byte) { b[fork3+6] = 200 }), op: "readdir", path: "/d"},
		{name: "shortform count too high", patches: ind("/d", func(b []byte) { b[fork3] = 9 }), op: "readdir", path: "/d"},
		{name: "shortform size beyond fork", patches: ind("/d", func(b []byte) { be.PutUint64(b[56:], 4000) }), op: "readdir", path: "/d"},
		{name: "shortform bad file type", patches: ind("/d", func(b []byte) { b[fork3+6+4] = 9 }), op: "readdir", path: "/d"},
		{name: "shortform duplicate name", patches: ind("/d", func(b []byte) { b[fork3+6+9+3] = b[fork3+6+3] }), op: "readdir", path: "/d"},

		// Data blocks of /leaf (v5: XDD3 header of 64 bytes, "." first).
		{name: "directory entry length overruns", patches: func() []patch {
			return []patch{h.block(h.firstBlock("/leaf"), dir3CRCOff, func(b []byte) { b[dir3DataHdr+8] = 255 })}
		}, op: "readdir", path: "/leaf"},
		{name: "directory entry bad tag", patches: func() []patch {
			return []patch{h.block(h.firstBlock("/leaf"), dir3CRCOff, func(b []byte) { b[dir3DataHdr+15]++ })}
		}, op: "readdir", path: "/leaf"},
		{name: "directory free space of length 3", patches: func() []patch {
			return []patch{h.block(h.firstBlock("/leaf"), dir3CRCOff, func(b []byte) {
				be.PutUint16(b[dir3DataHdr:], dirFreeTag)
				be.PutUint16(b[dir3DataHdr+2:], 3)
			})}
		}, op: "readdir", path: "/leaf"},
		{name: "directory free space of length 0", patches: func() []patch {
			return []patch{h.block(h.firstBlock("/leaf"), dir3CRCOff, func(b []byte) {
				be.PutUint16(b[dir3DataHdr:], dirFreeTag)
				be.PutUint16(b[dir3DataHdr+2:], 0)
			})}
		}, op: "readdir", path: "/leaf"},
		{name: "directory block bad magic", patches: func() []patch {
			return []patch{h.block(h.firstBlock("/leaf"), dir3CRCOff, func(b []byte) { b[0] = 'Q' })}
		}, op: "readdir", path: "/leaf"},
		{name: "directory block bad crc", patches: func() []patch {
			return []patch{h.block(h.firstBlock("/leaf"), -1, func(b []byte) { b[dir3DataHdr+20] ^= 1 })}
		}, op: "readdir", path: "/leaf"},
		{name: "directory block of another owner", patches: func() []patch {
			return []patch{h.block(h.firstBlock("/leaf"), dir3CRCOff, func(b []byte) { b[47]++ })}
		}, op: "readdir", path: "/leaf"},

		// The block map btree of /bt.
		{name: "bmbt btree loop", patches: ind("/bt", func(b []byte) {
			// Two root pointers to one leaf block.
			be.PutUint16(b[fork3+2:], max(2, be.Uint16(b[fork3+2:])))
			copy(b[btPtr(1):btPtr(2)], b[btPtr(0):btPtr(1)])
		}), op: "readdir", path: "/bt"},
		{name: "bmbt pointer beyond filesystem", patches: ind("/bt", func(b []byte) { be.PutUint64(b[btPtr(0):], 1<<50) }), op: "readdir", path: "/bt"},
		{name: "bmbt pointer to the root directory's block", patches: ind("/bt", func(b []byte) {
			be.PutUint64(b[btPtr(0):], h.firstBlock("/leaf"))
		}), op: "readdir", path: "/bt"},
		{name: "bmbt root level too high", patches: ind("/bt", func(b []byte) { be.PutUint16(b[fork3:], maxBtreeLevels+1) }), op: "readdir", path: "/bt"},
		{name: "bmbt root claims more records than fit", patches: ind("/bt", func(b []byte) { be.PutUint16(b[fork3+2:], 500) }), op: "readdir", path: "/bt"},
		{name: "bmbt leaf at the wrong level", patches: func() []patch {
			return []patch{h.block(leafOfBt(), bmbtCRCOff, func(b []byte) { be.PutUint16(b[4:], 1) })}
		}, op: "readdir", path: "/bt"},
		{name: "bmbt leaf with no records", patches: func() []patch {
			return []patch{h.block(leafOfBt(), bmbtCRCOff, func(b []byte) { be.PutUint16(b[6:], 0) })}
		}, op: "readdir", path: "/bt"},
		{name: "bmbt leaf records out of order", patches: func() []patch {
			return []patch{h.block(leafOfBt(), bmbtCRCOff, func(b []byte) {
				copy(b[bmbtHdrV5+bmbtRecSize:bmbtHdrV5+2*bmbtRecSize], b[bmbtHdrV5:bmbtHdrV5+bmbtRecSize])
			})}
		}, op: "readdir", path: "/bt"},
		{name: "bmbt leaf bad crc", patches: func() []patch {
			return []patch{h.block(leafOfBt(), -1, func(b []byte) { b[bmbtHdrV5] ^= 1 })}
		}, op: "readdir", path: "/bt"},
		{name: "bmbt extent count disagrees", patches: ind("/bt", func(b []byte) { be.PutUint32(b[76:], be.Uint32(b[76:])+1) }), op: "readdir", path: "/bt"},

		// Extents of /f.
		{name: "extent beyond filesystem", patches: ind("/f", func(b []byte) {
			b[fork3+7] |= 0x1f // high start block bits: an AG that does not exist
		}), op: "read", path: "/f"},
		{name: "extent of zero blocks", patches: ind("/f", func(b []byte) {
			be.PutUint32(b[fork3+12:], be.Uint32(b[fork3+12:])&^(1<<21-1))
		}), op: "read", path: "/f"},
		{name: "overlapping extents", patches: ind("/f", func(b []byte) {
			copy(b[fork3+16:fork3+32], b[fork3:fork3+16])
			be.PutUint32(b[76:], 2)
		}), op: "read", path: "/f"},
		{name: "more extents than the fork holds", patches: ind("/f", func(b []byte) { be.PutUint32(b[76:], 1000) }), op: "read", path: "/f"},
		{name: "realtime file", patches: ind("/f", func(b []byte) { b[91] |= diflagRealtime }), op: "read", path: "/f"},

		// Symbolic links.
		{name: "symlink too long", patches: ind("/l", func(b []byte) { be.PutUint64(b[56:], 2000) }), op: "readlink", path: "/l"},
		{name: "inline symlink beyond fork", patches: ind("/l", func(b []byte) { be.PutUint64(b[56:], 1000) }), op: "readlink", path: "/l"},
		{name: "remote symlink bad header", patches: func() []patch {
			return []patch{h.block(h.firstBlock("/rl"), symlinkCRCOff, func(b []byte) { b[0] = 'Y' })}
		}, op: "readlink", path: "/rl"},
		{name: "remote symlink wrong byte count", patches: func() []patch {
			return []patch{h.block(h.firstBlock("/rl"), symlinkCRCOff, func(b []byte) { be.PutUint32(b[8:], 4000) })}
		}, op: "readlink", path: "/rl"},

		// Short reads: the reader ends early although the size says more.
		{name: "reader ends inside the data", patches: none, limit: fData + 100, op: "read", path: "/f", short: true},
		{name: "reader ends inside the inodes", patches: none, limit: 65536 + 1000, op: "readdir", path: "/bt", short: true},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			r := &patchedImage{base: h.img, patches: tc.patches(), limit: tc.limit}
			size := h.size
			if tc.size != 0 {
				size = tc.size
			}
			f, err := Open(r, size)
			if tc.short && err != nil {
				if f != nil || !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("Open = %v, %v; want nil and a short read", f, err)
				}
				return
			}
			if tc.openErr {
				if err == nil || f != nil || !isKind(err) {
					t.Fatalf("Open = %v, %v; want nil and a corrupt/unsupported error", f, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open = %v, want success", err)
			}
			ino := tc.ino
			if tc.path != "" {
				ino = fsys.Ino(h.ino[tc.path])
			}
			err = op(f, tc.op, ino)
			switch {
			case tc.ok && err != nil:
				t.Fatalf("%s(%s) = %v, want success", tc.op, tc.path, err)
			case !tc.ok && err == nil:
				t.Fatalf("%s(%s) succeeded, want an error", tc.op, tc.path)
			case tc.short && !errors.Is(err, io.ErrUnexpectedEOF):
				t.Fatalf("%s(%s) = %v, want a short read", tc.op, tc.path, err)
			case !tc.ok && !tc.short && !isKind(err):
				t.Fatalf("%s(%s) = %v, want a corrupt/unsupported error", tc.op, tc.path, err)
			}
			t.Logf("%s(%s): %v", tc.op, tc.path, err)
		})
	}
}
