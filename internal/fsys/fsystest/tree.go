package fsystest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Standard tree facts other tests may rely on.
const (
	// BigDirEntries is the number of files in /bigdir, enough to make ext4
	// use several directory blocks (an htree after e2fsck -D) and XFS a
	// node or B+tree directory.
	BigDirEntries = 3000
	// SparseSize is the size of /sparse, a file mostly made of holes.
	SparseSize = 64 << 20
	// ChownUid and ChownGid own /owned/* when the tree is built as root.
	ChownUid, ChownGid = 1234, 5678
	// HighUid and HighGid (above 65535) own /owned/high.
	HighUid, HighGid = 100000, 200000
)

// SparseOffsets are where /sparse holds data (4 KiB at each); the rest is
// holes.
var SparseOffsets = []int64{0, 1<<20 + 123, 16<<20 - 2048, 40 << 20, SparseSize - 4096}

// MakeTree builds the standard conformance tree in a fresh temporary
// directory and returns its path. It holds regular files of sizes 0 to
// 4097 bytes around block and inline-data boundaries, a 3 MiB random file,
// a 64 MiB sparse file, a file of hundreds of small extents, a directory of
// BigDirEntries names, symbolic links of 1, 59, 60, 61 and ~300 bytes, a
// link to "/", a link loop, a dangling link, setuid/setgid/sticky modes,
// files owned by ChownUid:ChownGid and HighUid:HighGid, hard links, an
// empty directory, UTF-8 names and names with spaces, a 255-byte name,
// mtimes before 1970 and after 2038, a fifo and character and block
// devices. Ownership and devices need root: without it those entries are
// left out, and MakeTree says so with t.Log.
//
// Content is deterministic. The caller may add entries before building an
// image from the directory.
func MakeTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	b := &treeBuilder{t: t, dir: dir, rng: rand.New(rand.NewPCG(4, 2))}

	for _, n := range []int{0, 1, 59, 60, 61, 150, 4095, 4096, 4097} {
		b.file(fmt.Sprintf("sizes/%d", n), b.random(n), 0o644)
	}
	b.file("big/random-3MiB", b.random(3<<20), 0o600)
	b.sparse("sparse", SparseSize, SparseOffsets, 4096)
	// 400 islands of 4 KiB, 8 KiB apart: hundreds of extents, so an ext4
	// extent tree with an index level and many XFS extent records.
	var frag []int64
	for i := range 400 {
		frag = append(frag, int64(i)*12288)
	}
	b.sparse("fragmented", frag[len(frag)-1]+4096, frag, 4096)

	for i := range BigDirEntries {
		b.file(fmt.Sprintf("bigdir/entry-%05d-with-a-longer-name-to-fill-blocks", i), []byte(fmt.Sprint(i)), 0o644)
	}

	b.mkdir("empty", 0o755)
	b.mkdir("links", 0o755)
	b.symlink("links/short", "x")
	b.symlink("links/len59", strings.Repeat("s", 59))
	b.symlink("links/len60", strings.Repeat("s", 60))
	b.symlink("links/len61", strings.Repeat("s", 61))
	b.symlink("links/long", strings.Repeat("long-component/", 20)+"end") // 303 bytes
	b.symlink("links/to-root", "/")
	b.symlink("links/to-file", "../sizes/4096")
	b.symlink("links/to-dir", "../sizes")
	b.symlink("links/absolute", "/sizes/1")
	b.symlink("links/loop-a", "loop-b")
	b.symlink("links/loop-b", "loop-a")
	b.symlink("links/self", "self")
	b.symlink("links/dangling", "does/not/exist")
	b.symlink("links/escape", "../../../../etc/passwd")

	b.file("modes/setuid", []byte("suid"), 0o4755)
	b.file("modes/setgid", []byte("sgid"), 0o2755)
	b.file("modes/none", []byte("none"), 0o000)
	b.mkdir("modes/sticky", 0o1777)
	b.mkdir("modes/setgid-dir", 0o2775)

	b.file("hard/a", []byte("hard-linked"), 0o644)
	b.link("hard/a", "hard/b")
	b.link("hard/a", "sizes/hard-c")

	b.file("names/naïve café.txt", []byte("utf-8"), 0o644)
	b.file("names/日本語", []byte("cjk"), 0o644)
	b.file("names/with  two spaces ", []byte("spaces"), 0o644)
	b.file("names/"+strings.Repeat("n", 255), []byte("longest name"), 0o644)
	b.file("names/-dash", []byte("dash"), 0o644)

	b.file("times/old", []byte("1969"), 0o644)
	b.mtime("times/old", time.Date(1969, 7, 20, 20, 17, 40, 0, time.UTC))
	b.file("times/future", []byte("2040"), 0o644)
	b.mtime("times/future", time.Date(2040, 1, 2, 3, 4, 5, 0, time.UTC))
	b.file("times/nanos", []byte("ns"), 0o644)
	b.mtime("times/nanos", time.Date(2020, 2, 29, 12, 0, 0, 123456789, time.UTC))

	b.mkdir("special", 0o755)
	if err := syscall.Mkfifo(b.path("special/fifo"), 0o640); err != nil {
		t.Fatalf("MakeTree: mkfifo: %v", err)
	}
	if os.Geteuid() == 0 {
		b.mknod("special/null", syscall.S_IFCHR|0o666, 1, 3)
		b.mknod("special/loop0", syscall.S_IFBLK|0o660, 7, 0)
		b.mkdir("owned", 0o750)
		b.file("owned/file", []byte("owned"), 0o640)
		b.symlink("owned/link", "file")
		b.chown("owned", ChownUid, ChownGid)
		b.chown("owned/file", ChownUid, ChownGid)
		b.chown("owned/link", ChownUid, ChownGid)
		b.file("owned/high", []byte("high ids"), 0o644)
		b.chown("owned/high", HighUid, HighGid)
	} else {
		t.Log("MakeTree: not root: the tree has no devices and no chowned files")
	}
	// Directory mtimes last, after their contents stopped changing.
	b.mtime("empty", time.Date(2001, 9, 9, 1, 46, 40, 0, time.UTC))
	return dir
}

