package disk

import (
	"io"
	"os"
)

// SetOpen replaces the function Open uses to open host files.
func SetOpen(o *Options, open func(name string, flag int) (*os.File, error)) { o.open = open }

// Detect exposes format detection.
func Detect(r io.ReaderAt, size int64) (string, error) { return detect(r, size) }
