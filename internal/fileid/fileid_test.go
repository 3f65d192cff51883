package fileid

import (
	"os"
	"path/filepath"
	"testing"
)

// Every kind of change a cached image could suffer changes its ID.
func TestChangesChangeID(t *testing.T) {
	dir := t.TempDir()
	write := func(p string, b []byte) {
		t.Helper()
		if err := os.WriteFile(p, b, 0o444); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name   string
		change func(p string) error
	}{
		{"chmod", func(p string) error { return os.Chmod(p, 0o644) }},
		{"write same size", func(p string) error {
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt([]byte("X"), 3)
			return err
		}},
		{"truncate", func(p string) error { return os.Truncate(p, 2) }},
		{"replace by rename", func(p string) error {
			q := p + ".new"
			if err := os.WriteFile(q, []byte("content"), 0o444); err != nil {
				return err
			}
			return os.Rename(q, p)
		}},
		{"write then restore mtime", func(p string) error {
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			if _, err := f.WriteAt([]byte("Y"), 0); err != nil {
				f.Close()
				return err
			}
			f.Close()
			return os.Chtimes(p, fi.ModTime(), fi.ModTime())
		}},
		{"hard link added", func(p string) error { return os.Link(p, p+".link") }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, filepath.Base(t.Name()))
			write(p, []byte("content"))
			before, err := Path(p)
			if err != nil || !before.Valid() {
				t.Fatalf("Path: %v %v", before, err)
			}
			if again, _ := Path(p); again != before {
				t.Fatalf("unchanged file: %v != %v", again, before)
			}
			if err := c.change(p); err != nil {
				t.Fatal(err)
			}
			after, err := Path(p)
			if err != nil {
				t.Fatal(err)
			}
			if after == before {
				t.Fatalf("%s left the ID unchanged: %v", c.name, after)
			}
		})
	}
}

func TestOpenFileAndZero(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("abc"), 0o444); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, err := File(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Path(p)
	if err != nil || a != b || a.Size != 3 {
		t.Fatalf("File %v, Path %v (%v)", a, b, err)
	}
	if (ID{}).Valid() || (ID{}) == a {
		t.Fatal("the zero ID must never match a file")
	}
	if _, err := Path(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("Path of a missing file")
	}
}
