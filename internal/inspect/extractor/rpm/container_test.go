package rpm

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/vmtrust/vmtrust/internal/inspect/extractor/extractortest"
)

// bigHeader is a header blob spanning several 512-byte pages.
func bigHeader(name string) []byte {
	es := bashHeader()
	es[0] = str(tagName, name)
	return buildHeader(true, append(es, str(1004, strings.Repeat("x", 1500)))...)
}

// ndbFile lays out blobs in an NDB database with one slot page.
func ndbFile(t testing.TB, blobs [][]byte) []byte {
	t.Helper()
	le := binary.LittleEndian
	b := make([]byte, ndbPageSize)
	le.PutUint32(b[0:], ndbMagic)
	le.PutUint32(b[12:], 1)
	for i := 0; ndbHeaderSize+16*i+16 <= ndbPageSize; i++ {
		le.PutUint32(b[ndbHeaderSize+16*i:], ndbSlotMagic)
	}
	for i, blob := range blobs {
		off := len(b)
		blocks := (16 + len(blob) + 15) / 16
		slot := b[ndbHeaderSize+16*i:]
		le.PutUint32(slot[4:], uint32(i+1))
		le.PutUint32(slot[8:], uint32(off/16))
		le.PutUint32(slot[12:], uint32(blocks))
		var h [16]byte
		le.PutUint32(h[0:], ndbBlobMagic)
		le.PutUint32(h[4:], uint32(i+1))
		le.PutUint32(h[12:], uint32(len(blob)))
		b = append(b, h[:]...)
		b = append(b, blob...)
		b = append(b, make([]byte, blocks*16-16-len(blob))...)
	}
	return b
}

// bdbFile lays out blobs in a little-endian Berkeley DB hash database with
// 512-byte pages: page 0 metadata, page 1 a hash page with one off-page
// item per blob, then the overflow chains. mutate, when set, edits the
// file before it is returned.
func bdbFile(t testing.TB, blobs [][]byte, mutate func([]byte)) []byte {
	t.Helper()
	const ps = 512
	le := binary.LittleEndian
	pages := [][]byte{make([]byte, ps), make([]byte, ps)}
	hash := pages[1]
	hash[25] = bdbHashPage
	le.PutUint16(hash[20:], uint16(2*len(blobs)))
	top := ps
	for i, blob := range blobs {
		// Key item: H_KEYDATA with a 4-byte package number.
		top -= 5
		hash[top] = 1
		le.PutUint32(hash[top+1:], uint32(i+1))
		le.PutUint16(hash[bdbPageHeaderSize+4*i:], uint16(top))
		// Value item: H_OFFPAGE pointing at the chain built below.
		top -= bdbOffPageSize
		hash[top] = bdbOffPageItem
		le.PutUint32(hash[top+4:], uint32(len(pages)))
		le.PutUint32(hash[top+8:], uint32(len(blob)))
		le.PutUint16(hash[bdbPageHeaderSize+4*i+2:], uint16(top))
		for rest := blob; len(rest) > 0; {
			n := min(len(rest), ps-bdbPageHeaderSize)
			p := make([]byte, ps)
			le.PutUint32(p[8:], uint32(len(pages)))
			p[25] = bdbOverflowPage
			le.PutUint16(p[22:], uint16(n))
			copy(p[bdbPageHeaderSize:], rest[:n])
			rest = rest[n:]
			if len(rest) > 0 {
				le.PutUint32(p[16:], uint32(len(pages)+1))
			}
			pages = append(pages, p)
		}
	}
	meta := pages[0]
	le.PutUint32(meta[12:], bdbHashMagic)
	le.PutUint32(meta[16:], 9)
	le.PutUint32(meta[20:], ps)
	meta[25] = bdbMetaPage
	le.PutUint32(meta[32:], uint32(len(pages)-1))
	b := bytes.Join(pages, nil)
	if mutate != nil {
		mutate(b)
	}
	return b
}

