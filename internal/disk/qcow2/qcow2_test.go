package qcow2

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

const (
	dataSize  = 5<<20 + 1536 // not a multiple of any cluster size above 512
	smallSize = 1<<20 + 1536
)

// openFile opens a qcow2 file with opts and closes it with the test.
func openFile(t *testing.T, path string, opts Options) *Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	img, err := Open(f, fi.Size(), opts)
	if err != nil {
		t.Fatalf("Open(%s) = %v", filepath.Base(path), err)
	}
	t.Cleanup(func() { img.Close() })
	return img
}

// TestReadMatchesQEMU converts the same data with qemu-img in every
// layout this reader supports and compares each byte read with qemu-img's
// own raw conversion of the image.
func TestReadMatchesQEMU(t *testing.T) {
	needTool(t, "qemu-img", "qemu-utils")
	needTool(t, "qemu-io", "qemu-utils")
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	data := testData(dataSize, 42)
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	small := filepath.Join(dir, "small.raw")
	if err := os.WriteFile(small, data[:smallSize], 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		convert []string // qemu-img convert options
		io      []string // qemu-io commands run on the result
		want    Header   // fields checked: Version, ClusterBits, CompressionType, ExtendedL2
		small   bool     // use the small source (512-byte clusters convert slowly)
	}{
		{"v3", nil, nil, Header{Version: 3, ClusterBits: 16, CompressionType: "zlib"}, false},
		{"v3-zlib", []string{"-c"}, nil, Header{Version: 3, ClusterBits: 16, CompressionType: "zlib"}, false},
		{"v3-zstd", []string{"-c", "-o", "compression_type=zstd"}, nil, Header{Version: 3, ClusterBits: 16, CompressionType: "zstd"}, false},
		{"v2", []string{"-o", "compat=0.10"}, nil, Header{Version: 2, ClusterBits: 16, CompressionType: "zlib"}, false},
		{"v2-zlib", []string{"-c", "-o", "compat=0.10"}, nil, Header{Version: 2, ClusterBits: 16, CompressionType: "zlib"}, false},
		{"c512-zlib", []string{"-c", "-o", "cluster_size=512"}, nil, Header{Version: 3, ClusterBits: 9, CompressionType: "zlib"}, true},
		{"c512-zstd", []string{"-c", "-o", "cluster_size=512,compression_type=zstd"}, nil, Header{Version: 3, ClusterBits: 9, CompressionType: "zstd"}, true},
		{"c4k", []string{"-o", "cluster_size=4096"}, nil, Header{Version: 3, ClusterBits: 12, CompressionType: "zlib"}, false},
		{"c4k-zlib", []string{"-c", "-o", "cluster_size=4096"}, nil, Header{Version: 3, ClusterBits: 12, CompressionType: "zlib"}, false},
		{"c2m", []string{"-o", "cluster_size=2M"}, nil, Header{Version: 3, ClusterBits: 21, CompressionType: "zlib"}, false},
		{"c2m-zstd", []string{"-c", "-o", "cluster_size=2M,compression_type=zstd"}, nil, Header{Version: 3, ClusterBits: 21, CompressionType: "zstd"}, false},
		{"prealloc-metadata", []string{"-o", "preallocation=metadata"}, nil, Header{Version: 3, ClusterBits: 16, CompressionType: "zlib"}, false},
		{"zero-clusters", nil, []string{"write -z 0 192k", "write -z 1M 64k", "write -z -u 2M 128k", "discard 3M 64k"},
			Header{Version: 3, ClusterBits: 16, CompressionType: "zlib"}, false},
		{"extended-l2", []string{"-o", "extended_l2=on"},
			[]string{"write -P 0xab 4k 4k", "write -z 70k 6k", "write -P 0x11 1M 2k", "discard 2M 64k"},
			Header{Version: 3, ClusterBits: 16, CompressionType: "zlib", ExtendedL2: true}, false},
		{"extended-l2-zstd", []string{"-c", "-o", "extended_l2=on,cluster_size=32k,compression_type=zstd"},
			[]string{"write -P 0xcd 33k 1k", "write -z 100k 2k"},
			Header{Version: 3, ClusterBits: 15, CompressionType: "zstd", ExtendedL2: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name+".qcow2")
			in, data := src, data
			if tt.small {
				in, data = small, data[:smallSize]
			}
			args := append([]string{"convert", "-O", "qcow2"}, tt.convert...)
			run(t, dir, "qemu-img", append(args, in, path)...)
			for _, c := range tt.io {
				run(t, dir, "qemu-io", "-f", "qcow2", "-c", c, path)
			}
			want := qemuRaw(t, path)
			if tt.io == nil && !bytes.Equal(want, data) {
				t.Fatal("qemu-img's raw conversion differs from the source data")
			}
			img := openFile(t, path, Options{})
			h := img.Header()
			if h.Version != tt.want.Version || h.ClusterBits != tt.want.ClusterBits ||
				h.CompressionType != tt.want.CompressionType || h.ExtendedL2 != tt.want.ExtendedL2 {
				t.Errorf("header = v%d bits %d %s extL2 %v, want v%d bits %d %s extL2 %v",
					h.Version, h.ClusterBits, h.CompressionType, h.ExtendedL2,
					tt.want.Version, tt.want.ClusterBits, tt.want.CompressionType, tt.want.ExtendedL2)
			}
			if img.Format() != "qcow2" {
				t.Errorf("Format() = %q, want qcow2", img.Format())
			}
			checkReads(t, img, img.Size(), h.ClusterSize(), want)
		})
	}
}

