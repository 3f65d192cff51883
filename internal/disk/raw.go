package disk

import (
	"errors"
	"fmt"
	"io"
	"sync/atomic"
)

// NewRaw presents size bytes of r as a raw image. Close does not close r.
func NewRaw(r io.ReaderAt, size int64) Image { return &rawImage{r: r, size: size} }

type rawImage struct {
	r    io.ReaderAt
	size int64
}

func (i *rawImage) Size() int64    { return i.size }
func (i *rawImage) Format() string { return "raw" }
func (i *rawImage) Close() error   { return nil }

func (i *rawImage) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("raw: read at negative offset %d", off)
	}
	if off >= i.size {
		return 0, io.EOF
	}
	want := int(min(int64(len(p)), i.size-off))
	n, err := i.r.ReadAt(p[:want], off)
	if n < want {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // the file shrank under us
		}
		return n, fmt.Errorf("raw: read at %d: %w", off, err)
	}
	if want < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Stats counts reads of host image files. It is safe for concurrent use.
type Stats struct {
	bytes atomic.Int64
	reads atomic.Int64
}

// BytesRead is the number of bytes read from host files.
func (s *Stats) BytesRead() int64 { return s.bytes.Load() }

// Reads is the number of read calls made on host files.
func (s *Stats) Reads() int64 { return s.reads.Load() }

// countingReader counts what is read through it into Stats.
type countingReader struct {
	r     io.ReaderAt
	stats *Stats
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.stats.bytes.Add(int64(n))
	c.stats.reads.Add(1)
	return n, err
}
