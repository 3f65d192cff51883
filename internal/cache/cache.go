// Package cache keeps a site's verified image files, in vmcatcher's layout
// under one root directory:
//
//	partial/<id>              a download in progress: used by nothing else
//	cache/<id>                a verified image, read-only (0444)
//	expired/<id>.<timestamp>  an image no longer endorsed
//
// # Guarantees
//
// A file appears in cache/ only through Writer.Commit, after its size and
// sha512 have matched the endorsed values; it is renamed into place
// atomically, so a crash leaves either the old state or the new one. A
// Writer never accepts more bytes than the endorsed size: the download is
// stopped the moment it would exceed it, so a hostile server cannot fill the
// disk. The digest is computed as the bytes arrive (one pass; a resumed
// download re-reads only what is already in partial/). Identifiers must be
// safe path components; nothing outside the root is ever created, moved or
// removed.
package cache

import (
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/vmtrust/vmtrust/imagelist"
	"github.com/vmtrust/vmtrust/internal/fileid"
)

// Error classes.
var (
	ErrTooLarge = errors.New("image larger than its endorsed size")
	ErrSize     = errors.New("image size differs from the endorsed size")
	ErrDigest   = errors.New("image sha512 differs from the endorsed digest")
	ErrNotFound = errors.New("image not in the cache")
	ErrBadID    = errors.New("image identifier is not a safe file name")
)

// Directory names under the root.
const (
	PartialDir = "partial"
	CacheDir   = "cache"
	ExpiredDir = "expired"
)

// Expect is what the endorser signed for an image.
type Expect struct {
	ID     string // dc:identifier
	Size   int64  // hv:size
	SHA512 string // sl:checksum:sha512, lower-case hex
}

// Cache is the image store under one root directory.
type Cache struct {
	root string
	log  *slog.Logger
}

// Open prepares root and its subdirectories.
func Open(root string, log *slog.Logger) (*Cache, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for _, d := range []string{PartialDir, CacheDir, ExpiredDir} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
	}
	return &Cache{root: root, log: log}, nil
}

// Root is the cache's root directory.
func (c *Cache) Root() string { return c.root }

// checkID accepts what imagelist accepts as an identifier (a letter or
// digit, then letters, digits, '.', '_' or '-'): a safe file name, never
// "." or "..".
func checkID(id string) error {
	if !imagelist.ValidIdentifier(id) {
		return fmt.Errorf("%w: %q", ErrBadID, id)
	}
	return nil
}

// Path is where image id lives once cached.
func (c *Cache) Path(id string) (string, error) {
	if err := checkID(id); err != nil {
		return "", err
	}
	return filepath.Join(c.root, CacheDir, id), nil
}

func (c *Cache) partial(id string) string { return filepath.Join(c.root, PartialDir, id) }

// Has reports whether image id is in cache/.
func (c *Cache) Has(id string) bool {
	p, err := c.Path(id)
	if err != nil {
		return false
	}
	fi, err := os.Lstat(p)
	return err == nil && fi.Mode().IsRegular()
}

// Writer receives one image download.
type Writer struct {
	c      *Cache
	exp    Expect
	f      *os.File
	h      hash.Hash
	hw     *AsyncWriter // feeds h on its own goroutine
	n      int64
	synced int64 // bytes whose write-back to disk has been started
	prev   int64 // start of the chunk whose write-back was started last
	closed bool
	file   fileid.ID // set by a successful Commit
}

// writeBackChunk is how much is written before write-back to the disk is
// started, so that Commit's fsync finds little left to do.
const writeBackChunk = 64 << 20

// Create starts or resumes the download of an image into partial/. Bytes
// already in partial/ are kept (their digest is recomputed) when they do not
// exceed the endorsed size; Offset says where to resume.
func (c *Cache) Create(exp Expect) (*Writer, error) {
	if err := checkID(exp.ID); err != nil {
		return nil, err
	}
	if exp.Size < 0 || len(exp.SHA512) != sha512.Size*2 {
		return nil, fmt.Errorf("cache: image %s: invalid expectation (size %d, sha512 %q)", exp.ID, exp.Size, exp.SHA512)
	}
	p := c.partial(exp.ID)
	if fi, err := os.Lstat(p); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("cache: %s is not a regular file; remove it", p)
	}
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	w := &Writer{c: c, exp: exp, f: f, h: sha512.New()}
	n, err := io.Copy(w.h, f) // resume: one pass over what is already here
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("cache: reading partial %s: %w", p, err)
	}
	if n > exp.Size {
		// Stale or hostile leftovers: start again.
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, fmt.Errorf("cache: %w", err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			f.Close()
			return nil, err
		}
		w.h.Reset()
		n = 0
	}
	w.n = n
	w.hw = NewAsyncWriter(w.h, 8, 256<<10)
	if n > 0 {
		c.log.Info("resuming download", "image.id", exp.ID, "bytes", n)
	}
	return w, nil
}

// Offset is the number of bytes already received.
func (w *Writer) Offset() int64 { return w.n }

// Write appends to the partial file and the digest. It fails with
// ErrTooLarge, writing nothing, if the image would exceed its endorsed size.
func (w *Writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errors.New("cache: write after close")
	}
	if int64(len(p)) > w.exp.Size-w.n {
		return 0, fmt.Errorf("%w: image %s: more than %d bytes", ErrTooLarge, w.exp.ID, w.exp.Size)
	}
	n, err := w.f.Write(p)
	w.hw.Write(p[:n]) // hashing never fails
	w.n += int64(n)
	if w.n-w.synced >= writeBackChunk {
		// Start writing this chunk to disk and wait for the one before,
		// so little is left for Commit's fsync.
		writeBack(w.f, w.prev, w.synced-w.prev, w.synced, w.n-w.synced)
		w.prev, w.synced = w.synced, w.n
	}
	return n, err
}

