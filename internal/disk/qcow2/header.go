package qcow2

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Fixed bounds. Every size, offset and count read from an image is checked
// against these (and against the file size) before it is used.
const (
	MinClusterBits = 9  // 512-byte clusters, the format's minimum
	MaxClusterBits = 21 // 2 MiB clusters, QEMU's implementation limit

	// MaxL1Bytes bounds the active L1 table (QEMU's limit, 32 MiB).
	MaxL1Bytes = 32 << 20
	// MaxSize bounds the virtual disk size.
	MaxSize = 64 << 40
	// MaxBackingFileLen is the spec's bound on the backing file name.
	MaxBackingFileLen = 1023
	// maxBackingFormatLen is QEMU's bound on the backing format name.
	maxBackingFormatLen = 15

	// DefaultCacheBytes is the cache budget used when Options sets none.
	DefaultCacheBytes = 32 << 20
)

const (
	magic       = "QFI\xfb"
	v2HeaderLen = 72
	v3HeaderLen = 104

	// Incompatible feature bits.
	incDirty        = 1 << 0
	incCorrupt      = 1 << 1
	incDataFile     = 1 << 2
	incCompression  = 1 << 3
	incExtendedL2   = 1 << 4
	incKnown        = incDirty | incCorrupt | incDataFile | incCompression | incExtendedL2
	minExtL2Bits    = 14 // extended L2 entries need clusters of at least 16 KiB
	maxRefcountOrd  = 6
	sectorSize      = 512
	extEnd          = 0x00000000
	extBackingFmt   = 0xe2792aca
	extFeatureNames = 0x6803f857
	extBitmaps      = 0x23852875
	extEncryption   = 0x0537be77
	extDataFile     = 0x44415441
)

// ErrUnsupported is wrapped by errors for well-formed images that use a
// feature this reader refuses: encryption, external data files, unknown
// incompatible features or compression types.
var ErrUnsupported = errors.New("unsupported feature")

// Header is the parsed, validated qcow2 header with its extensions.
type Header struct {
	Version     uint32 // 2 or 3
	ClusterBits uint32 // MinClusterBits..MaxClusterBits
	Size        uint64 // virtual disk size in bytes, at most MaxSize
	CryptMethod uint32 // 0 none, 1 AES, 2 LUKS

	L1Size        uint32 // entries in the active L1 table
	L1TableOffset uint64

	RefcountTableOffset   uint64 // never used for reading
	RefcountTableClusters uint32
	NbSnapshots           uint32 // snapshots are ignored; the active L1 is read
	SnapshotsOffset       uint64

	IncompatibleFeatures uint64
	CompatibleFeatures   uint64
	AutoclearFeatures    uint64
	RefcountOrder        uint32
	HeaderLength         uint32

	// CompressionType is "zlib" or "zstd" for the known types, or
	// "unknown(N)".
	CompressionType string
	// ExtendedL2 reports extended L2 entries (32 subclusters per cluster).
	ExtendedL2 bool

	// BackingFile is the backing file name exactly as written in the
	// image ("" when none). It is untrusted: the caller decides whether
	// and how to open it.
	BackingFile string
	// BackingFormat is the backing format header extension ("" when
	// absent).
	BackingFormat string
	// DataFile is the external data file name extension ("" when absent).
	DataFile string

	hasEncryptionExt bool
	featureNames     map[int]string // incompatible bit → name, from the feature name table
}

// ClusterSize is 1 << ClusterBits.
func (h Header) ClusterSize() int64 { return 1 << h.ClusterBits }

// l2Entries is the number of entries in one L2 table.
func (h *Header) l2Entries() int64 {
	if h.ExtendedL2 {
		return h.ClusterSize() / 16
	}
	return h.ClusterSize() / 8
}

