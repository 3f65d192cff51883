package rpm

import (
	"bytes"
	"encoding/binary"
	"flag"
	"testing"

	"github.com/vmtrust/vmtrust/internal/inspect/extractor/extractortest"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz seed corpora")

// FuzzRPMHeader: no panic; a header with name, version and release on
// success, nil on error.
func FuzzRPMHeader(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			if h != nil {
				t.Fatalf("ParseHeader() = %+v with error %v", h, err)
			}
			return
		}
		if h.Name == "" || h.Version == "" || h.Release == "" {
			t.Fatalf("ParseHeader() = %+v without name, version or release", h)
		}
		if _, err := Package(h); err != nil && h.SourceRPM == "" {
			t.Fatalf("Package() error %v without a SOURCERPM", err)
		}
	})
}

// FuzzRPMNDB and FuzzRPMBDB: no panic, no blob larger than the file.
func FuzzRPMNDB(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) { fuzzContainer(t, readNDBBytes, b) })
}
func FuzzRPMBDB(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) { fuzzContainer(t, readBDBBytes, b) })
}

func fuzzContainer(t *testing.T, read func(*bytes.Reader, int64, func([]byte) error) error, b []byte) {
	blobs, err := collect(read, b)
	if err != nil && blobs != nil {
		t.Fatalf("read() = %d blobs with error %v", len(blobs), err)
	}
	for _, blob := range blobs {
		if len(blob) > len(b) {
			t.Fatalf("read() gave a %d-byte blob from a %d-byte file", len(blob), len(b))
		}
		ParseHeader(blob) // must not panic either
	}
}

func TestFuzzSeeds(t *testing.T) {
	hdr := buildHeader(true, bashHeader()...)
	le := binary.LittleEndian
	extractortest.CheckSeeds(t, "FuzzRPMHeader", map[string][]byte{
		"bash":        hdr,
		"gpg-pubkey":  buildHeader(false, str(tagName, "gpg-pubkey"), str(tagVersion, "fd431d51"), str(tagRelease, "4ae0493b"), str(tagSourceRPM, "(none)")),
		"old-files":   buildHeader(false, str(tagName, "old"), str(tagVersion, "1.0"), str(tagRelease, "1"), i32(tagEpoch, 2), strs(tagOldFilenames, "/bin/old")),
		"truncated":   hdr[:100],
		"overlap":     buildHeader(false, str(tagName, "aaaa"), hentry{tag: tagVersion, typ: typeString, count: 1, data: []byte("1\x00"), rawOff: true, off: 0}),
		"bad-dir-idx": buildHeader(false, str(tagName, "a"), str(tagVersion, "1"), str(tagRelease, "1"), i32(tagDirIndexes, 5), strs(tagBasenames, "f"), strs(tagDirnames, "/")),
		"huge-count":  buildHeader(false, hentry{tag: tagBasenames, typ: typeStringArray, count: 1 << 31, data: []byte("a\x00")}),
	}, *updateSeeds)
	two := [][]byte{hdr, buildHeader(false, str(tagName, "b"), str(tagVersion, "1"), str(tagRelease, "1"))}
	ndbBad := ndbFile(t, two)
	le.PutUint32(ndbBad[ndbPageSize+12:], 0x7fffffff)
	extractortest.CheckSeeds(t, "FuzzRPMNDB", map[string][]byte{
		"two":       ndbFile(t, two),
		"empty":     ndbFile(t, nil)[:ndbPageSize],
		"bad-len":   ndbBad,
		"truncated": ndbFile(t, two)[:ndbPageSize+20],
	}, *updateSeeds)
	extractortest.CheckSeeds(t, "FuzzRPMBDB", map[string][]byte{
		"two":      bdbFile(t, two, nil),
		"big-blob": bdbFile(t, [][]byte{bigHeader("big")}, nil),
		"loop":     bdbFile(t, [][]byte{bigHeader("big")}, func(b []byte) { le.PutUint32(b[2*512+16:], 2) }),
		"shared":   bdbFile(t, two, func(b []byte) { le.PutUint32(b[512+512-5-12-5-12+4:], 2) }),
		"bad-size": bdbFile(t, two, func(b []byte) { le.PutUint32(b[20:], 1000) }),
	}, *updateSeeds)
}