// Commit checks size and digest and moves the image into cache/, read-only.
// On a mismatch the partial file is removed and nothing enters the cache.
func (w *Writer) Commit() (string, error) {
	if w.closed {
		return "", errors.New("cache: commit after close")
	}
	w.closed = true
	p := w.c.partial(w.exp.ID)
	fail := func(err error) (string, error) {
		w.f.Close()
		os.Remove(p)
		return "", err
	}
	w.hw.Close()
	if w.n != w.exp.Size {
		return fail(fmt.Errorf("%w: image %s: %d bytes, endorsed %d", ErrSize, w.exp.ID, w.n, w.exp.Size))
	}
	if got := hex.EncodeToString(w.h.Sum(nil)); got != w.exp.SHA512 {
		return fail(fmt.Errorf("%w: image %s: sha512 %s…, endorsed %s…", ErrDigest, w.exp.ID, got[:16], w.exp.SHA512[:16]))
	}
	if err := w.f.Chmod(0o444); err != nil {
		return fail(fmt.Errorf("cache: %w", err))
	}
	if err := w.f.Sync(); err != nil {
		return fail(fmt.Errorf("cache: %w", err))
	}
	before, err := fileid.File(w.f)
	if err != nil {
		return fail(fmt.Errorf("cache: %w", err))
	}
	if err := w.f.Close(); err != nil {
		return fail(fmt.Errorf("cache: %w", err))
	}
	dst, _ := w.c.Path(w.exp.ID)
	if err := os.Rename(p, dst); err != nil {
		return fail(fmt.Errorf("cache: %w", err))
	}
	SyncDir(filepath.Dir(dst))
	// The rename changes the file's ctime: take its identity at its final
	// path, and only if it is still the inode that was verified.
	if after, err := fileid.Path(dst); err == nil && after.Dev == before.Dev && after.Ino == before.Ino && after.Size == before.Size {
		w.file = after
	}
	w.c.log.Info("image cached", "image.id", w.exp.ID, "bytes", w.n)
	return dst, nil
}

// File is the identity of the committed file at its final path, taken
// right after Commit verified it; zero before a successful Commit or when
// the file changed between the rename and the stat.
func (w *Writer) File() fileid.ID { return w.file }

// Abort stops a download. With keep, the partial file stays for a later
// resume; otherwise it is removed.
func (w *Writer) Abort(keep bool) error {
	if w.closed {
		return nil
	}
	w.closed = true
	w.hw.Close()
	err := w.f.Close()
	if !keep {
		if rerr := os.Remove(w.c.partial(w.exp.ID)); rerr != nil && !os.IsNotExist(rerr) {
			err = errors.Join(err, rerr)
		}
	}
	return err
}

// Verify re-reads a cached image and checks it against exp. It returns the
// identity of the file it verified (package fileid), which must not have
// changed while it was read.
func (c *Cache) Verify(ctx context.Context, exp Expect) (fileid.ID, error) {
	p, err := c.Path(exp.ID)
	if err != nil {
		return fileid.ID{}, err
	}
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if os.IsNotExist(err) {
		return fileid.ID{}, fmt.Errorf("%w: %s", ErrNotFound, exp.ID)
	}
	if err != nil {
		return fileid.ID{}, fmt.Errorf("cache: %w", err)
	}
	defer f.Close()
	before, err := fileid.File(f)
	if err != nil {
		return fileid.ID{}, fmt.Errorf("cache: %w", err)
	}
	if err := verifyDigest(ctx, f, exp); err != nil {
		return fileid.ID{}, err
	}
	after, err := fileid.File(f)
	if err != nil {
		return fileid.ID{}, fmt.Errorf("cache: %w", err)
	}
	if after != before {
		return fileid.ID{}, fmt.Errorf("cache: image %s changed while it was verified", exp.ID)
	}
	return after, nil
}

// verifyDigest reads f to its end and checks exp's size and digest.
func verifyDigest(ctx context.Context, f *os.File, exp Expect) error {
	h := sha512.New()
	buf := make([]byte, 1<<20)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		k, rerr := f.Read(buf)
		h.Write(buf[:k])
		n += int64(k)
		if n > exp.Size {
			return fmt.Errorf("%w: image %s: more than %d bytes", ErrSize, exp.ID, exp.Size)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("cache: %w", rerr)
		}
	}
	if n != exp.Size {
		return fmt.Errorf("%w: image %s: %d bytes, endorsed %d", ErrSize, exp.ID, n, exp.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != exp.SHA512 {
		return fmt.Errorf("%w: image %s", ErrDigest, exp.ID)
	}
	return nil
}

// Expire moves a cached image to expired/<id>.<timestamp> and returns the
// new path. An image that is not cached is not an error: there is nothing
// to expire, and the empty path says so. A partial download is removed.
func (c *Cache) Expire(id string, now time.Time) (string, error) {
	src, err := c.Path(id)
	if err != nil {
		return "", err
	}
	if err := os.Remove(c.partial(id)); err != nil && !os.IsNotExist(err) {
		return "", fmt.Errorf("cache: %w", err)
	}
	if !c.Has(id) {
		return "", nil
	}
	dst := filepath.Join(c.root, ExpiredDir, id+"."+now.UTC().Format("20060102T150405Z"))
	if err := os.Rename(src, dst); err != nil {
		return "", fmt.Errorf("cache: %w", err)
	}
	SyncDir(filepath.Dir(dst))
	c.log.Info("image expired", "image.id", id, "path", dst)
	return dst, nil
}

// SyncDir fsyncs a directory so that a rename in it is durable; errors are
// ignored (not every filesystem supports it).
func SyncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
