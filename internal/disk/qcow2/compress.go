package qcow2

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// errExpands is returned for a compressed cluster that decodes to more
// than one cluster: a decompression bomb or a corrupt image.
var errExpands = errors.New("compressed cluster expands beyond cluster size")

// zstdMaxWindow bounds the history a zstd frame may ask the decoder to
// keep. QEMU compresses one cluster (at most 2 MiB) per frame.
const zstdMaxWindow = 8 << 20

// decompressor turns one compressed cluster into exactly one cluster of
// output. It is safe for concurrent use.
type decompressor struct {
	zstd  *zstd.Decoder // nil for zlib images
	flate sync.Pool     // of io.ReadCloser implementing flate.Resetter
}

func newDecompressor(typ string) (*decompressor, error) {
	d := &decompressor{}
	if typ == "zstd" {
		dec, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(2),
			zstd.WithDecoderMaxWindow(zstdMaxWindow),
			zstd.WithDecodeAllCapLimit(true),
			zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, fmt.Errorf("qcow2: zstd decoder: %w", err)
		}
		d.zstd = dec
	}
	return d, nil
}

func (d *decompressor) close() {
	if d.zstd != nil {
		d.zstd.Close()
	}
}

// decompress decodes src into dst, which it must fill exactly.
func (d *decompressor) decompress(dst, src []byte) error {
	if d.zstd != nil {
		return d.decodeZstd(dst, src)
	}
	return d.decodeZlib(dst, src)
}

// decodeZlib inflates a raw deflate stream (QEMU writes no zlib header).
// The input may carry trailing bytes of the next compressed cluster: the
// stream's own end marks the end.
func (d *decompressor) decodeZlib(dst, src []byte) error {
	fr, _ := d.flate.Get().(io.ReadCloser)
	if fr == nil {
		fr = flate.NewReader(bytes.NewReader(src))
	} else if err := fr.(flate.Resetter).Reset(bytes.NewReader(src), nil); err != nil {
		return fmt.Errorf("zlib: %w", err)
	}
	defer d.flate.Put(fr)
	if _, err := io.ReadFull(fr, dst); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return errors.New("zlib: compressed cluster decodes to less than a cluster")
		}
		return fmt.Errorf("zlib: %w", err)
	}
	var one [1]byte
	if n, _ := fr.Read(one[:]); n > 0 {
		return errExpands
	}
	return nil
}

// decodeZstd decodes whole zstd frames until dst is full. Like QEMU it
// accepts several frames and ignores what follows the frame that fills the
// cluster; unlike QEMU it refuses a frame that would overflow the cluster.
// Frame boundaries are found by walking the block headers, so the decoder
// never sees the bytes that follow (the next cluster's data).
func (d *decompressor) decodeZstd(dst, src []byte) error {
	out := dst[:0]
	for len(out) < len(dst) {
		n, fcs, err := zstdFrame(src)
		if err != nil && len(out) > 0 {
			return fmt.Errorf("zstd: compressed cluster decodes to less than a cluster (then %w)", err)
		}
		if err != nil {
			return fmt.Errorf("zstd: %w", err)
		}
		frame := src[:n]
		src = src[n:]
		if fcs == skippableFrame {
			continue
		}
		room := uint64(len(dst) - len(out))
		if fcs != unknownSize && fcs > room {
			return errExpands
		}
		// The cap limit makes DecodeAll stop at the end of dst.
		got, err := d.zstd.DecodeAll(frame, out[len(out):len(out):len(dst)])
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) {
			return errExpands
		}
		if err != nil {
			return fmt.Errorf("zstd: %w", err)
		}
		if uint64(len(got)) > room || (len(got) > 0 && &got[0] != &dst[len(out)]) {
			return errExpands // defensive: output must land in dst
		}
		out = dst[:len(out)+len(got)]
	}
	return nil
}

const (
	unknownSize    = ^uint64(0)
	skippableFrame = ^uint64(0) - 1
	zstdMaxBlock   = 128 << 10
)

// zstdFrame returns the length of the frame at the start of src and its
// declared content size (unknownSize when absent, skippableFrame for a
// skippable frame). It reads headers only.
func zstdFrame(src []byte) (n int, fcs uint64, err error) {
	var h zstd.Header
	if err := h.Decode(src); err != nil {
		return 0, 0, fmt.Errorf("frame header: %w", err)
	}
	if h.Skippable {
		if uint64(h.SkippableSize) > uint64(len(src)-h.HeaderSize) {
			return 0, 0, errors.New("skippable frame beyond compressed data")
		}
		return h.HeaderSize + int(h.SkippableSize), skippableFrame, nil
	}
	if h.DictionaryID != 0 {
		return 0, 0, errors.New("frame needs a dictionary")
	}
	fcs = unknownSize
	if h.HasFCS {
		fcs = h.FrameContentSize
	}
	pos := h.HeaderSize
	for {
		if len(src)-pos < 3 {
			return 0, 0, errors.New("block header beyond compressed data")
		}
		bh := uint32(src[pos]) | uint32(src[pos+1])<<8 | uint32(src[pos+2])<<16
		pos += 3
		size := int(bh >> 3)
		switch (bh >> 1) & 3 {
		case 0, 2: // raw, compressed: size bytes follow
		case 1: // RLE: one byte follows
			size = 1
		default:
			return 0, 0, errors.New("reserved block type")
		}
		if int(bh>>3) > zstdMaxBlock || size > len(src)-pos {
			return 0, 0, errors.New("block beyond compressed data")
		}
		pos += size
		if bh&1 != 0 {
			break
		}
	}
	if h.HasCheckSum {
		if len(src)-pos < 4 {
			return 0, 0, errors.New("checksum beyond compressed data")
		}
		pos += 4
	}
	return pos, fcs, nil
}
