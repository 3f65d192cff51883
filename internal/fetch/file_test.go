package fetch

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func fileURL(p string) string { return (&url.URL{Scheme: "file", Path: p}).String() }

func TestFile(t *testing.T) {
	dir := t.TempDir()
	data := content(10_000)
	list := filepath.Join(dir, "list with space.json")
	if err := os.WriteFile(list, data, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(list, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	c := New(Options{AllowFile: true})

	tests := []struct {
		name string
		url  string
		max  int64
		want []byte
		err  error // nil: success; errAny: any permanent error
	}{
		{name: "absolute", url: fileURL(list), max: 10_000, want: data},
		{name: "localhost", url: "file://localhost" + (&url.URL{Path: list}).EscapedPath(), max: 10_000, want: data},
		{name: "symlink followed", url: fileURL(link), max: 10_000, want: data},
		{name: "dot segments", url: fileURL(dir + "/../" + filepath.Base(dir) + "/link"), max: 10_000, want: data},
		{name: "over max", url: fileURL(list), max: 9_999, err: ErrTooLarge},
		{name: "missing", url: fileURL(filepath.Join(dir, "nope")), max: 100, err: fs.ErrNotExist},
		{name: "directory", url: fileURL(dir), max: 100, err: errAny},
		{name: "fifo", url: fileURL(fifo), max: 100, err: errAny},
		{name: "device", url: "file:///dev/zero", max: 100, err: errAny},
		{name: "relative", url: "file:list.json", max: 100, err: errAny},
		{name: "other host", url: "file://mirror.example.org" + list, max: 100, err: errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Get(t.Context(), tt.url, tt.max)
			checkFileErr(t, "Get", err, tt.err)
			if tt.err == nil && !bytes.Equal(got, tt.want) {
				t.Errorf("Get(%s) = %d bytes, want %d", tt.url, len(got), len(tt.want))
			}
			var buf bytes.Buffer
			n, err := c.Download(t.Context(), tt.url, &buf, 0, tt.max)
			checkFileErr(t, "Download", err, tt.err)
			if tt.err == nil && (n != int64(len(tt.want)) || !bytes.Equal(buf.Bytes(), tt.want)) {
				t.Errorf("Download(%s) = %d bytes, want %d", tt.url, n, len(tt.want))
			}
		})
	}

	t.Run("resume", func(t *testing.T) {
		for _, off := range []int64{0, 1, 4096, 9_999, 10_000} {
			var buf bytes.Buffer
			buf.Write(data[:off])
			n, err := c.Download(t.Context(), fileURL(list), &buf, off, 10_000)
			if err != nil || n != 10_000-off || !bytes.Equal(buf.Bytes(), data) {
				t.Errorf("Download(offset %d) = %d, %v; content equal: %v", off, n, err, bytes.Equal(buf.Bytes(), data))
			}
		}
		_, err := c.Download(t.Context(), fileURL(list), io.Discard, 10_001, 20_000)
		checkErr(t, "Download(offset past end)", err, ErrRange, false)
	})
	t.Run("not allowed", func(t *testing.T) {
		_, err := New(Options{}).Get(t.Context(), fileURL(list), 10_000)
		checkErr(t, "Get", err, ErrInsecure, false)
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := c.Get(ctx, fileURL(list), 10_000)
		checkErr(t, "Get", err, context.Canceled, false)
	})
}

var errAny = errors.New("any error")

func checkFileErr(t *testing.T, what string, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("%s = %v, want success", what, err)
	case want == errAny && err == nil:
		t.Fatalf("%s succeeded, want an error", what)
	case want != nil && want != errAny && !errors.Is(err, want):
		t.Fatalf("%s = %v, want %v", what, err, want)
	}
	if err != nil && Retryable(err) {
		t.Errorf("Retryable(%v) = true, want false", err)
	}
}
