// Package qcow2 reads QEMU qcow2 images (versions 2 and 3) through an
// io.ReaderAt, following QEMU's docs/interop/qcow2.txt: zlib and zstd
// compressed clusters, zero clusters, extended L2 entries (subclusters),
// and a backing image for unallocated areas.
//
// Guarantees: the image is only read. Every header field, table offset,
// entry and compressed length is checked against the file size and the
// fixed limits of this package before it is used; a compressed cluster
// may decode to exactly one cluster and no more; memory is bounded by
// MaxL1Bytes for the L1 table plus the cache budget plus a few clusters
// per concurrent read. A hostile image yields an error, never a panic, a
// hang or an unbounded allocation.
//
// Trust: the backing file name in the header is reported, never opened;
// the caller decides whether to open it (package disk confines it) and
// passes the opened image in Options. Refcounts and snapshots are ignored:
// only the active L1 table is read. Encrypted images, external data files,
// images marked corrupt and unknown incompatible features are refused.
package qcow2

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
)

// Backing is the image read for clusters this image does not allocate.
type Backing interface {
	io.ReaderAt
	Size() int64
	Close() error
}

// Options configures Open.
type Options struct {
	// Backing is the opened backing image. It is required when the header
	// names a backing file and refused otherwise. Open takes ownership
	// only on success: Image.Close closes it.
	Backing Backing
	// Cache, when set, is shared (for example by every layer of a
	// backing chain); otherwise the image gets its own cache of
	// CacheBytes (0: DefaultCacheBytes; negative: no cache).
	Cache      *Cache
	CacheBytes int64
}

// Image is an open qcow2 image. Its methods are safe for concurrent use.
type Image struct {
	r        io.ReaderAt
	fileSize int64
	hdr      Header
	cb       uint32 // cluster bits
	cs       int64  // cluster size
	l2n      int64  // entries per L2 table
	l1       []uint64
	backing  Backing
	cache    *Cache
	owner    uint64
	dec      *decompressor
	closed   atomic.Bool
}

// L1/L2 entry layout.
const (
	offsetMask     = 0x00fffffffffffe00 // bits 9-55
	l1Reserved     = 0x7f000000000001ff // bits 0-8, 56-62
	flagCompressed = 1 << 62
	flagZero       = 1 << 0
	l2Reserved     = 0x3f000000000001fe // bits 1-8, 56-61
	subclusters    = 32
)

// Open parses and validates the header and the active L1 table of a qcow2
// file of fileSize bytes read through r. r is not closed by Image.Close.
func Open(r io.ReaderAt, fileSize int64, opts Options) (*Image, error) {
	h, err := ParseHeader(r, fileSize)
	if err != nil {
		return nil, err
	}
	if err := h.Supported(); err != nil {
		return nil, err
	}
	switch {
	case h.BackingFile != "" && opts.Backing == nil:
		return nil, fmt.Errorf("qcow2: image names backing file %q but no backing image was given", h.BackingFile)
	case h.BackingFile == "" && opts.Backing != nil:
		return nil, errors.New("qcow2: backing image given but the image names no backing file")
	}
	img := &Image{
		r:        r,
		fileSize: fileSize,
		hdr:      *h,
		cb:       h.ClusterBits,
		cs:       h.ClusterSize(),
		l2n:      h.l2Entries(),
		backing:  opts.Backing,
		cache:    opts.Cache,
	}
	if img.l1, err = img.loadL1(); err != nil {
		return nil, err
	}
	if img.cache == nil {
		limit := opts.CacheBytes
		if limit == 0 {
			limit = DefaultCacheBytes
		}
		img.cache = NewCache(limit)
	}
	if img.dec, err = newDecompressor(h.CompressionType); err != nil {
		return nil, err
	}
	img.owner = img.cache.newOwner()
	return img, nil
}

