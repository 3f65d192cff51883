package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
)

// readFile copies the local file named by a file:// URL to w from offset
// on, with the bounds of a download.
func (c *Client) readFile(ctx context.Context, u *url.URL, red string, w io.Writer, offset, max int64) (int64, error) {
	if u.Opaque != "" || (u.Host != "" && u.Host != "localhost") || !path.IsAbs(u.Path) {
		return 0, fmt.Errorf("fetch %s: %w: want file:///absolute/path", red, errBadURL)
	}
	name := filepath.Clean(filepath.FromSlash(u.Path))
	// Stat first: opening a FIFO would block until a writer appears.
	fi, err := os.Stat(name)
	if err != nil {
		return 0, fmt.Errorf("fetch %s: %w", red, err)
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("fetch %s: %s is not a regular file (%s)", red, name, fi.Mode().Type())
	}
	f, err := os.Open(name)
	if err != nil {
		return 0, fmt.Errorf("fetch %s: %w", red, err)
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return 0, fmt.Errorf("fetch %s: %w", red, err)
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("fetch %s: %s is not a regular file (%s)", red, name, fi.Mode().Type())
	}
	size := fi.Size()
	switch {
	case size > max:
		return 0, fmt.Errorf("fetch %s: %w: file has %d bytes, limit %d", red, ErrTooLarge, size, max)
	case size < offset:
		return 0, fmt.Errorf("fetch %s: %w: file has %d bytes, fewer than offset %d", red, ErrRange, size, offset)
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			return 0, fmt.Errorf("fetch %s: %w", red, err)
		}
	}
	n, err := pump(w, ctxReader{ctx, f}, max-offset)
	var we *writeError
	switch {
	case err == ErrTooLarge:
		return n, fmt.Errorf("fetch %s: %w: file grew past %d bytes while read", red, ErrTooLarge, max)
	case errors.As(err, &we):
		return n, fmt.Errorf("fetch %s: %w", red, we)
	case err != nil:
		return n, fmt.Errorf("fetch %s: %w", red, err)
	case n < size-offset:
		return n, fmt.Errorf("fetch %s: %w: file shrank to %d of %d bytes while read", red, ErrTruncated, offset+n, size)
	}
	c.log.DebugContext(ctx, "read file", "url", red, "offset", offset, "bytes", n)
	return n, nil
}

// ctxReader fails once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
