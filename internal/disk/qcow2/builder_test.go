package qcow2

import (
	"bytes"
	"compress/flate"
	"encoding/binary"

	"github.com/klauspost/compress/zstd"
)

// builder writes small qcow2 images by hand, for hostile and edge cases
// that qemu-img will not produce. Layout: the header in cluster 0, the L1
// table from cluster 1, then the L2 tables, then the data blobs, each
// starting at a cluster boundary.
type builder struct {
	version     uint32
	clusterBits uint32
	size        uint64
	incompat    uint64
	crypt       uint32
	refOrder    uint32
	headerLen   uint32 // 0: natural (72 or 112)
	compression byte   // compression_type field (v3, header_len 112)
	backing     string
	backingFmt  string
	extraExt    []byte // raw header extensions appended before the end marker

	l1Size  uint32 // 0: len(l1)
	l1Field int64  // l1_table_offset override (0: natural)
	l1      []uint64
	l2      [][]uint64 // each padded to one cluster
	data    [][]byte   // each starts at a cluster boundary
	trim    int64      // bytes cut from the end of the file
}

func newBuilder(clusterBits uint32, size uint64) *builder {
	return &builder{version: 3, clusterBits: clusterBits, size: size, refOrder: 4}
}

func (b *builder) cs() int64 { return 1 << b.clusterBits }

func (b *builder) l1Clusters() int64 {
	n := (int64(len(b.l1))*8 + b.cs() - 1) / b.cs()
	return max(n, 1)
}

// l2Off is the host offset of L2 table i; dataOff of data blob i.
func (b *builder) l2Off(i int) int64 { return (1 + b.l1Clusters() + int64(i)) * b.cs() }

func (b *builder) dataOff(i int) int64 {
	off := b.l2Off(len(b.l2))
	for _, d := range b.data[:i] {
		off += (int64(len(d)) + b.cs() - 1) / b.cs() * b.cs()
	}
	return off
}

// compressedEntry is an L2 entry for a compressed blob at host offset off
// of n bytes.
func (b *builder) compressedEntry(off, n int64) uint64 {
	x := 62 - (b.clusterBits - 8)
	sectors := uint64((off%512+n+511)/512 - 1)
	return flagCompressed | sectors<<x | uint64(off)
}

func (b *builder) bytes() []byte {
	cs := b.cs()
	be := binary.BigEndian
	total := b.dataOff(len(b.data))
	if len(b.data) > 0 {
		total = b.dataOff(len(b.data)-1) + int64(len(b.data[len(b.data)-1]))
	}
	out := make([]byte, max(total, b.l2Off(len(b.l2))))
	copy(out, magic)
	be.PutUint32(out[4:], b.version)
	be.PutUint32(out[20:], b.clusterBits)
	be.PutUint64(out[24:], b.size)
	be.PutUint32(out[32:], b.crypt)
	l1Size := b.l1Size
	if l1Size == 0 {
		l1Size = uint32(len(b.l1))
	}
	be.PutUint32(out[36:], l1Size)
	l1Off := cs
	if b.l1Field != 0 {
		l1Off = b.l1Field
	}
	be.PutUint64(out[40:], uint64(l1Off))
	hl := uint32(v2HeaderLen)
	if b.version == 3 {
		hl = 112
		if b.headerLen != 0 {
			hl = b.headerLen
		}
		be.PutUint64(out[72:], b.incompat)
		be.PutUint32(out[96:], b.refOrder)
		be.PutUint32(out[100:], hl)
		if hl > 104 {
			out[104] = b.compression
		}
	}
	ext := bytes.Buffer{}
	if b.backingFmt != "" {
		writeExt(&ext, extBackingFmt, []byte(b.backingFmt))
	}
	ext.Write(b.extraExt)
	ext.Write(make([]byte, 8)) // end marker
	copy(out[hl:], ext.Bytes())
	if b.backing != "" {
		bo := int(hl) + ext.Len()
		be.PutUint64(out[8:], uint64(bo))
		be.PutUint32(out[16:], uint32(len(b.backing)))
		copy(out[bo:], b.backing)
	}
	for i, e := range b.l1 {
		be.PutUint64(out[cs+int64(i)*8:], e)
	}
	for i, t := range b.l2 {
		for j, e := range t {
			be.PutUint64(out[b.l2Off(i)+int64(j)*8:], e)
		}
	}
	for i, d := range b.data {
		copy(out[b.dataOff(i):], d)
	}
	return out[:int64(len(out))-b.trim]
}

func writeExt(w *bytes.Buffer, typ uint32, data []byte) {
	var h [8]byte
	binary.BigEndian.PutUint32(h[:], typ)
	binary.BigEndian.PutUint32(h[4:], uint32(len(data)))
	w.Write(h[:])
	w.Write(data)
	w.Write(make([]byte, (8-len(data)%8)%8))
}

// deflate compresses p as QEMU does: raw deflate, no zlib header.
func deflate(p []byte) []byte {
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestCompression)
	w.Write(p)
	w.Close()
	return buf.Bytes()
}

// simpleImage is a valid v3 image of four 4 KiB clusters: cluster 0
// data, cluster 1 zero flag, cluster 2 unallocated, cluster 3 compressed.
func simpleImage() *builder { return simpleImageBits(12) }

// simpleImageBits is simpleImage with other cluster sizes.
func simpleImageBits(bits uint32) *builder {
	cs := 1 << bits
	b := newBuilder(bits, uint64(4*cs))
	b.l1 = []uint64{0}
	b.l2 = [][]uint64{make([]uint64, cs/8)}
	plain := bytes.Repeat([]byte("plain data "), cs/8)[:cs]
	comp := deflate(bytes.Repeat([]byte("compressed "), cs/8)[:cs])
	b.data = [][]byte{plain, comp}
	b.l1[0] = uint64(b.l2Off(0))
	b.l2[0][0] = uint64(b.dataOff(0))
	b.l2[0][1] = flagZero
	b.l2[0][3] = b.compressedEntry(b.dataOff(1), int64(len(comp)))
	return b
}

func simpleWant() []byte {
	want := make([]byte, 4*4096)
	copy(want, bytes.Repeat([]byte("plain data "), 400)[:4096])
	copy(want[3*4096:], bytes.Repeat([]byte("compressed "), 400)[:4096])
	return want
}

// zstdEncode compresses p into one zstd frame, as QEMU does.
func zstdEncode(p []byte) []byte {
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	defer enc.Close()
	return enc.EncodeAll(p, nil)
}
