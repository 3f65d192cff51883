package ext4

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/vmtrust/vmtrust/internal/fsys"
)

// Fuzz inputs are images with runs of zero bytes packed, so that real
// mkfs.ext4 images make seeds of a few KiB: a 0x00 byte followed by a
// count byte c stands for c+1 zero bytes (a final lone 0x00 for one). The
// decoded image is zero-padded to fuzzMinImage bytes and cut at
// fuzzMaxImage. Every byte string decodes to some image.
const (
	fuzzMinImage = 64 << 10
	fuzzMaxImage = 4 << 20
)

func unpackZeros(in []byte) []byte {
	out := make([]byte, 0, fuzzMinImage)
	for i := 0; i < len(in) && len(out) < fuzzMaxImage; i++ {
		if in[i] != 0 {
			out = append(out, in[i])
			continue
		}
		n := 1
		if i+1 < len(in) {
			i++
			n += int(in[i])
		}
		out = append(out, make([]byte, n)...)
	}
	out = out[:min(len(out), fuzzMaxImage)]
	if len(out) < fuzzMinImage {
		out = append(out, make([]byte, fuzzMinImage-len(out))...)
	}
	return out
}

// packZeros packs b for unpackZeros, dropping trailing zeros (which the
// padding restores for images up to fuzzMinImage bytes).
func packZeros(b []byte) []byte {
	b = bytes.TrimRight(b, "\x00")
	var out []byte
	for i := 0; i < len(b); {
		if b[i] != 0 {
			out = append(out, b[i])
			i++
			continue
		}
		n := 0
		for i+n < len(b) && b[i+n] == 0 && n < 256 {
			n++
		}
		out = append(out, 0, byte(n-1))
		i += n
	}
	return out
}

func FuzzOpenExt4(f *testing.F) {
	f.Fuzz(func(t *testing.T, packed []byte) {
		img := unpackZeros(packed)
		e, err := Open(bytes.NewReader(img), int64(len(img)))
		if err != nil {
			if e != nil {
				t.Fatalf("Open() = %v, %v; want nil on error", e, err)
			}
			return
		}
		exercise(t, e)
	})
}

// exercise walks the whole filesystem with bounds, reading every file and
// link, and checks that failures return nil results.
func exercise(t *testing.T, e *FS) {
	r := fsys.NewRoot(e)
	buf := make([]byte, 64<<10)
	_ = r.Walk(context.Background(), "/", fsys.WalkOptions{MaxEntries: 2000, MaxDepth: 32}, func(p string, info fsys.Info) error {
		switch {
		case info.Mode.IsRegular():
			ra, _, err := r.Open(p)
			if err != nil {
				if ra != nil {
					t.Fatalf("Open(%q) returned a reader and %v", p, err)
				}
				return nil
			}
			ra.ReadAt(buf, 0)
			ra.ReadAt(buf, max(0, info.Size-100))
			if b, err := r.ReadFile(p, 1<<20); err != nil && b != nil {
				t.Fatalf("ReadFile(%q) returned data and %v", p, err)
			}
		case info.Mode&fs.ModeSymlink != 0:
			if s, err := r.Readlink(p); err != nil && s != "" {
				t.Fatalf("Readlink(%q) = %q, %v", p, s, err)
			}
			r.Stat(p)
		case info.Mode.IsDir():
			if ents, err := r.ReadDir(p); err != nil && ents != nil {
				t.Fatalf("ReadDir(%q) returned entries and %v", p, err)
			}
		}
		return nil
	})
	r.Glob("/*/*")
}

func TestPackZeros(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"no zeros", []byte("abc")},
		{"one zero", []byte{1, 0, 2}},
		{"long run", append(append([]byte{7}, make([]byte, 1000)...), 9)},
		{"exactly 256", append(append([]byte{7}, make([]byte, 256)...), 9)},
		{"trailing zeros", append([]byte{7}, make([]byte, 300)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := unpackZeros(packZeros(tt.in))
			want := append(bytes.Clone(tt.in), make([]byte, fuzzMinImage-len(tt.in))...)
			if !bytes.Equal(got, want) {
				t.Errorf("unpackZeros(packZeros(%d bytes)) differs", len(tt.in))
			}
		})
	}
	hostile := []struct {
		name string
		in   []byte
		want int
	}{
		{"lone final zero", []byte{5, 0}, fuzzMinImage},
		{"zero bomb", bytes.Repeat([]byte{0, 255}, 1<<16), fuzzMaxImage},
		{"data bomb", bytes.Repeat([]byte{1}, fuzzMaxImage+10), fuzzMaxImage},
		{"only a count byte", []byte{0}, fuzzMinImage},
		{"zero count", []byte{0, 0, 0, 0}, fuzzMinImage},
	}
	for _, tt := range hostile {
		if got := len(unpackZeros(tt.in)); got != tt.want {
			t.Errorf("%s: unpackZeros gives %d bytes, want %d", tt.name, got, tt.want)
		}
	}
}

