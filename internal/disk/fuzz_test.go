package disk_test

import (
	"bytes"
	"testing"

	"github.com/vmtrust/vmtrust/internal/disk"
)

// FuzzDetect: format detection never panics, names a known format or
// fails, and never calls a descriptor file anything but an error.
func FuzzDetect(f *testing.F) {
	f.Add([]byte("QFI\xfb\x00\x00\x00\x03"))
	f.Add([]byte("# Disk DescriptorFile\nversion=1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		format, err := disk.Detect(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if format != "" {
				t.Fatalf("Detect = %q with error %v", format, err)
			}
			return
		}
		switch format {
		case "raw", "qcow2", "vmdk":
		default:
			t.Fatalf("Detect = %q", format)
		}
		if bytes.HasPrefix(data, []byte("# Disk DescriptorFile")) {
			t.Fatalf("descriptor file detected as %q", format)
		}
	})
}