// loadL1 reads the L1 entries that cover the virtual size (entries past
// that are never consulted) and checks each L2 table offset: reserved bits
// clear, cluster aligned, inside the file, not overlapping the header
// cluster or the L1 table.
func (img *Image) loadL1() ([]uint64, error) {
	n := img.hdr.l1Needed() // <= L1Size, checked by ParseHeader
	if n == 0 {
		return nil, nil
	}
	raw := make([]byte, n*8)
	if err := readFull(img.r, raw, int64(img.hdr.L1TableOffset)); err != nil {
		return nil, fmt.Errorf("qcow2: l1 table: %w", err)
	}
	l1Start := int64(img.hdr.L1TableOffset)
	l1End := l1Start + int64(img.hdr.L1Size)*8
	l1 := make([]uint64, n)
	for i := range l1 {
		e := binary.BigEndian.Uint64(raw[i*8:])
		if e&l1Reserved != 0 {
			return nil, fmt.Errorf("qcow2: l1 entry %d (0x%x): reserved bits set", i, e)
		}
		off := int64(e & offsetMask)
		if off == 0 {
			continue
		}
		switch {
		case off%img.cs != 0:
			return nil, fmt.Errorf("qcow2: l1 entry %d: l2 table at offset %d not cluster aligned", i, off)
		case off > img.fileSize-img.cs:
			return nil, fmt.Errorf("qcow2: l1 entry %d: l2 table at offset %d beyond end of file", i, off)
		case off < img.cs:
			return nil, fmt.Errorf("qcow2: l1 entry %d: l2 table at offset %d overlaps the header", i, off)
		case off < l1End && off+img.cs > l1Start:
			return nil, fmt.Errorf("qcow2: l1 entry %d: l2 table at offset %d overlaps the l1 table", i, off)
		}
		l1[i] = uint64(off)
	}
	return l1, nil
}

// Header returns a copy of the parsed header.
func (img *Image) Header() Header { return img.hdr }

// Size is the virtual disk size in bytes.
func (img *Image) Size() int64 { return int64(img.hdr.Size) }

// Format returns "qcow2".
func (img *Image) Format() string { return "qcow2" }

// Close releases the cache entries and closes the backing image. It does
// not close the io.ReaderAt given to Open.
func (img *Image) Close() error {
	if img.closed.Swap(true) {
		return nil
	}
	img.cache.drop(img.owner)
	img.dec.close()
	if img.backing != nil {
		return img.backing.Close()
	}
	return nil
}

// ReadAt reads guest bytes at off, following io.ReaderAt: a read that
// reaches the virtual size returns io.EOF with the bytes before it.
func (img *Image) ReadAt(p []byte, off int64) (int, error) {
	if img.closed.Load() {
		return 0, errors.New("qcow2: read from closed image")
	}
	if off < 0 {
		return 0, fmt.Errorf("qcow2: read at negative offset %d", off)
	}
	size := img.Size()
	if off >= size {
		return 0, io.EOF
	}
	want := len(p)
	if int64(want) > size-off {
		want = int(size - off)
	}
	for done := 0; done < want; {
		n, err := img.readChunk(p[done:want], off+int64(done))
		done += n
		if err != nil {
			return done, err
		}
	}
	if want < len(p) {
		return want, io.EOF
	}
	return want, nil
}

// extent describes how the guest range starting at one offset is stored,
// up to the end of its cluster or subcluster.
type extent struct {
	kind  extentKind
	host  int64 // data: host offset of the guest offset; compressed: start of the compressed bytes
	csize int64 // compressed: length of the compressed bytes
	len   int64 // guest bytes covered from the offset
}

type extentKind uint8

const (
	unallocated extentKind = iota // read from the backing image, or zeros
	zero                          // reads as zeros
	data                          // stored as is at host
	compressed                    // compressed cluster at host
)

