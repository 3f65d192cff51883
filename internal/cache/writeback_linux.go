package cache

import (
	"os"

	"golang.org/x/sys/unix"
)

// writeBack waits for the write-back of [waitOff, waitOff+waitN) and starts
// that of [off, off+n), without waiting for it (sync_file_range). It keeps
// the dirty part of a large download small. Best effort: the fsync in
// Commit is what makes the file durable.
func writeBack(f *os.File, waitOff, waitN, off, n int64) {
	fd := int(f.Fd())
	if waitN > 0 {
		_ = unix.SyncFileRange(fd, waitOff, waitN, unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
	}
	_ = unix.SyncFileRange(fd, off, n, unix.SYNC_FILE_RANGE_WRITE)
}
