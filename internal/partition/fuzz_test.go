package partition

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

var writeSeeds = flag.Bool("write-seeds", false, "rewrite testdata/fuzz/FuzzReadPartitions")

// FuzzReadPartitions reads fuzz bytes as a disk. Read must never panic,
// must return a nil table with every error, and every partition it returns
// must lie inside the disk without overlapping another.
func FuzzReadPartitions(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		size := int64(len(data))
		tab, err := Read(bytes.NewReader(data), size)
		if err != nil {
			if tab != nil {
				t.Fatalf("Read returned a table and %v", err)
			}
			return
		}
		switch tab.Scheme {
		case "gpt", "mbr", "none":
		default:
			t.Fatalf("Scheme = %q", tab.Scheme)
		}
		var parts []Partition
		for _, p := range tab.Partitions {
			if p.Index < 1 || p.Start <= 0 || p.Size <= 0 || p.Start > size-p.Size {
				t.Fatalf("partition %+v outside disk of %d bytes", p, size)
			}
			if !p.IsExtended() {
				parts = append(parts, p)
			}
		}
		if err := checkOverlap(parts); err != nil {
			t.Fatalf("returned overlapping partitions: %v", err)
		}
	})
}

type seed struct {
	name string
	data []byte
}

func fuzzSeeds() []seed {
	linux := guid("0fc63daf-8483-4772-8e79-3d69d8477de4")
	efi := guid("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")
	gpt := buildGPT(512, 16, 4,
		gptSpec{typ: efi, guid: guid("11111111-2222-3333-4444-555555555555"), first: 3, last: 5, name: "EFI"},
		gptSpec{typ: linux, guid: guid("66666666-7777-8888-9999-aaaaaaaaaaaa"), first: 6, last: 13, attrs: 4, name: "root"})
	gpt4k := buildGPT(4096, 8, 4, gptSpec{typ: linux, first: 3, last: 5, name: "data"})
	badPrimary := bytes.Clone(gpt)
	badPrimary[512+60] ^= 1
	absurd := bytes.Clone(gpt)
	editGPT(absurd, 512, func(h, _ []byte) { h[82] = 1 }) // 65540 entries
	mbr := make([]byte, 16*512)
	putMBR(mbr, 0, mbrSpec{status: 0x80, typ: 0x83, start: 1, count: 4}, mbrSpec{typ: 0x82, start: 5, count: 4})
	logical := buildLogical(11, 2, 3, 2)
	loop := bytes.Clone(logical)
	putMBR(loop, 8, mbrSpec{typ: 0x83, start: 1, count: 2}, mbrSpec{typ: 0x05, start: 0, count: 3})
	return []seed{
		{"gpt", gpt},
		{"gpt-4k", gpt4k},
		{"gpt-bad-primary", badPrimary},
		{"gpt-absurd-count", absurd},
		{"mbr", mbr},
		{"mbr-logical", logical},
		{"mbr-ebr-loop", loop},
		{"none", make([]byte, 1024)},
	}
}

// TestFuzzSeeds keeps the checked-in corpus in step with fuzzSeeds; run
// with -write-seeds to regenerate it.
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzReadPartitions")
	for _, s := range fuzzSeeds() {
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(s.data)))
		p := filepath.Join(dir, s.name)
		if *writeSeeds {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != content {
			t.Errorf("seed %s is missing or stale (err %v): run go test -run TestFuzzSeeds -write-seeds", p, err)
		}
	}
}

// TestSeedsRead checks that the valid seeds parse as intended.
func TestSeedsRead(t *testing.T) {
	want := map[string]string{"gpt": "gpt/2/false", "gpt-4k": "gpt/1/false", "gpt-bad-primary": "gpt/2/true",
		"mbr": "mbr/2/false", "mbr-logical": "mbr/4/false", "none": "none/0/false"}
	for _, s := range fuzzSeeds() {
		w, ok := want[s.name]
		tab, err := Read(bytes.NewReader(s.data), int64(len(s.data)))
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
		if got := fmt.Sprintf("%s/%d/%v", tab.Scheme, len(tab.Partitions), tab.Backup); got != w {
			t.Errorf("seed %s: Read = %s, want %s", s.name, got, w)
		}
	}
}
