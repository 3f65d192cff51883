package jsonl

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestAppend(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log.jsonl")
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := Append(p, map[string]any{"i": i, "pad": strings.Repeat("x", 3000)}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	seen := map[int]bool{}
	for _, l := range lines {
		var v struct{ I int }
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("interleaved or broken line: %v", err)
		}
		seen[v.I] = true
	}
	if len(lines) != 50 || len(seen) != 50 {
		t.Fatalf("%d lines, %d distinct", len(lines), len(seen))
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
}

func TestAppendRefuses(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "elsewhere")
	os.WriteFile(target, nil, 0o600)
	link := filepath.Join(dir, "log.jsonl")
	os.Symlink(target, link)
	if err := Append(link, 1); err == nil {
		t.Fatal("Append through a symlink")
	}
	if err := Append(filepath.Join(dir, "log2.jsonl"), func() {}); err == nil {
		t.Fatal("Append of a value JSON cannot encode")
	}
	if err := Append(filepath.Join(dir, "missing", "log.jsonl"), 1); err == nil {
		t.Fatal("Append in a missing directory")
	}
	if b, _ := os.ReadFile(target); len(b) != 0 {
		t.Fatalf("the symlink's target was written: %q", b)
	}
}
