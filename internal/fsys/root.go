package fsys

import (
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Root resolves absolute guest paths ("/etc/os-release") on an FS the way
// the guest kernel would, but confined to that FS: an absolute link target
// restarts at the guest's root, a ".." above the root is ErrEscapesRoot,
// and at most MaxSymlinks links are followed per resolution.
//
// Paths are absolute slash paths. They are cleaned lexically only for
// repeated slashes and "."; ".." is resolved against the real
// (link-resolved) parent directory. A trailing slash requires a directory
// and makes the final component be followed even by Lstat.
//
// A Root is safe for concurrent use. It caches directory listings, so the
// FS must not change while the Root is in use (disk images do not).
type Root struct {
	f     FS
	cache dirCache
	// read counts the directory entries lookups have read from f (cache
	// misses); beyond maxRead (maxLookupEntries) lookups fail.
	read    atomic.Int64
	maxRead int64
}

// NewRoot returns a Root over f.
func NewRoot(f FS) *Root {
	return &Root{f: f, maxRead: maxLookupEntries}
}

// FS returns the inode-level filesystem under r.
func (r *Root) FS() FS { return r.f }

// elem is one resolved component of a path: its name in its parent
// directory, and the inode it names.
type elem struct {
	name string
	info Info
}

// cursor is a resolution in progress: the directory chain from the root
// (the root itself excluded) and the number of links followed so far.
type cursor struct {
	root  Info
	stack []elem
	links int
}

func (c *cursor) cur() Info {
	if len(c.stack) == 0 {
		return c.root
	}
	return c.stack[len(c.stack)-1].info
}

func (c *cursor) path() string {
	if len(c.stack) == 0 {
		return "/"
	}
	var b strings.Builder
	for _, e := range c.stack {
		b.WriteByte('/')
		b.WriteString(e.name)
	}
	return b.String()
}

func (c *cursor) clone() cursor {
	return cursor{root: c.root, stack: slices.Clone(c.stack), links: c.links}
}

// start returns a cursor at the guest's root.
func (r *Root) start() (cursor, error) {
	info, err := r.f.Stat(r.f.Root())
	if err != nil {
		return cursor{}, fmt.Errorf("fsys: root inode: %w", err)
	}
	if !info.Mode.IsDir() {
		return cursor{}, fmt.Errorf("fsys: root inode %d: %w", info.Ino, ErrNotDir)
	}
	return cursor{root: info}, nil
}

// splitPath splits an absolute caller path into components, dropping empty
// and "." components; a trailing slash or "." becomes a final ".", which
// requires a directory.
func splitPath(name string) ([]string, error) {
	if !strings.HasPrefix(name, "/") {
		return nil, fmt.Errorf("not an absolute path: %w", fs.ErrInvalid)
	}
	if len(name) > MaxPath {
		return nil, fmt.Errorf("path longer than %d bytes: %w", MaxPath, fs.ErrInvalid)
	}
	if strings.IndexByte(name, 0) >= 0 {
		return nil, fmt.Errorf("path contains NUL: %w", fs.ErrInvalid)
	}
	return splitComponents(name), nil
}

func splitComponents(p string) []string {
	raw := strings.Split(p, "/")
	comps := make([]string, 0, len(raw))
	for _, c := range raw {
		if c != "" && c != "." {
			comps = append(comps, c)
		}
	}
	if last := raw[len(raw)-1]; len(comps) > 0 && (last == "" || last == ".") {
		comps = append(comps, ".")
	}
	return comps
}

// checkTarget validates a link target read from the guest.
func checkTarget(target string) error {
	switch {
	case target == "":
		return fmt.Errorf("empty symbolic link target: %w", fs.ErrNotExist)
	case len(target) > MaxLinkTarget:
		return fmt.Errorf("symbolic link target longer than %d bytes: %w", MaxLinkTarget, fs.ErrInvalid)
	case strings.IndexByte(target, 0) >= 0:
		return fmt.Errorf("symbolic link target contains NUL: %w", fs.ErrInvalid)
	}
	return nil
}

// step resolves comps from c. Every link met is followed, except in the
// last component when followFinal is false.
func (r *Root) step(c *cursor, comps []string, followFinal bool) error {
	for len(comps) > 0 {
		name := comps[0]
		comps = comps[1:]
		switch name {
		case ".":
			if !c.cur().Mode.IsDir() {
				return ErrNotDir
			}
			continue
		case "..":
			if !c.cur().Mode.IsDir() {
				return ErrNotDir
			}
			if len(c.stack) == 0 {
				return ErrEscapesRoot
			}
			c.stack = c.stack[:len(c.stack)-1]
			continue
		}
		dir := c.cur()
		if !dir.Mode.IsDir() {
			return ErrNotDir
		}
		ino, err := r.lookup(dir.Ino, name)
		if err != nil {
			return err
		}
		info, err := r.f.Stat(ino)
		if err != nil {
			return err
		}
		if info.Mode&fs.ModeSymlink == 0 || (len(comps) == 0 && !followFinal) {
			c.stack = append(c.stack, elem{name: name, info: info})
			continue
		}
		c.links++
		if c.links > MaxSymlinks {
			return ErrSymlinkLoop
		}
		target, err := r.f.Readlink(ino)
		if err != nil {
			return err
		}
		if err := checkTarget(target); err != nil {
			return err
		}
		if strings.HasPrefix(target, "/") {
			c.stack = c.stack[:0] // the guest's root, never the host's
		}
		comps = append(splitComponents(target), comps...)
	}
	return nil
}

// resolve resolves name from the guest's root.
func (r *Root) resolve(op, name string, followFinal bool) (cursor, error) {
	comps, err := splitPath(name)
	if err != nil {
		return cursor{}, &fs.PathError{Op: op, Path: name, Err: err}
	}
	c, err := r.start()
	if err != nil {
		return cursor{}, &fs.PathError{Op: op, Path: name, Err: err}
	}
	if err := r.step(&c, comps, followFinal); err != nil {
		return cursor{}, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return c, nil
}

// Lstat describes the file at name without following a link in the final
// component (links in earlier components are followed).
func (r *Root) Lstat(name string) (Info, error) {
	c, err := r.resolve("lstat", name, false)
	if err != nil {
		return Info{}, err
	}
	return c.cur(), nil
}

// Stat describes the file at name, following every link.
func (r *Root) Stat(name string) (Info, error) {
	c, err := r.resolve("stat", name, true)
	if err != nil {
		return Info{}, err
	}
	return c.cur(), nil
}

// Readlink returns the target of the symbolic link at name as stored.
func (r *Root) Readlink(name string) (string, error) {
	c, err := r.resolve("readlink", name, false)
	if err != nil {
		return "", err
	}
	info := c.cur()
	if info.Mode&fs.ModeSymlink == 0 {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: ErrNotSymlink}
	}
	target, err := r.f.Readlink(info.Ino)
	if err == nil {
		err = checkTarget(target)
	}
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return target, nil
}

// Resolve returns the canonical guest path of name after following every
// link: absolute, clean, free of links and of "..".
func (r *Root) Resolve(name string) (string, error) {
	c, err := r.resolve("resolve", name, true)
	if err != nil {
		return "", err
	}
	return c.path(), nil
}

// ReadDir lists the directory at name (following links), sorted by name.
func (r *Root) ReadDir(name string) ([]DirEntry, error) {
	c, err := r.resolve("readdir", name, true)
	if err != nil {
		return nil, err
	}
	ents, err := r.readDir(c.cur())
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	return ents, nil
}

// readDir lists a directory inode, checks every name and sorts the result.
// "." and ".." are dropped; a name that is empty or holds "/" or NUL is an
// error, since no path could name it.
func (r *Root) readDir(dir Info) ([]DirEntry, error) {
	if !dir.Mode.IsDir() {
		return nil, ErrNotDir
	}
	ents, err := r.f.ReadDir(dir.Ino)
	if err != nil {
		return nil, err
	}
	out := make([]DirEntry, 0, len(ents))
	for _, e := range ents {
		if e.Name == "." || e.Name == ".." {
			continue
		}
		if !validName(e.Name) {
			return nil, fmt.Errorf("directory inode %d: invalid entry name %q: %w", dir.Ino, e.Name, fs.ErrInvalid)
		}
		out = append(out, e)
	}
	slices.SortStableFunc(out, func(a, b DirEntry) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func validName(n string) bool {
	return n != "" && strings.IndexByte(n, '/') < 0 && strings.IndexByte(n, 0) < 0
}

// Open opens the regular file at name (following links) for random access.
// A directory gives ErrIsDir, any other non-regular file ErrNotRegular.
// Reads at or past Info.Size return io.EOF.
func (r *Root) Open(name string) (io.ReaderAt, Info, error) {
	c, err := r.resolve("open", name, true)
	if err != nil {
		return nil, Info{}, err
	}
	info := c.cur()
	switch {
	case info.Mode.IsDir():
		return nil, Info{}, &fs.PathError{Op: "open", Path: name, Err: ErrIsDir}
	case !info.Mode.IsRegular():
		return nil, Info{}, &fs.PathError{Op: "open", Path: name, Err: ErrNotRegular}
	case info.Size < 0:
		return nil, Info{}, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("negative size %d: %w", info.Size, fs.ErrInvalid)}
	}
	ra, err := r.f.Open(info.Ino)
	if err != nil {
		return nil, Info{}, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return ra, info, nil
}

// ReadFile reads the whole regular file at name (following links). A file
// larger than max bytes is not read: the error wraps ErrTooLarge.
func (r *Root) ReadFile(name string, max int64) ([]byte, error) {
	ra, info, err := r.Open(name)
	if err != nil {
		return nil, err
	}
	if info.Size > max {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fmt.Errorf("%d bytes, limit %d: %w", info.Size, max, ErrTooLarge)}
	}
	buf := make([]byte, info.Size)
	if _, err := io.ReadFull(io.NewSectionReader(ra, 0, info.Size), buf); err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	return buf, nil
}

// lookup finds name in the directory inode dir. When a hostile directory
// holds a name twice, the first on-disk entry wins, as in Linux.
func (r *Root) lookup(dir Ino, name string) (Ino, error) {
	if ino, ok, hit := r.cache.get(dir, name); hit {
		if !ok {
			return 0, fs.ErrNotExist
		}
		return ino, nil
	}
	if r.read.Load() > r.maxRead {
		return 0, fmt.Errorf("directory inode %d: lookups read more than %d directory entries: %w", dir, r.maxRead, ErrTooLarge)
	}
	ents, err := r.f.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	r.read.Add(int64(len(ents)))
	names := make(map[string]Ino, len(ents))
	for _, e := range ents {
		if _, dup := names[e.Name]; !dup && validName(e.Name) && e.Name != "." && e.Name != ".." {
			names[e.Name] = e.Ino
		}
	}
	r.cache.put(dir, names)
	ino, ok := names[name]
	if !ok {
		return 0, fs.ErrNotExist
	}
	return ino, nil
}

// dirCache remembers the names of recently looked-up directories. It holds
// at most maxCachedNames names in all and is emptied when full. A directory
// with more names than that is kept apart, in a slot of its own that holds
// the latest such directory (its listing was in memory anyway), so that
// resolving many paths through one huge directory does not read it again
// for every path.
type dirCache struct {
	mu       sync.Mutex
	dirs     map[Ino]map[string]Ino
	names    int
	bigDir   Ino
	bigNames map[string]Ino
}

const maxCachedNames = 1 << 18

// maxLookupEntries bounds the directory entries the lookups of one Root
// read from its FS. Directories too big to stay in the cache together (a
// hostile image can hold several with millions of names) would otherwise be
// read again, lookup after lookup, without bound; past it, lookups fail
// with an error wrapping ErrTooLarge.
const maxLookupEntries = 1 << 25

func (d *dirCache) get(dir Ino, name string) (ino Ino, ok, hit bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m, hit := d.dirs[dir]
	if !hit && d.bigNames != nil && d.bigDir == dir {
		m, hit = d.bigNames, true
	}
	if !hit {
		return 0, false, false
	}
	ino, ok = m[name]
	return ino, ok, true
}

func (d *dirCache) put(dir Ino, names map[string]Ino) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(names) > maxCachedNames {
		d.bigDir, d.bigNames = dir, names
		return
	}
	if d.dirs == nil || d.names+len(names) > maxCachedNames {
		d.dirs = make(map[Ino]map[string]Ino)
		d.names = 0
	}
	if _, ok := d.dirs[dir]; !ok {
		d.dirs[dir] = names
		d.names += len(names)
	}
}
