package disk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/vmtrust/vmtrust/internal/disk/qcow2"
)

// DefaultMaxChain is the default bound on backing files below an image.
const DefaultMaxChain = 8

// Options configures Open. The zero value refuses every backing file.
type Options struct {
	// BackingDirs lists the directories a backing file may be in, after
	// symbolic links are resolved. Empty: every backing file is refused.
	BackingDirs []string
	// CacheBytes is the cache budget shared by every qcow2 layer of the
	// chain (0: 32 MiB; negative: no cache).
	CacheBytes int64
	// MaxChain bounds the number of backing files below the image
	// (0: DefaultMaxChain).
	MaxChain int
	// Stats, when set, accumulates the reads of every host file Open
	// opens; otherwise each Open counts separately (see BytesRead).
	Stats *Stats

	// open opens a host file; tests replace it to record what is opened.
	open func(name string, flag int) (*os.File, error)
}

// Open opens the disk image at path read-only and detects its format:
// qcow2 (magic "QFI\xfb"), VMDK (sparse magic "KDMV"; descriptor files are
// refused), other known container formats are refused, anything else is
// raw. Backing files of qcow2 images are opened only under the rules of
// Options.BackingDirs, with loops and chains longer than MaxChain refused.
// The path itself is trusted: it may be a symbolic link, a regular file or
// a block device.
func Open(path string, opts Options) (Image, error) {
	o, err := newOpener(opts)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("disk: %s: %w", path, err)
	}
	f, err := o.open(abs, os.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	return o.layer(f, abs, "", 0)
}

// BytesRead reports how many bytes of host files an image returned by Open
// has read so far, across its whole backing chain (0 for other images).
func BytesRead(img Image) int64 {
	if fi, ok := img.(*fileImage); ok {
		return fi.stats.BytesRead()
	}
	return 0
}

// opener carries the state of one Open: the allowed directories, the
// shared cache and counters, and the files already in the chain.
type opener struct {
	dirs       []allowedDir
	maxChain   int
	cacheBytes int64
	cache      *qcow2.Cache
	stats      *Stats
	open       func(name string, flag int) (*os.File, error)
	chain      []os.FileInfo
}

func newOpener(opts Options) (*opener, error) {
	o := &opener{
		maxChain:   opts.MaxChain,
		cacheBytes: opts.CacheBytes,
		stats:      opts.Stats,
		open:       opts.open,
	}
	if o.maxChain <= 0 {
		o.maxChain = DefaultMaxChain
	}
	if o.cacheBytes == 0 {
		o.cacheBytes = qcow2.DefaultCacheBytes
	}
	o.cache = qcow2.NewCache(o.cacheBytes)
	if o.stats == nil {
		o.stats = &Stats{}
	}
	if o.open == nil {
		o.open = func(name string, flag int) (*os.File, error) { return os.OpenFile(name, flag, 0) }
	}
	var err error
	if o.dirs, err = allowedDirs(opts.BackingDirs); err != nil {
		return nil, err
	}
	return o, nil
}

// layer opens the image in f (named name) as format ("" to detect) and,
// for qcow2, its backing chain. It owns f: on error f is closed.
func (o *opener) layer(f *os.File, name, format string, depth int) (img Image, err error) {
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	size, fi, err := fileSize(f)
	if err != nil {
		return nil, fmt.Errorf("disk: %s: %w", name, err)
	}
	if err := o.enter(fi, name); err != nil {
		return nil, err
	}
	r := &countingReader{r: f, stats: o.stats}
	if format != "raw" {
		detected, err := detect(r, size)
		if err != nil {
			return nil, fmt.Errorf("disk: %s: %w", name, err)
		}
		if format != "" && format != detected {
			return nil, fmt.Errorf("disk: %s: named as %s by the image above it, but its content is %s", name, format, detected)
		}
		format = detected
	}
	var inner Image
	switch format {
	case "raw":
		inner = NewRaw(r, size)
	case "qcow2":
		inner, err = o.qcow2(r, size, name, depth)
	case "vmdk":
		inner, err = openVMDK(r, size, o.cacheBytes)
		if err != nil {
			err = fmt.Errorf("disk: %s: %w", name, err)
		}
	}
	if err != nil {
		return nil, err
	}
	return &fileImage{Image: inner, f: f, stats: o.stats}, nil
}

// enter records a file as part of the chain, refusing one seen before.
func (o *opener) enter(fi os.FileInfo, name string) error {
	for _, prev := range o.chain {
		if os.SameFile(prev, fi) {
			return fmt.Errorf("disk: %s: backing chain loop: the file is already in the chain", name)
		}
	}
	o.chain = append(o.chain, fi)
	return nil
}

