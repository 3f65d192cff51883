package ext4

import (
	"encoding/binary"
	"fmt"
	"io/fs"

	"github.com/vmtrust/vmtrust/internal/fsys"
)

// Directory bounds.
const (
	maxDirSize    = 64 << 20
	maxDirEntries = 1 << 20
	direntHeader  = 8
)

// ReadDir lists a directory in on-disk order, without "." and "..".
func (f *FS) ReadDir(ino fsys.Ino) ([]fsys.DirEntry, error) {
	in, err := f.readInode(ino)
	if err != nil {
		return nil, err
	}
	if !in.info.Mode.IsDir() {
		return nil, fmt.Errorf("ext4: inode %d: %w", ino, fsys.ErrNotDir)
	}
	if in.flags&flagEncrypt != 0 {
		return nil, fmt.Errorf("ext4: inode %d: %w", ino, errEncrypted)
	}
	d := dirParser{f: f, ino: ino}
	if in.flags&flagInlineData != 0 {
		data, err := f.inlineData(in)
		if err != nil {
			return nil, err
		}
		// i_block starts with the parent's inode number, then entries;
		// the system.data xattr continues them.
		if len(data) < 4 {
			return nil, fmt.Errorf("ext4: inode %d: inline directory too short", ino)
		}
		first := min(len(data), len(in.iblock))
		if err := d.parse(data[4:first]); err != nil {
			return nil, err
		}
		if err := d.parse(data[first:]); err != nil {
			return nil, err
		}
		return d.ents, nil
	}
	size := uint64(in.info.Size)
	bs := f.sb.blockSize
	if size > maxDirSize || size%bs != 0 {
		return nil, fmt.Errorf("ext4: inode %d: directory size %d invalid", ino, size)
	}
	buf := make([]byte, bs)
	for lblk := uint64(0); lblk < size/bs; {
		rn, err := f.mapBlocks(in, lblk, size/bs-lblk)
		if err != nil {
			return nil, err
		}
		if rn.zero {
			return nil, fmt.Errorf("ext4: inode %d: hole in directory at block %d", ino, lblk)
		}
		for i := range rn.count {
			if err := f.readAt(buf, (rn.phys+i)*bs); err != nil {
				return nil, fmt.Errorf("ext4: directory %d: %w", ino, err)
			}
			if err := d.parse(buf); err != nil {
				return nil, fmt.Errorf("%w (block %d)", err, lblk+i)
			}
		}
		lblk += rn.count
	}
	return d.ents, nil
}

type dirParser struct {
	f    *FS
	ino  fsys.Ino
	ents []fsys.DirEntry
}

// File types in directory entries.
var direntTypes = [...]fs.FileMode{
	1: 0,
	2: fs.ModeDir,
	3: fs.ModeDevice | fs.ModeCharDevice,
	4: fs.ModeDevice,
	5: fs.ModeNamedPipe,
	6: fs.ModeSocket,
	7: fs.ModeSymlink,
}

// parse reads the entries of one directory block (or inline region),
// which they must tile exactly. Entries with inode 0 are unused space:
// deleted entries, htree index blocks and the checksum tail.
func (d *dirParser) parse(b []byte) error {
	le := binary.LittleEndian
	for off := 0; off < len(b); {
		if len(b)-off < direntHeader {
			return fmt.Errorf("ext4: directory %d: truncated entry at %d", d.ino, off)
		}
		e := b[off:]
		ino := uint64(le.Uint32(e))
		recLen := d.recLen(le.Uint16(e[4:]))
		nameLen := int(e[6])
		if recLen < direntHeader || recLen%4 != 0 || recLen > len(e) || direntHeader+nameLen > recLen {
			return fmt.Errorf("ext4: directory %d: entry at %d: rec_len %d invalid", d.ino, off, recLen)
		}
		off += recLen
		if ino == 0 {
			continue
		}
		name := string(e[direntHeader : direntHeader+nameLen])
		if name == "." || name == ".." {
			continue
		}
		if nameLen == 0 || ino > d.f.sb.inodesCount {
			return fmt.Errorf("ext4: directory %d: entry %q: inode %d invalid", d.ino, name, ino)
		}
		if len(d.ents) >= maxDirEntries {
			return fmt.Errorf("ext4: directory %d: more than %d entries", d.ino, maxDirEntries)
		}
		ent := fsys.DirEntry{Name: name, Ino: fsys.Ino(ino), Unknown: true}
		if t := int(e[7]); d.f.sb.has(incompatFiletype) && t > 0 && t < len(direntTypes) {
			ent.Type, ent.Unknown = direntTypes[t], false
		}
		d.ents = append(d.ents, ent)
	}
	return nil
}

// recLen decodes rec_len; 64 KiB blocks store 65536 as 0 or 65535.
func (d *dirParser) recLen(v uint16) int {
	if d.f.sb.blockSize < 65536 {
		return int(v)
	}
	if v == 0 || v == 65535 {
		return 65536
	}
	return int(v&65532) | int(v&3)<<16
}

// Inline data: i_block, then the value of the in-inode extended
// attribute system.data.
const (
	xattrMagic       = 0xEA020000
	xattrIndexSystem = 7
	xattrEntrySize   = 16
)

// inlineData returns an inline inode's content: the 60 bytes of i_block
// followed by the system.data value.
func (f *FS) inlineData(in *inode) ([]byte, error) {
	if !f.sb.has(incompatInlineData) {
		return nil, fmt.Errorf("ext4: inode %d: inline data flag without the inline_data feature", in.ino)
	}
	data := append([]byte(nil), in.iblock...)
	extra, err := in.systemData()
	if err != nil {
		return nil, err
	}
	return append(data, extra...), nil
}

// systemData finds the system.data value in the inode's in-body xattrs.
func (in *inode) systemData() ([]byte, error) {
	le := binary.LittleEndian
	body := in.raw[min(in.extraEnd, uint64(len(in.raw))):]
	if len(body) < 4 || le.Uint32(body) != xattrMagic {
		return nil, nil // no in-inode attributes: all data is in i_block
	}
	entries := body[4:]
	for off := 0; off+4 <= len(entries) && le.Uint32(entries[off:]) != 0; {
		if len(entries)-off < xattrEntrySize {
			return nil, fmt.Errorf("ext4: inode %d: truncated xattr entry", in.ino)
		}
		e := entries[off:]
		nameLen, index := int(e[0]), e[1]
		valueOff, valueInum, valueSize := int(le.Uint16(e[2:])), le.Uint32(e[4:]), uint64(le.Uint32(e[8:]))
		size := (xattrEntrySize + nameLen + 3) &^ 3
		if size > len(e) {
			return nil, fmt.Errorf("ext4: inode %d: xattr name overruns the inode", in.ino)
		}
		if index == xattrIndexSystem && string(e[xattrEntrySize:xattrEntrySize+nameLen]) == "data" {
			if valueInum != 0 {
				return nil, fmt.Errorf("ext4: inode %d: inline data in an xattr inode unsupported", in.ino)
			}
			if uint64(valueOff)+valueSize > uint64(len(entries)) {
				return nil, fmt.Errorf("ext4: inode %d: system.data value overruns the inode", in.ino)
			}
			return entries[valueOff : uint64(valueOff)+valueSize], nil
		}
		off += size
	}
	return nil, nil
}
