package vmdk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// needTool skips (or, under CI, fails) when a real tool is missing.
func needTool(t *testing.T, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not found: install the Debian package %s", tool, pkg)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// guestBytes returns size bytes of pseudo-random and zero regions, with
// data in the last (partial) grain.
func guestBytes(size int, seed uint64) []byte {
	b := make([]byte, size)
	r := rand.New(rand.NewChaCha8([32]byte{byte(seed)}))
	fill := func(from, to int) {
		for i := max(from, 0); i < min(to, size); i++ {
			b[i] = byte(r.Uint32())
		}
	}
	fill(0, size/4)                          // random head
	fill(size/2, size/2+100*1024+7)          // random island, unaligned end
	fill(size/2+300*1024, size/2+300*1024+1) // one byte in an otherwise empty grain
	fill(size-1536, size)                    // the tail
	for i := size / 8; i < size/8+4096; i++ {
		b[i] = 0 // a zero grain inside the random head
	}
	return b
}

// openBytes opens an in-memory image.
func openBytes(b []byte, o Options) (*Image, error) {
	return Open(bytes.NewReader(b), int64(len(b)), o)
}

func readAll(im *Image) ([]byte, error) {
	return io.ReadAll(io.NewSectionReader(im, 0, im.Size()))
}

// checkReads compares full, random and concurrent reads with want.
func checkReads(t *testing.T, im *Image, want []byte) {
	t.Helper()
	if im.Size() != int64(len(want)) {
		t.Fatalf("Size() = %d, want %d", im.Size(), len(want))
	}
	got, err := readAll(im)
	if err != nil {
		t.Fatalf("read all: %v", err)
	}
	if i := firstDiff(got, want); i >= 0 {
		t.Fatalf("read all: first difference at byte %d", i)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			buf := make([]byte, 128*1024)
			for range 100 {
				off := r.Int64N(int64(len(want)))
				n := r.IntN(len(buf))
				m, err := im.ReadAt(buf[:n], off)
				wantN := min(int64(n), int64(len(want))-off)
				if int64(m) != wantN || (err != nil && !(err == io.EOF && wantN < int64(n))) {
					t.Errorf("ReadAt(%d bytes, %d) = %d, %v; want %d", n, off, m, err, wantN)
					return
				}
				if !bytes.Equal(buf[:m], want[off:off+int64(m)]) {
					t.Errorf("ReadAt(%d bytes, %d): wrong data", n, off)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n, err := im.ReadAt(make([]byte, 1), im.Size()); n != 0 || err != io.EOF {
		t.Errorf("ReadAt at Size() = %d, %v; want 0, EOF", n, err)
	}
	if _, err := im.ReadAt(make([]byte, 1), -1); err == nil {
		t.Errorf("ReadAt(-1) = nil error, want error")
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// TestQemuImages converts raw guests with qemu-img, and compares this
// reader with qemu-img's own conversion of the VMDK back to raw.
func TestQemuImages(t *testing.T) {
	qemuImg := needTool(t, "qemu-img", "qemu-utils")
	tests := []struct {
		name  string
		size  int
		opts  []string
		cache int64
	}{
		{"monolithicSparse", 8<<20 + 1536, nil, 0},
		{"monolithicSparse/zeroed-grain", 8<<20 + 1536, []string{"-o", "zeroed_grain=on"}, 0},
		{"monolithicSparse/no-cache", 3 << 20, nil, -1},
		{"streamOptimized", 8<<20 + 1536, []string{"-o", "subformat=streamOptimized"}, 0},
		{"streamOptimized/grain-aligned", 4 << 20, []string{"-o", "subformat=streamOptimized"}, 0},
		{"streamOptimized/tiny-cache", 8<<20 + 1536, []string{"-o", "subformat=streamOptimized"}, 100 << 10},
		{"streamOptimized/no-cache", 3<<20 + 512, []string{"-o", "subformat=streamOptimized"}, -1},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			raw := guestBytes(tt.size, uint64(i))
			rawPath := filepath.Join(dir, "in.raw")
			if err := os.WriteFile(rawPath, raw, 0o600); err != nil {
				t.Fatal(err)
			}
			img := filepath.Join(dir, "disk.vmdk")
			run(t, qemuImg, append(append([]string{"convert", "-f", "raw", "-O", "vmdk"}, tt.opts...), rawPath, img)...)
			back := filepath.Join(dir, "back.raw")
			run(t, qemuImg, "convert", "-f", "vmdk", "-O", "raw", img, back)
			want, err := os.ReadFile(back)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(want, raw) {
				t.Fatalf("qemu-img round trip changed the guest bytes")
			}
			f, err := os.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			st, _ := f.Stat()
			im, err := Open(f, st.Size(), Options{CacheBytes: tt.cache})
			if err != nil {
				t.Fatalf("Open = %v", err)
			}
			if im.Format() != "vmdk" {
				t.Errorf("Format() = %q, want vmdk", im.Format())
			}
			checkReads(t, im, want)
			if n, used := im.cache.len(); used > max(tt.cache, 0) && tt.cache != 0 {
				t.Errorf("cache holds %d bytes in %d entries, budget %d", used, n, tt.cache)
			}
			if err := im.Close(); err != nil {
				t.Errorf("Close = %v", err)
			}
			if _, err := im.ReadAt(make([]byte, 1), 0); err == nil {
				t.Errorf("ReadAt after Close = nil error, want error")
			}
		})
	}
}

// TestBuiltImages checks layouts qemu-img does not write (grain directory
// at the end with a footer, other grain sizes), and has qemu-img read the
// same files as a cross-check.
func TestBuiltImages(t *testing.T) {
	raw := guestBytes(2<<20+512, 9)
	tests := []struct {
		name string
		o    buildOpts
	}{
		{"sparse/grain8", buildOpts{}},
		{"sparse/grain2048/zeroed", buildOpts{grainSectors: 2048, zeroGrain: true}},
		{"stream/footer", buildOpts{stream: true, footer: true}},
		{"stream/footer/grain128", buildOpts{stream: true, footer: true, grainSectors: 128}},
		{"stream/in-place", buildOpts{stream: true, grainSectors: 16}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, _ := build(raw, tt.o)
			im, err := openBytes(img, Options{})
			if err != nil {
				t.Fatalf("Open = %v", err)
			}
			checkReads(t, im, raw)
			if _, err := exec.LookPath("qemu-img"); err != nil {
				return // covered by TestQemuImages' message
			}
			dir := t.TempDir()
			p := filepath.Join(dir, "b.vmdk")
			os.WriteFile(p, img, 0o600)
			run(t, "qemu-img", "convert", "-f", "vmdk", "-O", "raw", p, filepath.Join(dir, "b.raw"))
			back, _ := os.ReadFile(filepath.Join(dir, "b.raw"))
			if !bytes.Equal(back, raw) {
				t.Errorf("qemu-img reads the built image differently")
			}
		})
	}
}

// mutate returns a copy of b changed by f.
func mutate(b []byte, f func([]byte) []byte) []byte {
	return f(append([]byte(nil), b...))
}

func put32(b []byte, off uint64, v uint32) { binary.LittleEndian.PutUint32(b[off:], v) }
func put64(b []byte, off uint64, v uint64) { binary.LittleEndian.PutUint64(b[off:], v) }

func TestHostile(t *testing.T) {
	raw := guestBytes(1<<20, 3)
	sparse, sl := build(raw, buildOpts{})
	stream, stl := build(raw, buildOpts{stream: true})
	footer, _ := build(raw, buildOpts{stream: true, footer: true})
	bomb, _ := build(raw, buildOpts{stream: true, grainHook: func(g, lba uint64, p []byte) (uint64, []byte) {
		if g == 0 {
			return lba, zlibBytes(make([]byte, 64<<10)) // 16 grains of zeros
		}
		return lba, p
	}})
	wrongLBA, _ := build(raw, buildOpts{stream: true, grainHook: func(g, lba uint64, p []byte) (uint64, []byte) {
		return lba + 8, p
	}})
	short, _ := build(raw, buildOpts{stream: true, grainHook: func(g, lba uint64, p []byte) (uint64, []byte) {
		return lba, zlibBytes(make([]byte, 100))
	}})
	badSum, _ := build(raw, buildOpts{stream: true, grainHook: func(g, lba uint64, p []byte) (uint64, []byte) {
		p[len(p)-1] ^= 1 // adler32 trailer
		return lba, p
	}})
	withDesc := func(d string) []byte { b, _ := build(raw, buildOpts{desc: d}); return b }
	firstGrain := sl.grains[0] * sectorSize

	tests := []struct {
		name    string
		img     []byte
		openErr string // substring of the Open error
		readErr string // else: substring of the error reading the whole disk
		ext     bool   // error wraps ErrExternalFile
	}{
		{name: "empty", img: nil, openErr: "too small"},
		{name: "header only", img: sparse[:512], openErr: "descriptor at sector 1 outside file"},
		{name: "truncated in tables", img: sparse[:(sl.gts[0]+1)*sectorSize], openErr: "beyond end of file"},
		{name: "truncated in grains", img: sparse[:firstGrain+8*sectorSize], readErr: "outside file"},
		{name: "overhead beyond eof", img: mutate(sparse, func(b []byte) []byte { put64(b, 64, 1<<40); return b }), openErr: "overhead"},
		{name: "unaligned size", img: sparse[:len(sparse)-1], openErr: "not a multiple of 512"},
		{name: "gd beyond eof", img: mutate(sparse, func(b []byte) []byte { put64(b, 56, 1<<40); return b }), openErr: "grain directory at sector"},
		{name: "gd at sector 0", img: mutate(sparse, func(b []byte) []byte { put64(b, 56, 0); return b }), openErr: "grain directory at sector 0"},
		{name: "gt beyond eof", img: mutate(sparse, func(b []byte) []byte { put32(b, sl.gd*sectorSize, 1<<30); return b }), openErr: "grain table at sector"},
		{name: "grain beyond eof", img: mutate(sparse, func(b []byte) []byte { put32(b, sl.gts[0]*sectorSize, 1<<31); return b }), readErr: "outside file"},
		{name: "gte 1 without zeroed-grain flag", img: mutate(sparse, func(b []byte) []byte { put32(b, sl.gts[0]*sectorSize+4, 1); return b }), readErr: "inside metadata"},
		{name: "stream grain beyond eof", img: mutate(stream, func(b []byte) []byte { put32(b, stl.gts[0]*sectorSize, 0xffffffff); return b }), readErr: "outside file"},
		{name: "deflate bomb", img: bomb, readErr: "more than one grain"},
		{name: "grain marker names other lba", img: wrongLBA, readErr: "marker names sector"},
		{name: "grain inflates short", img: short, readErr: "inflates to 100 bytes"},
		{name: "grain checksum", img: badSum, readErr: "checksum"},
		{name: "compressed size too large", img: mutate(stream, func(b []byte) []byte { put32(b, stl.grains[0]*sectorSize+8, 1<<30); return b }), readErr: "compressed size"},
		{name: "absurd capacity", img: mutate(sparse, func(b []byte) []byte { put64(b, 12, 1<<62); return b }), openErr: "capacity"},
		{name: "zero capacity", img: mutate(sparse, func(b []byte) []byte { put64(b, 12, 0); return b }), openErr: "capacity"},
		{name: "grain size not power of two", img: mutate(sparse, func(b []byte) []byte { put64(b, 20, 24); return b }), openErr: "grain size"},
		{name: "grain size too big", img: mutate(sparse, func(b []byte) []byte { put64(b, 20, 4096); return b }), openErr: "grain size"},
		{name: "gtes per gt", img: mutate(sparse, func(b []byte) []byte { put32(b, 44, 1024); return b }), openErr: "grain table entries"},
		{name: "unknown flag", img: mutate(sparse, func(b []byte) []byte { put32(b, 8, flagNLDetect|1<<9); return b }), openErr: "unknown flags"},
		{name: "newline bytes mangled", img: mutate(sparse, func(b []byte) []byte { b[75] = '\n'; return b }), openErr: "newline"},
		{name: "version 4", img: mutate(sparse, func(b []byte) []byte { put32(b, 4, 4); return b }), openErr: "version 4"},
		{name: "compress without flag", img: mutate(sparse, func(b []byte) []byte { b[77] = 1; return b }), openErr: "compression algorithm set"},
		{name: "unknown compression", img: mutate(stream, func(b []byte) []byte { b[77] = 2; return b }), openErr: "unknown compression"},
		{name: "cowd", img: mutate(sparse, func(b []byte) []byte { copy(b, "COWD"); return b }), openErr: "COWD"},
		{name: "not vmdk", img: make([]byte, 4096), openErr: "no KDMV magic"},
		{name: "footer marker bad", img: mutate(footer, func(b []byte) []byte { b[len(b)-3*512+12] = 9; return b }), openErr: "bad footer marker"},
		{name: "eos marker bad", img: mutate(footer, func(b []byte) []byte { b[len(b)-512] = 1; return b }), openErr: "end-of-stream"},
		{name: "footer disagrees", img: mutate(footer, func(b []byte) []byte { put64(b, uint64(len(b)-2*512+12), 4096); return b }), openErr: "disagrees"},
		{name: "footer gd at end", img: mutate(footer, func(b []byte) []byte { put64(b, uint64(len(b)-2*512+56), gdAtEnd); return b }), openErr: "offset missing"},
		{name: "no embedded descriptor", img: mutate(sparse, func(b []byte) []byte { put64(b, 36, 0); return b }), openErr: "without an embedded descriptor", ext: true},
		{name: "descriptor too big", img: mutate(sparse, func(b []byte) []byte { put64(b, 36, 1000); return b }), openErr: "exceeds"},
		{name: "descriptor flat extent", img: withDesc("version=1\ncreateType=\"monolithicFlat\"\nRW 2048 FLAT \"/etc/hostname\" 0\n"), openErr: "monolithicFlat", ext: true},
		{name: "descriptor child", img: withDesc(strings.Replace(defaultDesc("monolithicSparse", 2048), "parentCID=ffffffff", "parentCID=12345678\nparentFileNameHint=\"/etc/hostname\"", 1)), openErr: "child image", ext: true},
		{name: "descriptor two extents", img: withDesc(defaultDesc("monolithicSparse", 2048) + "RW 2048 SPARSE \"other.vmdk\"\n"), openErr: "2 extents", ext: true},
		{name: "descriptor capacity mismatch", img: withDesc(defaultDesc("monolithicSparse", 4096)), openErr: "header says"},
		{name: "descriptor control char", img: withDesc(defaultDesc("monolithicSparse", 2048) + "a=\x1b[2J\n"), openErr: "control character"},
		{name: "descriptor bad line", img: withDesc(defaultDesc("monolithicSparse", 2048) + "hello world\n"), openErr: "neither key=value"},
		{name: "descriptor duplicate key", img: withDesc(defaultDesc("monolithicSparse", 2048) + "createType=\"monolithicSparse\"\n"), openErr: "duplicate key"},
		{name: "descriptor sector count", img: withDesc(strings.Replace(defaultDesc("monolithicSparse", 2048), "RW 2048", "RW 02048", 1)), openErr: "bad sector count"},
		{name: "descriptor createType mismatch", img: withDesc(defaultDesc("streamOptimized", 2048)), openErr: "streamOptimized without compressed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im, err := openBytes(tt.img, Options{})
			if tt.openErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.openErr) {
					t.Fatalf("Open = %v, want error containing %q", err, tt.openErr)
				}
				if im != nil {
					t.Errorf("Open returned an image with an error")
				}
				if errors.Is(err, ErrExternalFile) != tt.ext {
					t.Errorf("errors.Is(%v, ErrExternalFile) = %v, want %v", err, !tt.ext, tt.ext)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open = %v, want success", err)
			}
			if _, err := readAll(im); err == nil || !strings.Contains(err.Error(), tt.readErr) {
				t.Fatalf("reading = %v, want error containing %q", err, tt.readErr)
			}
		})
	}
}

// recordingReader fails the test on any read: a descriptor-only file must
// be refused from its first bytes, and nothing else may be touched.
type recordingReader struct {
	r     io.ReaderAt
	reads int
}

func (r *recordingReader) ReadAt(p []byte, off int64) (int, error) {
	r.reads++
	return r.r.ReadAt(p, off)
}

func TestDescriptorOnly(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"flat etc hostname", "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\nRW 2048 FLAT \"/etc/hostname\" 0\n", `FLAT "/etc/hostname"`},
		{"split sparse", "# Disk DescriptorFile\nversion=1\ncreateType=\"twoGbMaxExtentSparse\"\nRW 4192256 SPARSE \"a-s001.vmdk\"\nRW 4192256 SPARSE \"a-s002.vmdk\"\n", "2 extents"},
		{"version line first", "version=1\ncreateType=\"vmfs\"\nRW 2048 VMFS \"x-flat.vmdk\"\n", "VMFS"},
		{"garbled", "# Disk DescriptorFile\nversion=1\n\x00\x01", "control character"},
		{"tiny", "# Disk DescriptorFile\n", "version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rr := &recordingReader{r: strings.NewReader(tt.text)}
			im, err := Open(rr, int64(len(tt.text)), Options{})
			if im != nil || !errors.Is(err, ErrExternalFile) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open = %v, %v; want nil, ErrExternalFile containing %q", im, err, tt.want)
			}
			if rr.reads > 3 {
				t.Errorf("Open made %d reads of a descriptor-only file", rr.reads)
			}
		})
	}
}

