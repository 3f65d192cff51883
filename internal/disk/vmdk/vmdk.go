// Package vmdk reads VMware sparse disk images (VMDK, "Virtual Disk Format
// 1.1") read-only and presents the guest's bytes as a disk.Image.
//
// Supported: a single hosted sparse extent with its descriptor embedded in
// the same file, that is createType "monolithicSparse" (plain grains) and
// "streamOptimized" (zlib-compressed grains with markers, grain directory
// either in place or found through the footer when the header says
// GD_AT_END), as written by qemu-img and VMware tools. Unallocated grains
// and zeroed grains read as zeros.
//
// Refused with an error wrapping ErrExternalFile: descriptor-only files,
// split (twoGbMaxExtent*), flat, VMFS and other multi-file layouts, and
// child images (a parentCID other than ffffffff or a parentFileNameHint).
// The reader only ever reads the io.ReaderAt it is given; it never opens a
// file named inside the image.
//
// Guarantees: every header field, table offset, table size and grain
// offset is checked against the file size and fixed limits (capacity at most
// 64 TiB, grain 8..2048 sectors and a power of two, exactly 512 entries per
// grain table, grain directory at most 16 MiB, embedded descriptor at most
// 64 KiB) before anything is allocated or read; a compressed grain must
// carry the address of the grain being read, and must inflate to exactly
// one grain (the last grain of the disk may be shorter than a grain but must
// cover the disk's end), so a deflate bomb is an error. Decoded grains and
// grain tables are held in a fixed-size LRU cache. ReadAt is safe for
// concurrent use when the underlying io.ReaderAt is.
package vmdk

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
)

// ErrExternalFile reports an image that names other files (extents or a
// parent image). Such an image is refused, and no file is opened.
var ErrExternalFile = errors.New("vmdk: image references other files")

// Fixed bounds. The VMDK specification limits hosted sparse extents to 2 TiB;
// 64 TiB leaves room for newer tools while keeping the tables small.
const (
	sectorSize      = 512
	maxCapacity     = 64 << 40 // bytes
	minGrainSectors = 8
	maxGrainSectors = 2048 // 1 MiB grains
	gtesPerGT       = 512  // the only value the specification allows
	gtBytes         = gtesPerGT * 4
	maxGDBytes      = 16 << 20
	maxDescBytes    = 64 << 10
	grainMarkerSize = 12 // uint64 lba + uint32 size
	defaultCache    = 32 << 20

	magicKDMV = 0x564d444b // "KDMV" read little-endian
	magicCOWD = 0x44574f43 // "COWD" read little-endian
	gdAtEnd   = 0xffffffffffffffff

	flagNLDetect  = 1 << 0
	flagRGD       = 1 << 1
	flagZeroGrain = 1 << 2
	flagCompress  = 1 << 16
	flagMarkers   = 1 << 17
	knownFlags    = flagNLDetect | flagRGD | flagZeroGrain | flagCompress | flagMarkers

	compressNone    = 0
	compressDeflate = 1

	markerEOS    = 0
	markerFooter = 3

	gteZeroed = 1 // grain table entry of a zeroed grain (with flagZeroGrain)
)

// Options tune Open.
type Options struct {
	// CacheBytes bounds the LRU cache of decoded grains and grain tables.
	// Zero means 32 MiB; a negative value disables the cache.
	CacheBytes int64
}

// Image is an opened VMDK. It satisfies disk.Image (asserted in a test, as
// package disk imports this one); Close does not close the reader.
type Image struct {
	r            io.ReaderAt
	fileSize     int64
	size         int64 // virtual disk size in bytes
	grainBytes   int64
	grainSectors uint64
	compressed   bool
	zeroGrain    bool
	overhead     uint64   // sectors of metadata before the first grain
	gd           []uint32 // grain directory: sector of each grain table, 0 if none
	cache        *lru
	closed       atomic.Bool
}

