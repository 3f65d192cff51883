package ext4

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/internal/fsys"
)

// smallTree builds a small tree for targeted tests: a directory of files,
// a file of 400 extents (an extent index level), symbolic link loops, a
// link to "/", a link escaping the root, and nested directories.
func smallTree(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"dir/sub", "a/b/c", "links", "times"} {
		must(os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	for _, n := range []string{"a", "b", "c"} {
		must(os.WriteFile(filepath.Join(dir, "dir", n), []byte("file "+n), 0o644))
	}
	must(os.WriteFile(filepath.Join(dir, "a/b/c/file"), []byte("deep"), 0o644))
	rng := rand.New(rand.NewPCG(1, 2))
	frag, err := os.Create(filepath.Join(dir, "frag"))
	must(err)
	for i := range 400 {
		chunk := make([]byte, 4096)
		for j := range chunk {
			chunk[j] = byte(rng.Uint32() | 1)
		}
		_, err := frag.WriteAt(chunk, int64(i)*12288)
		must(err)
	}
	must(frag.Close())
	for name, target := range map[string]string{
		"loop-a": "loop-b", "loop-b": "loop-a", "self": "self", "to-root": "/",
		"escape": "../../..", "long": strings.Repeat("x", 100),
	} {
		must(os.Symlink(target, filepath.Join(dir, "links", name)))
	}
	for _, n := range []string{"future", "nanos", "old"} {
		must(os.WriteFile(filepath.Join(dir, "times", n), []byte(n), 0o644))
	}
	old := time.Date(1969, 7, 20, 20, 17, 40, 0, time.UTC)
	must(os.Chtimes(filepath.Join(dir, "times/old"), old, old))
	future := time.Date(2040, 1, 2, 3, 4, 5, 0, time.UTC)
	must(os.Chtimes(filepath.Join(dir, "times/future"), future, future))
	nanos := time.Date(2020, 2, 29, 12, 0, 0, 0, time.UTC)
	must(os.Chtimes(filepath.Join(dir, "times/nanos"), nanos, nanos))
	return dir
}

var (
	smallOnce sync.Once
	smallImg  []byte
	sharedDir string // removed by TestMain
)

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedDir != "" {
		os.RemoveAll(sharedDir)
	}
	os.Exit(code)
}

// smallImage returns a fresh copy of a 16 MiB ext4 image (1 KiB blocks,
// metadata_csum) of smallTree, built once per test binary.
func smallImage(t *testing.T) []byte {
	t.Helper()
	need(t, "mkfs.ext4")
	smallOnce.Do(func() {
		tb := &onceTB{TB: t}
		img := mkfs(tb, smallTree(tb), "16M")
		smallImg, _ = os.ReadFile(img)
	})
	if smallImg == nil {
		t.Fatal("building the small image failed")
	}
	return bytes.Clone(smallImg)
}

// onceTB lets a sync.Once body use t for temporary directories that
// outlive the test: they are removed by TestMain.
type onceTB struct{ testing.TB }

func (o *onceTB) TempDir() string {
	if sharedDir == "" {
		d, err := os.MkdirTemp("", "ext4test")
		if err != nil {
			o.Fatal(err)
		}
		sharedDir = d
	}
	d, err := os.MkdirTemp(sharedDir, "")
	if err != nil {
		o.Fatal(err)
	}
	return d
}

func put16(b []byte, off int64, v uint16) { binary.LittleEndian.PutUint16(b[off:], v) }
func put32(b []byte, off int64, v uint32) { binary.LittleEndian.PutUint32(b[off:], v) }

