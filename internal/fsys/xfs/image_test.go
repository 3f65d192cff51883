package xfs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// needTool returns the path of a command the test needs. When it is
// missing the test fails under CI (env CI set) and is skipped otherwise,
// naming the Debian package that provides it.
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not found: install the Debian package %s (apt-get install -y --no-install-recommends %s)", name, pkg, pkg)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// protoName reports whether mkfs.xfs's protofile syntax can carry name: it
// splits tokens on white space, ':' starts a comment and '$' ends a
// directory.
func protoName(name string) bool {
	return name != "" && !strings.ContainsAny(name, " \t\n:") && !strings.HasPrefix(name, "$")
}

// protoMode renders a mode as the protofile's 6-character string: type,
// setuid, setgid, three octal digits. ok is false for types it cannot
// express (sockets) and for the sticky bit, which xfsprogs 6.1 drops.
func protoMode(m fs.FileMode) (string, bool) {
	var typ byte
	switch m.Type() {
	case 0:
		typ = '-'
	case fs.ModeDir:
		typ = 'd'
	case fs.ModeSymlink:
		typ = 'l'
	case fs.ModeNamedPipe:
		typ = 'p'
	case fs.ModeDevice | fs.ModeCharDevice:
		typ = 'c'
	case fs.ModeDevice:
		typ = 'b'
	default:
		return "", false
	}
	u, g := byte('-'), byte('-')
	if m&fs.ModeSetuid != 0 {
		u = 'u'
	}
	if m&fs.ModeSetgid != 0 {
		g = 'g'
	}
	return fmt.Sprintf("%c%c%c%03o", typ, u, g, m.Perm()), m&fs.ModeSticky == 0
}

// hostNode is one entry of the host tree, as the image builder sees it.
type hostNode struct {
	guest string // guest path, "/a/b"
	host  string
	info  fs.FileInfo
	st    *syscall.Stat_t
}

// scanTree lists the host tree in protofile order (sorted names, depth
// first), root excluded.
func scanTree(t *testing.T, dir string) []hostNode {
	t.Helper()
	var out []hostNode
	var walk func(host, guest string)
	walk = func(host, guest string) {
		ents, err := os.ReadDir(host)
		if err != nil {
			t.Fatalf("scanTree: %v", err)
		}
		sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
		for _, e := range ents {
			h := filepath.Join(host, e.Name())
			fi, err := os.Lstat(h)
			if err != nil {
				t.Fatalf("scanTree: %v", err)
			}
			n := hostNode{guest: path.Join(guest, e.Name()), host: h, info: fi, st: fi.Sys().(*syscall.Stat_t)}
			out = append(out, n)
			if fi.IsDir() {
				walk(h, n.guest)
			}
		}
	}
	walk(dir, "/")
	return out
}

// renameInexpressible renames host entries whose names the protofile
// cannot carry (white space, ':', a leading '$'), replacing those
// characters with '_', so that the host tree stays the reference the image
// is compared with. It returns the new guest paths.
func renameInexpressible(t *testing.T, dir string) []string {
	t.Helper()
	var renamed []string
	for _, n := range scanTree(t, dir) {
		name := path.Base(n.guest)
		if protoName(name) {
			continue
		}
		fixed := strings.Map(func(r rune) rune {
			if strings.ContainsRune(" \t\n:$", r) {
				return '_'
			}
			return r
		}, name)
		to := filepath.Join(filepath.Dir(n.host), fixed)
		if _, err := os.Lstat(to); err == nil {
			t.Fatalf("renameInexpressible: %s exists", to)
		}
		if err := os.Rename(n.host, to); err != nil {
			t.Fatal(err)
		}
		renamed = append(renamed, path.Join(path.Dir(n.guest), fixed))
	}
	return renamed
}