// qcow2 opens a qcow2 layer and, first, its backing file if it names one.
func (o *opener) qcow2(r io.ReaderAt, size int64, name string, depth int) (Image, error) {
	h, err := qcow2.ParseHeader(r, size)
	if err == nil {
		err = h.Supported() // refuse before touching any backing file
	}
	if err != nil {
		return nil, fmt.Errorf("disk: %s: %w", name, err)
	}
	var backing qcow2.Backing
	if h.BackingFile != "" {
		if depth+1 > o.maxChain {
			return nil, fmt.Errorf("disk: %s: backing chain longer than %d files", name, o.maxChain)
		}
		b, err := o.backing(name, h.BackingFile, h.BackingFormat, depth+1)
		if err != nil {
			return nil, err
		}
		backing = b
	}
	img, err := qcow2.Open(r, size, qcow2.Options{Backing: backing, Cache: o.cache})
	if err != nil {
		if backing != nil {
			backing.Close()
		}
		return nil, fmt.Errorf("disk: %s: %w", name, err)
	}
	return img, nil
}

// backing resolves, checks and opens the backing file named in the image
// parent. The name the image wrote is untrusted.
func (o *opener) backing(parent, name, format string, depth int) (Image, error) {
	switch format {
	case "", "raw", "qcow2", "vmdk":
	default:
		return nil, fmt.Errorf("disk: %s: backing file %q has format %q, which is not supported", parent, name, format)
	}
	p, err := o.resolve(parent, name)
	if err != nil {
		return nil, err
	}
	for _, prev := range o.chain {
		if os.SameFile(prev, p.info) {
			return nil, fmt.Errorf("disk: %s: backing file %q (%s) is already in the chain: backing loop", parent, name, p.real)
		}
	}
	// O_NOFOLLOW: the last component must still be the checked file, not a
	// link swapped in; O_NONBLOCK: a FIFO swapped in cannot block the open.
	f, err := o.open(p.real, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("disk: %s: backing file %q: %w", parent, name, err)
	}
	fi, err := f.Stat()
	if err != nil || !os.SameFile(fi, p.info) {
		f.Close()
		return nil, fmt.Errorf("disk: %s: backing file %q (%s) changed between the check and the open", parent, name, p.real)
	}
	// Like QEMU, the next relative name is taken from the directory of the
	// path as named, not as resolved.
	return o.layer(f, p.named, format, depth)
}

// fileSize returns the size of a regular file or block device.
func fileSize(f *os.File) (int64, os.FileInfo, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, nil, err
	}
	switch m := fi.Mode(); {
	case m.IsRegular():
		return fi.Size(), fi, nil
	case m&os.ModeDevice != 0 && m&os.ModeCharDevice == 0:
		size, err := f.Seek(0, io.SeekEnd)
		return size, fi, err
	default:
		return 0, nil, fmt.Errorf("not a regular file or block device (mode %v)", m)
	}
}

// Known container formats that are refused rather than read as raw.
var refusedMagic = []struct{ magic, name string }{
	{"QED\x00", "QED"},
	{"vhdxfile", "VHDX"},
	{"conectix", "VHD"},
	{"COWD", "VMware ESX sparse (COWD)"},
}

// detect names the format of an image from its first bytes.
func detect(r io.ReaderAt, size int64) (string, error) {
	head := make([]byte, min(size, 1024))
	if n, err := r.ReadAt(head, 0); n < len(head) {
		return "", fmt.Errorf("read header: %w", err)
	}
	switch {
	case bytes.HasPrefix(head, []byte("QFI\xfb")):
		return "qcow2", nil
	case bytes.HasPrefix(head, []byte("KDMV")):
		return "vmdk", nil
	case isVMDKDescriptor(head):
		return "", errors.New("VMDK descriptor file refused: its extents are other files on the host, which are never opened; open the extent file itself (a flat extent is a raw image) or convert the image")
	}
	for _, m := range refusedMagic {
		if bytes.HasPrefix(head, []byte(m.magic)) {
			return "", fmt.Errorf("%s images are not supported", m.name)
		}
	}
	if len(head) >= 68 && binary.LittleEndian.Uint32(head[64:]) == 0xbeda107f {
		return "", errors.New("VDI images are not supported")
	}
	return "raw", nil
}

// isVMDKDescriptor recognises a text VMDK descriptor: the usual first
// line, or a comment line followed somewhere by a createType key.
func isVMDKDescriptor(head []byte) bool {
	return bytes.HasPrefix(head, []byte("# Disk DescriptorFile")) ||
		(bytes.HasPrefix(head, []byte("#")) && bytes.Contains(head, []byte("\ncreateType=")))
}

// fileImage ties an image to the host file it reads and closes both.
type fileImage struct {
	Image
	f     *os.File
	stats *Stats
}

func (fi *fileImage) Close() error {
	err := fi.Image.Close()
	if cerr := fi.f.Close(); err == nil {
		err = cerr
	}
	return err
}
