package kernel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The x86 boot protocol (Documentation/arch/x86/boot.rst) puts a setup
// header in the first sectors of a bzImage:
//
//	0x1F1  u8   setup_sects    sectors of real-mode setup after the boot sector (0 means 4)
//	0x1FE  u16  boot_flag      0xAA55
//	0x202  u32  header         "HdrS"
//	0x206  u16  version        boot protocol version, >= 0x0200
//	0x20E  u16  kernel_version offset of a NUL-terminated version string, less 0x200
//
// The string ("6.1.0-18-amd64 (debian-kernel@...) #1 SMP ...") lies in the
// setup code, so it must end within (setup_sects+1)*512 bytes; the kernel
// release is its first word.
const (
	offSetupSects   = 0x1F1
	offBootFlag     = 0x1FE
	offHeaderMagic  = 0x202
	offProtoVersion = 0x206
	offKernelVer    = 0x20E
	headerEnd       = 0x210

	bootFlag = 0xAA55
	// maxVersionString bounds the bytes read for the version string.
	maxVersionString = 256
)

// errNoVersion means the image is a valid bzImage that carries no version
// string (kernel_version is 0).
var errNoVersion = errors.New("bzimage: no kernel_version string")

// BzImageVersion reads the kernel release ("6.1.0-18-amd64") from the setup
// header of the bzImage in r, which is size bytes long. It reads at most
// headerEnd + maxVersionString bytes.
func BzImageVersion(r io.ReaderAt, size int64) (string, error) {
	if size < headerEnd {
		return "", fmt.Errorf("bzimage: %d bytes, too short for a setup header", size)
	}
	var h [headerEnd]byte
	if m, err := r.ReadAt(h[:], 0); m < len(h) {
		return "", fmt.Errorf("bzimage: setup header: short read (%d of %d bytes): %v", m, len(h), err)
	}
	if binary.LittleEndian.Uint16(h[offBootFlag:]) != bootFlag || string(h[offHeaderMagic:offHeaderMagic+4]) != "HdrS" {
		return "", errors.New("bzimage: no setup header (boot flag or HdrS magic missing)")
	}
	if v := binary.LittleEndian.Uint16(h[offProtoVersion:]); v < 0x0200 {
		return "", fmt.Errorf("bzimage: boot protocol %#x predates kernel_version", v)
	}
	ptr := int64(binary.LittleEndian.Uint16(h[offKernelVer:]))
	if ptr == 0 {
		return "", errNoVersion
	}
	setupSects := int64(h[offSetupSects])
	if setupSects == 0 {
		setupSects = 4
	}
	start := ptr + 0x200
	limit := min((setupSects+1)*512, size) // the string lies in the setup code
	if start < headerEnd || start >= limit {
		return "", fmt.Errorf("bzimage: kernel_version offset %#x outside the setup code (%#x bytes)", start, limit)
	}
	n := min(limit-start, maxVersionString)
	buf := make([]byte, n)
	if m, err := r.ReadAt(buf, start); m < len(buf) {
		return "", fmt.Errorf("bzimage: version string: short read (%d of %d bytes): %v", m, len(buf), err)
	}
	end := bytes.IndexByte(buf, 0)
	if end < 0 {
		return "", fmt.Errorf("bzimage: version string not terminated within %d bytes", n)
	}
	release, _, _ := bytes.Cut(buf[:end], []byte(" "))
	if !validVersion(string(release)) {
		return "", fmt.Errorf("bzimage: invalid kernel release %q", release)
	}
	return string(release), nil
}