// readChunk fills as much of p as one extent covers and returns how much.
func (img *Image) readChunk(p []byte, off int64) (int, error) {
	ext, err := img.lookup(off)
	if err != nil {
		return 0, err
	}
	n := int(min(int64(len(p)), ext.len))
	p = p[:n]
	switch ext.kind {
	case zero:
		clear(p)
	case unallocated:
		if err := img.readBacking(p, off); err != nil {
			return 0, err
		}
	case data:
		if err := img.readHost(p, ext.host); err != nil {
			return 0, err
		}
	case compressed:
		cl, err := img.cluster(ext.host, ext.csize)
		if err != nil {
			return 0, err
		}
		copy(p, cl[off&(img.cs-1):])
	}
	return n, nil
}

// lookup maps a guest offset (below Size) to its extent.
func (img *Image) lookup(off int64) (extent, error) {
	vcl := off >> img.cb
	inCl := off & (img.cs - 1)
	whole := extent{kind: unallocated, len: img.cs - inCl}
	l2off := int64(img.l1[vcl/img.l2n])
	if l2off == 0 {
		return whole, nil
	}
	l2, err := img.l2Table(l2off)
	if err != nil {
		return extent{}, err
	}
	i := vcl % img.l2n
	if img.hdr.ExtendedL2 {
		return img.extendedEntry(l2[2*i], l2[2*i+1], vcl, inCl)
	}
	e := l2[i]
	if e&flagCompressed != 0 {
		return img.compressedEntry(e, vcl, inCl)
	}
	reserved := uint64(l2Reserved)
	if img.hdr.Version == 2 {
		reserved |= flagZero
	}
	if e&reserved != 0 {
		return extent{}, fmt.Errorf("qcow2: l2 entry for cluster %d (0x%x): reserved bits set", vcl, e)
	}
	host := int64(e & offsetMask)
	switch {
	case e&flagZero != 0:
		whole.kind = zero
		return whole, nil
	case host == 0:
		return whole, nil
	}
	if err := img.checkData(host, vcl); err != nil {
		return extent{}, err
	}
	return extent{kind: data, host: host + inCl, len: img.cs - inCl}, nil
}

// extendedEntry decodes an extended L2 entry: a standard or compressed
// descriptor plus a bitmap of 32 allocated and 32 zero subclusters.
func (img *Image) extendedEntry(e, bitmap uint64, vcl, inCl int64) (extent, error) {
	if e&flagCompressed != 0 {
		if bitmap != 0 {
			return extent{}, fmt.Errorf("qcow2: l2 entry for compressed cluster %d has a subcluster bitmap", vcl)
		}
		return img.compressedEntry(e, vcl, inCl)
	}
	if e&(l2Reserved|flagZero) != 0 {
		return extent{}, fmt.Errorf("qcow2: l2 entry for cluster %d (0x%x): reserved bits set", vcl, e)
	}
	alloc, zeros := uint32(bitmap), uint32(bitmap>>32)
	if alloc&zeros != 0 {
		return extent{}, fmt.Errorf("qcow2: l2 entry for cluster %d: subclusters both allocated and zero (bitmap 0x%x)", vcl, bitmap)
	}
	scs := img.cs / subclusters
	sc := inCl / scs
	ext := extent{kind: unallocated, len: scs - inCl%scs}
	switch {
	case alloc&(1<<sc) != 0:
		host := int64(e & offsetMask)
		if host == 0 {
			return extent{}, fmt.Errorf("qcow2: l2 entry for cluster %d: allocated subcluster without a host offset", vcl)
		}
		if err := img.checkData(host, vcl); err != nil {
			return extent{}, err
		}
		ext.kind, ext.host = data, host+inCl
	case zeros&(1<<sc) != 0:
		ext.kind = zero
	}
	return ext, nil
}

