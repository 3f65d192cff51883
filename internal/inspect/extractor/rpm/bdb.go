package rpm

import (
	"encoding/binary"
	"fmt"
	"io"
)

// The Berkeley DB hash format rpm used for /var/lib/rpm/Packages until
// rpm 4.16 (RHEL/CentOS ≤ 8). Page 0 is the hash metadata page:
//
//	12  uint32 magic 0x061561 (in the file's byte order, which it reveals)
//	20  uint32 page size (512..65536, a power of two)
//	24  uint8  encryption algorithm (0: none)
//	25  uint8  page type (8: hash metadata)
//	32  uint32 last page number
//
// Every page starts with a 26-byte header: 8 pgno, 12 prev, 16 next,
// 20 uint16 entries, 22 uint16 hf_offset, 24 level, 25 type. Hash pages
// (type 2 or 13) hold `entries` uint16 offsets (key, value pairs); a
// value item starting with type 3 (H_OFFPAGE) is 12 bytes: type, 3 unused,
// uint32 first overflow page, uint32 total length. Overflow pages (type 7)
// carry hf_offset bytes of the value after their header and chain through
// next. rpm keeps each package header in such an off-page value; small
// on-page values (the instance counter) are skipped, as rpm's own readers
// of this format do.
const (
	bdbHashMagic      = 0x00061561
	bdbPageHeaderSize = 26
	bdbMetaPage       = 8
	bdbHashPage       = 13
	bdbHashUnsorted   = 2
	bdbOverflowPage   = 7
	bdbOffPageItem    = 3
	bdbOffPageSize    = 12
)

// readBDB calls fn with each package header blob of the Berkeley DB hash
// database in r (size bytes), in page order. Page numbers, item offsets,
// overflow chains and lengths are checked against the file before use,
// and no overflow page may be read twice (so the work is bounded by the
// file's size, whatever the chains).
func readBDB(r io.ReaderAt, size int64, fn func(blob []byte) error) error {
	var meta [72]byte
	if err := readFull(r, meta[:], 0, size); err != nil {
		return fmt.Errorf("rpm bdb: metadata page: %w", err)
	}
	var order binary.ByteOrder = binary.LittleEndian
	switch {
	case binary.LittleEndian.Uint32(meta[12:]) == bdbHashMagic:
	case binary.BigEndian.Uint32(meta[12:]) == bdbHashMagic:
		order = binary.BigEndian
	default:
		return fmt.Errorf("rpm bdb: not a Berkeley DB hash database")
	}
	pageSize := int64(order.Uint32(meta[20:]))
	if pageSize < 512 || pageSize > 65536 || pageSize&(pageSize-1) != 0 {
		return fmt.Errorf("rpm bdb: invalid page size %d", pageSize)
	}
	if meta[24] != 0 {
		return fmt.Errorf("rpm bdb: encrypted database")
	}
	if meta[25] != bdbMetaPage {
		return fmt.Errorf("rpm bdb: page 0 has type %d, want hash metadata", meta[25])
	}
	last := int64(order.Uint32(meta[32:]))
	if (last+1)*pageSize > size {
		return fmt.Errorf("rpm bdb: last page %d beyond the %d-byte file", last, size)
	}
	db := bdb{r: r, size: size, order: order, pageSize: pageSize, last: last, used: make([]bool, last+1)}
	page := make([]byte, pageSize)
	for pgno := int64(1); pgno <= last; pgno++ {
		if err := readFull(r, page, pgno*pageSize, size); err != nil {
			return fmt.Errorf("rpm bdb: page %d: %w", pgno, err)
		}
		if t := page[25]; t != bdbHashPage && t != bdbHashUnsorted {
			continue
		}
		if err := db.hashPage(pgno, page, fn); err != nil {
			return err
		}
	}
	return nil
}

type bdb struct {
	r        io.ReaderAt
	size     int64
	order    binary.ByteOrder
	pageSize int64
	last     int64
	used     []bool // overflow pages already read
}

// hashPage calls fn with the off-page values of one hash page.
func (db *bdb) hashPage(pgno int64, page []byte, fn func([]byte) error) error {
	entries := int64(db.order.Uint16(page[20:]))
	if entries%2 != 0 || bdbPageHeaderSize+2*entries > db.pageSize {
		return fmt.Errorf("rpm bdb: page %d: %d entries", pgno, entries)
	}
	for i := int64(1); i < entries; i += 2 { // values are the odd entries
		off := int64(db.order.Uint16(page[bdbPageHeaderSize+2*i:]))
		if off < bdbPageHeaderSize || off >= db.pageSize {
			return fmt.Errorf("rpm bdb: page %d: item offset %d", pgno, off)
		}
		if page[off] != bdbOffPageItem {
			continue
		}
		if off+bdbOffPageSize > db.pageSize {
			return fmt.Errorf("rpm bdb: page %d: off-page item at %d past the page", pgno, off)
		}
		first := int64(db.order.Uint32(page[off+4:]))
		total := int64(db.order.Uint32(page[off+8:]))
		blob, err := db.overflow(first, total)
		if err != nil {
			return fmt.Errorf("rpm bdb: page %d item %d: %w", pgno, i, err)
		}
		if err := fn(blob); err != nil {
			return err
		}
	}
	return nil
}

// overflow reads a value of total bytes stored in the overflow chain that
// starts at page first.
func (db *bdb) overflow(first, total int64) ([]byte, error) {
	if total > MaxHeaderSize || total > db.size {
		return nil, fmt.Errorf("value of %d bytes", total)
	}
	blob := make([]byte, 0, min(total, 1<<20))
	page := make([]byte, db.pageSize)
	pgno := first
	for int64(len(blob)) < total {
		if pgno < 1 || pgno > db.last {
			return nil, fmt.Errorf("overflow chain reaches page %d", pgno)
		}
		if db.used[pgno] {
			return nil, fmt.Errorf("overflow page %d used twice", pgno)
		}
		db.used[pgno] = true
		if err := readFull(db.r, page, pgno*db.pageSize, db.size); err != nil {
			return nil, fmt.Errorf("overflow page %d: %w", pgno, err)
		}
		if page[25] != bdbOverflowPage {
			return nil, fmt.Errorf("overflow page %d has type %d", pgno, page[25])
		}
		n := int64(db.order.Uint16(page[22:])) // hf_offset: bytes on this page
		if n == 0 || bdbPageHeaderSize+n > db.pageSize || int64(len(blob))+n > total {
			return nil, fmt.Errorf("overflow page %d holds %d bytes", pgno, n)
		}
		blob = append(blob, page[bdbPageHeaderSize:bdbPageHeaderSize+n]...)
		pgno = int64(db.order.Uint32(page[16:]))
	}
	if pgno != 0 {
		return nil, fmt.Errorf("overflow chain continues past its %d bytes", total)
	}
	return blob, nil
}