// TestBackingMatchesQEMU reads overlays through a backing image opened by
// the test (package disk does the confined opening) and compares with
// qemu-img.
func TestBackingMatchesQEMU(t *testing.T) {
	needTool(t, "qemu-img", "qemu-utils")
	needTool(t, "qemu-io", "qemu-utils")
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	if err := os.WriteFile(src, testData(dataSize, 7), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, dir, "qemu-img", "convert", "-O", "qcow2", "-c", src, "base.qcow2")
	tests := []struct {
		name   string
		create []string
		io     []string
	}{
		{"same-size", nil, []string{"write -P 0xab 1M 64k", "write -z 2M 128k", "write -P 0xcd 100k 3k"}},
		{"larger", []string{"8M"}, []string{"write -P 0xab 6M 64k", "write -P 0x01 5M 4k"}},
		{"smaller", []string{"3M"}, []string{"write -P 0xee 0 1k"}},
		{"extended-l2", []string{"-o", "extended_l2=on"}, []string{"write -P 0xab 1M 5k", "write -z 1100k 2k", "write -P 0x22 2047k 3k"}},
		{"v2-overlay", []string{"-o", "compat=0.10"}, []string{"write -P 0x5a 512k 1k"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := tt.name + ".qcow2"
			args := []string{"create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2"}
			var size []string
			if len(tt.create) == 1 {
				size = tt.create
			} else {
				args = append(args, tt.create...)
			}
			run(t, dir, "qemu-img", append(append(args, name), size...)...)
			for _, c := range tt.io {
				run(t, dir, "qemu-io", "-f", "qcow2", "-c", c, name)
			}
			want := qemuRaw(t, filepath.Join(dir, name))
			cache := NewCache(8 << 20) // shared by both layers
			base := openFile(t, filepath.Join(dir, "base.qcow2"), Options{Cache: cache})
			img := openFile(t, filepath.Join(dir, name), Options{Backing: base, Cache: cache})
			if h := img.Header(); h.BackingFile != "base.qcow2" || h.BackingFormat != "qcow2" {
				t.Errorf("backing = %q (%q), want base.qcow2 (qcow2)", h.BackingFile, h.BackingFormat)
			}
			checkReads(t, img, img.Size(), img.Header().ClusterSize(), want)
		})
	}
}