func TestOpenSuperblock(t *testing.T) {
	base := smallImage(t)
	f0, err := openBytes(base)
	if err != nil {
		t.Fatal(err)
	}
	rootOff := inodeOffset(t, f0, rootIno)
	sb := int64(superOffset)
	tests := []struct {
		name    string
		mutate  func(b []byte) []byte
		keepSum bool // do not recompute the superblock checksum
		wantErr string
	}{
		{"unmodified", func(b []byte) []byte { return b }, false, ""},
		{"needs journal recovery", func(b []byte) []byte { b[sb+0x60] |= incompatRecover; return b }, false, ""},
		{"multi-mount protection", func(b []byte) []byte {
			put32(b, sb+0x60, binary.LittleEndian.Uint32(b[sb+0x60:])|incompatMMP)
			return b
		}, false, ""},
		{"larger image than filesystem", func(b []byte) []byte { return append(b, make([]byte, 1<<20)...) }, false, ""},

		{"bad magic", func(b []byte) []byte { put16(b, sb+0x38, 0xEF54); return b }, false, "magic"},
		{"checksum mismatch", func(b []byte) []byte { b[sb+0x78] ^= 1; return b }, true, "checksum"},
		{"block size 128 KiB", func(b []byte) []byte { put32(b, sb+0x18, 7); return b }, false, "block size"},
		{"block size absurd", func(b []byte) []byte { put32(b, sb+0x18, 0xFFFFFFFF); return b }, false, "block size"},
		{"revision 5", func(b []byte) []byte { put32(b, sb+0x4C, 5); return b }, false, "revision"},
		{"inode size not a power of two", func(b []byte) []byte { put16(b, sb+0x58, 300); return b }, false, "inode size"},
		{"inode size 64", func(b []byte) []byte { put16(b, sb+0x58, 64); return b }, false, "inode size"},
		{"inode size over block size", func(b []byte) []byte { put16(b, sb+0x58, 2048); return b }, false, "inode size"},
		{"descriptor size 48", func(b []byte) []byte { put16(b, sb+0xFE, 48); return b }, false, "descriptor size"},
		{"descriptor size 2048", func(b []byte) []byte { put16(b, sb+0xFE, 2048); return b }, false, "descriptor size"},
		{"blocks per group zero", func(b []byte) []byte { put32(b, sb+0x20, 0); return b }, false, "blocks per group"},
		{"blocks per group absurd", func(b []byte) []byte { put32(b, sb+0x20, 1<<30); return b }, false, "blocks per group"},
		{"inodes per group zero", func(b []byte) []byte { put32(b, sb+0x28, 0); return b }, false, "inodes per group"},
		{"inodes per group absurd", func(b []byte) []byte { put32(b, sb+0x28, 0xFFFFFFFF); return b }, false, "inodes per group"},
		{"inode count absurd", func(b []byte) []byte { put32(b, sb+0x00, 0xFFFFFFFF); return b }, false, "inodes invalid"},
		{"inode count one", func(b []byte) []byte { put32(b, sb+0x00, 1); return b }, false, "inodes invalid"},
		{"blocks beyond the image", func(b []byte) []byte { put32(b, sb+0x04, 0xFFFFFFFF); return b }, false, "larger than the image"},
		{"64-bit block count beyond the image", func(b []byte) []byte { put32(b, sb+0x150, 1); return b }, false, "larger than the image"},
		{"first data block past the end", func(b []byte) []byte { put32(b, sb+0x14, 0xFFFFFFF0); return b }, false, "first data block"},
		{"unknown incompatible feature", func(b []byte) []byte { b[sb+0x63] |= 0x80; return b }, false, "unsupported incompatible"},
		{"compression", func(b []byte) []byte { b[sb+0x60] |= incompatCompression; return b }, false, "unsupported incompatible"},
		{"journal device", func(b []byte) []byte { b[sb+0x60] |= incompatJournalDev; return b }, false, "unsupported incompatible"},
		{"dirdata", func(b []byte) []byte { b[sb+0x61] |= incompatDirData >> 8; return b }, false, "unsupported incompatible"},
		{"root inode is a file", func(b []byte) []byte { put16(b, rootOff, sIFREG|0o644); return b }, false, "not a directory"},
		{"root inode unused", func(b []byte) []byte { put16(b, rootOff, 0); return b }, false, "invalid file type"},
		{"image truncated mid inode table", func(b []byte) []byte { return b[:rootOff+100] }, false, "larger than the image"},
		{"image of 1500 bytes", func(b []byte) []byte { return b[:1500] }, false, "too small"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.mutate(bytes.Clone(base))
			if !tt.keepSum && len(b) >= superOffset+superSize {
				fixSuperCsum(b)
			}
			f, err := openBytes(b)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Open() = %v, want success", err)
				}
				if _, err := fsys.NewRoot(f).ReadFile("/dir/a", 100); err != nil {
					t.Errorf("ReadFile(/dir/a) = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || f != nil {
				t.Fatalf("Open() = %v, %v; want nil, error containing %q", f, err, tt.wantErr)
			}
		})
	}
}

