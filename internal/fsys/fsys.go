// Package fsys reads a guest's filesystem from a disk image without
// mounting it, and resolves paths the way the guest would, but confined:
// symbolic links are followed inside the guest filesystem only.
//
// Guarantees: a path never leaves the guest filesystem — an absolute link
// target is taken from the guest's root, and a ".." that would climb above
// the root is an error; at most MaxSymlinks links are followed per
// resolution (a loop is an error); walks never follow links and visit each
// directory inode once; reads are bounded by the caller's limits.
package fsys

import (
	"io"
	"io/fs"
	"time"
)

// Ino identifies a file inside one filesystem.
type Ino uint64

// Info describes one inode.
type Info struct {
	Ino   Ino
	Mode  fs.FileMode // Go mode: type bits, permission bits, setuid/setgid/sticky
	Uid   uint32
	Gid   uint32
	Size  int64
	Nlink uint32
	Mtime time.Time
}

// DirEntry is one name in a directory ("." and ".." are never returned).
type DirEntry struct {
	Name string
	Ino  Ino
	// Type holds only the type bits of the entry's mode (fs.ModeDir,
	// fs.ModeSymlink, ... or 0 for a regular file) when the directory
	// records it; Unknown is set when it does not and Stat must be asked.
	Type    fs.FileMode
	Unknown bool
}

// FS is the inode-level interface a filesystem driver (ext4, XFS)
// implements. It never resolves paths and never follows links.
// Implementations must be safe against hostile on-disk structures: every
// offset, length and count is checked before use, and errors are returned,
// never panics.
type FS interface {
	// Type names the filesystem: "ext4", "xfs", ...
	Type() string
	Root() Ino
	Stat(ino Ino) (Info, error)
	// ReadDir lists a directory; an error if ino is not one.
	ReadDir(ino Ino) ([]DirEntry, error)
	// Readlink returns a symbolic link's target; an error if ino is not one.
	Readlink(ino Ino) (string, error)
	// Open gives random access to a regular file's content; reads past its
	// size return io.EOF, holes read as zeros.
	Open(ino Ino) (io.ReaderAt, error)
}