// TestBuiltImages reads hand-built valid images whose content is known.
func TestBuiltImages(t *testing.T) {
	tests := []struct {
		name  string
		build func() (*builder, Backing)
		want  func() []byte
	}{
		{"simple", func() (*builder, Backing) { return simpleImage(), nil }, simpleWant},
		{"zero-flag-hides-backing", func() (*builder, Backing) {
			b := simpleImage()
			b.backing = "base.raw"
			return b, memBacking(bytes.Repeat([]byte{0xff}, 4*4096))
		}, func() []byte {
			w := simpleWant()
			copy(w[2*4096:3*4096], bytes.Repeat([]byte{0xff}, 4096)) // unallocated cluster 2 from backing
			return w
		}},
		{"short-backing", func() (*builder, Backing) {
			b := simpleImage()
			b.backing = "base.raw"
			return b, memBacking(bytes.Repeat([]byte{0xee}, 2*4096+100))
		}, func() []byte {
			w := simpleWant()
			copy(w[2*4096:], bytes.Repeat([]byte{0xee}, 100)) // then zeros past the backing's end
			return w
		}},
		{"v2", func() (*builder, Backing) {
			b := simpleImage()
			b.version = 2
			b.l2[0][1] = 0
			return b, nil
		}, simpleWant},
		{"zstd", func() (*builder, Backing) {
			b := simpleImage()
			b.incompat, b.compression = incCompression, 1
			comp := zstdEncode(bytes.Repeat([]byte("compressed "), 400)[:4096])
			b.data[1] = comp
			b.l2[0][3] = b.compressedEntry(b.dataOff(1), int64(len(comp)))
			return b, nil
		}, simpleWant},
		{"data-cut-by-eof", func() (*builder, Backing) {
			b := newBuilder(12, 4096)
			b.l1 = []uint64{0}
			b.l2 = [][]uint64{make([]uint64, 512)}
			b.data = [][]byte{bytes.Repeat([]byte{7}, 100)} // file ends 100 bytes into the cluster
			b.l1[0], b.l2[0][0] = uint64(b.l2Off(0)), uint64(b.dataOff(0))
			return b, nil
		}, func() []byte {
			w := make([]byte, 4096)
			copy(w, bytes.Repeat([]byte{7}, 100))
			return w
		}},
		{"extended-l2", func() (*builder, Backing) {
			b := newBuilder(14, 2*16384)
			b.incompat = incExtendedL2
			b.backing = "base.raw"
			b.l1 = []uint64{0}
			b.l2 = [][]uint64{make([]uint64, 2048)}
			b.data = [][]byte{bytes.Repeat([]byte{0xab}, 16384)}
			b.l1[0] = uint64(b.l2Off(0))
			// subcluster 0 allocated, 1 zero, the rest from the backing.
			b.l2[0][0], b.l2[0][1] = uint64(b.dataOff(0)), 1|1<<33
			return b, memBacking(bytes.Repeat([]byte{0x11}, 2*16384))
		}, func() []byte {
			w := bytes.Repeat([]byte{0x11}, 2*16384)
			copy(w, bytes.Repeat([]byte{0xab}, 512))
			clear(w[512:1024])
			return w
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, backing := tt.build()
			file := b.bytes()
			img, err := Open(bytes.NewReader(file), int64(len(file)), Options{Backing: backing})
			if err != nil {
				t.Fatalf("Open = %v", err)
			}
			defer img.Close()
			checkReads(t, img, img.Size(), img.Header().ClusterSize(), tt.want())
		})
	}
}

// memBacking is an in-memory backing image.
type memBacking []byte

func (m memBacking) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(m).ReadAt(p, off)
}
func (m memBacking) Size() int64  { return int64(len(m)) }
func (m memBacking) Close() error { return nil }

// TestCacheBudget checks that the LRU stays within its budget and evicts
// the least recently used entry first.
func TestCacheBudget(t *testing.T) {
	c := NewCache(3 * 100)
	for i := range 5 {
		c.put(&cacheEntry{key: cacheKey{owner: 1, kind: kindCluster, off: int64(i)}, size: 100})
		if i == 3 {
			c.get(cacheKey{owner: 1, kind: kindCluster, off: 1}) // 1 becomes most recent
		}
	}
	if c.used > c.limit {
		t.Errorf("used = %d, limit %d", c.used, c.limit)
	}
	for off, want := range map[int64]bool{0: false, 1: true, 2: false, 3: true, 4: true} {
		if _, ok := c.get(cacheKey{owner: 1, kind: kindCluster, off: off}); ok != want {
			t.Errorf("entry %d cached = %v, want %v", off, ok, want)
		}
	}
	c.put(&cacheEntry{key: cacheKey{owner: 2, kind: kindCluster}, size: 1000}) // larger than the budget
	if _, ok := c.get(cacheKey{owner: 2, kind: kindCluster}); ok {
		t.Error("an entry larger than the budget was cached")
	}
	c.drop(1)
	if c.used != 0 || len(c.items) != 0 {
		t.Errorf("after drop: used %d, %d items", c.used, len(c.items))
	}
}
