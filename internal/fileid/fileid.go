// Package fileid identifies one version of a file by what the kernel keeps
// about it: device, inode, size, modification time and status-change time.
//
// # Guarantees
//
// Two IDs taken from the same path are equal only if no write, truncation,
// chmod, chown, link, rename over the path or replacement of the file
// happened in between, on filesystems that keep nanosecond ctime (ext4,
// XFS, btrfs, tmpfs): every such change sets the inode's ctime to the
// current time, and user space cannot set ctime (only root can, and only by
// changing the system clock). A zero ID is never equal to the ID of a file
// (Valid reports false for it), so "no ID recorded" never matches.
//
// What an ID does not prove: that the bytes on the medium are intact (bit
// rot, writes to the block device under the filesystem); use a digest for
// that. vmtrust records an ID right after it verified a digest and trusts
// the digest only while the ID is unchanged.
package fileid

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// ID is one version of a file. Times are nanoseconds since the Unix epoch.
type ID struct {
	Dev   uint64 `json:"dev"`
	Ino   uint64 `json:"ino"`
	Size  int64  `json:"size"`
	Mtime int64  `json:"mtime_ns"`
	Ctime int64  `json:"ctime_ns"`
}

// Valid reports whether id was taken from a file (its inode is set).
func (id ID) Valid() bool { return id.Ino != 0 }

// String is a compact form for logs.
func (id ID) String() string {
	return fmt.Sprintf("dev=%d ino=%d size=%d mtime=%d ctime=%d", id.Dev, id.Ino, id.Size, id.Mtime, id.Ctime)
}

// Of returns the ID of the file fi describes. fi must come from os.Stat,
// os.Lstat or (*os.File).Stat on Linux.
func Of(fi fs.FileInfo) (ID, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st == nil {
		return ID{}, fmt.Errorf("fileid: %s: no stat data", fi.Name())
	}
	return ID{
		Dev:   uint64(st.Dev), //nolint:unconvert // the field's type differs by platform
		Ino:   st.Ino,
		Size:  st.Size,
		Mtime: st.Mtim.Sec*1e9 + st.Mtim.Nsec,
		Ctime: st.Ctim.Sec*1e9 + st.Ctim.Nsec,
	}, nil
}

// File returns the ID of an open file.
func File(f *os.File) (ID, error) {
	fi, err := f.Stat()
	if err != nil {
		return ID{}, err
	}
	return Of(fi)
}

// Path returns the ID of the file at path, not following a final symlink.
func Path(path string) (ID, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return ID{}, err
	}
	return Of(fi)
}