// header is the sparse extent header (and footer), all fields little-endian.
type header struct {
	version        uint32
	flags          uint32
	capacity       uint64 // sectors
	grainSize      uint64 // sectors
	descOffset     uint64 // sectors
	descSize       uint64 // sectors
	numGTEsPerGT   uint32
	rgdOffset      uint64 // sectors
	gdOffset       uint64 // sectors
	overHead       uint64 // sectors
	newlineChecked [4]byte
	compressAlgo   uint16
}

func parseHeader(b []byte) (header, error) {
	le := binary.LittleEndian
	if len(b) < sectorSize {
		return header{}, errors.New("vmdk: header: short")
	}
	if m := le.Uint32(b[0:]); m != magicKDMV {
		return header{}, fmt.Errorf("vmdk: header: bad magic %#08x", m)
	}
	h := header{
		version:      le.Uint32(b[4:]),
		flags:        le.Uint32(b[8:]),
		capacity:     le.Uint64(b[12:]),
		grainSize:    le.Uint64(b[20:]),
		descOffset:   le.Uint64(b[28:]),
		descSize:     le.Uint64(b[36:]),
		numGTEsPerGT: le.Uint32(b[44:]),
		rgdOffset:    le.Uint64(b[48:]),
		gdOffset:     le.Uint64(b[56:]),
		overHead:     le.Uint64(b[64:]),
		compressAlgo: le.Uint16(b[77:]),
	}
	copy(h.newlineChecked[:], b[73:77])
	return h, nil
}

// check validates the fields that do not depend on the file's layout.
func (h header) check() error {
	if h.version < 1 || h.version > 3 {
		return fmt.Errorf("vmdk: header: unsupported version %d", h.version)
	}
	if h.flags&^knownFlags != 0 {
		return fmt.Errorf("vmdk: header: unknown flags %#x", h.flags&^knownFlags)
	}
	// The newline test catches files mangled by text-mode transfers.
	if h.flags&flagNLDetect != 0 && h.newlineChecked != [4]byte{'\n', ' ', '\r', '\n'} {
		return errors.New("vmdk: header: newline detection bytes corrupted")
	}
	switch h.compressAlgo {
	case compressNone:
		if h.flags&flagCompress != 0 {
			return errors.New("vmdk: header: compressed grains without a compression algorithm")
		}
	case compressDeflate:
		if h.flags&flagCompress == 0 {
			return errors.New("vmdk: header: compression algorithm set without compressed grains")
		}
	default:
		return fmt.Errorf("vmdk: header: unknown compression algorithm %d", h.compressAlgo)
	}
	if h.capacity == 0 || h.capacity > maxCapacity/sectorSize {
		return fmt.Errorf("vmdk: header: capacity %d sectors out of range (1..%d)", h.capacity, uint64(maxCapacity/sectorSize))
	}
	g := h.grainSize
	if g < minGrainSectors || g > maxGrainSectors || g&(g-1) != 0 {
		return fmt.Errorf("vmdk: header: grain size %d sectors is not a power of two in %d..%d", g, minGrainSectors, maxGrainSectors)
	}
	if h.numGTEsPerGT != gtesPerGT {
		return fmt.Errorf("vmdk: header: %d grain table entries per table, want %d", h.numGTEsPerGT, gtesPerGT)
	}
	return nil
}

