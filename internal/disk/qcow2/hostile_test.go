package qcow2

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"
)

// deadline bounds every hostile case: none may hang a reader.
const deadline = 10 * time.Second

// TestOpenRefuses feeds malformed and unsupported images to Open; each
// must be refused quickly with a specific error.
func TestOpenRefuses(t *testing.T) {
	tests := []struct {
		name        string
		build       func(b *builder)
		patch       func(f []byte) []byte
		backing     Backing
		want        string
		unsupported bool // the error must wrap ErrUnsupported
	}{
		{name: "bad-magic", patch: func(f []byte) []byte { f[0] = 'X'; return f }, want: "bad magic"},
		{name: "version-1", build: func(b *builder) { b.version = 1 }, want: "unsupported version 1"},
		{name: "version-4", build: func(b *builder) { b.version = 4 }, want: "unsupported version 4"},
		{name: "cluster-bits-8", patch: setU32(20, 8), want: "cluster_bits 8"},
		{name: "cluster-bits-22", patch: setU32(20, 22), want: "cluster_bits 22"},
		{name: "size-beyond-limit", build: func(b *builder) { b.size = 1 << 50 }, want: "exceeds the limit"},
		{name: "l1-terabytes", build: func(b *builder) { b.l1Size = 0xffffffff }, want: "exceeds the limit"},
		{name: "virtual-60TiB-tiny-file", build: func(b *builder) { b.clusterBits, b.size, b.l1Size = 16, 60<<40, 60<<40>>29 }, want: "beyond end of file"},
		{name: "l1-too-small", build: func(b *builder) { b.size = 1 << 30 }, want: "too small"},
		{name: "l1-unaligned", build: func(b *builder) { b.l1Field = 4096 + 8 }, want: "cluster boundary"},
		{name: "l1-in-header", patch: setU64(40, 0), want: "cluster boundary"},
		{name: "l1-entry-points-at-l1", build: func(b *builder) { b.l1[0] = 4096 }, want: "overlaps the l1 table"},
		{name: "l1-entry-in-header-cluster", build: func(b *builder) { b.l1[0] = 512 }, want: "not cluster aligned"},
		{name: "l1-entry-beyond-eof", build: func(b *builder) { b.l1[0] = 1 << 40 }, want: "beyond end of file"},
		{name: "l1-entry-reserved-bits", build: func(b *builder) { b.l1[0] |= 1 << 56 }, want: "reserved bits"},
		{name: "header-length-short", build: func(b *builder) { b.headerLen = 96 }, want: "header_length"},
		{name: "header-length-unaligned", build: func(b *builder) { b.headerLen = 108 }, want: "header_length"},
		{name: "header-length-beyond-cluster", build: func(b *builder) { b.headerLen = 8192 }, want: "header_length"},
		{name: "refcount-order-7", build: func(b *builder) { b.refOrder = 7 }, want: "refcount_order"},
		{name: "extended-l2-small-clusters", build: func(b *builder) { b.incompat = incExtendedL2 }, want: "extended L2"},
		{name: "compression-bit-without-field", build: func(b *builder) { b.incompat = incCompression; b.headerLen = 104 }, want: "compression type bit"},
		{name: "compression-field-without-bit", build: func(b *builder) { b.compression = 1 }, want: "without the compression type bit"},
		{name: "backing-name-too-long", build: func(b *builder) { b.backing = strings.Repeat("a", 1024) }, want: "exceeds 1023"},
		{name: "backing-name-nul", build: func(b *builder) { b.backing = "base\x00/etc/passwd" }, want: "NUL"},
		{name: "backing-name-outside-cluster", build: func(b *builder) { b.backing = "base" },
			patch: setU64(8, 4096-2), want: "outside the first cluster"},
		{name: "backing-named-no-image", build: func(b *builder) { b.backing = "/etc/hostname" }, want: "no backing image was given"},
		{name: "backing-given-not-named", backing: memBacking(nil), want: "names no backing file"},
		{name: "extension-too-large", build: func(b *builder) { b.extraExt = ext(0x12345678, 0xffffff, nil) }, want: "too large"},
		{name: "extension-twice", build: func(b *builder) {
			b.backing, b.backingFmt = "base", "raw"
			b.extraExt = ext(extBackingFmt, 5, []byte("qcow2"))
		}, want: "appears twice"},
		{name: "backing-format-not-a-name", build: func(b *builder) { b.backing, b.backingFmt = "base", "../raw" }, want: "not a format name"},
		{name: "encrypted-aes", build: func(b *builder) { b.crypt = 1 }, want: "encrypted", unsupported: true},
		{name: "encrypted-luks", build: func(b *builder) { b.crypt = 2 }, want: "encrypted", unsupported: true},
		{name: "encryption-extension", build: func(b *builder) { b.extraExt = ext(extEncryption, 16, make([]byte, 16)) }, want: "encrypted", unsupported: true},
		{name: "unknown-incompatible", build: func(b *builder) { b.incompat = 1 << 5 }, want: "bit 5 (unnamed)", unsupported: true},
		{name: "unknown-incompatible-named", build: func(b *builder) {
			b.incompat = 1 << 7
			entry := make([]byte, 48)
			entry[1] = 7
			copy(entry[2:], "future-feature")
			b.extraExt = ext(extFeatureNames, 48, entry)
		}, want: "bit 7 (future-feature)", unsupported: true},
		{name: "corrupt", build: func(b *builder) { b.incompat = incCorrupt }, want: "marked corrupt"},
		{name: "external-data-file", build: func(b *builder) { b.incompat = incDataFile }, want: "external data file", unsupported: true},
		{name: "compression-type-2", build: func(b *builder) { b.incompat, b.compression = incCompression, 2 }, want: "unknown(2)", unsupported: true},
		{name: "truncated", patch: func(f []byte) []byte { return f[:50] }, want: "too short"},
		{name: "v3-truncated-header", patch: func(f []byte) []byte { return f[:90] }, want: "too short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := simpleImage()
			if tt.build != nil {
				tt.build(b)
			}
			f := b.bytes()
			if tt.patch != nil {
				f = tt.patch(f)
			}
			within(t, deadline, func() {
				img, err := Open(bytes.NewReader(f), int64(len(f)), Options{Backing: tt.backing})
				if err == nil || img != nil {
					t.Fatalf("Open = %v, %v; want nil, error containing %q", img, err, tt.want)
				}
				if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "qcow2: ") {
					t.Errorf("Open error = %q, want it to start with \"qcow2: \" and contain %q", err, tt.want)
				}
				if errors.Is(err, ErrUnsupported) != tt.unsupported {
					t.Errorf("errors.Is(%v, ErrUnsupported) = %v, want %v", err, !tt.unsupported, tt.unsupported)
				}
			})
		})
	}
}

