package qcow2

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// needTool skips the test when a tool is missing, or fails it under CI,
// naming the Debian package that provides it.
func needTool(t testing.TB, tool, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err == nil {
		return
	}
	msg := fmt.Sprintf("%s is not installed: apt-get install -y --no-install-recommends %s", tool, pkg)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// run runs a command in dir and fails the test on error.
func run(t testing.TB, dir, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// qemuRaw returns the guest content of an image as qemu-img sees it.
func qemuRaw(t testing.TB, path string) []byte {
	t.Helper()
	out := path + ".qemu.raw"
	run(t, filepath.Dir(path), "qemu-img", "convert", "-O", "raw", path, out)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testData returns size bytes mixing what disks hold: incompressible
// random blocks, compressible text, repeated patterns and zero runs, in
// pieces that do not line up with clusters.
func testData(size int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := make([]byte, size)
	words := []string{"kernel ", "package ", "debian ", "/usr/lib ", "ELF ", "\x00\x00\x01 ", "root:x:0:0 "}
	for pos := 0; pos < size; {
		n := min(size-pos, 1+r.IntN(96<<10))
		p := out[pos : pos+n]
		switch r.IntN(5) {
		case 0: // random
			for i := range p {
				p[i] = byte(r.Uint32())
			}
		case 1: // zeros (already)
		case 2: // text
			for i := 0; i < n; {
				i += copy(p[i:], words[r.IntN(len(words))])
			}
		case 3: // pattern
			b := byte(r.Uint32())
			for i := range p {
				p[i] = b + byte(i%7)
			}
		case 4: // sparse random bytes in zeros
			for i := 0; i < n; i += 1 + r.IntN(512) {
				p[i] = byte(r.Uint32())
			}
		}
		pos += n
	}
	return out
}

// checkReads compares reads of img against want: a sequential read in odd
// chunks, random unaligned reads, reads across cluster boundaries, reads
// at and past the end, and concurrent reads.
func checkReads(t *testing.T, img io.ReaderAt, size int64, clusterSize int64, want []byte) {
	t.Helper()
	if int64(len(want)) != size {
		t.Fatalf("size = %d, want %d", size, len(want))
	}
	got := make([]byte, 0, size)
	buf := make([]byte, 4093)
	for off := int64(0); off < size; {
		n, err := img.ReadAt(buf, off)
		if err != nil && !(errors.Is(err, io.EOF) && off+int64(n) == size) {
			t.Fatalf("ReadAt(%d, %d) = %d, %v", len(buf), off, n, err)
		}
		got = append(got, buf[:n]...)
		off += int64(n)
	}
	if i := firstDiff(got, want); i >= 0 {
		t.Fatalf("sequential read differs at offset %d (cluster %d): got %#x, want %#x", i, int64(i)/clusterSize, got[i], want[i])
	}
	r := rand.New(rand.NewPCG(1, 2))
	type read struct{ off, n int64 }
	var reads []read
	for k := int64(1); k <= 6; k++ {
		reads = append(reads, read{k*clusterSize - 7, 14}, read{k*clusterSize - 1, clusterSize + 2})
	}
	for range 150 {
		reads = append(reads, read{r.Int64N(size), 1 + r.Int64N(3*clusterSize)})
	}
	reads = append(reads, read{size - 10, 100}, read{size, 1}, read{size + 5, 10}, read{0, size + 1})
	check := func(rd read) error {
		p := make([]byte, rd.n)
		n, err := img.ReadAt(p, rd.off)
		end := min(rd.off+rd.n, size)
		wantN := max(end-rd.off, 0)
		if int64(n) != wantN {
			return fmt.Errorf("ReadAt(%d bytes, off %d) n = %d, want %d (err %v)", rd.n, rd.off, n, wantN, err)
		}
		if rd.off+rd.n > size && !errors.Is(err, io.EOF) {
			return fmt.Errorf("ReadAt(%d bytes, off %d) err = %v, want io.EOF", rd.n, rd.off, err)
		}
		if rd.off+rd.n <= size && err != nil {
			return fmt.Errorf("ReadAt(%d bytes, off %d) err = %v", rd.n, rd.off, err)
		}
		if n > 0 && !bytes.Equal(p[:n], want[rd.off:end]) {
			return fmt.Errorf("ReadAt(%d bytes, off %d) differs at +%d", rd.n, rd.off, firstDiff(p[:n], want[rd.off:end]))
		}
		return nil
	}
	for _, rd := range reads {
		if err := check(rd); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := img.ReadAt(make([]byte, 1), -1); err == nil {
		t.Error("ReadAt(off -1) succeeded, want an error")
	}
	// The same reads from four goroutines at once (run with -race).
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Go(func() {
			for i := g; i < len(reads); i += 4 {
				if err := check(reads[i]); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent: %v", err)
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// within fails the test when f does not return within d: a hostile image
// must never hang a reader.
func within(t *testing.T, d time.Duration, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("did not return within %v", d)
	}
}
