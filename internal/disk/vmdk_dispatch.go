package disk

import (
	"io"

	"github.com/vmtrust/vmtrust/internal/disk/vmdk"
)

// openVMDK opens a sparse VMDK (magic "KDMV") of size bytes read through r.
// cacheBytes is the cache budget of Options. The vmdk package never opens a
// file: an image whose extents live in other files is refused there.
func openVMDK(r io.ReaderAt, size int64, cacheBytes int64) (Image, error) {
	img, err := vmdk.Open(r, size, vmdk.Options{CacheBytes: cacheBytes})
	if err != nil {
		return nil, err
	}
	return img, nil
}