// writeProto writes a mkfs.xfs protofile for the host tree at dir. Every
// name must be expressible (see renameInexpressible); a hard-linked file
// appears as separate copies, which fixupImage turns back into links.
func writeProto(t *testing.T, dir string, nodes []hostNode) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("vmtrust-test\n0 0\n")
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	mode, _ := protoMode(fi.Mode())
	fmt.Fprintf(&b, "%s %d %d\n", mode, st.Uid, st.Gid)
	depth := 0
	for i, n := range nodes {
		d := strings.Count(n.guest, "/")
		for ; depth > d; depth-- {
			b.WriteString("$\n")
		}
		depth = d
		name := path.Base(n.guest)
		mode, _ := protoMode(n.info.Mode())
		if mode == "" || !protoName(name) {
			t.Fatalf("writeProto: %s (%v) cannot be expressed", n.guest, n.info.Mode())
		}
		fmt.Fprintf(&b, "%s %s %d %d", name, mode, n.st.Uid, n.st.Gid)
		switch n.info.Mode().Type() {
		case 0:
			fmt.Fprintf(&b, " %s", n.host)
		case fs.ModeSymlink:
			target, err := os.Readlink(n.host)
			if err != nil {
				t.Fatal(err)
			}
			if !protoName(target) {
				t.Fatalf("writeProto: link target %q cannot be expressed", target)
			}
			fmt.Fprintf(&b, " %s", target)
		case fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice:
			fmt.Fprintf(&b, " %d %d", devMajor(n.st.Rdev), devMinor(n.st.Rdev))
		}
		b.WriteString("\n")
		if n.info.IsDir() {
			depth++ // the directory's own entries follow at depth d+1
			if i+1 == len(nodes) || !strings.HasPrefix(nodes[i+1].guest, n.guest+"/") {
				// An empty directory ends right away.
				b.WriteString("$\n")
				depth--
			}
		}
	}
	for ; depth > 1; depth-- {
		b.WriteString("$\n")
	}
	b.WriteString("$\n")
	p := filepath.Join(t.TempDir(), "proto")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func devMajor(dev uint64) uint64 { return (dev>>8)&0xfff | (dev>>32)&^0xfff }
func devMinor(dev uint64) uint64 { return dev&0xff | (dev>>12)&^0xff }