// Open reads and validates the VMDK in r, which holds fileSize bytes.
func Open(r io.ReaderAt, fileSize int64, opts Options) (*Image, error) {
	if fileSize < sectorSize {
		if fileSize >= 0 && isDescriptorText(r, fileSize) {
			return nil, refuseDescriptorOnly(r, fileSize)
		}
		return nil, fmt.Errorf("vmdk: file of %d bytes is too small", fileSize)
	}
	first := make([]byte, sectorSize)
	if err := readFull(r, first, 0); err != nil {
		return nil, fmt.Errorf("vmdk: header: %w", err)
	}
	switch binary.LittleEndian.Uint32(first) {
	case magicKDMV:
	case magicCOWD:
		return nil, errors.New("vmdk: COWD (ESX VMFS sparse) extents are not supported")
	default:
		if isDescriptorText(r, fileSize) {
			return nil, refuseDescriptorOnly(r, fileSize)
		}
		return nil, errors.New("vmdk: not a VMDK sparse extent (no KDMV magic)")
	}
	if fileSize%sectorSize != 0 {
		return nil, fmt.Errorf("vmdk: file size %d is not a multiple of %d", fileSize, sectorSize)
	}
	h, err := parseHeader(first)
	if err != nil {
		return nil, err
	}
	if h.gdOffset == gdAtEnd {
		if h, err = readFooter(r, fileSize, h); err != nil {
			return nil, err
		}
	}
	if err := h.check(); err != nil {
		return nil, err
	}
	desc, err := readDescriptor(r, fileSize, h)
	if err != nil {
		return nil, err
	}
	if err := desc.checkMonolithic(h); err != nil {
		return nil, err
	}
	im := &Image{
		r:            r,
		fileSize:     fileSize,
		size:         int64(h.capacity) * sectorSize,
		grainBytes:   int64(h.grainSize) * sectorSize,
		grainSectors: h.grainSize,
		compressed:   h.flags&flagCompress != 0,
		zeroGrain:    h.flags&flagZeroGrain != 0,
		overhead:     h.overHead,
	}
	if h.overHead > uint64(fileSize/sectorSize) {
		return nil, fmt.Errorf("vmdk: header: overhead of %d sectors beyond end of file", h.overHead)
	}
	if im.gd, err = im.readGD(h.gdOffset); err != nil {
		return nil, err
	}
	budget := opts.CacheBytes
	if budget == 0 {
		budget = defaultCache
	}
	im.cache = newLRU(budget)
	return im, nil
}

// readFooter returns the footer that a streamOptimized image written in one
// pass keeps at the end: footer marker, footer (a header copy that holds
// the real grain directory offset), end-of-stream marker.
func readFooter(r io.ReaderAt, fileSize int64, h header) (header, error) {
	if h.flags&flagMarkers == 0 {
		return header{}, errors.New("vmdk: header: grain directory at end without markers")
	}
	if fileSize < 4*sectorSize {
		return header{}, errors.New("vmdk: footer: file too small")
	}
	buf := make([]byte, 3*sectorSize)
	if err := readFull(r, buf, fileSize-3*sectorSize); err != nil {
		return header{}, fmt.Errorf("vmdk: footer: %w", err)
	}
	le := binary.LittleEndian
	fm, eos := buf[:sectorSize], buf[2*sectorSize:]
	if le.Uint64(fm) != 1 || le.Uint32(fm[8:]) != 0 || le.Uint32(fm[12:]) != markerFooter {
		return header{}, errors.New("vmdk: footer: bad footer marker")
	}
	if le.Uint64(eos) != 0 || le.Uint32(eos[8:]) != 0 || le.Uint32(eos[12:]) != markerEOS {
		return header{}, errors.New("vmdk: footer: bad end-of-stream marker")
	}
	f, err := parseHeader(buf[sectorSize : 2*sectorSize])
	if err != nil {
		return header{}, fmt.Errorf("vmdk: footer: %w", err)
	}
	if f.gdOffset == gdAtEnd {
		return header{}, errors.New("vmdk: footer: grain directory offset missing")
	}
	// The footer replaces the header, but the two must describe one disk.
	if f.capacity != h.capacity || f.grainSize != h.grainSize || f.flags != h.flags ||
		f.descOffset != h.descOffset || f.descSize != h.descSize || f.compressAlgo != h.compressAlgo {
		return header{}, errors.New("vmdk: footer: disagrees with header")
	}
	return f, nil
}

// sectorRange converts a (sector, byte length) pair into a byte offset and
// checks that it lies inside the file, after the header sector.
func sectorRange(sector uint64, n, fileSize int64) (int64, bool) {
	if sector == 0 || sector > uint64(fileSize/sectorSize) {
		return 0, false
	}
	off := int64(sector) * sectorSize
	return off, n >= 0 && n <= fileSize-off
}