// layout locates structures in the small image for corruption.
type layout struct {
	f        *FS
	bs       int64
	fragOff  int64 // inode of /frag
	fragIdx  int64 // byte offset of the first child of /frag's extent root
	fragLeaf int64 // byte offset of /frag's first extent leaf block
	fragData int64 // byte offset of /frag's first data block
	dirOff   int64 // inode of /dir
	dirBlock int64 // byte offset of /dir's first block
	longOff  int64 // inode of /links/long (a slow link)
	selfOff  int64 // inode of /links/self (a fast link)
	fileOff  int64 // inode of /dir/a
}

func locate(t *testing.T, b []byte) layout {
	t.Helper()
	f, err := openBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	l := layout{f: f, bs: int64(f.sb.blockSize)}
	off := func(p string) int64 { return inodeOffset(t, f, inodeOf(t, f, p)) }
	l.fragOff, l.dirOff, l.longOff, l.selfOff, l.fileOff = off("/frag"), off("/dir"), off("/links/long"), off("/links/self"), off("/dir/a")
	le := binary.LittleEndian
	if d := le.Uint16(b[l.fragOff+0x28+6:]); d < 1 {
		t.Fatalf("/frag extent tree depth %d, want an index level", d)
	}
	l.fragIdx = int64(le.Uint32(b[l.fragOff+0x28+12+4:])) * l.bs
	l.fragLeaf = l.fragIdx
	for le.Uint16(b[l.fragLeaf+6:]) > 0 {
		l.fragLeaf = int64(le.Uint32(b[l.fragLeaf+12+4:])) * l.bs
	}
	l.fragData = int64(le.Uint32(b[l.fragLeaf+12+8:])) * l.bs
	in, err := f.readInode(inodeOf(t, f, "/dir"))
	if err != nil {
		t.Fatal(err)
	}
	rn, err := f.mapBlocks(in, 0, 1)
	if err != nil || rn.zero {
		t.Fatalf("/dir block 0: %v %v", rn, err)
	}
	l.dirBlock = int64(rn.phys) * l.bs
	return l
}

// dirent returns the offset of the i-th entry in the directory block at off.
func dirent(b []byte, off int64, i int) int64 {
	for range i {
		off += int64(binary.LittleEndian.Uint16(b[off+4:]))
	}
	return off
}