// xfsDB runs xfs_db on img with the given commands on its standard input
// (-x when write is set) and returns its output. Any error message fails
// the test.
func xfsDB(t *testing.T, img string, write bool, cmds []string) string {
	t.Helper()
	db := needTool(t, "xfs_db", "xfsprogs")
	args := []string{"-r"}
	if write {
		args = []string{"-x"}
	}
	cmd := exec.Command(db, append(args, img)...)
	cmd.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil || errb.Len() > 0 {
		t.Fatalf("xfs_db %v: %v\n%s\n(last output: %s)", args, err, errb.String(), tail(out.String(), 400))
	}
	return out.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

var (
	inodeRE  = regexp.MustCompile(`current inode number is (\d+)`)
	sfNameRE = regexp.MustCompile(`(u3?\.sfdir[23])\.list\[(\d+)\]\.name = "(.*)"`)
)

// inodeOf asks xfs_db for the inode number of a guest path.
func inodeOf(t *testing.T, img, guest string) uint64 {
	t.Helper()
	m := inodeRE.FindStringSubmatch(xfsDB(t, img, false, []string{"path " + guest, "inode"}))
	if m == nil {
		t.Fatalf("xfs_db: no inode number for %s", guest)
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return n
}

// fixupImage uses xfs_db to set what the protofile cannot: every mtime,
// the sticky bit, and hard links (later names of a hard-linked file are
// pointed at the first one's inode, whose link count is set; the copies
// mkfs made stay allocated but unreachable). Hard links must live in
// shortform directories.
func fixupImage(t *testing.T, img string, nodes []hostNode, bigtime bool) {
	t.Helper()
	type group struct {
		first string
		ino   uint64
		names []string
	}
	groups := map[[2]uint64]*group{}
	var cmds []string
	for _, n := range nodes {
		if n.info.Mode().IsRegular() && n.st.Nlink > 1 {
			key := [2]uint64{n.st.Dev, n.st.Ino}
			g := groups[key]
			if g == nil {
				g = &group{first: n.guest, ino: inodeOf(t, img, n.guest)}
				groups[key] = g
				cmds = append(cmds, "path "+n.guest, fmt.Sprintf("write core.nlinkv2 %d", n.st.Nlink))
			} else {
				g.names = append(g.names, n.guest)
			}
		}
	}
	for _, g := range groups {
		for _, name := range g.names {
			dir := path.Dir(name)
			out := xfsDB(t, img, false, []string{"path " + dir, "print"})
			idx, field := -1, ""
			for _, m := range sfNameRE.FindAllStringSubmatch(out, -1) {
				if m[3] == path.Base(name) {
					field = m[1]
					idx, _ = strconv.Atoi(m[2])
				}
			}
			if idx < 0 || g.ino > 1<<32-1 {
				t.Fatalf("fixupImage: %s is not in a shortform directory with 4-byte inode numbers", name)
			}
			cmds = append(cmds, "path "+dir, fmt.Sprintf("write %s.list[%d].inumber.i4 %d", field, idx, g.ino))
		}
	}
	for _, n := range nodes {
		cmds = append(cmds, "path "+n.guest)
		if n.info.Mode()&fs.ModeSticky != 0 {
			cmds = append(cmds, fmt.Sprintf("write core.mode %#o", unixMode(n.info.Mode())))
		}
		mt := n.info.ModTime()
		// xfs_db 6.1 writes the whole raw 64-bit timestamp through the
		// sec field: bigtime counts nanoseconds from 1901-12-13T20:45:52Z,
		// the legacy format packs 32-bit seconds over 32-bit nanoseconds.
		raw := uint64(uint32(int32(mt.Unix())))<<32 | uint64(mt.Nanosecond())
		if bigtime {
			raw = uint64(mt.Unix()+bigtimeEpoch)*nanosPerSecond + uint64(mt.Nanosecond())
		}
		// It parses the value as signed: "--" lets a negative one through.
		cmds = append(cmds, fmt.Sprintf("write -- core.mtime.sec %d", int64(raw)))
	}
	xfsDB(t, img, true, cmds)
}

// unixMode converts a Go file mode back to a Unix st_mode.
func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	switch m.Type() {
	case 0:
		u |= sIFREG
	case fs.ModeDir:
		u |= sIFDIR
	case fs.ModeSymlink:
		u |= sIFLNK
	case fs.ModeNamedPipe:
		u |= sIFIFO
	case fs.ModeDevice:
		u |= sIFBLK
	case fs.ModeDevice | fs.ModeCharDevice:
		u |= sIFCHR
	case fs.ModeSocket:
		u |= sIFSOCK
	}
	return u
}

// buildImage makes a sparse XFS image of size bytes holding the host tree
// dir (names it cannot carry must have been renamed), with mkfs.xfs -p and
// xfs_db fixups, and returns its path. v5 tells whether mkfsArgs make a v5
// (CRC, bigtime) filesystem.
func buildImage(t *testing.T, dir string, size int64, v5 bool, mkfsArgs ...string) string {
	t.Helper()
	mkfs := needTool(t, "mkfs.xfs", "xfsprogs")
	nodes := scanTree(t, dir)
	proto := writeProto(t, dir, nodes)
	img := filepath.Join(t.TempDir(), "xfs.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	args := append(append([]string{"-q", "-f", "-p", proto}, mkfsArgs...), img)
	if out, err := exec.Command(mkfs, args...).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.xfs %v: %v\n%s", args, err, out)
	}
	fixupImage(t, img, nodes, v5)
	if v5 {
		fixRemoteSymlinks(t, img, nodes)
	}
	t.Logf("built %s (mkfs.xfs %s) in %v", img, strings.Join(mkfsArgs, " "), time.Since(start).Round(time.Millisecond))
	return img
}

var (
	fieldRE = regexp.MustCompile(`(?m)^([\w.\[\]]+) = (\S+)`)
	bmapRE  = regexp.MustCompile(`data offset (\d+) startblock (\d+) \(\d+/\d+\) count (\d+) flag (\d)`)
	byteRE  = regexp.MustCompile(`(?m)^0x[0-9a-f]+ \((\d+)\)`)
)

// dbFields runs xfs_db commands and returns the numeric "name = value"
// fields printed.
func dbFields(t *testing.T, img string, cmds ...string) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for _, m := range fieldRE.FindAllStringSubmatch(xfsDB(t, img, false, cmds), -1) {
		if v, err := strconv.ParseUint(m[2], 0, 64); err == nil {
			out[m[1]] = v
		}
	}
	return out
}

