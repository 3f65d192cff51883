package fsystest

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/vmtrust/vmtrust/internal/fsys"
)

// MapFS is an in-memory fsys.FS for unit tests of code above fsys. Keys are
// absolute guest paths ("/etc/os-release"); parent directories are implied
// (mode 0755, root-owned) unless listed. Inode numbers are stable: a hash
// of the path holding the inode. Lookups scan the map, so MapFS suits
// trees of up to a few thousand names.
type MapFS map[string]*MapFile

// MapFile is one name in a MapFS.
type MapFile struct {
	Data []byte
	// Mode holds the type and permission bits. A MapFile with a Target and
	// no type bits is a symbolic link; fs.ModeDir makes an (empty unless
	// other keys lie below it) directory.
	Mode     fs.FileMode
	Target   string // symbolic link target
	Uid, Gid uint32
	ModTime  time.Time
	// HardLink, when set, makes this name another link to the inode at
	// that path, and every other field is ignored. Pointing it at a
	// directory builds a directory loop, which real filesystems forbid but
	// hostile images contain — for testing walkers.
	HardLink string
}

var _ fsys.FS = MapFS(nil)

// maxHardLinkChain bounds HardLink-to-HardLink chains.
const maxHardLinkChain = 40

// Type returns "mapfs".
func (m MapFS) Type() string { return "mapfs" }

// Root returns the inode of "/".
func (m MapFS) Root() fsys.Ino { return inoOf("/") }

func inoOf(p string) fsys.Ino {
	h := fnv.New64a()
	h.Write([]byte(p))
	return fsys.Ino(h.Sum64()>>1 | 1) // never 0
}

func cleanKey(k string) string { return path.Clean("/" + k) }

// node is one inode of the map: its owning path and explicit entry
// (nil for an implied directory).
type node struct {
	path string
	f    *MapFile
}

// paths returns every path in m, implied directories included, with the
// MapFile holding it (nil when implied).
func (m MapFS) paths() map[string]*MapFile {
	all := map[string]*MapFile{"/": nil}
	for k, f := range m {
		p := cleanKey(k)
		all[p] = f
	}
	for k := range m {
		for d := path.Dir(cleanKey(k)); d != "/"; d = path.Dir(d) {
			if _, ok := all[d]; !ok {
				all[d] = nil
			}
		}
	}
	return all
}

// target follows HardLink entries from p to the path owning the inode.
func target(all map[string]*MapFile, p string) (string, bool) {
	for range maxHardLinkChain {
		f, ok := all[p]
		if !ok {
			return "", false
		}
		if f == nil || f.HardLink == "" {
			return p, true
		}
		p = cleanKey(f.HardLink)
	}
	return "", false
}

func (m MapFS) node(ino fsys.Ino) (node, map[string]*MapFile, error) {
	all := m.paths()
	for p, f := range all {
		if (f == nil || f.HardLink == "") && inoOf(p) == ino {
			return node{path: p, f: f}, all, nil
		}
	}
	return node{}, nil, fmt.Errorf("mapfs: inode %d: %w", ino, fs.ErrNotExist)
}

func mode(f *MapFile) fs.FileMode {
	switch {
	case f == nil:
		return fs.ModeDir | 0o755
	case f.Target != "" && f.Mode.Type() == 0:
		return f.Mode | fs.ModeSymlink
	}
	return f.Mode
}

// Stat describes an inode.
func (m MapFS) Stat(ino fsys.Ino) (fsys.Info, error) {
	n, all, err := m.node(ino)
	if err != nil {
		return fsys.Info{}, err
	}
	md := mode(n.f)
	info := fsys.Info{Ino: ino, Mode: md, Nlink: 1}
	if n.f != nil {
		info.Uid, info.Gid, info.Mtime = n.f.Uid, n.f.Gid, n.f.ModTime
		switch {
		case md.IsRegular():
			info.Size = int64(len(n.f.Data))
		case md&fs.ModeSymlink != 0:
			info.Size = int64(len(n.f.Target))
		}
	}
	if md.IsDir() {
		info.Nlink = 2
	}
	for p, f := range all {
		if p == n.path {
			continue
		}
		if f != nil && f.HardLink != "" {
			if t, ok := target(all, p); ok && t == n.path {
				info.Nlink++
			}
		} else if md.IsDir() && path.Dir(p) == n.path && p != "/" && mode(f).IsDir() {
			info.Nlink++ // the child's ".."
		}
	}
	return info, nil
}

// ReadDir lists a directory, sorted by name.
func (m MapFS) ReadDir(ino fsys.Ino) ([]fsys.DirEntry, error) {
	n, all, err := m.node(ino)
	if err != nil {
		return nil, err
	}
	if !mode(n.f).IsDir() {
		return nil, fmt.Errorf("mapfs: inode %d: %w", ino, fsys.ErrNotDir)
	}
	var out []fsys.DirEntry
	for p := range all {
		if p == "/" || path.Dir(p) != n.path {
			continue
		}
		ent := fsys.DirEntry{Name: path.Base(p)}
		if t, ok := target(all, p); ok {
			ent.Ino = inoOf(t)
			ent.Type = mode(all[t]).Type()
		} else {
			ent.Ino = inoOf(p + "\x00dangling") // a dirent to a missing inode
		}
		out = append(out, ent)
	}
	slices.SortFunc(out, func(a, b fsys.DirEntry) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Readlink returns a symbolic link's target.
func (m MapFS) Readlink(ino fsys.Ino) (string, error) {
	n, _, err := m.node(ino)
	if err != nil {
		return "", err
	}
	if mode(n.f)&fs.ModeSymlink == 0 {
		return "", fmt.Errorf("mapfs: inode %d: %w", ino, fsys.ErrNotSymlink)
	}
	return n.f.Target, nil
}

// Open gives access to a regular file's data.
func (m MapFS) Open(ino fsys.Ino) (io.ReaderAt, error) {
	n, _, err := m.node(ino)
	if err != nil {
		return nil, err
	}
	md := mode(n.f)
	if md.IsDir() {
		return nil, fmt.Errorf("mapfs: inode %d: %w", ino, fsys.ErrIsDir)
	}
	if !md.IsRegular() {
		return nil, fmt.Errorf("mapfs: inode %d: %w", ino, fsys.ErrNotRegular)
	}
	return bytes.NewReader(n.f.Data), nil
}