// readGD loads and checks the grain directory.
func (im *Image) readGD(gdSector uint64) ([]uint32, error) {
	perGT := uint64(gtesPerGT) * im.grainSectors
	capSectors := uint64(im.size / sectorSize)
	n := (capSectors + perGT - 1) / perGT
	if n*4 > maxGDBytes {
		return nil, fmt.Errorf("vmdk: grain directory of %d entries exceeds %d bytes", n, maxGDBytes)
	}
	off, ok := sectorRange(gdSector, int64(n*4), im.fileSize)
	if !ok {
		return nil, fmt.Errorf("vmdk: grain directory at sector %d (%d entries) outside file of %d bytes", gdSector, n, im.fileSize)
	}
	raw := make([]byte, n*4)
	if err := readFull(im.r, raw, off); err != nil {
		return nil, fmt.Errorf("vmdk: grain directory at %d: %w", off, err)
	}
	gd := make([]uint32, n)
	for i := range gd {
		s := binary.LittleEndian.Uint32(raw[i*4:])
		if s != 0 {
			if _, ok := sectorRange(uint64(s), gtBytes, im.fileSize); !ok {
				return nil, fmt.Errorf("vmdk: grain directory entry %d: grain table at sector %d outside file", i, s)
			}
		}
		gd[i] = s
	}
	return gd, nil
}

// Size is the virtual disk size in bytes.
func (im *Image) Size() int64 { return im.size }

// Format returns "vmdk".
func (im *Image) Format() string { return "vmdk" }

// Close drops the cache; later reads fail. It does not close the
// underlying reader, which the caller owns.
func (im *Image) Close() error {
	im.closed.Store(true)
	im.cache.clear()
	return nil
}

// ReadAt reads guest bytes at off, following io.ReaderAt.
func (im *Image) ReadAt(p []byte, off int64) (int, error) {
	if im.closed.Load() {
		return 0, errors.New("vmdk: read after close")
	}
	if off < 0 {
		return 0, fmt.Errorf("vmdk: negative offset %d", off)
	}
	if off >= im.size {
		return 0, io.EOF
	}
	var eof error
	if rest := im.size - off; int64(len(p)) > rest {
		p, eof = p[:rest], io.EOF
	}
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		g := pos / im.grainBytes
		within := pos % im.grainBytes
		chunk := p[n:min(len(p), n+int(im.grainBytes-within))]
		if err := im.readGrain(chunk, g, within); err != nil {
			return n, err
		}
		n += len(chunk)
	}
	return n, eof
}

// readGrain fills p with the bytes of grain g starting at within.
func (im *Image) readGrain(p []byte, g, within int64) error {
	gte, err := im.grainEntry(g)
	if err != nil {
		return err
	}
	switch {
	case gte == 0 || (gte == gteZeroed && im.zeroGrain):
		clear(p)
		return nil
	case !im.compressed:
		off := int64(gte)*sectorSize + within
		if err := readFull(im.r, p, off); err != nil {
			return fmt.Errorf("vmdk: grain %d at %d: %w", g, off, err)
		}
		return nil
	}
	data, err := im.compressedGrain(g, gte)
	if err != nil {
		return err
	}
	copy(p, data[within:])
	return nil
}

// grainEntry returns the grain table entry of grain g.
func (im *Image) grainEntry(g int64) (uint32, error) {
	t := g / gtesPerGT
	if t >= int64(len(im.gd)) {
		return 0, fmt.Errorf("vmdk: grain %d beyond grain directory", g)
	}
	if im.gd[t] == 0 {
		return 0, nil
	}
	key := cacheKey{kind: kindGT, index: t}
	gt, ok := im.cache.get(key)
	if !ok {
		var err error
		if gt, err = im.loadGT(t); err != nil {
			return 0, err
		}
		im.cache.put(key, gt)
	}
	return binary.LittleEndian.Uint32(gt[(g%gtesPerGT)*4:]), nil
}