// dbExtents returns the data fork extents of a guest path as xfs_db sees
// them.
func dbExtents(t *testing.T, img, guest string) []extent {
	t.Helper()
	var ext []extent
	for _, m := range bmapRE.FindAllStringSubmatch(xfsDB(t, img, false, []string{"path " + guest, "bmap"}), -1) {
		var v [4]uint64
		for i := range v {
			v[i], _ = strconv.ParseUint(m[i+1], 10, 64)
		}
		ext = append(ext, extent{off: v[0], start: v[1], count: v[2], unwritten: v[3] != 0})
	}
	return ext
}

// dbByte converts an xfs_db address ("fsblock N", "ino N") to a byte
// offset in the image.
func dbByte(t *testing.T, img, what string) int64 {
	t.Helper()
	m := byteRE.FindStringSubmatch(xfsDB(t, img, false, []string{"convert " + what + " byte"}))
	if m == nil {
		t.Fatalf("xfs_db convert %s: no byte offset", what)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

// fixCRC stores the XFS CRC32c of b (with the field at off taken as zero)
// at off, little-endian.
func fixCRC(b []byte, off int) {
	binary.LittleEndian.PutUint32(b[off:], 0)
	binary.LittleEndian.PutUint32(b[off:], crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
}

// fixRemoteSymlinks adds the v5 remote symlink header mkfs.xfs 6.1 leaves
// out (its protofile code writes the bare target, which the kernel
// rejects), then has xfs_db verify each block, CRC included.
func fixRemoteSymlinks(t *testing.T, img string, nodes []hostNode) {
	t.Helper()
	sb := dbFields(t, img, "sb 0", "print blocksize inodesize")
	bs, lit := int(sb["blocksize"]), int(sb["inodesize"])-coreSizeV3
	fh, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	for _, n := range nodes {
		if n.info.Mode().Type() != fs.ModeSymlink || int(n.info.Size()) <= lit {
			continue
		}
		target, _ := os.Readlink(n.host)
		if len(target)+symlinkHdr > bs {
			t.Fatalf("fixRemoteSymlinks: %s: target of %d bytes needs two blocks", n.guest, len(target))
		}
		ino := inodeOf(t, img, n.guest)
		ext := dbExtents(t, img, n.guest)
		if len(ext) != 1 || ext[0].count != 1 {
			t.Fatalf("fixRemoteSymlinks: %s: extents %v", n.guest, ext)
		}
		pos := dbByte(t, img, fmt.Sprintf("fsblock %d", ext[0].start))
		uuid := make([]byte, 16)
		if _, err := fh.ReadAt(uuid, dbByte(t, img, fmt.Sprintf("ino %d", ino))+160); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, bs)
		binary.BigEndian.PutUint32(b[0:], symlinkMagic)
		binary.BigEndian.PutUint32(b[8:], uint32(len(target)))
		copy(b[16:32], uuid)
		binary.BigEndian.PutUint64(b[32:], ino)
		binary.BigEndian.PutUint64(b[40:], uint64(pos)>>9)
		copy(b[symlinkHdr:], target)
		fixCRC(b, symlinkCRCOff)
		if _, err := fh.WriteAt(b, pos); err != nil {
			t.Fatal(err)
		}
		// (xfs_db's "fsblock" would read a single sector for this type.)
		out := xfsDB(t, img, false, []string{fmt.Sprintf("inode %d", ino), "dblock 0", "type symlink", "print"})
		if !strings.Contains(out, "(correct)") || !strings.Contains(out, fmt.Sprintf("owner = %d", ino)) {
			t.Fatalf("fixRemoteSymlinks: xfs_db reads %s as %q", n.guest, out)
		}
	}
}