// compressedEntry decodes a compressed cluster descriptor: with
// x = 62 - (cluster_bits - 8), bits 0..x-1 hold the byte offset and bits
// x..61 the number of 512-byte sectors after the first one.
func (img *Image) compressedEntry(e uint64, vcl, inCl int64) (extent, error) {
	x := 62 - (img.cb - 8)
	host := e & (1<<x - 1)
	if host>>56 != 0 {
		return extent{}, fmt.Errorf("qcow2: l2 entry for compressed cluster %d: offset beyond 56 bits", vcl)
	}
	sectors := (e >> x) & (1<<(img.cb-8) - 1)
	csize := int64(sectors+1)*sectorSize - int64(host&(sectorSize-1))
	if int64(host) >= img.fileSize {
		return extent{}, fmt.Errorf("qcow2: compressed cluster %d at offset %d beyond end of file", vcl, host)
	}
	return extent{kind: compressed, host: int64(host), csize: csize, len: img.cs - inCl}, nil
}

// checkData checks a standard data cluster offset.
func (img *Image) checkData(host, vcl int64) error {
	if host%img.cs != 0 {
		return fmt.Errorf("qcow2: cluster %d at offset %d not cluster aligned", vcl, host)
	}
	if host >= img.fileSize {
		return fmt.Errorf("qcow2: cluster at offset %d beyond end of file", host)
	}
	return nil
}

// l2Table returns the L2 table at off (validated by loadL1), from the cache
// when possible.
func (img *Image) l2Table(off int64) ([]uint64, error) {
	key := cacheKey{owner: img.owner, kind: kindL2, off: off}
	if e, ok := img.cache.get(key); ok {
		return e.l2, nil
	}
	raw := make([]byte, img.cs)
	if err := readFull(img.r, raw, off); err != nil {
		return nil, fmt.Errorf("qcow2: l2 table at %d: %w", off, err)
	}
	l2 := make([]uint64, img.cs/8)
	for i := range l2 {
		l2[i] = binary.BigEndian.Uint64(raw[i*8:])
	}
	img.cache.put(&cacheEntry{key: key, l2: l2, size: img.cs})
	return l2, nil
}

// cluster returns the decompressed cluster whose compressed bytes start
// at host, from the cache when possible.
func (img *Image) cluster(host, csize int64) ([]byte, error) {
	key := cacheKey{owner: img.owner, kind: kindCluster, off: host}
	if e, ok := img.cache.get(key); ok {
		return e.data, nil
	}
	// The last sectors may lie past the end of the file (QEMU reads them
	// as zeros); the compressed stream must end before that.
	src := make([]byte, min(csize, img.fileSize-host))
	if err := readFull(img.r, src, host); err != nil {
		return nil, fmt.Errorf("qcow2: compressed cluster at %d: %w", host, err)
	}
	out := make([]byte, img.cs)
	if err := img.dec.decompress(out, src); err != nil {
		return nil, fmt.Errorf("qcow2: compressed cluster at %d: %w", host, err)
	}
	img.cache.put(&cacheEntry{key: key, data: out, size: img.cs})
	return out, nil
}

// readHost reads stored data; bytes of the last cluster that lie past the
// end of the file read as zeros, as in QEMU.
func (img *Image) readHost(p []byte, host int64) error {
	avail := int(max(0, min(int64(len(p)), img.fileSize-host)))
	if err := readFull(img.r, p[:avail], host); err != nil {
		return fmt.Errorf("qcow2: data at %d: %w", host, err)
	}
	clear(p[avail:])
	return nil
}

// readBacking reads unallocated guest bytes from the backing image; past
// its end, or without one, they are zeros.
func (img *Image) readBacking(p []byte, off int64) error {
	if img.backing == nil {
		clear(p)
		return nil
	}
	bsize := img.backing.Size()
	avail := 0
	if off < bsize {
		avail = int(min(int64(len(p)), bsize-off))
	}
	if avail > 0 {
		n, err := img.backing.ReadAt(p[:avail], off)
		if n < avail {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("qcow2: backing image at %d: %w", off, err)
		}
	}
	clear(p[avail:])
	return nil
}
