package disk

import (
	"errors"
	"io"
)

// openVMDK opens a sparse VMDK (magic "KDMV") of size bytes read through r.
// cacheBytes is the cache budget of Options.
//
// TODO(wiring): return vmdk.Open(r, size, vmdk.Options{...}) from package
// internal/disk/vmdk once it is merged; *vmdk.Image must satisfy Image and
// its Close must not close r (the caller closes the file).
func openVMDK(r io.ReaderAt, size int64, cacheBytes int64) (Image, error) {
	_, _, _ = r, size, cacheBytes
	return nil, errors.New("vmdk: not wired yet")
}
