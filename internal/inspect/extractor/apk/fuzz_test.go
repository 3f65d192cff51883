package apk

import (
	"flag"
	"testing"

	"github.com/vmtrust/vmtrust/internal/inspect/extractor/extractortest"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz seed corpora")

// FuzzApkInstalled: no panic; entries complete on success, nil on error.
func FuzzApkInstalled(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := Parse(b)
		if err != nil {
			if es != nil {
				t.Fatalf("Parse() = %v with error %v", es, err)
			}
			return
		}
		for _, e := range es {
			if e.Name == "" || e.Version == "" || e.Origin == "" {
				t.Fatalf("Parse() gave an incomplete entry %+v", e)
			}
			for _, p := range e.Paths {
				if p == "" || p[0] != '/' {
					t.Fatalf("Parse() gave a relative path %q", p)
				}
			}
		}
	})
}

func TestFuzzSeeds(t *testing.T) {
	extractortest.CheckSeeds(t, "FuzzApkInstalled", map[string][]byte{
		"alpine":        []byte(installed),
		"minimal":       []byte("P:a\nV:1.0-r0\nR:top"),
		"no-name":       []byte("V:1.0\nA:x86_64\n"),
		"duplicate":     []byte("P:a\nP:b\nV:1\n"),
		"twice":         []byte("P:a\nV:1\n\nP:a\nV:2\n"),
		"nul":           []byte("P:a\x00\nV:1\n"),
		"non-utf8":      []byte("P:caf\xe9\nV:1\n"),
		"bad-line":      []byte("P:a\nV:1\nhello\n"),
		"slash-in-file": []byte("P:a\nV:1\nF:etc\nR:../shadow\n"),
		"bad-time":      []byte("P:a\nV:1\nt:-5\n"),
	}, *updateSeeds)
}
