package ext4

import (
	"slices"
	"strconv"
	"testing"

	"github.com/vmtrust/vmtrust/internal/fsys/fsystest"
)

// TestConformance builds the standard tree into images of every layout the
// driver reads and compares each with the tree.
func TestConformance(t *testing.T) {
	need(t, "mkfs.ext4")
	tree := fsystest.MakeTree(t)
	tests := []struct {
		name     string
		opts     []string
		htree    bool // e2fsck -D: index every directory
		wantType string
		long     bool // skipped with -short
	}{
		{"ext4 1k blocks", nil, false, "ext4", false},
		{"ext4 4k blocks", []string{"-b", "4096"}, false, "ext4", true},
		{"ext4 64k blocks", []string{"-b", "65536"}, false, "ext4", true},
		{"ext4 htree", []string{"-b", "4096"}, true, "ext4", false},
		{"ext4 32-bit descriptors meta_bg", []string{"-O", "^64bit,^resize_inode,meta_bg"}, false, "ext4", true},
		{"ext4 inline data", []string{"-O", "inline_data"}, false, "ext4", false},
		{"ext4 no extents", []string{"-O", "^extent,^64bit"}, false, "ext4", true},
		{"ext3", []string{"-t", "ext3"}, false, "ext3", false},
		{"ext3 4k blocks htree", []string{"-t", "ext3", "-b", "4096"}, true, "ext3", true},
		{"ext2", []string{"-t", "ext2"}, false, "ext2", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.long && testing.Short() {
				t.Skip("layout variant skipped with -short")
			}
			size := "200M"
			if slices.Contains(tt.opts, "65536") {
				size = "512M" // 3000 files of one 64 KiB block each
			}
			img := mkfs(t, tree, size, tt.opts...)
			if tt.htree {
				runTool(t, "e2fsck", "-fyD", img)
			}
			setTimes(t, img)
			f := openFile(t, img)
			if got := f.Type(); got != tt.wantType {
				t.Errorf("Type() = %q, want %q", got, tt.wantType)
			}
			fsystest.TestFS(t, f, tree)
		})
	}
}

// setTimes writes the epoch and nanosecond bits of the tree's times, which
// mkfs.ext4 -d (1.47) drops: /times/future is in 2040, /times/nanos has
// 123456789 ns.
func setTimes(t testing.TB, img string) {
	t.Helper()
	debugfs(t, img, "sif /times/future mtime_extra 1")
	debugfs(t, img, "sif /times/nanos mtime_extra "+strconv.Itoa(123456789<<2))
}
