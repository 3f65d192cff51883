package xfs

import (
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vmtrust/vmtrust/internal/fsys"
)

// fuzzImageSize is the size a fuzzed image claims: big enough for any
// sane superblock, while only the sectors in the input hold data.
const fuzzImageSize = 1 << 40

// sparseImage is an image described by runs of bytes; everything else
// reads as zeros. The fuzz input encodes it as records of a big-endian
// uint32 offset in 8-byte units, a uint16 length and that many bytes.
type sparseImage struct {
	runs []patch
}

func decodeSparse(data []byte) *sparseImage {
	s := &sparseImage{}
	for len(data) >= 6 {
		off := int64(binary.BigEndian.Uint32(data)) * 8
		n := int(binary.BigEndian.Uint16(data[4:]))
		data = data[6:]
		n = min(n, len(data))
		s.runs = append(s.runs, patch{off, data[:n]})
		data = data[n:]
	}
	return s
}

func encodeSparse(runs []patch) []byte {
	var out []byte
	for _, r := range squeeze(runs) {
		out = binary.BigEndian.AppendUint32(out, uint32(r.off/8))
		out = binary.BigEndian.AppendUint16(out, uint16(len(r.data)))
		out = append(out, r.data...)
	}
	return out
}

func (s *sparseImage) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 || off >= fuzzImageSize {
		return 0, io.EOF
	}
	n := len(b)
	if int64(n) > fuzzImageSize-off {
		n = int(fuzzImageSize - off)
	}
	clear(b[:n])
	for _, r := range s.runs {
		lo, hi := max(off, r.off), min(off+int64(n), r.off+int64(len(r.data)))
		if lo < hi {
			copy(b[lo-off:hi-off], r.data[lo-r.off:hi-r.off])
		}
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

// FuzzOpenXFS opens a fuzzed image (superblock and a few blocks), with CRC
// checks off so that mutations reach the parsers, and walks it: no panic,
// and nil results with every error.
func FuzzOpenXFS(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		x, err := open(decodeSparse(data), fuzzImageSize, false)
		if err != nil {
			if x != nil {
				t.Fatalf("open = %v, %v; want nil with the error", x, err)
			}
			return
		}
		budget := 200 // operations per input
		var walk func(ino fsys.Ino, depth int)
		walk = func(ino fsys.Ino, depth int) {
			ents, err := x.ReadDir(ino)
			if err != nil {
				if ents != nil {
					t.Fatalf("ReadDir = %v, %v; want nil with the error", ents, err)
				}
				return
			}
			for _, e := range ents {
				if budget--; budget < 0 {
					return
				}
				info, err := x.Stat(e.Ino)
				if err != nil {
					if info != (fsys.Info{}) {
						t.Fatalf("Stat = %+v, %v; want zero with the error", info, err)
					}
					continue
				}
				switch {
				case info.Mode.IsDir():
					if depth < 4 {
						walk(e.Ino, depth+1)
					}
				case info.Mode.Type() == fsys.Info{}.Mode.Type() && info.Mode.IsRegular():
					r, err := x.Open(e.Ino)
					if err != nil {
						if r != nil {
							t.Fatalf("Open = %v, %v; want nil with the error", r, err)
						}
						continue
					}
					buf := make([]byte, 8192)
					for _, off := range []int64{0, 4095, info.Size - 100, info.Size} {
						if n, err := r.ReadAt(buf, max(off, 0)); n > len(buf) || (err == nil && n != len(buf)) {
							t.Fatalf("ReadAt = %d, %v", n, err)
						}
					}
				default:
					if s, err := x.Readlink(e.Ino); err != nil && s != "" {
						t.Fatalf("Readlink = %q, %v; want empty with the error", s, err)
					}
				}
			}
		}
		walk(x.Root(), 0)
	})
}

var genSeeds = flag.Bool("genseeds", false, "rewrite testdata/fuzz/FuzzOpenXFS from freshly built images")