// TestFuzzSeeds runs every checked-in seed through the fuzz body, and
// checks the realistic ones still open.
func TestFuzzSeeds(t *testing.T) {
	files, err := filepath.Glob("testdata/fuzz/FuzzOpenExt4/*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no seeds: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			packed := readSeed(t, file)
			e, err := Open(bytes.NewReader(unpackZeros(packed)), int64(len(unpackZeros(packed))))
			valid := bytes.HasPrefix([]byte(filepath.Base(file)), []byte("valid-"))
			if valid {
				if err != nil {
					t.Fatalf("valid seed: Open() = %v", err)
				}
				if got, err := fsys.NewRoot(e).ReadFile("/hard", 100); err != nil || string(got) != "hello\n" {
					t.Fatalf("valid seed: ReadFile(/hard) = %q, %v", got, err)
				}
			}
			if err == nil {
				exercise(t, e)
			}
		})
	}
}

func readSeed(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitN(b, []byte("\n"), 3)
	if len(lines) < 2 || string(lines[0]) != "go test fuzz v1" {
		t.Fatalf("%s: not a go test fuzz v1 file", file)
	}
	lit := bytes.TrimSuffix(bytes.TrimPrefix(bytes.TrimSpace(lines[1]), []byte("[]byte(")), []byte(")"))
	s, err := strconv.Unquote(string(lit))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return []byte(s)
}

var writeSeeds = flag.Bool("write-seeds", false, "rebuild testdata/fuzz/FuzzOpenExt4 with mkfs.ext4 and debugfs")

// TestWriteSeeds rebuilds the fuzz seed corpus (go test -run TestWriteSeeds
// -write-seeds): tiny real images, and hostile variants of them.
func TestWriteSeeds(t *testing.T) {
	if !*writeSeeds {
		t.Skip("run with -write-seeds to rebuild the fuzz corpus")
	}
	tree := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(tree, "d"), 0o755))
	must(os.WriteFile(filepath.Join(tree, "d/f"), []byte("hello\n"), 0o644))
	must(os.WriteFile(filepath.Join(tree, "two-blocks"), bytes.Repeat([]byte("0123456789abcdef"), 100), 0o600))
	must(os.Symlink("f", filepath.Join(tree, "d/fast")))
	must(os.Symlink(string(bytes.Repeat([]byte("x/"), 40)), filepath.Join(tree, "slow")))
	must(os.Link(filepath.Join(tree, "d/f"), filepath.Join(tree, "hard")))

	build := func(name string, opts ...string) []byte {
		img := filepath.Join(t.TempDir(), "seed.img")
		must(os.WriteFile(img, nil, 0o600))
		must(os.Truncate(img, fuzzMinImage))
		args := append([]string{"-q", "-F", "-b", "1024", "-N", "16", "-m", "0", "-O", "^has_journal,^resize_inode,^flex_bg", "-d", tree}, opts...)
		runTool(t, "mkfs.ext4", append(args, img)...)
		b, err := os.ReadFile(img)
		must(err)
		return b
	}
	seeds := map[string][]byte{
		"valid-ext4":        build("ext4"),
		"valid-ext2":        build("ext2", "-t", "ext2", "-I", "128"),
		"valid-inline-data": build("inline", "-O", "inline_data"),
		"valid-meta-bg":     build("metabg", "-O", "^64bit,meta_bg"),
	}
	base := seeds["valid-ext4"]
	e, err := openBytes(base)
	must(err)
	rootOff := inodeOffset(t, e, rootIno)
	dirIn, err := e.readInode(inodeOf(t, e, "/d"))
	must(err)
	rn, err := e.mapBlocks(dirIn, 0, 1)
	must(err)
	mutate := func(f func(b []byte)) []byte {
		b := bytes.Clone(base)
		f(b)
		fixSuperCsum(b)
		return b
	}
	seeds["hostile-reclen-zero"] = mutate(func(b []byte) { put16(b, int64(rn.phys)*1024+12+4, 0) })
	seeds["hostile-inodes-per-group"] = mutate(func(b []byte) { put32(b, superOffset+0x28, 0xFFFFFFF0) })
	seeds["hostile-root-depth"] = mutate(func(b []byte) { put16(b, rootOff+0x28+6, 5); put16(b, rootOff+0x28+2, 4) })
	seeds["hostile-root-is-file"] = mutate(func(b []byte) { put16(b, rootOff, sIFREG|0o644) })
	seeds["hostile-dir-to-root"] = mutate(func(b []byte) { put32(b, int64(rn.phys)*1024+24, rootIno) }) // /d/f names the root
	seeds["hostile-truncated"] = base[:3000]

	dir := filepath.Join("testdata", "fuzz", "FuzzOpenExt4")
	must(os.MkdirAll(dir, 0o755))
	for name, img := range seeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(packZeros(img))))
		must(os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
	}
}
