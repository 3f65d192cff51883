// Package disk opens virtual disk images read-only and presents the guest's
// bytes: raw, qcow2 (v2 and v3, zlib and zstd clusters, confined backing
// chains) and VMDK (monolithicSparse, streamOptimized).
//
// Guarantees: an image is never written; a backing file is opened only when
// the name in the image resolves (after symbolic links) inside a directory
// the caller allowed, and by default none is; every table size, offset and
// chain length is checked against fixed bounds before it is used, so a
// hostile image gives an error, not a hang, a crash or unbounded memory.
//
// Backing files: a relative name is taken from the directory of the image
// that names it, as QEMU does. The name must lie inside an allowed
// directory both as written and with symbolic links resolved; names QEMU
// would read as a protocol ("nbd:...", "json:{...}") are refused, as are
// loops (the same file twice in a chain) and chains longer than MaxChain.
// The file is opened with O_NOFOLLOW and must be the file that was checked.
//
// Accounting: every host file Open opens is read through a counter; see
// BytesRead and Stats.
package disk

import "io"

// Image is the guest-visible content of a disk image.
//
// ReadAt follows io.ReaderAt; reading at or past Size returns io.EOF. Areas
// the image does not allocate read as zeros (or from the backing image).
type Image interface {
	io.ReaderAt
	// Size is the virtual disk size in bytes.
	Size() int64
	// Format names the container: "raw", "qcow2" or "vmdk".
	Format() string
	// Close releases the image and every backing image it opened.
	Close() error
}
