package ext4

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/vmtrust/vmtrust/internal/fsys"
)

// BenchmarkWalkExt4 walks a tree image of 2,000 files in 40 directories
// (64 MiB of data) and reads every file, as an inventory scan would.
func BenchmarkWalkExt4(b *testing.B) {
	tree := b.TempDir()
	rng := rand.New(rand.NewPCG(7, 7))
	var total int64
	for d := range 40 {
		dir := filepath.Join(tree, fmt.Sprintf("dir%02d", d), "sub")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for i := range 50 {
			data := make([]byte, rng.IntN(64<<10))
			for j := range data {
				data[j] = byte(j * i)
			}
			total += int64(len(data))
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("file%03d", i)), data, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	f := openFile(b, mkfs(b, tree, "256M", "-b", "4096"))
	buf := make([]byte, 128<<10)
	b.SetBytes(total)
	b.ResetTimer()
	for b.Loop() {
		r := fsys.NewRoot(f)
		files := 0
		err := r.Walk(b.Context(), "/", fsys.WalkOptions{}, func(p string, info fsys.Info) error {
			if !info.Mode.IsRegular() {
				return nil
			}
			ra, _, err := r.Open(p)
			if err != nil {
				return err
			}
			files++
			_, err = io.CopyBuffer(io.Discard, io.NewSectionReader(ra, 0, info.Size), buf)
			return err
		})
		if err != nil || files != 2000 {
			b.Fatalf("Walk = %d files, %v", files, err)
		}
	}
}