// l1Needed is the number of L1 entries that cover the virtual size.
func (h *Header) l1Needed() int64 {
	clusters := ceilDiv(int64(h.Size), h.ClusterSize())
	return ceilDiv(clusters, h.l2Entries())
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// ParseHeader reads and strictly validates the header, its extensions and
// the backing file name of a qcow2 file of fileSize bytes. It checks the
// structure only; Open additionally refuses unsupported features (see
// ErrUnsupported). It reads at most one cluster.
func ParseHeader(r io.ReaderAt, fileSize int64) (*Header, error) {
	if fileSize < v2HeaderLen {
		return nil, fmt.Errorf("qcow2: file of %d bytes is too short for a header", fileSize)
	}
	var fixed [v3HeaderLen + 8]byte // room for compression_type and padding
	n := int(min(fileSize, int64(len(fixed))))
	if err := readFull(r, fixed[:n], 0); err != nil {
		return nil, fmt.Errorf("qcow2: header: %w", err)
	}
	h, err := parseFixed(fixed[:n], fileSize)
	if err != nil {
		return nil, err
	}
	// The extensions and the backing file name live in the first cluster,
	// which is read only as far as they need.
	first := &prefix{r: r, limit: min(h.ClusterSize(), fileSize)}
	if err := h.parseBackingName(first, fixed[:]); err != nil {
		return nil, err
	}
	if err := h.parseExtensions(first, fixed[:]); err != nil {
		return nil, err
	}
	return h, nil
}

// parseFixed decodes and checks the fixed header fields in b (72 bytes at
// least, 104 when the file is that long).
func parseFixed(b []byte, fileSize int64) (*Header, error) {
	be := binary.BigEndian
	if string(b[0:4]) != magic {
		return nil, errors.New("qcow2: bad magic")
	}
	h := &Header{
		Version:               be.Uint32(b[4:]),
		ClusterBits:           be.Uint32(b[20:]),
		Size:                  be.Uint64(b[24:]),
		CryptMethod:           be.Uint32(b[32:]),
		L1Size:                be.Uint32(b[36:]),
		L1TableOffset:         be.Uint64(b[40:]),
		RefcountTableOffset:   be.Uint64(b[48:]),
		RefcountTableClusters: be.Uint32(b[56:]),
		NbSnapshots:           be.Uint32(b[60:]),
		SnapshotsOffset:       be.Uint64(b[64:]),
		RefcountOrder:         4,
		HeaderLength:          v2HeaderLen,
		CompressionType:       "zlib",
	}
	if h.Version != 2 && h.Version != 3 {
		return nil, fmt.Errorf("qcow2: unsupported version %d", h.Version)
	}
	if h.ClusterBits < MinClusterBits || h.ClusterBits > MaxClusterBits {
		return nil, fmt.Errorf("qcow2: cluster_bits %d outside %d..%d", h.ClusterBits, MinClusterBits, MaxClusterBits)
	}
	if h.Size > MaxSize {
		return nil, fmt.Errorf("qcow2: virtual size %d exceeds the limit of %d bytes", h.Size, int64(MaxSize))
	}
	if h.Version == 3 {
		if err := h.parseV3(b, fileSize); err != nil {
			return nil, err
		}
	}
	if err := h.checkL1(fileSize); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *Header) parseV3(b []byte, fileSize int64) error {
	be := binary.BigEndian
	if len(b) < v3HeaderLen {
		return fmt.Errorf("qcow2: file of %d bytes is too short for a version 3 header", fileSize)
	}
	h.IncompatibleFeatures = be.Uint64(b[72:])
	h.CompatibleFeatures = be.Uint64(b[80:])
	h.AutoclearFeatures = be.Uint64(b[88:])
	h.RefcountOrder = be.Uint32(b[96:])
	h.HeaderLength = be.Uint32(b[100:])
	if h.RefcountOrder > maxRefcountOrd {
		return fmt.Errorf("qcow2: refcount_order %d exceeds %d", h.RefcountOrder, maxRefcountOrd)
	}
	hl := int64(h.HeaderLength)
	if hl < v3HeaderLen || hl%8 != 0 || hl > h.ClusterSize() || hl > fileSize {
		return fmt.Errorf("qcow2: header_length %d invalid (at least %d, a multiple of 8, within the first cluster and the file)", hl, v3HeaderLen)
	}
	if hl > v3HeaderLen {
		if err := h.parseCompressionType(b[104], true); err != nil {
			return err
		}
	} else if err := h.parseCompressionType(0, false); err != nil {
		return err
	}
	h.ExtendedL2 = h.IncompatibleFeatures&incExtendedL2 != 0
	if h.ExtendedL2 && h.ClusterBits < minExtL2Bits {
		return fmt.Errorf("qcow2: extended L2 entries need cluster_bits >= %d, have %d", minExtL2Bits, h.ClusterBits)
	}
	return nil
}

// parseCompressionType reads the compression_type field, present when the
// header is longer than 104 bytes.
func (h *Header) parseCompressionType(ct byte, present bool) error {
	bit := h.IncompatibleFeatures&incCompression != 0
	switch {
	case bit && (!present || ct == 0):
		return errors.New("qcow2: compression type bit set but compression_type is absent or zlib")
	case !bit && present && ct != 0:
		return fmt.Errorf("qcow2: compression_type %d without the compression type bit", ct)
	}
	switch ct {
	case 0:
		h.CompressionType = "zlib"
	case 1:
		h.CompressionType = "zstd"
	default:
		h.CompressionType = fmt.Sprintf("unknown(%d)", ct)
	}
	return nil
}

// checkL1 validates the L1 table position and size against the file and
// the fixed limits, so that loading it can neither overflow nor allocate
// more than MaxL1Bytes.
func (h *Header) checkL1(fileSize int64) error {
	cs := h.ClusterSize()
	if int64(h.L1Size)*8 > MaxL1Bytes {
		return fmt.Errorf("qcow2: l1 table of %d entries exceeds the limit of %d bytes", h.L1Size, MaxL1Bytes)
	}
	if need := h.l1Needed(); int64(h.L1Size) < need {
		return fmt.Errorf("qcow2: l1 table of %d entries is too small for virtual size %d (need %d)", h.L1Size, h.Size, need)
	}
	if h.L1Size == 0 {
		return nil
	}
	off := h.L1TableOffset
	if off%uint64(cs) != 0 || off == 0 {
		return fmt.Errorf("qcow2: l1 table at offset %d is not at a cluster boundary after the header", off)
	}
	if off > uint64(fileSize) || uint64(h.L1Size)*8 > uint64(fileSize)-off {
		return fmt.Errorf("qcow2: l1 table at offset %d (%d entries) beyond end of file", off, h.L1Size)
	}
	return nil
}

// parseBackingName reads the backing file name from the first cluster.
func (h *Header) parseBackingName(first *prefix, fixed []byte) error {
	be := binary.BigEndian
	off := be.Uint64(fixed[8:])
	size := be.Uint32(fixed[16:])
	if off == 0 || size == 0 {
		return nil
	}
	if size > MaxBackingFileLen {
		return fmt.Errorf("qcow2: backing file name of %d bytes exceeds %d", size, MaxBackingFileLen)
	}
	if off < uint64(h.HeaderLength) || off > uint64(h.ClusterSize()) || uint64(size) > uint64(h.ClusterSize())-off {
		return fmt.Errorf("qcow2: backing file name at offset %d (%d bytes) outside the first cluster", off, size)
	}
	if off+uint64(size) > uint64(first.limit) {
		return fmt.Errorf("qcow2: backing file name at offset %d (%d bytes) beyond end of file", off, size)
	}
	name, err := first.get(int64(off), int64(size))
	if err != nil {
		return err
	}
	if bytes.IndexByte(name, 0) >= 0 {
		return errors.New("qcow2: backing file name contains a NUL byte")
	}
	h.BackingFile = string(name)
	return nil
}

// parseExtensions walks the header extensions, which start after the
// header and end at the backing file name or the end of the first
// cluster. Bytes past the end of the file read as zeros, which is the end
// marker.
func (h *Header) parseExtensions(first *prefix, fixed []byte) error {
	be := binary.BigEndian
	end := uint64(h.ClusterSize())
	if bo := be.Uint64(fixed[8:]); bo != 0 && bo >= uint64(h.HeaderLength) && bo < end {
		end = bo
	}
	seen := map[uint32]bool{}
	for off := uint64(h.HeaderLength); off < end; {
		if off+8 > uint64(first.limit) {
			return nil // zeros past the end of the file: end marker
		}
		eh, err := first.get(int64(off), 8)
		if err != nil {
			return err
		}
		typ, n := be.Uint32(eh), uint64(be.Uint32(eh[4:]))
		off += 8
		if typ == extEnd {
			return nil
		}
		if off > end || n > end-off {
			return fmt.Errorf("qcow2: header extension 0x%08x at offset %d: length %d too large", typ, off-8, n)
		}
		if off+n > uint64(first.limit) {
			return fmt.Errorf("qcow2: header extension 0x%08x at offset %d beyond end of file", typ, off-8)
		}
		data, err := first.get(int64(off), int64(n))
		if err != nil {
			return err
		}
		if seen[typ] {
			return fmt.Errorf("qcow2: header extension 0x%08x appears twice", typ)
		}
		seen[typ] = true
		if err := h.parseExtension(typ, data); err != nil {
			return err
		}
		off += (n + 7) &^ 7
	}
	return nil
}

func (h *Header) parseExtension(typ uint32, data []byte) error {
	switch typ {
	case extBackingFmt:
		if len(data) == 0 || len(data) > maxBackingFormatLen || !isFormatName(string(data)) {
			return fmt.Errorf("qcow2: backing format extension %q is not a format name", data)
		}
		h.BackingFormat = string(data)
	case extDataFile:
		if len(data) == 0 || len(data) > MaxBackingFileLen || bytes.IndexByte(data, 0) >= 0 {
			return errors.New("qcow2: external data file name extension is malformed")
		}
		h.DataFile = string(data)
	case extEncryption:
		h.hasEncryptionExt = true
	case extFeatureNames:
		h.featureNames = parseFeatureNames(data)
	}
	return nil
}

// parseFeatureNames keeps the names of incompatible features, used only to
// word errors.
func parseFeatureNames(data []byte) map[int]string {
	names := map[int]string{}
	for ; len(data) >= 48; data = data[48:] {
		if data[0] != 0 || data[1] > 63 {
			continue
		}
		name, _, _ := bytes.Cut(data[2:48], []byte{0})
		names[int(data[1])] = strings.ToValidUTF8(string(name), "?")
	}
	return names
}

func isFormatName(s string) bool {
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// Supported refuses images that are well formed but that this reader must
// not or cannot read: encryption, external data files, the corrupt bit,
// unknown incompatible features and unknown compression types. Open calls
// it; callers may call it first to refuse an image before opening its
// backing file.
func (h *Header) Supported() error {
	if h.CryptMethod != 0 || h.hasEncryptionExt {
		return fmt.Errorf("qcow2: encrypted image (crypt_method %d): %w", h.CryptMethod, ErrUnsupported)
	}
	inc := h.IncompatibleFeatures
	if inc&incCorrupt != 0 {
		return errors.New("qcow2: image is marked corrupt")
	}
	if inc&incDataFile != 0 || h.DataFile != "" {
		return fmt.Errorf("qcow2: external data file %q: %w", h.DataFile, ErrUnsupported)
	}
	if unknown := inc &^ incKnown; unknown != 0 {
		var names []string
		for bit := range 64 {
			if unknown&(1<<bit) != 0 {
				name := h.featureNames[bit]
				if name == "" {
					name = "unnamed"
				}
				names = append(names, fmt.Sprintf("bit %d (%s)", bit, name))
			}
		}
		return fmt.Errorf("qcow2: unknown incompatible features %s: %w", strings.Join(names, ", "), ErrUnsupported)
	}
	if h.CompressionType != "zlib" && h.CompressionType != "zstd" {
		return fmt.Errorf("qcow2: compression type %s: %w", h.CompressionType, ErrUnsupported)
	}
	return nil
}

// prefix reads the start of a file (up to limit bytes) on demand, so that
// parsing the first cluster does not read all of a 2 MiB cluster.
type prefix struct {
	r     io.ReaderAt
	limit int64
	buf   []byte
}

// get returns n bytes at off; callers check off+n <= limit.
func (p *prefix) get(off, n int64) ([]byte, error) {
	if off < 0 || n < 0 || off+n > p.limit {
		return nil, fmt.Errorf("qcow2: header read of %d bytes at %d beyond the first cluster", n, off)
	}
	if have := int64(len(p.buf)); off+n > have {
		want := min(max(off+n, 2*have, 4096), p.limit)
		buf := make([]byte, want)
		copy(buf, p.buf)
		if err := readFull(p.r, buf[have:], have); err != nil {
			return nil, fmt.Errorf("qcow2: first cluster: %w", err)
		}
		p.buf = buf
	}
	return p.buf[off : off+n], nil
}

// readFull reads len(b) bytes at off; an io.EOF that comes with a full
// buffer is not an error.
func readFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read %d bytes at %d: %w", len(b), off, err)
}
