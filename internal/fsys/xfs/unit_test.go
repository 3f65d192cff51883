package xfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"testing"
	"time"
)

// validSB returns the first sector of a plausible v5 superblock (the
// geometry mkfs.xfs gives a 300 MiB image), edited by edit, CRC fixed.
func validSB(edit func(b []byte)) []byte {
	be := binary.BigEndian
	b := make([]byte, 512)
	be.PutUint32(b[0:], sbMagic)
	be.PutUint32(b[4:], 4096)
	be.PutUint64(b[8:], 76800)
	be.PutUint64(b[56:], 128)
	be.PutUint32(b[84:], 19200)
	be.PutUint32(b[88:], 4)
	be.PutUint16(b[100:], 0xb4a5)
	be.PutUint16(b[102:], 512)
	be.PutUint16(b[104:], 512)
	be.PutUint16(b[106:], 8)
	b[120], b[121], b[122], b[123], b[124] = 12, 9, 9, 3, 15
	be.PutUint32(b[216:], incompatFType|incompatSpinodes|incompatBigtime)
	if edit != nil {
		edit(b)
	}
	fixCRC(b, sbCRCOff)
	return b
}

func TestParseSuperblock(t *testing.T) {
	be := binary.BigEndian
	tests := []struct {
		name    string
		edit    func(b []byte)
		wantErr error
	}{
		{name: "v5 4k", edit: nil},
		{name: "v5 1k blocks", edit: func(b []byte) {
			be.PutUint32(b[4:], 1024)
			be.PutUint16(b[106:], 2)
			b[120], b[123], b[124] = 10, 1, 17
			be.PutUint32(b[84:], 76800)
			be.PutUint64(b[8:], 307200)
		}},
		{name: "v4", edit: func(b []byte) {
			be.PutUint16(b[100:], 0xb4a4)
			be.PutUint16(b[104:], 256)
			be.PutUint16(b[106:], 16)
			b[122], b[123] = 8, 4
			be.PutUint32(b[200:], 0x8a)
		}},
		{name: "nrext64 and parent pointers", edit: func(b []byte) { b[219] |= incompatNrext64 | incompatParent }},
		{name: "bad magic", edit: func(b []byte) { b[3] = 0 }, wantErr: ErrCorrupt},
		{name: "version 3", edit: func(b []byte) { be.PutUint16(b[100:], 3) }, wantErr: ErrUnsupported},
		{name: "v4 without dir v2", edit: func(b []byte) { be.PutUint16(b[100:], 0x94a4) }, wantErr: ErrUnsupported},
		{name: "v4 unknown features2", edit: func(b []byte) { be.PutUint16(b[100:], 0xb4a4); be.PutUint32(b[200:], 1<<20) }, wantErr: ErrUnsupported},
		{name: "unknown incompat", edit: func(b []byte) { b[216] = 0x40 }, wantErr: ErrUnsupported},
		{name: "block size 512 on v5", edit: func(b []byte) { be.PutUint32(b[4:], 512); b[120] = 9 }, wantErr: ErrCorrupt},
		{name: "block size 128 KiB", edit: func(b []byte) { be.PutUint32(b[4:], 128<<10); b[120] = 17 }, wantErr: ErrCorrupt},
		{name: "sector larger than block", edit: func(b []byte) { be.PutUint16(b[102:], 8192); b[121] = 13 }, wantErr: ErrCorrupt},
		{name: "inode size 256 on v5", edit: func(b []byte) { be.PutUint16(b[104:], 256); b[122] = 8 }, wantErr: ErrCorrupt},
		{name: "inodes per block wrong", edit: func(b []byte) { be.PutUint16(b[106:], 9) }, wantErr: ErrCorrupt},
		{name: "inopblog wrong", edit: func(b []byte) { b[123] = 4 }, wantErr: ErrCorrupt},
		{name: "agblocks below minimum", edit: func(b []byte) { be.PutUint32(b[84:], 10) }, wantErr: ErrCorrupt},
		{name: "absurd agcount", edit: func(b []byte) { be.PutUint32(b[88:], 1<<31) }, wantErr: ErrCorrupt},
		{name: "dblocks beyond the AGs", edit: func(b []byte) { be.PutUint64(b[8:], 76801) }, wantErr: ErrCorrupt},
		{name: "dirblklog 5", edit: func(b []byte) { b[192] = 5 }, wantErr: ErrCorrupt},
		{name: "root inode zero", edit: func(b []byte) { be.PutUint64(b[56:], 0) }, wantErr: ErrCorrupt},
		{name: "root inode in AG 9", edit: func(b []byte) { be.PutUint64(b[56:], 9<<18) }, wantErr: ErrCorrupt},
		{name: "in progress", edit: func(b []byte) { b[126] = 1 }, wantErr: ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseSuperblock(validSB(tt.edit))
			if tt.wantErr == nil && err != nil {
				t.Fatalf("parseSuperblock = %v, want success", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("parseSuperblock = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// shortReader returns io.EOF for everything.
type shortReader struct{}

func (shortReader) ReadAt([]byte, int64) (int, error) { return 0, io.EOF }

func TestProbe(t *testing.T) {
	be := binary.BigEndian
	tests := []struct {
		name string
		r    io.ReaderAt
		want bool
	}{
		{"v5 superblock", bytes.NewReader(validSB(nil)), true},
		{"v4 superblock", bytes.NewReader(validSB(func(b []byte) { be.PutUint16(b[100:], 0xb4a4) })), true},
		{"zeros", bytes.NewReader(make([]byte, 4096)), false},
		{"ext4-sized garbage", bytes.NewReader(bytes.Repeat([]byte{0x53, 0xef}, 1024)), false},
		{"short read", shortReader{}, false},
		{"too short", bytes.NewReader([]byte("XFSB")), false},
		{"version 6", bytes.NewReader(validSB(func(b []byte) { be.PutUint16(b[100:], 6) })), false},
		{"block size 3000", bytes.NewReader(validSB(func(b []byte) { be.PutUint32(b[4:], 3000) })), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Probe(tt.r); got != tt.want {
				t.Errorf("Probe = %v, want %v", got, tt.want)
			}
		})
	}
}

// packExtent is the inverse of unpackExtent, for tests.
func packExtent(e extent) []byte {
	var l0, l1 uint64
	if e.unwritten {
		l0 = 1 << 63
	}
	l0 |= e.off<<9 | e.start>>43
	l1 = e.start<<21 | e.count
	b := binary.BigEndian.AppendUint64(nil, l0)
	return binary.BigEndian.AppendUint64(b, l1)
}

func TestUnpackExtent(t *testing.T) {
	tests := []struct {
		name string
		e    extent
	}{
		{"small", extent{off: 0, start: 24, count: 9985}},
		{"unwritten", extent{off: 7, start: 1, count: 1, unwritten: true}},
		{"widest fields", extent{off: 1<<54 - 1, start: 1<<52 - 1, count: 1<<21 - 1}},
		{"high start bits", extent{off: 3, start: 1 << 45, count: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := unpackExtent(packExtent(tt.e)); got != tt.e {
				t.Errorf("unpackExtent(pack(%+v)) = %+v", tt.e, got)
			}
		})
	}
}

func TestTimestamp(t *testing.T) {
	tests := []struct {
		name    string
		raw     uint64
		bigtime bool
		want    time.Time
		wantErr bool
	}{
		{"legacy epoch", 0, false, time.Unix(0, 0), false},
		{"legacy before 1970", uint64(uint32(0xffffffff))<<32 | 5, false, time.Unix(-1, 5), false},
		{"legacy 2038 edge", uint64(0x7fffffff) << 32, false, time.Unix(1<<31-1, 0), false},
		{"bigtime epoch is 1901", 0, true, time.Unix(-1<<31, 0), false},
		{"bigtime 2040", uint64(2208992645+1<<31)*1e9 + 7, true, time.Unix(2208992645, 7), false},
		{"legacy nanoseconds too big", 1e9, false, time.Time{}, true},
		{"legacy nanoseconds all ones", 0xffffffff, false, time.Time{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := timestamp(tt.raw, tt.bigtime)
			if (err != nil) != tt.wantErr || !got.Equal(tt.want) {
				t.Errorf("timestamp(%#x, %v) = %v, %v; want %v (error %v)", tt.raw, tt.bigtime, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestGoMode(t *testing.T) {
	tests := []struct {
		name string
		in   uint16
		want fs.FileMode
		ok   bool
	}{
		{"regular setuid", 0o104755, fs.ModeSetuid | 0o755, true},
		{"dir sticky setgid", 0o043777, fs.ModeDir | fs.ModeSticky | fs.ModeSetgid | 0o777, true},
		{"symlink", 0o120777, fs.ModeSymlink | 0o777, true},
		{"char device", 0o020666, fs.ModeDevice | fs.ModeCharDevice | 0o666, true},
		{"block device", 0o060660, fs.ModeDevice | 0o660, true},
		{"fifo", 0o010640, fs.ModeNamedPipe | 0o640, true},
		{"socket", 0o140755, fs.ModeSocket | 0o755, true},
		{"free inode", 0, 0, false},
		{"type 0o030000", 0o030644, 0, false},
		{"type 0o170000", 0o170644, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := goMode(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Errorf("goMode(%#o) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestFileReadAt reads a file of several extents, a hole and an unwritten
// extent over a synthetic image of 64 blocks of 4 KiB.
func TestFileReadAt(t *testing.T) {
	const bs = 4096
	img := make([]byte, 64*bs)
	for i := range img {
		img[i] = byte(i/bs) + 1 // every block holds its number + 1
	}
	f := &FS{r: bytes.NewReader(img), size: int64(len(img)), cache: newBlockCache(4),
		sb: superblock{blocksize: bs, blocklog: 12, agblocks: 64, agblklog: 6, agcount: 1, dblocks: 64}}
	ext := []extent{
		{off: 0, start: 10, count: 2},
		// logical blocks 2-3: a hole
		{off: 4, start: 20, count: 1, unwritten: true},
		{off: 5, start: 30, count: 3},
	}
	size := int64(8*bs - 100)
	want := make([]byte, size)
	for i := range want {
		switch lb := i / bs; {
		case lb < 2:
			want[i] = byte(10+lb) + 1
		case lb >= 5:
			want[i] = byte(30+lb-5) + 1
		}
	}
	r := &file{f: f, size: size, ext: ext}
	tests := []struct {
		name    string
		off     int64
		n       int
		wantN   int
		wantErr error
	}{
		{"whole file", 0, int(size), int(size), nil},
		{"across the first extent's blocks", bs - 10, 20, 20, nil},
		{"into the hole", 2*bs - 5, 10, 10, nil},
		{"unwritten reads zeros", 4 * bs, bs, bs, nil},
		{"hole to unwritten to data", 2*bs + 1, 3 * bs, 3 * bs, nil},
		{"tail hits EOF", size - 10, 100, 10, io.EOF},
		{"at EOF", size, 10, 0, io.EOF},
		{"past EOF", size + bs, 10, 0, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := make([]byte, tt.n)
			n, err := r.ReadAt(p, tt.off)
			if n != tt.wantN || err != tt.wantErr {
				t.Fatalf("ReadAt(%d bytes at %d) = %d, %v; want %d, %v", tt.n, tt.off, n, err, tt.wantN, tt.wantErr)
			}
			if n > 0 && !bytes.Equal(p[:n], want[tt.off:tt.off+int64(n)]) {
				t.Errorf("ReadAt(%d bytes at %d): wrong content", tt.n, tt.off)
			}
		})
	}
	// Failures: a negative offset, an extent the image does not hold, and
	// a hole before an extent 2^54 blocks away (byte arithmetic would
	// overflow).
	if _, err := r.ReadAt(make([]byte, 1), -1); err == nil {
		t.Error("ReadAt at -1 succeeded")
	}
	short := &FS{r: bytes.NewReader(img[:20*bs]), size: 20 * bs, cache: newBlockCache(4), sb: f.sb}
	if n, err := (&file{f: short, size: size, ext: ext}).ReadAt(make([]byte, bs), 5*bs); err == nil || errors.Is(err, io.EOF) {
		t.Errorf("ReadAt beyond the image = %d, %v; want an error", n, err)
	}
	far := &file{f: f, size: 1 << 62, ext: []extent{{off: 1<<54 - 2, start: 1, count: 1}}}
	p := make([]byte, 3*bs)
	if n, err := far.ReadAt(p, 5); n != len(p) || err != nil || !bytes.Equal(p, make([]byte, len(p))) {
		t.Errorf("ReadAt in a huge hole = %d, %v; want %d zeros", n, err, len(p))
	}
}