// TestNoFileAccess proves the package cannot open host files: it does not
// import os, path/filepath, io/fs or syscall.
func TestNoFileAccess(t *testing.T) {
	pkgs, err := parser.ParseDir(token.NewFileSet(), ".", func(fi os.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkgs {
		for name, f := range p.Files {
			for _, imp := range f.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				switch path {
				case "os", "path/filepath", "io/fs", "syscall", "os/exec", "plugin":
					t.Errorf("%s imports %s; the reader must only use the io.ReaderAt it is given", name, path)
				}
			}
		}
	}
}

func TestLRU(t *testing.T) {
	c := newLRU(10)
	c.put(cacheKey{0, 1}, make([]byte, 4))
	c.put(cacheKey{0, 2}, make([]byte, 4))
	c.get(cacheKey{0, 1})                   // 1 is now most recent
	c.put(cacheKey{0, 3}, make([]byte, 4))  // evicts 2
	c.put(cacheKey{0, 4}, make([]byte, 11)) // too big: not cached
	if _, ok := c.get(cacheKey{0, 2}); ok {
		t.Errorf("get(2) found an evicted entry")
	}
	for _, k := range []int64{1, 3} {
		if _, ok := c.get(cacheKey{0, k}); !ok {
			t.Errorf("get(%d) missed", k)
		}
	}
	if n, used := c.len(); n != 2 || used != 8 {
		t.Errorf("len() = %d, %d; want 2, 8", n, used)
	}
	if _, ok := c.get(cacheKey{0, 4}); ok {
		t.Errorf("get(4) found an entry larger than the budget")
	}
}

// Bytes after the descriptor's NUL terminator are padding that qemu-img
// does not always zero (seen on its streamOptimized output): they are
// ignored, never parsed, and the image reads the same.
func TestDescriptorPaddingIgnored(t *testing.T) {
	raw := guestBytes(1<<20, 3)
	sparse, _ := build(raw, buildOpts{})
	dirty := mutate(sparse, func(b []byte) []byte {
		copy(b[512+400:], "createType=\"monolithicFlat\"\nRW 1 FLAT \"/etc/hostname\" 0\n")
		return b
	})
	img, err := openBytes(dirty, Options{})
	if err != nil {
		t.Fatalf("Open with garbage after the descriptor's NUL: %v", err)
	}
	got := make([]byte, len(raw))
	if _, err := img.ReadAt(got, 0); err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("ReadAt: %v, equal %v", err, bytes.Equal(got, raw))
	}
}