// TestHostileReads opens images whose header and L1 are fine but whose L2
// entries or compressed clusters are hostile: the read of the affected
// cluster fails, and reads elsewhere still work.
func TestHostileReads(t *testing.T) {
	const cluster3 = 3 * 4096 // the compressed cluster of simpleImage
	tests := []struct {
		name    string
		build   func(b *builder)
		backing Backing
		off     int64
		want    string
	}{
		{name: "l2-entry-beyond-eof", build: func(b *builder) { b.l2[0][0] = 1 << 40 }, want: "cluster at offset 1099511627776 beyond end of file"},
		{name: "l2-entry-unaligned", build: func(b *builder) { b.l2[0][0] += 512 }, want: "not cluster aligned"},
		{name: "l2-entry-reserved-bits", build: func(b *builder) { b.l2[0][0] |= 1 << 57 }, want: "reserved bits"},
		{name: "v2-zero-flag", build: func(b *builder) { b.version = 2 }, off: 4096, want: "reserved bits"},
		{name: "zlib-bomb", build: setCompressed(deflate(make([]byte, 4<<20))), off: cluster3, want: "expands beyond cluster size"},
		{name: "zlib-short", build: setCompressed(deflate(make([]byte, 100))), off: cluster3, want: "less than a cluster"},
		{name: "zlib-garbage", build: setCompressed(randBytes(3000)), off: cluster3, want: "zlib"},
		{name: "zstd-huge-content-size", build: zstdCluster(zstdHugeFCS()), off: cluster3, want: "expands beyond cluster size"},
		{name: "zstd-bomb-without-size", build: zstdCluster(zstdRLEBomb(64)), off: cluster3, want: "expands beyond cluster size"},
		{name: "zstd-short", build: zstdCluster(zstdEncode(make([]byte, 100))), off: cluster3, want: "zstd"},
		{name: "zstd-garbage", build: zstdCluster(randBytes(3000)), off: cluster3, want: "zstd"},
		{name: "zstd-truncated", build: zstdCluster(zstdEncode(randBytes(4096))[:2000]), off: cluster3, want: "zstd"},
		{name: "compressed-beyond-eof", build: func(b *builder) { b.l2[0][3] = flagCompressed | 1<<30 }, off: cluster3, want: "beyond end of file"},
		{name: "extended-both-bits", build: extended(0, 1|1<<32), want: "both allocated and zero"},
		{name: "extended-alloc-without-offset", build: extended(-1, 1), want: "without a host offset"},
		{name: "extended-compressed-with-bitmap", build: extended(-2, 1), want: "subcluster bitmap"},
		{name: "backing-read-error", build: func(b *builder) { b.backing = "base" }, backing: failingBacking{}, off: 2 * 4096, want: "backing image"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := simpleImage()
			tt.build(b)
			f := b.bytes()
			within(t, deadline, func() {
				img, err := Open(bytes.NewReader(f), int64(len(f)), Options{Backing: tt.backing})
				if err != nil {
					t.Fatalf("Open = %v, want success (the damage is in a cluster)", err)
				}
				defer img.Close()
				p := make([]byte, 100)
				n, err := img.ReadAt(p, tt.off)
				if err == nil || errors.Is(err, io.EOF) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("ReadAt(off %d) = %d, %v; want error containing %q", tt.off, n, err, tt.want)
				}
				if !strings.HasPrefix(err.Error(), "qcow2: ") {
					t.Errorf("error %q does not start with \"qcow2: \"", err)
				}
				// The same read fails again (no poisoned cache entry).
				if _, err2 := img.ReadAt(p, tt.off); err2 == nil {
					t.Errorf("second ReadAt(off %d) succeeded", tt.off)
				}
			})
		})
	}
}