func TestHostileStructures(t *testing.T) {
	base := smallImage(t)
	l := locate(t, base)
	readFrag := func(f *FS) error {
		_, err := fsys.NewRoot(f).ReadFile("/frag", 8<<20)
		return err
	}
	listDir := func(f *FS) error {
		_, err := fsys.NewRoot(f).ReadDir("/dir")
		return err
	}
	readlink := func(p string) func(f *FS) error {
		return func(f *FS) error { _, err := fsys.NewRoot(f).Readlink(p); return err }
	}
	stat := func(f *FS) error { _, err := fsys.NewRoot(f).Lstat("/dir/a"); return err }
	tests := []struct {
		name    string
		mutate  func(b []byte)
		op      func(f *FS) error
		wantErr string
	}{
		{"intact extent tree", func([]byte) {}, readFrag, ""},
		{"intact directory", func([]byte) {}, listDir, ""},
		{"intact slow link", func([]byte) {}, readlink("/links/long"), ""},
		{"intact fast link", func([]byte) {}, readlink("/links/self"), ""},
		{"intact inode", func([]byte) {}, stat, ""},

		{"extent root depth 6", func(b []byte) { put16(b, l.fragOff+0x28+6, 6) }, readFrag, "depth 6"},
		{"extent index loop", func(b []byte) {
			// The root claims depth 2; its first child becomes an index
			// node of depth 1 whose only entry points at itself.
			put16(b, l.fragOff+0x28+6, 2)
			idx := l.fragIdx
			put16(b, idx+2, 1) // entries
			put16(b, idx+6, 1) // depth
			put32(b, idx+12, 0)
			put32(b, idx+16, uint32(idx/l.bs))
			put16(b, idx+20, 0)
		}, readFrag, "depth 1 under depth 1"},
		{"extent depth mismatch", func(b []byte) { put16(b, l.fragOff+0x28+6, 3) }, readFrag, "under depth 3"},
		{"extent entries over max", func(b []byte) { put16(b, l.fragOff+0x28+2, 5) }, readFrag, "room for 4"},
		{"extent max over capacity", func(b []byte) { put16(b, l.fragLeaf+4, 1000) }, readFrag, "room for"},
		{"extent bad magic", func(b []byte) { put16(b, l.fragLeaf, 0) }, readFrag, "bad extent header"},
		{"extent beyond the filesystem", func(b []byte) { put32(b, l.fragLeaf+12+8, 0xFFFFFF00) }, readFrag, "beyond the filesystem"},
		{"extent of length zero", func(b []byte) { put16(b, l.fragLeaf+12+4, 0) }, readFrag, "invalid"},
		{"extents out of order", func(b []byte) { put32(b, l.fragLeaf+24, 0xFFFF) }, readFrag, "out of order"},
		{"extent index beyond the filesystem", func(b []byte) { put32(b, l.fragOff+0x28+12+4, 0xFFFFFFF0) }, readFrag, "beyond the filesystem"},
		{"dirent rec_len 0", func(b []byte) { put16(b, dirent(b, l.dirBlock, 2)+4, 0) }, listDir, "rec_len 0 invalid"},
		{"dirent rec_len unaligned", func(b []byte) { put16(b, dirent(b, l.dirBlock, 2)+4, 13) }, listDir, "rec_len 13 invalid"},
		{"dirent rec_len past the block", func(b []byte) { put16(b, dirent(b, l.dirBlock, 2)+4, 4096) }, listDir, "rec_len 4096 invalid"},
		{"dirent name past rec_len", func(b []byte) { b[dirent(b, l.dirBlock, 2)+6] = 255 }, listDir, "invalid"},
		{"dirent inode out of range", func(b []byte) { put32(b, dirent(b, l.dirBlock, 2), 0xFFFFFFF0) }, listDir, "inode 4294967280 invalid"},
		{"directory hole", func(b []byte) { put32(b, l.dirOff+0x04, uint32(2*l.bs)) }, listDir, "hole in directory"},
		{"directory size absurd", func(b []byte) { put32(b, l.dirOff+0x04, 0xFFFFFC00) }, listDir, "directory size"},
		{"directory size unaligned", func(b []byte) { put32(b, l.dirOff+0x04, 1000) }, listDir, "directory size"},
		{"slow link target too long", func(b []byte) { put32(b, l.longOff+0x04, 5000) }, readlink("/links/long"), "too long"},
		{"fast link size over 60", func(b []byte) { put32(b, l.selfOff+0x04, 61) }, readlink("/links/self"), "too long"},
		{"invalid file type", func(b []byte) { put16(b, l.fileOff, 0o644) }, stat, "invalid file type"},
		{"extra inode size unaligned", func(b []byte) { put16(b, l.fileOff+0x80, 30) }, stat, "extra size"},
		{"extra inode size too large", func(b []byte) { put16(b, l.fileOff+0x80, 200) }, stat, "extra size"},
		{"size over 2^63", func(b []byte) { put32(b, l.fileOff+0x6C, 0x80000000) }, stat, "size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := bytes.Clone(base)
			tt.mutate(b)
			f, err := openBytes(b)
			if err != nil {
				t.Fatalf("Open() = %v", err)
			}
			err = tt.op(f)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("op = %v, want success", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("op = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestResolveOnImage(t *testing.T) {
	f, err := openBytes(smallImage(t))
	if err != nil {
		t.Fatal(err)
	}
	r := fsys.NewRoot(f)
	tests := []struct {
		name, path, want string
		err              error
	}{
		{"link to root", "/links/to-root", "/", nil},
		{"through link to root", "/links/to-root/links/to-root/dir/a", "/dir/a", nil},
		{"dotdot through link", "/links/to-root/a/b/../b/c/file", "/a/b/c/file", nil},
		{"two-link loop", "/links/loop-a", "", fsys.ErrSymlinkLoop},
		{"self loop", "/links/self", "", fsys.ErrSymlinkLoop},
		{"escape", "/links/escape", "", fsys.ErrEscapesRoot},
		{"missing", "/etc/passwd", "", fs.ErrNotExist},
		{"file as directory", "/dir/a/x", "", fsys.ErrNotDir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Resolve(tt.path)
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) || got != tt.want {
				t.Fatalf("Resolve(%q) = %q, %v; want %q, %v", tt.path, got, err, tt.want, tt.err)
			}
		})
	}
	info, err := r.Stat("/links/to-root")
	if err != nil || info.Ino != rootIno || !info.Mode.IsDir() {
		t.Errorf("Stat(/links/to-root) = %+v, %v; want the root directory", info, err)
	}
}

func TestDirectoryLoop(t *testing.T) {
	img := filepath.Join(t.TempDir(), "loop.img")
	if err := os.WriteFile(img, smallImage(t), 0o600); err != nil {
		t.Fatal(err)
	}
	// A second name for /a inside its own subtree: a hard-linked
	// directory loop no kernel would make.
	debugfs(t, img, "link /a /a/b/c/loop")
	f := openFile(t, img)
	r := fsys.NewRoot(f)
	err := r.Walk(t.Context(), "/", fsys.WalkOptions{}, func(string, fsys.Info) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "directory loop at /a/b/c/loop") {
		t.Fatalf("Walk(/) = %v, want a directory loop at /a/b/c/loop", err)
	}
	// Resolution through the loop is bounded by the path, not the loop.
	if got, err := r.Resolve("/a/b/c/loop/b/c/loop/b/c/file"); err != nil || got != "/a/b/c/loop/b/c/loop/b/c/file" {
		t.Errorf("Resolve through the loop = %q, %v", got, err)
	}
}

func TestTimes(t *testing.T) {
	img := filepath.Join(t.TempDir(), "times.img")
	if err := os.WriteFile(img, smallImage(t), 0o600); err != nil {
		t.Fatal(err)
	}
	setTimes(t, img)
	r := fsys.NewRoot(openFile(t, img))
	tests := []struct {
		path string
		want time.Time
	}{
		{"/times/old", time.Date(1969, 7, 20, 20, 17, 40, 0, time.UTC)},
		{"/times/future", time.Date(2040, 1, 2, 3, 4, 5, 0, time.UTC)},
		{"/times/nanos", time.Date(2020, 2, 29, 12, 0, 0, 123456789, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			info, err := r.Lstat(tt.path)
			if err != nil || !info.Mtime.Equal(tt.want) {
				t.Errorf("Lstat(%q).Mtime = %v, %v; want %v", tt.path, info.Mtime.UTC(), err, tt.want)
			}
		})
	}
}

// TestUnwritten reads an unwritten (fallocated) extent over non-zero blocks.
func TestUnwritten(t *testing.T) {
	img := filepath.Join(t.TempDir(), "unwritten.img")
	if err := os.WriteFile(img, smallImage(t), 0o600); err != nil {
		t.Fatal(err)
	}
	debugfs(t, img, "sif /dir/b size 8192")
	debugfs(t, img, "punch /dir/b 0")
	debugfs(t, img, "fallocate /dir/b 0 7")
	f := openFile(t, img)
	in, err := f.readInode(inodeOf(t, f, "/dir/b"))
	if err != nil {
		t.Fatal(err)
	}
	rn, err := f.mapBlocks(in, 0, 1)
	if err != nil || !rn.zero {
		t.Fatalf("mapBlocks(/dir/b, 0) = %+v, %v; want an unwritten extent", rn, err)
	}
	got, err := fsys.NewRoot(f).ReadFile("/dir/b", 1<<20)
	if err != nil || !bytes.Equal(got, make([]byte, 8192)) {
		t.Errorf("ReadFile(/dir/b) = %d bytes (zero: %v), %v; want 8192 zero bytes", len(got), bytes.Count(got, []byte{0}) == len(got), err)
	}
}

// TestTripleIndirect reads data through an ext2 triple indirect block.
func TestTripleIndirect(t *testing.T) {
	need(t, "mkfs.ext4")
	tree := t.TempDir()
	want := []byte("beyond the double indirect blocks")
	const off = 70 << 20 // 1 KiB blocks: triple indirect from ~64.3 MiB
	fp := filepath.Join(tree, "far")
	if err := os.WriteFile(fp, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	file, err := os.OpenFile(fp, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := file.WriteAt(want, off); err != nil {
		t.Fatal(err)
	}
	file.Close()
	f := openFile(t, mkfs(t, tree, "8M", "-t", "ext2", "-b", "1024"))
	ra, info, err := fsys.NewRoot(f).Open("/far")
	if err != nil || info.Size != off+int64(len(want)) {
		t.Fatalf("Open(/far) = %+v, %v", info, err)
	}
	got := make([]byte, len(want)+10)
	n, err := ra.ReadAt(got, off-10)
	if n != len(got) || (err != nil && err != io.EOF) || !bytes.Equal(got[10:], want) || !bytes.Equal(got[:10], make([]byte, 10)) {
		t.Errorf("ReadAt(/far) = %d, %v, %q", n, err, got)
	}
}

func TestInodeBounds(t *testing.T) {
	f, err := openBytes(smallImage(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		ino     fsys.Ino
		wantErr bool
	}{
		{"root", rootIno, false},
		{"zero", 0, true},
		{"last plus one", fsys.Ino(f.sb.inodesCount + 1), true},
		{"huge", 1 << 62, true},
		{"unused", fsys.Ino(f.sb.inodesCount), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.Stat(tt.ino)
			if (err != nil) != tt.wantErr {
				t.Errorf("Stat(%d) = %v, want error %v", tt.ino, err, tt.wantErr)
			}
		})
	}
}

// shortReader serves only the first n bytes of b, as a truncated image
// behind a size that lies would.
type shortReader struct {
	b []byte
	n int64
}

func (s shortReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= s.n {
		return 0, io.EOF
	}
	return bytes.NewReader(s.b[:s.n]).ReadAt(p, off)
}

func TestTruncatedReads(t *testing.T) {
	base := smallImage(t)
	l := locate(t, base)
	// Cuts in the inode table, in an extent leaf and in file data; each
	// must surface as an error, never a panic or a short success.
	for _, cut := range []int64{l.fragOff - 10, l.fragOff + 64, l.fragLeaf + 20, l.fragData + 100} {
		t.Run(strconv.FormatInt(cut, 10), func(t *testing.T) {
			f, err := Open(shortReader{base, cut}, int64(len(base)))
			if err != nil {
				return // refused early: fine
			}
			r := fsys.NewRoot(f)
			var firstErr error
			err = r.Walk(t.Context(), "/", fsys.WalkOptions{}, func(p string, info fsys.Info) error {
				if info.Mode.IsRegular() {
					if _, err := r.ReadFile(p, 8<<20); err != nil && firstErr == nil {
						firstErr = err
					}
				}
				return nil
			})
			if err == nil && firstErr == nil {
				t.Errorf("walking and reading an image cut at %d gave no error", cut)
			}
		})
	}
}

func TestEncryptedInodes(t *testing.T) {
	img := filepath.Join(t.TempDir(), "enc.img")
	if err := os.WriteFile(img, smallImage(t), 0o600); err != nil {
		t.Fatal(err)
	}
	debugfs(t, img, "sif /dir/sub flags 0x800")
	debugfs(t, img, "sif /dir/c flags 0x80800")
	debugfs(t, img, "sif /links/long flags 0x80800")
	r := fsys.NewRoot(openFile(t, img))
	tests := []struct {
		name string
		op   func() error
	}{
		{"list encrypted dir", func() error { _, err := r.ReadDir("/dir/sub"); return err }},
		{"read encrypted file", func() error { _, err := r.ReadFile("/dir/c", 100); return err }},
		{"read encrypted link", func() error { _, err := r.Readlink("/links/long"); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.op(); !errors.Is(err, errEncrypted) {
				t.Errorf("%s = %v, want %v", tt.name, err, errEncrypted)
			}
		})
	}
	if _, err := r.ReadFile("/dir/a", 100); err != nil {
		t.Errorf("ReadFile(/dir/a) next to encrypted files = %v", err)
	}
}

func TestCasefold(t *testing.T) {
	tree := t.TempDir()
	if err := os.WriteFile(filepath.Join(tree, "MiXeD"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := fsys.NewRoot(openFile(t, mkfs(t, tree, "8M", "-O", "casefold")))
	if got, err := r.ReadFile("/MiXeD", 10); err != nil || string(got) != "x" {
		t.Errorf("ReadFile(/MiXeD) on casefold = %q, %v", got, err)
	}
}

func TestBlockCache(t *testing.T) {
	c := newBlockCache(1 << 20) // at least 16 entries
	for i := range uint64(20) {
		c.put(i, []byte{byte(i)})
	}
	tests := []struct {
		blk  uint64
		want bool
	}{{0, false}, {3, false}, {4, true}, {19, true}}
	for _, tt := range tests {
		if _, ok := c.get(tt.blk); ok != tt.want {
			t.Errorf("get(%d) cached = %v, want %v", tt.blk, ok, tt.want)
		}
	}
}

func TestProbe(t *testing.T) {
	img := smallImage(t)
	tests := []struct {
		name string
		b    []byte
		want bool
	}{
		{"ext4", img, true},
		{"zeros", make([]byte, 4096), false},
		{"short", img[:1000], false},
		{"other magic", func() []byte { b := bytes.Clone(img[:4096]); b[magicOffset] = 0; return b }(), false},
	}
	for _, tt := range tests {
		if got := Probe(bytes.NewReader(tt.b)); got != tt.want {
			t.Errorf("Probe(%s) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestConcurrentReads walks and reads one FS from several goroutines; run
// with -race.
func TestConcurrentReads(t *testing.T) {
	f, err := openBytes(smallImage(t))
	if err != nil {
		t.Fatal(err)
	}
	f.cache = &blockCache{max: 2, lru: f.cache.lru, items: f.cache.items} // force evictions
	r := fsys.NewRoot(f)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			errs <- r.Walk(t.Context(), "/", fsys.WalkOptions{}, func(p string, info fsys.Info) error {
				if info.Mode.IsRegular() {
					_, err := r.ReadFile(p, 8<<20)
					return err
				}
				return nil
			})
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
