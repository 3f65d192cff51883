package cache_test

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/internal/cache"
	"github.com/vmtrust/vmtrust/internal/fileid"
)

func expect(id string, data []byte) cache.Expect {
	sum := sha512.Sum512(data)
	return cache.Expect{ID: id, Size: int64(len(data)), SHA512: hex.EncodeToString(sum[:])}
}

func open(t *testing.T) *cache.Cache {
	c, err := cache.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestCommit(t *testing.T) {
	c := open(t)
	data := bytes.Repeat([]byte("disk image "), 100_000)
	exp := expect("8c0a7d1e-1111-4c4c-8d8d-000000000001", data)
	w, err := c.Create(exp)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(data); i += 4096 {
		if _, err := w.Write(data[i:min(i+4096, len(data))]); err != nil {
			t.Fatal(err)
		}
	}
	p, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	fi, _ := os.Stat(p)
	if !bytes.Equal(got, data) || fi.Mode().Perm() != 0o444 || !c.Has(exp.ID) {
		t.Fatalf("cached file: %d bytes, mode %v", len(got), fi.Mode())
	}
	if n := entries(t, filepath.Join(c.Root(), cache.PartialDir)); len(n) != 0 {
		t.Fatalf("partial/ not empty after commit: %v", n)
	}
	id, err := c.Verify(context.Background(), exp)
	if now, _ := fileid.Path(p); err != nil || id != now || w.File() != now || !now.Valid() {
		t.Fatalf("Verify = %v, %v; Commit's identity %v; the file's %v", id, err, w.File(), now)
	}
	// Verify notices a changed file.
	os.Chmod(p, 0o644)
	os.WriteFile(p, append(data[:len(data)-1], 'X'), 0o444)
	if _, err := c.Verify(context.Background(), exp); !errors.Is(err, cache.ErrDigest) {
		t.Fatalf("Verify of a modified file = %v, want ErrDigest", err)
	}
}

func TestRejects(t *testing.T) {
	data := []byte("the endorsed image bytes")
	exp := expect("img-1", data)
	t.Run("oversize stops at the endorsed size", func(t *testing.T) {
		c := open(t)
		w, _ := c.Create(exp)
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		if n, err := w.Write([]byte("more")); !errors.Is(err, cache.ErrTooLarge) || n != 0 {
			t.Fatalf("Write past the size = %d, %v", n, err)
		}
		w.Abort(false)
		if n := entries(t, filepath.Join(c.Root(), cache.PartialDir)); len(n) != 0 {
			t.Fatalf("partial/ = %v after abort", n)
		}
	})
	t.Run("wrong hash leaves nothing in cache", func(t *testing.T) {
		c := open(t)
		w, _ := c.Create(exp)
		w.Write([]byte("the endorsed image byteZ"))
		if _, err := w.Commit(); !errors.Is(err, cache.ErrDigest) {
			t.Fatalf("Commit = %v, want ErrDigest", err)
		}
		if c.Has(exp.ID) || len(entries(t, filepath.Join(c.Root(), cache.CacheDir))) != 0 || len(entries(t, filepath.Join(c.Root(), cache.PartialDir))) != 0 {
			t.Fatal("a rejected image left files behind")
		}
	})
	t.Run("short download", func(t *testing.T) {
		c := open(t)
		w, _ := c.Create(exp)
		w.Write(data[:5])
		if _, err := w.Commit(); !errors.Is(err, cache.ErrSize) {
			t.Fatalf("Commit = %v, want ErrSize", err)
		}
	})
	for _, id := range []string{"", ".", "..", "../x", "a/b", "-x", "x\x00"} {
		t.Run("bad id "+id, func(t *testing.T) {
			c := open(t)
			if _, err := c.Create(cache.Expect{ID: id, Size: 1, SHA512: exp.SHA512}); !errors.Is(err, cache.ErrBadID) {
				t.Fatalf("Create(%q) = %v, want ErrBadID", id, err)
			}
		})
	}
	t.Run("partial is a symlink", func(t *testing.T) {
		c := open(t)
		target := filepath.Join(t.TempDir(), "victim")
		os.WriteFile(target, []byte("host file"), 0o644)
		os.Symlink(target, filepath.Join(c.Root(), cache.PartialDir, exp.ID))
		if _, err := c.Create(exp); err == nil {
			t.Fatal("Create followed a symlink in partial/")
		}
		if b, _ := os.ReadFile(target); string(b) != "host file" {
			t.Fatal("the symlink target was modified")
		}
	})
}

func TestResume(t *testing.T) {
	c := open(t)
	data := bytes.Repeat([]byte("0123456789"), 1000)
	exp := expect("img-2", data)
	w, _ := c.Create(exp)
	w.Write(data[:3333])
	w.Abort(true) // interrupted: keep what arrived
	w, err := c.Create(exp)
	if err != nil {
		t.Fatal(err)
	}
	if w.Offset() != 3333 {
		t.Fatalf("Offset = %d, want 3333", w.Offset())
	}
	w.Write(data[3333:])
	if _, err := w.Commit(); err != nil {
		t.Fatalf("Commit after resume = %v", err)
	}
	// Leftovers larger than the endorsed size are discarded, not trusted.
	exp2 := expect("img-3", data[:10])
	os.WriteFile(filepath.Join(c.Root(), cache.PartialDir, "img-3"), data, 0o600)
	w, _ = c.Create(exp2)
	if w.Offset() != 0 {
		t.Fatalf("Offset with oversize leftovers = %d, want 0", w.Offset())
	}
	w.Abort(false)
}

func TestExpire(t *testing.T) {
	c := open(t)
	data := []byte("image")
	exp := expect("img-4", data)
	w, _ := c.Create(exp)
	w.Write(data)
	w.Commit()
	now := time.Date(2026, 11, 25, 14, 3, 0, 0, time.UTC)
	p, err := c.Expire(exp.ID, now)
	if err != nil || filepath.Base(p) != "img-4.20261125T140300Z" || c.Has(exp.ID) {
		t.Fatalf("Expire = %q, %v", p, err)
	}
	if b, _ := os.ReadFile(p); !bytes.Equal(b, data) {
		t.Fatal("expired file content changed")
	}
	if p, err := c.Expire("not-cached", now); p != "" || err != nil {
		t.Fatalf("Expire of an uncached image = %q, %v", p, err)
	}
}
