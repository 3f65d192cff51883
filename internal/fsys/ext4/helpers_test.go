package ext4

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vmtrust/vmtrust/internal/fsys"
)

// need returns the path of a tool from e2fsprogs, or skips the test (fails
// it when CI is set) naming the package to install.
func need(t testing.TB, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if p := filepath.Join(dir, tool); fileExists(p) {
			return p
		}
	}
	msg := tool + " not found: install the Debian package e2fsprogs"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func runTool(t testing.TB, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(need(t, name), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
}

// mkfs builds an image of size (mkfs.ext4 syntax: "200M") from tree with
// extra mkfs.ext4 options, and returns its path.
func mkfs(t testing.TB, tree, size string, opts ...string) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "ext.img")
	args := append([]string{"-q", "-F"}, opts...)
	if tree != "" {
		args = append(args, "-d", tree)
	}
	runTool(t, "mkfs.ext4", append(args, img, size)...)
	return img
}

// openFile opens an image file with Open.
func openFile(t testing.TB, img string) *FS {
	t.Helper()
	file, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { file.Close() })
	st, err := file.Stat()
	if err != nil {
		t.Fatal(err)
	}
	f, err := Open(file, st.Size())
	if err != nil {
		t.Fatalf("Open(%s) = %v", img, err)
	}
	return f
}

// openBytes opens an image held in memory.
func openBytes(b []byte) (*FS, error) { return Open(bytes.NewReader(b), int64(len(b))) }

// debugfs runs a debugfs write request on img.
func debugfs(t testing.TB, img, request string) {
	t.Helper()
	runTool(t, "debugfs", "-w", "-R", request, img)
}

// inodeOf returns the inode number of a guest path.
func inodeOf(t testing.TB, f *FS, p string) fsys.Ino {
	t.Helper()
	info, err := fsys.NewRoot(f).Lstat(p)
	if err != nil {
		t.Fatalf("Lstat(%q) = %v", p, err)
	}
	return info.Ino
}

// inodeOffset returns the byte offset of inode ino in the image.
func inodeOffset(t testing.TB, f *FS, ino fsys.Ino) int64 {
	t.Helper()
	sb := f.sb
	group := (uint64(ino) - 1) / sb.inodesPerGroup
	index := (uint64(ino) - 1) % sb.inodesPerGroup
	blk, off := sb.descLocation(group)
	desc := make([]byte, sb.descSize)
	if err := f.readAt(desc, blk*sb.blockSize+off); err != nil {
		t.Fatal(err)
	}
	table := uint64(binary.LittleEndian.Uint32(desc[8:]))
	if sb.descSize >= 64 {
		table |= uint64(binary.LittleEndian.Uint32(desc[0x28:])) << 32
	}
	return int64(table*sb.blockSize + index*sb.inodeSize)
}

// fixSuperCsum recomputes the superblock checksum of an image held in b.
func fixSuperCsum(b []byte) {
	sb := b[superOffset : superOffset+superSize]
	if binary.LittleEndian.Uint32(sb[0x64:])&roCompatMetadataCsum != 0 {
		binary.LittleEndian.PutUint32(sb[0x3FC:], ^crc32.Checksum(sb[:0x3FC], crc32.MakeTable(crc32.Castagnoli)))
	}
}
