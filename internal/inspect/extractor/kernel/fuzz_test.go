package kernel

import (
	"bytes"
	"encoding/binary"
	"flag"
	"testing"

	"github.com/vmtrust/vmtrust/internal/inspect/extractor/extractortest"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz seed corpora")

// FuzzBzImageVersion: no panic, a valid release or an error (with "").
func FuzzBzImageVersion(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := BzImageVersion(bytes.NewReader(b), int64(len(b)))
		if err != nil && v != "" {
			t.Fatalf("BzImageVersion() = %q with error %v", v, err)
		}
		if err == nil && !validVersion(v) {
			t.Fatalf("BzImageVersion() = %q, not a valid release", v)
		}
	})
}

func TestFuzzSeeds(t *testing.T) {
	// Seeds are cut after the version string to keep them small.
	small := func(v string) []byte { return bzImage(v, 0x300)[:0x300+len(v)+8] }
	badPtr := small("6.1.0-18-amd64")
	binary.LittleEndian.PutUint16(badPtr[offKernelVer:], 0xfff0)
	noTerm := bytes.Clone(small("6.1.0-18-amd64"))
	noTerm = noTerm[:0x300+5]
	extractortest.CheckSeeds(t, "FuzzBzImageVersion", map[string][]byte{
		"debian":       small(debianVersion),
		"alpine":       small("6.6.14-0-lts (buildozer@build-3-19-x86_64) #1-Alpine SMP"),
		"rhel":         small("5.14.0-362.8.1.el9_3.x86_64 (mockbuild@x86-64-01) #1 SMP"),
		"bad-pointer":  badPtr,
		"unterminated": noTerm,
		"short":        []byte("\x7fELF"),
		"garbage":      small("\xff\xfe"),
	}, *updateSeeds)
}
