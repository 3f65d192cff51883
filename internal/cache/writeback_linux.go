package cache

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteBack asks the kernel to begin writing a range to disk without
// waiting for it (sync_file_range SYNC_FILE_RANGE_WRITE). Best effort: the
// fsync in Commit is what makes the file durable.
func startWriteBack(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