// loadGT reads grain table t and checks every entry.
func (im *Image) loadGT(t int64) ([]byte, error) {
	off := int64(im.gd[t]) * sectorSize // checked by readGD
	gt := make([]byte, gtBytes)
	if err := readFull(im.r, gt, off); err != nil {
		return nil, fmt.Errorf("vmdk: grain table %d at %d: %w", t, off, err)
	}
	need := im.grainBytes
	if im.compressed {
		need = grainMarkerSize
	}
	for i := 0; i < gtesPerGT; i++ {
		s := binary.LittleEndian.Uint32(gt[i*4:])
		if s == 0 || (s == gteZeroed && im.zeroGrain) {
			continue
		}
		if uint64(s) < im.overhead {
			return nil, fmt.Errorf("vmdk: grain table %d entry %d: grain at sector %d inside metadata (overhead %d)", t, i, s, im.overhead)
		}
		if _, ok := sectorRange(uint64(s), need, im.fileSize); !ok {
			return nil, fmt.Errorf("vmdk: grain table %d entry %d: grain at sector %d outside file", t, i, s)
		}
	}
	return gt, nil
}

// compressedGrain returns the inflated grain g stored at sector s.
func (im *Image) compressedGrain(g int64, s uint32) ([]byte, error) {
	key := cacheKey{kind: kindGrain, index: g}
	if data, ok := im.cache.get(key); ok {
		return data, nil
	}
	data, err := im.inflateGrain(g, s)
	if err != nil {
		return nil, err
	}
	im.cache.put(key, data)
	return data, nil
}

func (im *Image) inflateGrain(g int64, s uint32) ([]byte, error) {
	off := int64(s) * sectorSize // checked by loadGT
	var mk [grainMarkerSize]byte
	if err := readFull(im.r, mk[:], off); err != nil {
		return nil, fmt.Errorf("vmdk: grain %d marker at %d: %w", g, off, err)
	}
	lba := binary.LittleEndian.Uint64(mk[:])
	size := int64(binary.LittleEndian.Uint32(mk[8:]))
	if want := uint64(g) * im.grainSectors; lba != want {
		return nil, fmt.Errorf("vmdk: grain %d at %d: marker names sector %d, want %d", g, off, lba, want)
	}
	// Deflate can grow incompressible data a little; two grains is ample.
	if size == 0 || size > 2*im.grainBytes || size > im.fileSize-off-grainMarkerSize {
		return nil, fmt.Errorf("vmdk: grain %d at %d: compressed size %d out of range", g, off, size)
	}
	comp := make([]byte, size)
	if err := readFull(im.r, comp, off+grainMarkerSize); err != nil {
		return nil, fmt.Errorf("vmdk: grain %d at %d: %w", g, off, err)
	}
	zr, err := zlib.NewReader(bytes.NewReader(comp))
	if err != nil {
		return nil, fmt.Errorf("vmdk: grain %d at %d: %w", g, off, err)
	}
	out := make([]byte, im.grainBytes)
	n, err := io.ReadFull(zr, out)
	switch {
	case err == nil:
		// Reading on must give io.EOF, which also verifies the checksum.
		var one [1]byte
		if m, err := zr.Read(one[:]); m != 0 {
			return nil, fmt.Errorf("vmdk: grain %d at %d: inflates to more than one grain", g, off)
		} else if err != io.EOF {
			return nil, fmt.Errorf("vmdk: grain %d at %d: %w", g, off, errOrShort(err))
		}
	case err == io.ErrUnexpectedEOF || err == io.EOF:
		// Only the disk's last grain may be short, and it must cover the end.
		if g != (im.size-1)/im.grainBytes || int64(n) < im.size-g*im.grainBytes {
			return nil, fmt.Errorf("vmdk: grain %d at %d: inflates to %d bytes, want %d", g, off, n, im.grainBytes)
		}
	default:
		return nil, fmt.Errorf("vmdk: grain %d at %d: %w", g, off, err)
	}
	return out, nil
}

func errOrShort(err error) error {
	if err == nil {
		return io.ErrNoProgress
	}
	return err
}

// readFull reads exactly len(p) bytes at off; io.EOF after a full read is
// not an error.
func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}
