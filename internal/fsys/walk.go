package fsys

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// MaxGlobResults bounds the matches of Glob, and the candidates it keeps
// at every level of the pattern; beyond it Glob fails.
const MaxGlobResults = 10000

// Glob returns the guest paths matching pattern, sorted. The pattern is an
// absolute slash path whose components are matched with path.Match ("*"
// matches names starting with "." too); e.g. "/home/*/.ssh/authorized_keys".
// Links in directories along the way are followed, confined like Stat; the
// final component is matched as Lstat sees it, so a dangling link matches.
// The paths returned are spelled as the pattern spells them, not resolved.
// Names that do not exist, loops, escapes and non-directories simply do
// not match; other errors (a damaged filesystem) are returned.
func (r *Root) Glob(pattern string) ([]string, error) {
	comps, err := splitPath(pattern)
	if err != nil {
		return nil, &fs.PathError{Op: "glob", Path: pattern, Err: err}
	}
	for _, c := range comps {
		if _, err := path.Match(c, ""); err != nil {
			return nil, &fs.PathError{Op: "glob", Path: pattern, Err: err}
		}
	}
	start, err := r.start()
	if err != nil {
		return nil, &fs.PathError{Op: "glob", Path: pattern, Err: err}
	}
	type cand struct {
		lit string
		c   cursor
	}
	cands := []cand{{lit: "", c: start}}
	for i, pat := range comps {
		final := i == len(comps)-1
		var next []cand
		add := func(cd cand, name string) error {
			c := cd.c.clone()
			err := r.step(&c, []string{name}, !final)
			if globMiss(err) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("%s/%s: %w", cd.lit, name, err)
			}
			lit := cd.lit
			if name != "." {
				lit += "/" + name
			}
			if len(next) >= MaxGlobResults {
				return fmt.Errorf("more than %d matches", MaxGlobResults)
			}
			next = append(next, cand{lit: lit, c: c})
			return nil
		}
		for _, cd := range cands {
			if !hasMeta(pat) {
				if err := add(cd, pat); err != nil {
					return nil, &fs.PathError{Op: "glob", Path: pattern, Err: err}
				}
				continue
			}
			dir := cd.c.cur()
			if !dir.Mode.IsDir() {
				continue
			}
			ents, err := r.readDir(dir)
			if err != nil {
				return nil, &fs.PathError{Op: "glob", Path: pattern, Err: fmt.Errorf("%s: %w", cd.lit, err)}
			}
			for _, e := range ents {
				if ok, _ := path.Match(pat, e.Name); !ok {
					continue
				}
				if err := add(cd, e.Name); err != nil {
					return nil, &fs.PathError{Op: "glob", Path: pattern, Err: err}
				}
			}
		}
		cands = next
	}
	out := make([]string, 0, len(cands))
	for _, cd := range cands {
		if cd.lit == "" {
			cd.lit = "/"
		}
		out = append(out, cd.lit)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// globMiss reports whether err means "no match" rather than damage.
func globMiss(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrNotDir) ||
		errors.Is(err, ErrSymlinkLoop) || errors.Is(err, ErrEscapesRoot)
}

func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[\`) }

// WalkOptions bounds a Walk. Zero values take the defaults.
type WalkOptions struct {
	// MaxEntries is the most entries (fn calls) a walk makes before it
	// fails; default 2,000,000.
	MaxEntries int
	// MaxDepth is the deepest level below the starting directory a walk
	// descends to before it fails; default 256.
	MaxDepth int
}

const (
	defaultMaxEntries = 2_000_000
	defaultMaxDepth   = 256
	ctxCheckEvery     = 256
)

// Walk calls fn for name and, if it is a directory, every file below it,
// in pre-order with each directory's names sorted. It never follows links:
// name itself is taken as Lstat sees it (links before its final component
// are followed), and a link inside the tree is reported, not entered. The
// paths given to fn are name (cleaned of repeated slashes and ".") joined
// with the names below it.
//
// fn may return fs.SkipDir to skip a directory (or, for a non-directory,
// the rest of its directory) and fs.SkipAll to end the walk; any other
// error ends the walk and is returned. Each directory inode is entered at
// most once: meeting one again — a hard-linked directory loop, which only a
// hostile or corrupt filesystem contains — fails with "directory loop at
// PATH" before fn sees it. Exceeding MaxEntries or MaxDepth, a cancelled
// ctx (checked every 256 entries) and any filesystem error fail the walk.
func (r *Root) Walk(ctx context.Context, name string, opts WalkOptions, fn func(path string, info Info) error) error {
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = defaultMaxEntries
	}
	if opts.MaxDepth <= 0 {
		opts.MaxDepth = defaultMaxDepth
	}
	c, err := r.resolve("walk", name, false)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	comps, _ := splitPath(name) // already checked by resolve
	start := "/" + strings.Join(comps, "/")
	if len(comps) > 0 && comps[len(comps)-1] == "." {
		start = "/" + strings.Join(comps[:len(comps)-1], "/")
	}
	w := &walker{r: r, ctx: ctx, opts: opts, fn: fn, seen: make(map[Ino]string)}
	err = w.visit(start, c.cur(), 0)
	if err == fs.SkipDir || err == fs.SkipAll {
		return nil
	}
	return err
}

type walker struct {
	r     *Root
	ctx   context.Context
	opts  WalkOptions
	fn    func(string, Info) error
	seen  map[Ino]string // directory inode -> first path
	count int
}

// visit reports p and descends into it if it is a directory.
func (w *walker) visit(p string, info Info, depth int) error {
	w.count++
	if w.count > w.opts.MaxEntries {
		return fmt.Errorf("fsys: walk: more than %d entries", w.opts.MaxEntries)
	}
	if w.count%ctxCheckEvery == 0 {
		if err := w.ctx.Err(); err != nil {
			return err
		}
	}
	isDir := info.Mode.IsDir()
	if isDir {
		if first, ok := w.seen[info.Ino]; ok {
			return fmt.Errorf("fsys: walk: directory loop at %s (inode %d already seen at %s)", p, info.Ino, first)
		}
		w.seen[info.Ino] = p
	}
	if err := w.fn(p, info); err != nil {
		if err == fs.SkipDir && isDir {
			return nil
		}
		return err
	}
	if !isDir {
		return nil
	}
	ents, err := w.r.readDir(info)
	if err != nil {
		return &fs.PathError{Op: "walk", Path: p, Err: err}
	}
	if len(ents) > 0 && depth >= w.opts.MaxDepth {
		return fmt.Errorf("fsys: walk: %s: deeper than %d levels", p, w.opts.MaxDepth)
	}
	for _, e := range ents {
		ci, err := w.r.f.Stat(e.Ino)
		child := joinPath(p, e.Name)
		if err != nil {
			return &fs.PathError{Op: "walk", Path: child, Err: err}
		}
		if err := w.visit(child, ci, depth+1); err != nil {
			if err == fs.SkipDir {
				return nil // fn skipped the rest of this directory
			}
			return err
		}
	}
	return nil
}

func joinPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}
