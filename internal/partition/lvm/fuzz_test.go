package lvm

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var writeSeeds = flag.Bool("write-seeds", false, "rewrite testdata/fuzz/Fuzz*")

// FuzzParseMetadata parses fuzz text as volume group metadata and
// interprets it for a fixed PV. It must never panic, and must return nil
// with every error.
func FuzzParseMetadata(f *testing.F) {
	for _, s := range textSeeds() {
		f.Add([]byte(s.text))
	}
	pv := &pvHeader{uuid: testUUID, devSize: 1 << 30, data: []area{{off: 1 << 20}}}
	f.Fuzz(func(t *testing.T, text []byte) {
		root, err := parseText(text)
		if err != nil {
			if root != nil {
				t.Fatalf("parseText returned a section and %v", err)
			}
			return
		}
		vg, err := buildVG(root, pv, 1<<30)
		if err != nil {
			if vg != nil {
				t.Fatalf("buildVG returned a volume group and %v", err)
			}
			return
		}
		checkVG(t, vg, 1<<30)
	})
}

// FuzzReadPV reads fuzz bytes as a physical volume.
func FuzzReadPV(f *testing.F) {
	for _, s := range pvSeeds() {
		f.Add(s.data)
	}
	f.Fuzz(func(t *testing.T, d []byte) {
		vg, err := Read(bytes.NewReader(d), int64(len(d)))
		if err != nil {
			if vg != nil {
				t.Fatalf("Read returned a volume group and %v", err)
			}
			return
		}
		vg.r = bytes.NewReader(d)
		checkVG(t, vg, int64(len(d)))
	})
}

// checkVG asserts that every openable volume maps inside the device, and
// reads a little of it.
func checkVG(t *testing.T, vg *VolumeGroup, size int64) {
	for _, v := range vg.Volumes {
		if v.Size < 0 {
			t.Fatalf("volume %s has size %d", v.Name, v.Size)
		}
		for _, s := range v.segs {
			if s.pvOff < 0 || s.n <= 0 || s.pvOff > size-s.n {
				t.Fatalf("volume %s maps %d+%d outside device of %d", v.Name, s.pvOff, s.n, size)
			}
		}
		r, err := vg.Open(v.Name)
		if err != nil {
			continue
		}
		if vg.r != nil {
			buf := make([]byte, 64)
			for _, off := range []int64{0, r.Size() - 1} {
				if _, err := r.ReadAt(buf, off); err != nil && err != io.EOF {
					t.Fatalf("ReadAt(%d) of %s = %v", off, v.Name, err)
				}
			}
		}
	}
}

type textSeed struct{ name, text string }

func textSeeds() []textSeed {
	lin := lvText{name: "lv", segs: []string{linearSeg(0, 2, 1)}}
	thin := lvText{name: "thin", segs: []string{"start_extent = 0\nextent_count = 4\n\ntype = \"thin\"\nthin_pool = \"pool\"\n"}}
	return []textSeed{
		{"vg-linear", vgText(2048, 2048, 8, lin)},
		{"vg-two-segments", vgText(8, 16, 4, lvText{name: "a", segs: []string{linearSeg(0, 1, 3), linearSeg(1, 2, 0)}})},
		{"vg-thin", vgText(2048, 2048, 8, thin, lin)},
		{"vg-empty", vgText(2048, 2048, 8)},
		{"deep", strings.Repeat("a {\n", 12)},
		{"escapes", `a = "x\"y\\z" b = [1, "2", -3] c = 1.5`},
		{"unterminated", `vg { id = "abc`},
	}
}

type pvSeed struct {
	name string
	data []byte
}

// pvSeeds are small PVs: 4 KiB extents, a 4 KiB metadata area at 4096.
func pvSeeds() []pvSeed {
	small := func(text string, textOff uint64) []byte {
		return buildPV(pvOpts{size: 24 << 10, peStart: 8192, mdaSize: 4096, textOff: textOff, text: text})
	}
	lin := vgText(8, 16, 4, lvText{name: "a", segs: []string{linearSeg(0, 1, 3), linearSeg(1, 2, 0)}})
	short := vgText(8, 16, 4)
	bad := small(short, 0)
	bad[4096+600] ^= 1 // text CRC
	return []pvSeed{
		{"pv-linear", small(lin, 0)},
		{"pv-wrapped", small(short, 4096-300)},
		{"pv-bad-text-crc", bad},
		{"no-label", make([]byte, 4096)},
	}
}

// TestFuzzSeeds keeps the checked-in corpora in step; run with
// -write-seeds to regenerate them.
func TestFuzzSeeds(t *testing.T) {
	check := func(fuzz, name string, data []byte) {
		dir := filepath.Join("testdata", "fuzz", fuzz)
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(data)))
		p := filepath.Join(dir, name)
		if *writeSeeds {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		if got, err := os.ReadFile(p); err != nil || string(got) != content {
			t.Errorf("seed %s is missing or stale (err %v): run go test -run TestFuzzSeeds -write-seeds", p, err)
		}
	}
	for _, s := range textSeeds() {
		check("FuzzParseMetadata", s.name, []byte(s.text))
	}
	for _, s := range pvSeeds() {
		check("FuzzReadPV", s.name, s.data)
	}
}

// TestSeedsRead: the valid PV seeds read as intended.
func TestSeedsRead(t *testing.T) {
	want := map[string]string{"pv-linear": "a:12288", "pv-wrapped": ""}
	for _, s := range pvSeeds() {
		vg, err := Read(bytes.NewReader(s.data), int64(len(s.data)))
		w, ok := want[s.name]
		if !ok {
			if err == nil {
				t.Errorf("seed %s: Read = nil error, want error", s.name)
			}
			continue
		}
		if err != nil {
			t.Errorf("seed %s: Read = %v", s.name, err)
			continue
		}
		var got []string
		for _, v := range vg.Volumes {
			got = append(got, fmt.Sprintf("%s:%d", v.Name, v.Size))
		}
		if strings.Join(got, ",") != w {
			t.Errorf("seed %s: volumes %v, want %s", s.name, got, w)
		}
	}
}
