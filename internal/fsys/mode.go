package fsys

import "io/fs"

// Unix file type bits of st_mode, as every Unix filesystem stores them.
const (
	unixIFMT   = 0o170000
	unixIFSOCK = 0o140000
	unixIFLNK  = 0o120000
	unixIFREG  = 0o100000
	unixIFBLK  = 0o060000
	unixIFDIR  = 0o040000
	unixIFCHR  = 0o020000
	unixIFIFO  = 0o010000
)

// UnixMode converts an on-disk Unix mode (type, permission, setuid,
// setgid and sticky bits) to a Go file mode. ok is false when the type
// bits name no file type (a free or corrupt inode).
func UnixMode(m uint16) (mode fs.FileMode, ok bool) {
	mode = fs.FileMode(m & 0o777)
	switch uint32(m) & unixIFMT {
	case unixIFREG:
	case unixIFDIR:
		mode |= fs.ModeDir
	case unixIFLNK:
		mode |= fs.ModeSymlink
	case unixIFIFO:
		mode |= fs.ModeNamedPipe
	case unixIFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unixIFBLK:
		mode |= fs.ModeDevice
	case unixIFSOCK:
		mode |= fs.ModeSocket
	default:
		return 0, false
	}
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode, true
}
