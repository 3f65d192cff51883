package vmdk

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

var writeSeeds = flag.Bool("write-seeds", false, "rewrite testdata/fuzz/FuzzOpenVMDK")

// FuzzOpenVMDK opens fuzz bytes as a VMDK and reads a few places. It must
// never panic, and must return a nil image with every error.
func FuzzOpenVMDK(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		im, err := Open(bytes.NewReader(data), int64(len(data)), Options{CacheBytes: 1 << 20})
		if err != nil {
			if im != nil {
				t.Fatalf("Open returned an image and %v", err)
			}
			return
		}
		buf := make([]byte, 16<<10)
		for _, off := range []int64{0, im.Size() / 2, im.Size() - 100, im.Size() - 1} {
			if off < 0 {
				continue
			}
			n, err := im.ReadAt(buf, off)
			if n < 0 || n > len(buf) || (err == nil && n != len(buf)) {
				t.Fatalf("ReadAt(%d) = %d, %v", off, n, err)
			}
		}
	})
}

type seed struct {
	name string
	data []byte
}

// fuzzSeeds are small valid images and a few hostile ones.
func fuzzSeeds() []seed {
	// Two 4 KiB grains: a little data, then zeros up to one byte at the end.
	raw := make([]byte, 8<<10)
	copy(raw, "guest data at the start of the disk")
	raw[len(raw)-1] = 1
	sparse, sl := build(raw, buildOpts{})
	stream, _ := build(raw, buildOpts{stream: true})
	footer, _ := build(raw, buildOpts{stream: true, footer: true})
	zeroed, _ := build(raw, buildOpts{zeroGrain: true})
	bomb, _ := build(raw, buildOpts{stream: true, grainHook: func(g, lba uint64, p []byte) (uint64, []byte) {
		return lba, zlibBytes(make([]byte, 64<<10))
	}})
	badGD := mutate(sparse, func(b []byte) []byte { put64(b, 56, 1<<40); return b })
	badGrain := mutate(sparse, func(b []byte) []byte { put32(b, sl.gts[0]*sectorSize, 1<<31); return b })
	hugeCap := mutate(sparse, func(b []byte) []byte { put64(b, 12, 1<<62); return b })
	return []seed{
		{"sparse", sparse},
		{"stream", stream},
		{"stream-footer", footer},
		{"sparse-zeroed-grain", zeroed},
		{"bomb", bomb},
		{"gd-beyond-eof", badGD},
		{"grain-beyond-eof", badGrain},
		{"huge-capacity", hugeCap},
		{"truncated", stream[:len(stream)/2]},
		{"descriptor-only", []byte("# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\nRW 2048 FLAT \"/etc/hostname\" 0\n")},
	}
}

// TestFuzzSeeds keeps the checked-in corpus in step with fuzzSeeds; run
// with -write-seeds to regenerate it.
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzOpenVMDK")
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