// TestHugeL1NoAllocation opens an image whose L1 table claims terabytes;
// it must fail before allocating anything sizeable.
func TestHugeL1NoAllocation(t *testing.T) {
	tests := []struct {
		name  string
		build func(b *builder)
	}{
		{"l1-size-max", func(b *builder) { b.l1Size = 0xffffffff }},
		{"l1-32MiB-beyond-eof", func(b *builder) { b.size = 16 << 40; b.clusterBits = 16; b.l1Size = 32 << 20 / 8 }},
		{"size-64TiB-l1-beyond-eof", func(b *builder) { b.size = 64 << 40; b.clusterBits = 21; b.l1Size = 64 << 40 >> 39 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := simpleImage()
			tt.build(b)
			f := b.bytes()
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			within(t, deadline, func() {
				if _, err := Open(bytes.NewReader(f), int64(len(f)), Options{}); err == nil {
					t.Fatal("Open succeeded")
				}
			})
			runtime.ReadMemStats(&after)
			if got := after.TotalAlloc - before.TotalAlloc; got > 64<<20 {
				t.Errorf("Open allocated %d bytes, want < 64 MiB", got)
			}
		})
	}
}

func setU32(off int, v uint32) func([]byte) []byte {
	return func(f []byte) []byte { binary.BigEndian.PutUint32(f[off:], v); return f }
}

func setU64(off int, v uint64) func([]byte) []byte {
	return func(f []byte) []byte { binary.BigEndian.PutUint64(f[off:], v); return f }
}