// collect reads every blob of a container.
func collect(read func(*bytes.Reader, int64, func([]byte) error) error, file []byte) ([][]byte, error) {
	var out [][]byte
	err := read(bytes.NewReader(file), int64(len(file)), func(b []byte) error {
		out = append(out, b)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func readNDBBytes(r *bytes.Reader, n int64, fn func([]byte) error) error { return readNDB(r, n, fn) }
func readBDBBytes(r *bytes.Reader, n int64, fn func([]byte) error) error { return readBDB(r, n, fn) }

func TestReadNDB(t *testing.T) {
	blobs := [][]byte{bigHeader("a"), bigHeader("b")}
	le := binary.LittleEndian
	edit := func(f func([]byte)) []byte {
		b := ndbFile(t, blobs)
		f(b)
		return b
	}
	tests := []struct {
		name    string
		file    []byte
		want    [][]byte
		wantErr string
	}{
		{name: "two packages", file: ndbFile(t, blobs), want: blobs},
		{name: "empty database", file: ndbFile(t, nil), want: nil},
		{name: "short header", file: []byte("RpmP"), wantErr: "beyond the end"},
		{name: "bad magic", file: edit(func(b []byte) { b[0] = 'X' }), wantErr: "bad magic"},
		{name: "too many slot pages", file: edit(func(b []byte) { le.PutUint32(b[12:], 4096) }), wantErr: "slot pages"},
		{name: "slot pages beyond the file", file: edit(func(b []byte) { le.PutUint32(b[12:], 100) }), wantErr: "slot pages"},
		{name: "bad slot magic", file: edit(func(b []byte) { b[ndbHeaderSize+16*5] = 'X' }), wantErr: "bad magic"},
		{name: "blob beyond the file", file: edit(func(b []byte) { le.PutUint32(b[ndbHeaderSize+8:], 0xffffffff) }), wantErr: "outside the file"},
		{name: "blob inside the slot pages", file: edit(func(b []byte) { le.PutUint32(b[ndbHeaderSize+8:], 1) }), wantErr: "outside the file"},
		{name: "blob longer than its blocks", file: edit(func(b []byte) { le.PutUint32(b[ndbPageSize+12:], 0x7fffffff) }), wantErr: "blocks"},
		{name: "blob header for another package", file: edit(func(b []byte) { le.PutUint32(b[ndbPageSize+4:], 9) }), wantErr: "bad blob header"},
		{name: "package in two slots", file: edit(func(b []byte) { le.PutUint32(b[ndbHeaderSize+16+4:], 1) }), wantErr: "two slots"},
		// A slot whose blocks lie inside another's blob (a nested blob
		// header there): the file would be read again for every slot.
		{name: "overlapping slots", file: edit(func(b []byte) {
			le.PutUint32(b[ndbHeaderSize+16+8:], ndbPageSize/16+1) // package 2 inside package 1's blocks
			le.PutUint32(b[ndbPageSize+16:], ndbBlobMagic)
			le.PutUint32(b[ndbPageSize+16+4:], 2)
		}), wantErr: "overlap"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := collect(readNDBBytes, tt.file)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || got != nil {
					t.Fatalf("readNDB() = %d blobs, %v; want nil and an error containing %q", len(got), err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("readNDB() error = %v", err)
			}
			if diff := extractortest.Diff(tt.want, got); diff != "" {
				t.Errorf("readNDB():\n%s", diff)
			}
		})
	}
}

func TestReadBDB(t *testing.T) {
	blobs := [][]byte{bigHeader("a"), bigHeader("b")}
	le := binary.LittleEndian
	edit := func(f func([]byte)) []byte { return bdbFile(t, blobs, f) }
	tests := []struct {
		name    string
		file    []byte
		want    [][]byte
		wantErr string
	}{
		{name: "two packages", file: bdbFile(t, blobs, nil), want: blobs},
		{name: "big-endian", file: bigEndianBDB(t, blobs[:1]), want: blobs[:1]},
		{name: "no packages", file: bdbFile(t, nil, nil), want: nil},
		{name: "short", file: make([]byte, 40), wantErr: "beyond the end"},
		{name: "bad magic", file: edit(func(b []byte) { b[12] = 0 }), wantErr: "not a Berkeley DB"},
		{name: "bad page size", file: edit(func(b []byte) { le.PutUint32(b[20:], 1000) }), wantErr: "page size"},
		{name: "encrypted", file: edit(func(b []byte) { b[24] = 1 }), wantErr: "encrypted"},
		{name: "not a hash database", file: edit(func(b []byte) { b[25] = 9 }), wantErr: "want hash metadata"},
		{name: "last page beyond the file", file: edit(func(b []byte) { le.PutUint32(b[32:], 1<<30) }), wantErr: "beyond"},
		{name: "odd entry count", file: edit(func(b []byte) { le.PutUint16(b[512+20:], 3) }), wantErr: "entries"},
		{name: "entry count past the page", file: edit(func(b []byte) { le.PutUint16(b[512+20:], 1000) }), wantErr: "entries"},
		{name: "item offset past the page", file: edit(func(b []byte) { le.PutUint16(b[512+26+2:], 600) }), wantErr: "item offset"},
		{name: "off-page item past the page", file: edit(func(b []byte) { le.PutUint16(b[512+26+2:], 505); b[512+505] = bdbOffPageItem }), wantErr: "past the page"},
		{name: "overflow chain to page 0", file: edit(func(b []byte) { le.PutUint32(b[2*512+16:], 0); le.PutUint32(b[512+512-5-12+8:], 5000) }), wantErr: "reaches page 0"},
		{name: "overflow chain out of range", file: edit(func(b []byte) { le.PutUint32(b[2*512+16:], 999) }), wantErr: "reaches page 999"},
		{name: "overflow self-loop", file: edit(func(b []byte) { le.PutUint32(b[2*512+16:], 2) }), wantErr: "used twice"},
		{name: "two values sharing a chain", file: edit(func(b []byte) { le.PutUint32(b[512+512-5-12-5-12+4:], 2) }), wantErr: "used twice"},
		{name: "overflow page of another type", file: edit(func(b []byte) { b[3*512+25] = bdbHashPage }), wantErr: "has type"},
		{name: "overflow page with no bytes", file: edit(func(b []byte) { le.PutUint16(b[2*512+22:], 0) }), wantErr: "holds 0 bytes"},
		{name: "overflow page over its size", file: edit(func(b []byte) { le.PutUint16(b[2*512+22:], 600) }), wantErr: "holds 600 bytes"},
		{name: "value longer than declared", file: edit(func(b []byte) { le.PutUint32(b[512+512-5-12+8:], 100) }), wantErr: "holds"},
		{name: "value too large", file: edit(func(b []byte) { le.PutUint32(b[512+512-5-12+8:], 0xffffffff) }), wantErr: "value of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := collect(readBDBBytes, tt.file)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || got != nil {
					t.Fatalf("readBDB() = %d blobs, %v; want nil and an error containing %q", len(got), err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("readBDB() error = %v", err)
			}
			if diff := extractortest.Diff(tt.want, got); diff != "" {
				t.Errorf("readBDB():\n%s", diff)
			}
		})
	}
}

// bigEndianBDB rewrites a one-blob little-endian bdbFile in big-endian
// order (the byte order of the host that wrote it, e.g. s390x).
func bigEndianBDB(t *testing.T, blobs [][]byte) []byte {
	b := bdbFile(t, blobs, nil)
	le, be := binary.LittleEndian, binary.BigEndian
	swap32 := func(off int) { be.PutUint32(b[off:], le.Uint32(b[off:])) }
	swap16 := func(off int) { be.PutUint16(b[off:], le.Uint16(b[off:])) }
	for _, off := range []int{12, 16, 20, 32} {
		swap32(off)
	}
	// Hash page: entry count and offsets, and the off-page item.
	n := int(le.Uint16(b[512+20:]))
	var offs []int
	for i := range n {
		offs = append(offs, int(le.Uint16(b[512+26+2*i:])))
		swap16(512 + 26 + 2*i)
	}
	swap16(512 + 20)
	for i := 1; i < n; i += 2 {
		swap32(512 + offs[i] + 4)
		swap32(512 + offs[i] + 8)
	}
	for p := 2; p*512 < len(b); p++ {
		swap32(p*512 + 8)
		swap32(p*512 + 16)
		swap16(p*512 + 22)
	}
	return b
}
