package fsys

import "errors"

// MaxSymlinks is the number of symbolic links one resolution follows before
// it fails with ErrSymlinkLoop (Linux's MAXSYMLINKS).
const MaxSymlinks = 40

// MaxLinkTarget is the longest symbolic link target, in bytes, that is
// followed or returned (Linux's PATH_MAX). Drivers refuse longer targets.
const MaxLinkTarget = 4096

// MaxPath is the longest path, in bytes, that Root accepts from a caller.
const MaxPath = 1 << 16

// Errors callers branch on. They are returned wrapped (usually in an
// *fs.PathError); test them with errors.Is. A name that does not exist
// wraps fs.ErrNotExist, and a malformed path wraps fs.ErrInvalid.
var (
	ErrSymlinkLoop = errors.New("too many levels of symbolic links")
	ErrEscapesRoot = errors.New("path leaves the guest filesystem")
	ErrTooLarge    = errors.New("file larger than the limit")
	ErrNotDir      = errors.New("not a directory")
	ErrIsDir       = errors.New("is a directory")
	ErrNotRegular  = errors.New("not a regular file")
	ErrNotSymlink  = errors.New("not a symbolic link")
)