// ext encodes one header extension with a declared length that may lie.
func ext(typ, declared uint32, data []byte) []byte {
	var h [8]byte
	binary.BigEndian.PutUint32(h[:], typ)
	binary.BigEndian.PutUint32(h[4:], declared)
	out := append(h[:], data...)
	return append(out, make([]byte, (8-len(data)%8)%8)...)
}

// setCompressed replaces the compressed cluster of simpleImage.
func setCompressed(comp []byte) func(b *builder) {
	return func(b *builder) {
		b.data[1] = comp
		b.l2[0][3] = b.compressedEntry(b.dataOff(1), int64(len(comp)))
	}
}

func zstdCluster(comp []byte) func(b *builder) {
	return func(b *builder) {
		b.incompat, b.compression = incCompression, 1
		setCompressed(comp)(b)
	}
}

// zstdHugeFCS is a frame whose header claims 1 TiB of content.
func zstdHugeFCS() []byte {
	f := []byte{0x28, 0xb5, 0x2f, 0xfd, 0xe0} // magic; FCS 8 bytes, single segment
	f = binary.LittleEndian.AppendUint64(f, 1<<40)
	return append(f, rleBlock(true)...)
}

// zstdRLEBomb is a frame without a content size whose n RLE blocks expand
// 4 bytes each into 128 KiB.
func zstdRLEBomb(n int) []byte {
	f := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38} // magic; no FCS; window 128 KiB
	for i := range n {
		f = append(f, rleBlock(i == n-1)...)
	}
	return f
}

func rleBlock(last bool) []byte {
	bh := uint32(1<<1 | (128<<10)<<3)
	if last {
		bh |= 1
	}
	return []byte{byte(bh), byte(bh >> 8), byte(bh >> 16), 0x41}
}

// extended turns simpleImage into a 16 KiB-cluster image with extended L2
// entries and sets entry 0: host offset of data blob 0 (entryOff 0), no
// offset (-1), or a compressed descriptor (-2); plus its bitmap.
func extended(entryOff int, bitmap uint64) func(b *builder) {
	return func(b *builder) {
		*b = *newBuilder(14, 4*16384)
		b.incompat = incExtendedL2
		b.l1 = []uint64{0}
		b.l2 = [][]uint64{make([]uint64, 2048)}
		b.data = [][]byte{make([]byte, 16384)}
		b.l1[0] = uint64(b.l2Off(0))
		switch entryOff {
		case 0:
			b.l2[0][0] = uint64(b.dataOff(0))
		case -2:
			b.l2[0][0] = b.compressedEntry(b.dataOff(0), 100)
		}
		b.l2[0][1] = bitmap
	}
}

func randBytes(n int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 3))
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
}

type failingBacking struct{}

func (failingBacking) ReadAt([]byte, int64) (int, error) { return 0, errors.New("disk on fire") }
func (failingBacking) Size() int64                       { return 1 << 20 }
func (failingBacking) Close() error                      { return nil }

// TestBombsStayBounded checks that decompression bombs are cut off at one
// cluster: reading them allocates a few clusters' worth, not their
// expanded size.
func TestBombsStayBounded(t *testing.T) {
	tests := []struct {
		name  string
		build func(b *builder)
	}{
		{"zlib-4MiB", setCompressed(deflate(make([]byte, 4<<20)))},
		{"zstd-256MiB", zstdCluster(zstdRLEBomb(2000))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := simpleImage()
			tt.build(b)
			f := b.bytes()
			img, err := Open(bytes.NewReader(f), int64(len(f)), Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			within(t, deadline, func() {
				if _, err := img.ReadAt(make([]byte, 10), 3*4096); err == nil {
					t.Error("reading the bomb succeeded")
				}
			})
			runtime.ReadMemStats(&after)
			if got := after.TotalAlloc - before.TotalAlloc; got > 8<<20 {
				t.Errorf("reading the bomb allocated %d bytes, want < 8 MiB", got)
			}
		})
	}
}
