package qcow2

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite the fuzz seed corpora in testdata/fuzz (needs qemu-img)")

// FuzzParseHeader: no panic; nil header on error; a header that parses
// respects the package limits.
func FuzzParseHeader(f *testing.F) {
	f.Add(simpleImage().bytes()[:512])
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseHeader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if h != nil {
				t.Fatalf("ParseHeader returned a header with error %v", err)
			}
			return
		}
		if h.ClusterBits < MinClusterBits || h.ClusterBits > MaxClusterBits || h.Size > MaxSize ||
			int64(h.L1Size)*8 > MaxL1Bytes || len(h.BackingFile) > MaxBackingFileLen || h.l1Needed() > int64(h.L1Size) {
			t.Fatalf("header outside the limits: %+v", h)
		}
	})
}

// FuzzReadImage builds an image from fuzzed parts (cluster size, feature
// flags, virtual size, L1 entries, one L2 table, data) and reads it.
func FuzzReadImage(f *testing.F) {
	f.Add(uint8(3), uint8(0), uint64(4*4096), u64s(uint64(3*4096)), u64s(uint64(4*4096), flagZero, 0, uint64(5*4096)), bytes.Repeat([]byte("data"), 2048))
	f.Fuzz(func(t *testing.T, bits, flags uint8, size uint64, l1, l2, data []byte) {
		b := fuzzBuilder(bits, flags, size, l1, l2, data)
		file := b.bytes()
		var backing Backing
		if b.backing != "" {
			backing = memBacking(bytes.Repeat([]byte{0x5a}, 3000))
		}
		img, err := Open(bytes.NewReader(file), int64(len(file)), Options{Backing: backing, CacheBytes: 1 << 20})
		if err != nil {
			if img != nil {
				t.Fatalf("Open returned an image with error %v", err)
			}
			return
		}
		defer img.Close()
		readSome(t, img)
	})
}

// FuzzOpenFile opens a whole fuzzed file (seeded with tiny images made by
// qemu-img) and reads it.
func FuzzOpenFile(f *testing.F) {
	f.Add(simpleImage().bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		var backing Backing
		if h, err := ParseHeader(bytes.NewReader(data), int64(len(data))); err == nil && h.BackingFile != "" {
			backing = memBacking(bytes.Repeat([]byte{0xa5}, 5000))
		}
		img, err := Open(bytes.NewReader(data), int64(len(data)), Options{Backing: backing, CacheBytes: 1 << 20})
		if err != nil {
			if img != nil {
				t.Fatalf("Open returned an image with error %v", err)
			}
			return
		}
		defer img.Close()
		readSome(t, img)
	})
}

// readSome reads at a few offsets, checking the io.ReaderAt contract.
func readSome(t *testing.T, img *Image) {
	size := img.Size()
	cs := img.Header().ClusterSize()
	for _, off := range []int64{0, cs - 3, size / 2, size - 1, size, 3 * cs} {
		p := make([]byte, min(2*cs+5, 1<<16))
		n, err := img.ReadAt(p, off)
		if n < 0 || n > len(p) || (n < len(p) && err == nil) {
			t.Fatalf("ReadAt(%d bytes, off %d) = %d, %v", len(p), off, n, err)
		}
		if off >= size && (n != 0 || err != io.EOF) {
			t.Fatalf("ReadAt past the end (off %d, size %d) = %d, %v", off, size, n, err)
		}
	}
}

// fuzzBuilder maps fuzz arguments onto a builder: clusters of 512 bytes
// to 16 KiB; flags bit 0 version 2, bit 1 extended L2, bit 2 zstd, bit 3
// a backing file. L1 and L2 entries are big-endian uint64s.
func fuzzBuilder(bits, flags uint8, size uint64, l1, l2, data []byte) *builder {
	b := newBuilder(MinClusterBits+uint32(bits%6), size)
	if flags&1 != 0 {
		b.version = 2
	}
	if flags&2 != 0 {
		b.incompat |= incExtendedL2
		b.clusterBits = 14
	}
	if flags&4 != 0 {
		b.incompat |= incCompression
		b.compression = 1
	}
	if flags&8 != 0 {
		b.backing = "base"
	}
	b.l1 = fromU64s(l1, 64)
	if len(l2) > 0 {
		b.l2 = [][]uint64{fromU64s(l2, int(b.cs()/8))}
	}
	if len(data) > 0 {
		b.data = [][]byte{data}
	}
	return b
}

func u64s(v ...uint64) []byte {
	var out []byte
	for _, x := range v {
		out = binary.BigEndian.AppendUint64(out, x)
	}
	return out
}

func fromU64s(p []byte, limit int) []uint64 {
	var out []uint64
	for ; len(p) >= 8 && len(out) < limit; p = p[8:] {
		out = append(out, binary.BigEndian.Uint64(p))
	}
	return out
}

