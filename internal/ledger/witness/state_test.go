package witness

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

func TestFileStoreCompareAndSwap(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.json")
	s, err := OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	a := State{Size: 3, Hash: tlog.RecordHash([]byte("a"))}
	b := State{Size: 9, Hash: tlog.RecordHash([]byte("b"))}
	if err := s.Store(ctx, "o", &a, b); !errors.Is(err, ErrStateChanged) {
		t.Fatalf("store with prev on empty: %v, want ErrStateChanged", err)
	}
	if err := s.Store(ctx, "o", nil, a); err != nil {
		t.Fatal(err)
	}
	if err := s.Store(ctx, "o", nil, b); !errors.Is(err, ErrStateChanged) {
		t.Fatalf("store with nil prev over existing: %v, want ErrStateChanged", err)
	}
	stale := State{Size: 3, Hash: tlog.RecordHash([]byte("other"))}
	if err := s.Store(ctx, "o", &stale, b); !errors.Is(err, ErrStateChanged) {
		t.Fatalf("store with stale prev: %v, want ErrStateChanged", err)
	}
	if err := s.Store(ctx, "o", &a, b); err != nil {
		t.Fatal(err)
	}
	if err := s.Store(ctx, "", nil, a); err == nil {
		t.Fatal("empty origin accepted")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode %v, want 0600", fi.Mode().Perm())
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
	r, err := OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if st, ok, _ := r.Load(ctx, "o"); !ok || st != b {
		t.Fatalf("reopened state %+v %v, want %+v", st, ok, b)
	}
	if _, ok, _ := r.Load(ctx, "p"); ok {
		t.Fatal("unknown origin has state")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := r.Store(cctx, "o", &b, a); err == nil {
		t.Fatal("store with a cancelled context succeeded")
	}
}

func TestOpenFileStoreHostile(t *testing.T) {
	h := tlog.RecordHash([]byte("a")).String()
	bad := map[string]string{
		"not json":        "nope",
		"empty":           "",
		"wrong version":   `{"version":2,"logs":{}}`,
		"no version":      `{"logs":{}}`,
		"unknown field":   `{"version":1,"logs":{},"x":1}`,
		"negative size":   `{"version":1,"logs":{"o":{"size":-1,"hash":"` + h + `"}}}`,
		"bad hash":        `{"version":1,"logs":{"o":{"size":1,"hash":"AAAA"}}}`,
		"empty origin":    `{"version":1,"logs":{"":{"size":1,"hash":"` + h + `"}}}`,
		"trailing data":   `{"version":1,"logs":{}} {}`,
		"unknown entry":   `{"version":1,"logs":{"o":{"size":1,"hash":"` + h + `","x":2}}}`,
		"oversized":       `{"version":1,"logs":{}}` + strings.Repeat(" ", MaxStateFileSize),
		"size as string":  `{"version":1,"logs":{"o":{"size":"1","hash":"` + h + `"}}}`,
		"size too large":  `{"version":1,"logs":{"o":{"size":9223372036854775808,"hash":"` + h + `"}}}`,
		"logs not object": `{"version":1,"logs":[]}`,
	}
	dir := t.TempDir()
	for name, content := range bad {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenFileStore(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	good := filepath.Join(dir, "good")
	if err := os.WriteFile(good, []byte(`{"version":1,"logs":{"o":{"size":1,"hash":"`+h+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFileStore(good); err != nil {
		t.Fatalf("good file: %v", err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFileStore(link); err == nil {
		t.Error("symlinked state file accepted")
	}
}
