package qcow2

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkReadCompressed reads a 32 MiB compressed image made by
// qemu-img from start to end, with a fresh image (and cache) each time,
// and reports guest MB/s.
func BenchmarkReadCompressed(b *testing.B) {
	needTool(b, "qemu-img", "qemu-utils")
	dir := b.TempDir()
	const size = 32 << 20
	src := filepath.Join(dir, "src.raw")
	if err := os.WriteFile(src, testData(size, 99), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, opts string }{
		{"zlib", "compression_type=zlib"},
		{"zstd", "compression_type=zstd"},
	} {
		b.Run(c.name, func(b *testing.B) {
			path := filepath.Join(dir, c.name+".qcow2")
			run(b, dir, "qemu-img", "convert", "-O", "qcow2", "-c", "-o", c.opts, src, path)
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			fi, _ := f.Stat()
			buf := make([]byte, 1<<20)
			cr := &countingReaderAt{r: f}
			b.SetBytes(size)
			b.ResetTimer()
			for b.Loop() {
				img, err := Open(cr, fi.Size(), Options{})
				if err != nil {
					b.Fatal(err)
				}
				for off := int64(0); off < size; off += int64(len(buf)) {
					if _, err := img.ReadAt(buf, off); err != nil && err != io.EOF {
						b.Fatal(err)
					}
				}
				img.Close()
			}
			b.ReportMetric(float64(cr.n)/float64(b.N)/(1<<20), "host-MiB/op")
		})
	}
}

// countingReaderAt counts the bytes read from the image file.
type countingReaderAt struct {
	r io.ReaderAt
	n int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n += int64(n)
	return n, err
}