// TestWriteFuzzSeeds rewrites the checked-in seed corpora when run with
// -update-seeds: headers and whole tiny images made by qemu-img, images
// from the builder, and hostile variants.
func TestWriteFuzzSeeds(t *testing.T) {
	if !*updateSeeds {
		t.Skip("run with -update-seeds to rewrite testdata/fuzz")
	}
	needTool(t, "qemu-img", "qemu-utils")
	needTool(t, "qemu-io", "qemu-utils")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "src.raw"), testData(24<<10, 5), 0o644); err != nil {
		t.Fatal(err)
	}
	images := map[string][]string{
		"v3-c512-zlib":    {"convert", "-O", "qcow2", "-c", "-o", "cluster_size=512", "src.raw"},
		"v3-c512-zstd":    {"convert", "-O", "qcow2", "-c", "-o", "cluster_size=512,compression_type=zstd", "src.raw"},
		"v2-c512":         {"convert", "-O", "qcow2", "-o", "cluster_size=512,compat=0.10", "src.raw"},
		"v3-c512-backing": {"create", "-f", "qcow2", "-o", "cluster_size=512", "-b", "src.raw", "-F", "raw"},
	}
	var files [][]byte
	for name, args := range images {
		path := filepath.Join(dir, name+".qcow2")
		run(t, dir, "qemu-img", append(args, path)...)
		if strings.Contains(name, "backing") {
			run(t, dir, "qemu-io", "-f", "qcow2", "-c", "write -P 0xab 1k 3k", "-c", "write -z 8k 1k", path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		writeSeed(t, "FuzzOpenFile", name, b)
		writeSeed(t, "FuzzParseHeader", name, b[:min(len(b), 512)])
		files = append(files, b)
	}
	// Hostile variants of a real image: huge L1, L1 entry at the L1 table.
	huge := bytes.Clone(files[0])
	binary.BigEndian.PutUint32(huge[36:], 0xffffffff)
	writeSeed(t, "FuzzParseHeader", "hostile-l1-size", huge[:512])
	writeSeed(t, "FuzzOpenFile", "hostile-l1-size", huge)
	// Images from the builder, with 512-byte clusters to keep seeds small.
	small := func(edit func(b *builder)) *builder {
		b := simpleImageBits(9)
		edit(b)
		return b
	}
	for name, b := range map[string]*builder{
		"builder-simple": small(func(*builder) {}),
		"builder-zstd": small(func(b *builder) {
			zstdCluster(zstdEncode(bytes.Repeat([]byte("compressed "), 64)[:512]))(b)
		}),
		"builder-backing":   small(func(b *builder) { b.backing, b.backingFmt = "/etc/hostname", "raw" }),
		"hostile-l1-loop":   small(func(b *builder) { b.l1[0] = 512 }),
		"hostile-zstd-bomb": small(func(b *builder) { zstdCluster(zstdRLEBomb(8))(b) }),
		"hostile-zlib-bomb": small(func(b *builder) { setCompressed(deflate(make([]byte, 256<<10)))(b) }),
		"hostile-l2-eof":    small(func(b *builder) { b.l2[0][0] = 1 << 40 }),
	} {
		writeSeed(t, "FuzzOpenFile", name, b.bytes())
		writeSeed(t, "FuzzParseHeader", name, b.bytes()[:512])
	}
	// FuzzReadImage: arguments for fuzzBuilder.
	readSeeds := map[string][]any{
		"plain":      {uint8(3), uint8(0), uint64(4 * 4096), u64s(3 * 4096), u64s(4*4096, flagZero, 0, 5*4096), bytes.Repeat([]byte("data"), 2048)},
		"v2-backing": {uint8(0), uint8(9), uint64(8 * 512), u64s(3 * 512), u64s(0, 4*512, 0, 5*512), bytes.Repeat([]byte("v2"), 512)},
		"compressed": {uint8(3), uint8(0), uint64(2 * 4096), u64s(3 * 4096), u64s(simpleImage().compressedEntry(4*4096, 60)), deflate(bytes.Repeat([]byte("z"), 4096))},
		"zstd":       {uint8(3), uint8(4), uint64(2 * 4096), u64s(3 * 4096), u64s(simpleImage().compressedEntry(4*4096, 30)), zstdEncode(bytes.Repeat([]byte("z"), 4096))},
		"extended":   {uint8(5), uint8(10), uint64(3 * 16384), u64s(3 * 16384), u64s(4*16384, 1|1<<33|1<<2), bytes.Repeat([]byte{1}, 600)},
		"huge-size":  {uint8(0), uint8(0), uint64(1 << 45), u64s(3 * 512), []byte{}, []byte{}},
		"l1-loop":    {uint8(3), uint8(0), uint64(4096), u64s(4096), u64s(4096), []byte{}},
		"bomb":       {uint8(3), uint8(4), uint64(4096), u64s(3 * 4096), u64s(simpleImage().compressedEntry(4*4096, 30)), zstdRLEBomb(6)},
	}
	for name, args := range readSeeds {
		writeSeed(t, "FuzzReadImage", name, args...)
	}
}

// writeSeed writes one corpus file in the "go test fuzz v1" format.
func writeSeed(t *testing.T, target, name string, args ...any) {
	t.Helper()
	var buf strings.Builder
	buf.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			fmt.Fprintf(&buf, "[]byte(%s)\n", strconv.Quote(string(v)))
		case uint8:
			fmt.Fprintf(&buf, "byte(%d)\n", v)
		case uint64:
			fmt.Fprintf(&buf, "uint64(%d)\n", v)
		default:
			t.Fatalf("seed argument of type %T", a)
		}
	}
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "seed-"+name), []byte(buf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
