package engine

import (
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/vmtrust/vmtrust/internal/fsys"
)

// ReadHead reads at most max bytes from the start of the walked regular
// file info, by inode (so it reads what the walk saw, whatever the path
// resolves to now). truncated reports that the file is longer than max.
func ReadHead(env *Env, info fsys.Info, max int64) (data []byte, truncated bool, err error) {
	if !info.Mode.IsRegular() {
		return nil, false, fsys.ErrNotRegular
	}
	if info.Size < 0 {
		return nil, false, fmt.Errorf("negative size %d: %w", info.Size, fs.ErrInvalid)
	}
	n := min(info.Size, max)
	ra, err := env.Root.FS().Open(info.Ino)
	if err != nil {
		return nil, false, err
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(io.NewSectionReader(ra, 0, n), buf); err != nil {
		return nil, false, err
	}
	return buf, info.Size > max, nil
}

// ReadConfig reads the file at the guest path name (links followed,
// confined to the guest) for a targeted check. A file that does not exist,
// or is not a regular file (a link to a device such as /dev/null), gives
// (nil, false, nil); one larger than max an error wrapping
// fsys.ErrTooLarge.
func ReadConfig(env *Env, name string, max int64) (data []byte, ok bool, err error) {
	b, err := env.Root.ReadFile(name, max)
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, fsys.ErrNotRegular):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	return b, true, nil
}
