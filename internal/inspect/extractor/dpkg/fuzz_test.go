package dpkg

import (
	"flag"
	"testing"

	"github.com/vmtrust/vmtrust/internal/inspect/extractor/extractortest"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz seed corpora")

// FuzzDpkgStatus: no panic; on success every listed entry has a name and
// version, on failure nothing is returned.
func FuzzDpkgStatus(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := ParseStatus(b)
		if err != nil {
			if es != nil {
				t.Fatalf("ParseStatus() = %v with error %v", es, err)
			}
			return
		}
		for _, e := range es {
			if e.Package == "" || e.SourceName == "" || (e.Listed() && (e.Version == "" || e.SourceVersion == "")) {
				t.Fatalf("ParseStatus() gave an incomplete entry %+v", e)
			}
		}
	})
}

// FuzzDpkgList runs the list and diversions parsers on the same input.
func FuzzDpkgList(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		if ps, err := ParseList(b, 1000); err != nil && ps != nil {
			t.Fatalf("ParseList() = %q with error %v", ps, err)
		}
		if d, err := ParseDiversions(b); err != nil && d != nil {
			t.Fatalf("ParseDiversions() = %v with error %v", d, err)
		}
	})
}

func TestFuzzSeeds(t *testing.T) {
	extractortest.CheckSeeds(t, "FuzzDpkgStatus", map[string][]byte{
		"states":             []byte(stanzaA + "\n" + stanzaB + "\n" + stanzaC + "\n" + stanzaD),
		"multiarch":          []byte("Package: m\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\nMulti-Arch: same\n\nPackage: m\nStatus: install ok installed\nVersion: 1\nArchitecture: i386\nMulti-Arch: same\n"),
		"case-insensitive":   []byte("package: Libfoo\nSTATUS: install ok unpacked\nversion: 2.1\nsource: FooSrc\n"),
		"duplicate-field":    []byte("Package: a\nStatus: install ok installed\nVersion: 1\nVersion: 2\n"),
		"no-package":         []byte("Status: install ok installed\nVersion: 1\n"),
		"continuation":       []byte(" continued\nPackage: a\n"),
		"nul":                []byte("Package: a\x00\nStatus: install ok installed\nVersion: 1\n"),
		"non-utf8":           []byte("Package: caf\xe9\nStatus: install ok installed\nVersion: 1\n"),
		"bad-source":         []byte("Package: a\nStatus: install ok installed\nVersion: 1\nSource: s (1.0\n"),
		"no-final-newline":   []byte("Package: a\nStatus: install ok installed\nVersion: 1"),
		"same-package-twice": []byte("Package: a\nStatus: install ok installed\nVersion: 1\n\nPackage: a\nStatus: install ok installed\nVersion: 2\n"),
	}, *updateSeeds)
	extractortest.CheckSeeds(t, "FuzzDpkgList", map[string][]byte{
		"list":       []byte("/.\n/usr\n/usr/bin\n/usr/bin/ls\n"),
		"diversions": []byte("/usr/bin/pg_config\n/usr/bin/pg_config.libpq-dev\npostgresql-common\n/etc/x\n/etc/x.orig\n:\n"),
		"relative":   []byte("/a\nb\n"),
		"nul":        []byte("/a\x00b\n"),
		"incomplete": []byte("/a\n/b\n"),
	}, *updateSeeds)
}