// TestGenerateSeeds rebuilds the checked-in seed corpus of FuzzOpenXFS
// with -genseeds: small real images reduced to their non-zero sectors
// (free inodes and the log left out), plus hostile variants.
func TestGenerateSeeds(t *testing.T) {
	if !*genSeeds {
		t.Skip("seed corpus generation runs with -genseeds only")
	}
	dir := t.TempDir()
	for _, n := range []string{"a", "b", "c"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(strings.Repeat(n, 20)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Long names: ten overflow the inode, making a single-block directory.
	for i := range 10 {
		name := fmt.Sprintf("file-%02d-%s", i, strings.Repeat("n", 40))
		if err := os.WriteFile(filepath.Join(dir, "sub", name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("sub/file-01", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(strings.Repeat("long/", 80), filepath.Join(dir, "remote")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join("testdata", "fuzz", "FuzzOpenXFS")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	save := func(name string, runs []patch) {
		data := encodeSparse(runs)
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(data)) + ")\n"
		if err := os.WriteFile(filepath.Join(out, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d bytes", name, len(data))
	}
	for _, v := range []struct {
		name string
		v5   bool
		args []string
	}{
		{"v5", true, []string{"-d", "agcount=2"}},
		{"v4", false, []string{"-m", "crc=0", "-i", "size=256", "-n", "ftype=0", "-d", "agcount=2"}},
	} {
		img := buildImage(t, dir, 300<<20, v.v5, v.args...)
		runs := sparseRuns(t, img)
		save("real-"+v.name, runs)
		if !v.v5 {
			continue
		}
		// Hostile variants of the v5 image (CRCs are not checked here).
		mut := func(name string, edit func(img []byte)) {
			flat := flatten(runs)
			edit(flat)
			save(name, unflatten(flat))
		}
		be := binary.BigEndian
		mut("hostile-agcount", func(b []byte) { be.PutUint32(b[88:], 0xffffffff) })
		mut("hostile-blocksize", func(b []byte) { be.PutUint32(b[4:], 1<<16); b[120] = 16 })
		rootPos := int(dbByte(t, img, "ino 128"))
		mut("hostile-root-count", func(b []byte) { b[rootPos+coreSizeV3] = 255 })
		mut("hostile-root-btree-loop", func(b []byte) {
			p := rootPos + coreSizeV3
			b[rootPos+5] = fmtBtree
			be.PutUint16(b[p:], 1)
			be.PutUint16(b[p+2:], 2)
			maxrecs := (512 - coreSizeV3 - 4) / 16
			be.PutUint64(b[p+4+maxrecs*8:], 1)
			be.PutUint64(b[p+4+maxrecs*8+8:], 1)
		})
		sub := dbExtents(t, img, "/sub")
		subPos := int(dbByte(t, img, fmt.Sprintf("fsblock %d", sub[0].start)))
		mut("hostile-dir-entry-length", func(b []byte) { b[subPos+dir3DataHdr+8] = 255 })
		save("hostile-superblock-only", []patch{{0, flatten(runs)[:512]}})
	}
}

// sparseRuns reads an image's non-zero sectors as runs of contiguous
// sectors, leaving out what the driver never reads (the internal log,
// free inodes, secondary superblocks, AG headers and free space and inode
// btrees) to keep the seeds small.
func sparseRuns(t *testing.T, img string) []patch {
	t.Helper()
	sb := dbFields(t, img, "sb 0", "print logstart logblocks blocksize agblocks agblklog")
	bs := int64(sb["blocksize"])
	logAG, logAGB := sb["logstart"]>>sb["agblklog"], sb["logstart"]&(1<<sb["agblklog"]-1)
	logLo := int64(logAG*sb["agblocks"]+logAGB) * bs
	logHi := logLo + int64(sb["logblocks"])*bs
	fh, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	st, _ := fh.Stat()
	var runs []patch
	sect := make([]byte, 512)
	for off := int64(0); off < st.Size(); off += 512 {
		if off >= logLo && off < logHi {
			continue
		}
		if _, err := fh.ReadAt(sect, off); err != nil {
			t.Fatal(err)
		}
		if isZero(sect) || (string(sect[:2]) == "IN" && binary.BigEndian.Uint16(sect[2:]) == 0) {
			continue
		}
		switch string(sect[:4]) {
		case "XAGF", "XAGI", "XAFL", "AB3B", "AB3C", "IAB3", "FIB3", "R3FC", "RMB3",
			"ABTB", "ABTC", "IABT", "FIBT":
			continue
		case "XFSB":
			if off > 0 {
				continue
			}
		}
		if n := len(runs); n > 0 && runs[n-1].off+int64(len(runs[n-1].data)) == off && len(runs[n-1].data) < 60000 {
			runs[n-1].data = append(runs[n-1].data, sect...)
			continue
		}
		runs = append(runs, patch{off, append([]byte(nil), sect...)})
	}
	return runs
}

// squeeze splits runs around stretches of 32 or more zero bytes (8-byte
// aligned), which a sparseImage reads as zeros anyway.
func squeeze(runs []patch) []patch {
	var out []patch
	for _, r := range runs {
		start, zeros := -1, 0
		for i := 0; i < len(r.data); i += 8 {
			w := r.data[i:min(i+8, len(r.data))]
			if !isZero(w) {
				if start < 0 {
					start = i
				}
				zeros = 0
				continue
			}
			zeros += len(w)
			if start >= 0 && zeros >= 32 {
				out = append(out, patch{r.off + int64(start), r.data[start : i+len(w)-zeros]})
				start = -1
			}
		}
		if start >= 0 {
			out = append(out, patch{r.off + int64(start), r.data[start : len(r.data)-zeros]})
		}
	}
	return out
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// flatten lays runs out in one buffer up to the end of the last run (the
// seeds' runs lie within the first few MiB), and unflatten reverses it.
func flatten(runs []patch) []byte {
	end := runs[len(runs)-1].off + int64(len(runs[len(runs)-1].data))
	b := make([]byte, end)
	for _, r := range runs {
		copy(b[r.off:], r.data)
	}
	return b
}

func unflatten(b []byte) []patch {
	var runs []patch
	for off := 0; off < len(b); off += 512 {
		s := b[off:min(off+512, len(b))]
		if isZero(s) {
			continue
		}
		if n := len(runs); n > 0 && runs[n-1].off+int64(len(runs[n-1].data)) == int64(off) && len(runs[n-1].data) < 60000 {
			runs[n-1].data = append(runs[n-1].data, s...)
			continue
		}
		runs = append(runs, patch{int64(off), append([]byte(nil), s...)})
	}
	return runs
}

// TestFuzzSeeds checks that the real-image seeds decode to filesystems
// that open with CRC checks on and list what the generator put there, so
// the fuzzer starts from inputs that reach deep.
func TestFuzzSeeds(t *testing.T) {
	for _, name := range []string{"real-v5", "real-v4"} {
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzOpenXFS", name))
			if err != nil {
				t.Fatal(err)
			}
			_, lit, ok := strings.Cut(strings.TrimSpace(string(raw)), "\n[]byte(")
			if !ok {
				t.Fatalf("%s: not a fuzz corpus file", name)
			}
			data, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
			if err != nil {
				t.Fatal(err)
			}
			x, err := Open(decodeSparse([]byte(data)), fuzzImageSize)
			if err != nil {
				t.Fatalf("Open = %v", err)
			}
			r := fsys.NewRoot(x)
			ents, err := r.ReadDir("/")
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range ents {
				names = append(names, e.Name)
			}
			if got, want := strings.Join(names, " "), "a b c link remote sub"; got != want {
				t.Errorf("ReadDir(/) = %q, want %q", got, want)
			}
			if sub, err := r.ReadDir("/sub"); err != nil || len(sub) != 10 {
				t.Errorf("ReadDir(/sub) = %d entries, %v; want 10", len(sub), err)
			}
			if target, err := r.Readlink("/remote"); err != nil || target != strings.Repeat("long/", 80) {
				t.Errorf("Readlink(/remote) = %q, %v", target, err)
			}
		})
	}
}