type treeBuilder struct {
	t   *testing.T
	dir string
	rng *rand.Rand
}

func (b *treeBuilder) path(rel string) string { return filepath.Join(b.dir, filepath.FromSlash(rel)) }

func (b *treeBuilder) check(err error) {
	b.t.Helper()
	if err != nil {
		b.t.Fatalf("MakeTree: %v", err)
	}
}

func (b *treeBuilder) random(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(b.rng.Uint32())
	}
	return p
}

func (b *treeBuilder) mkdir(rel string, perm os.FileMode) {
	b.t.Helper()
	b.check(os.MkdirAll(b.path(rel), 0o755))
	b.chmod(rel, perm)
}

func (b *treeBuilder) file(rel string, data []byte, perm os.FileMode) {
	b.t.Helper()
	b.check(os.MkdirAll(filepath.Dir(b.path(rel)), 0o755))
	b.check(os.WriteFile(b.path(rel), data, 0o600))
	b.chmod(rel, perm)
}

// chmod sets perm including setuid/setgid/sticky, which os.Chmod maps.
func (b *treeBuilder) chmod(rel string, perm os.FileMode) {
	b.t.Helper()
	mode := perm & os.ModePerm
	if perm&0o4000 != 0 {
		mode |= os.ModeSetuid
	}
	if perm&0o2000 != 0 {
		mode |= os.ModeSetgid
	}
	if perm&0o1000 != 0 {
		mode |= os.ModeSticky
	}
	b.check(os.Chmod(b.path(rel), mode))
}

func (b *treeBuilder) sparse(rel string, size int64, offsets []int64, chunk int) {
	b.t.Helper()
	f, err := os.Create(b.path(rel))
	b.check(err)
	defer f.Close()
	b.check(f.Truncate(size))
	for _, off := range offsets {
		_, err := f.WriteAt(b.random(chunk), off)
		b.check(err)
	}
	b.check(f.Close())
}

func (b *treeBuilder) symlink(rel, target string) {
	b.t.Helper()
	b.check(os.Symlink(target, b.path(rel)))
}

func (b *treeBuilder) link(oldRel, newRel string) {
	b.t.Helper()
	b.check(os.Link(b.path(oldRel), b.path(newRel)))
}

func (b *treeBuilder) mtime(rel string, m time.Time) {
	b.t.Helper()
	b.check(os.Chtimes(b.path(rel), m, m))
}

func (b *treeBuilder) mknod(rel string, mode uint32, major, minor uint32) {
	b.t.Helper()
	dev := int((major << 8) | minor)
	b.check(syscall.Mknod(b.path(rel), mode, dev))
}

func (b *treeBuilder) chown(rel string, uid, gid int) {
	b.t.Helper()
	b.check(os.Lchown(b.path(rel), uid, gid))
}
