package osrelease

import (
	"flag"
	"testing"

	"github.com/vmtrust/vmtrust/internal/inspect/extractor/extractortest"
	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz seed corpora")

// FuzzOSRelease feeds os-release content and single-line release files to
// every parser: no panic, and nothing but an error on failure.
func FuzzOSRelease(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := Parse(b); err != nil && m != nil {
			t.Fatalf("Parse() = %v with error %v", m, err)
		}
		for name, parse := range map[string]func([]byte) (inventory.OS, error){
			"FromOSRelease": FromOSRelease,
			"fromLSB":       fromLSB,
			"parseRedHat":   func(b []byte) (inventory.OS, error) { return parseRedHat(nil, b) },
			"parseAlpine":   func(b []byte) (inventory.OS, error) { return parseAlpine(nil, b) },
		} {
			o, err := parse(b)
			if err != nil && (o.ID != "" || o.VersionID != "" || o.PrettyName != "" || o.IDLike != nil) {
				t.Fatalf("%s() = %+v with error %v", name, o, err)
			}
			if err == nil && name != "fromLSB" && o.ID == "" {
				t.Fatalf("%s() = %+v without an ID", name, o)
			}
		}
	})
}

func TestFuzzSeeds(t *testing.T) {
	extractortest.CheckSeeds(t, "FuzzOSRelease", map[string][]byte{
		"debian":          []byte(debian12),
		"rocky":           []byte(rocky9),
		"ubuntu":          []byte(ubuntu2204),
		"alpine":          []byte(alpine319),
		"quoting":         []byte("A='single $quoted \\ \"x\"'\nB=\"dq \\\"esc\\\" \\$HOME \\\\ \\n kept\"\nC=un\\ quoted\\$\nD=\"con\"'cat'enated\nE=\n"),
		"lsb":             []byte("DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=12.04\nDISTRIB_CODENAME=precise\nDISTRIB_DESCRIPTION=\"Ubuntu 12.04.5 LTS\"\n"),
		"rocky-release":   []byte("Rocky Linux release 9.3 (Blue Onyx)\n"),
		"alpine-release":  []byte("3.19.1\n"),
		"unterminated":    []byte("NAME=\"Debian\nID=debian\n"),
		"expansion":       []byte("NAME=\"$(reboot)\"\nID=`id`\n"),
		"duplicate":       []byte("ID=debian\nID=ubuntu\n"),
		"nul":             []byte("ID=deb\x00ian\n"),
		"non-utf8":        []byte("NAME=\"caf\xe9\"\nID=x\n"),
		"bad-id":          []byte("ID=../../etc\nVERSION_ID=\"1 2\"\n"),
		"control-release": []byte("CentOS release 7\x1b[2J\n"),
	}, *updateSeeds)
}
