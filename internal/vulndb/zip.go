package vulndb

import (
	"archive/zip"
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Zip record signatures and sizes (APPNOTE.TXT).
const (
	sigFileHeader = 0x02014b50
	sigDirEnd     = 0x06054b50
	sigDir64Loc   = 0x07064b50
	sigDir64End   = 0x06064b50
	fileHeaderLen = 46
	dirEndLen     = 22
	dir64LocLen   = 20
	dir64EndLen   = 56
)

var errZipFormat = errors.New("not a valid zip file")

// countDirectory returns the number of file headers in the zip's central
// directory, stopping once it passes limit. It finds the directory as
// archive/zip does (the end record in the last 1 KiB, else 65 KiB, zip64
// records, and both offsets archive/zip may settle on) and counts the
// headers it would read, without keeping any: archive/zip reads headers
// until one fails to parse, whatever count the end record claims, and
// allocates a record for each, so the count must be bounded first.
func countDirectory(r io.ReaderAt, size int64, lim limits) (int64, error) {
	end, endOff, err := findDirEnd(r, size)
	if err != nil {
		return 0, err
	}
	dirSize := uint64(binary.LittleEndian.Uint32(end[12:]))
	dirOff := uint64(binary.LittleEndian.Uint32(end[16:]))
	records := binary.LittleEndian.Uint16(end[10:])
	if records == 0xffff || dirSize == 0xffff || dirOff == 0xffffffff {
		if p, ok := findDir64End(r, endOff); ok {
			var b [dir64EndLen]byte
			if _, err := r.ReadAt(b[:], p); err != nil {
				return 0, errZipFormat
			}
			if binary.LittleEndian.Uint32(b[:]) != sigDir64End {
				return 0, errZipFormat
			}
			endOff = p
			dirSize = binary.LittleEndian.Uint64(b[40:])
			dirOff = binary.LittleEndian.Uint64(b[48:])
		}
	}
	if dirSize > 1<<62 || dirOff > 1<<62 {
		return 0, errZipFormat
	}
	base := endOff - int64(dirSize) - int64(dirOff)
	if o := base + int64(dirOff); o < 0 || o >= size {
		return 0, errZipFormat
	}
	n, err := countHeaders(r, size, base+int64(dirOff), lim)
	if err != nil || base <= 0 {
		return n, err
	}
	// archive/zip falls back to a zero base offset when a header parses
	// there: count that directory too and take the larger.
	m, err := countHeaders(r, size, int64(dirOff), lim)
	return max(n, m), err
}

// findDirEnd returns the end-of-central-directory record and its offset.
func findDirEnd(r io.ReaderAt, size int64) ([]byte, int64, error) {
	for i, n := range []int64{1024, 65 * 1024} {
		n = min(n, size)
		buf := make([]byte, n)
		if _, err := r.ReadAt(buf, size-n); err != nil && err != io.EOF {
			return nil, 0, err
		}
		for p := len(buf) - dirEndLen; p >= 0; p-- {
			if binary.LittleEndian.Uint32(buf[p:]) != sigDirEnd {
				continue
			}
			comment := int(binary.LittleEndian.Uint16(buf[p+dirEndLen-2:]))
			if p+dirEndLen+comment > len(buf) {
				return nil, 0, errZipFormat // truncated comment: archive/zip gives up here too
			}
			return buf[p : p+dirEndLen], size - n + int64(p), nil
		}
		if i == 1 || n == size {
			break
		}
	}
	return nil, 0, errZipFormat
}

// findDir64End returns the offset of the zip64 end record that the zip64
// locator before the end record points to.
func findDir64End(r io.ReaderAt, endOff int64) (int64, bool) {
	loc := endOff - dir64LocLen
	if loc < 0 {
		return 0, false
	}
	var b [dir64LocLen]byte
	if _, err := r.ReadAt(b[:], loc); err != nil {
		return 0, false
	}
	if binary.LittleEndian.Uint32(b[:]) != sigDir64Loc || binary.LittleEndian.Uint32(b[4:]) != 0 ||
		binary.LittleEndian.Uint32(b[16:]) != 1 {
		return 0, false
	}
	p := binary.LittleEndian.Uint64(b[8:])
	if p > 1<<62 {
		return 0, false
	}
	return int64(p), true
}

// countHeaders counts consecutive central directory file headers from off,
// failing past lim.entries headers or lim.dirSize bytes.
func countHeaders(r io.ReaderAt, size, off int64, lim limits) (int64, error) {
	if off < 0 || off >= size {
		return 0, nil
	}
	br := bufio.NewReaderSize(io.NewSectionReader(r, off, size-off), 64<<10)
	var h [fileHeaderLen]byte
	var n, dirBytes int64
	for {
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return n, nil
		}
		if binary.LittleEndian.Uint32(h[:]) != sigFileHeader {
			return n, nil
		}
		skip := int(binary.LittleEndian.Uint16(h[28:])) + int(binary.LittleEndian.Uint16(h[30:])) +
			int(binary.LittleEndian.Uint16(h[32:]))
		if d, _ := br.Discard(skip); d != skip {
			return n, nil
		}
		n++
		if n > lim.entries {
			return n, fmt.Errorf("more than %d entries", lim.entries)
		}
		if dirBytes += int64(fileHeaderLen + skip); dirBytes > lim.dirSize {
			return n, fmt.Errorf("central directory of more than %d bytes", lim.dirSize)
		}
	}
}

// openZip checks the bounds that can be checked before reading entries and
// returns the archive.
func openZip(r io.ReaderAt, size int64, lim limits) (*zip.Reader, error) {
	if size > lim.zipSize {
		return nil, fmt.Errorf("%d bytes, more than the limit of %d", size, lim.zipSize)
	}
	if _, err := countDirectory(r, size, lim); err != nil {
		return nil, err
	}
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) { // names are never used as paths
		return nil, err
	}
	if int64(len(zr.File)) > lim.entries {
		return nil, fmt.Errorf("%d entries, more than the limit of %d", len(zr.File), lim.entries)
	}
	return zr, nil
}

// entryKind sorts a zip entry: an advisory to read, or something to skip.
func entryKind(f *zip.File) (advisory bool, err error) {
	if strings.IndexByte(f.Name, 0) >= 0 {
		return false, errors.New("file name contains NUL")
	}
	if f.Mode().IsDir() || strings.HasSuffix(f.Name, "/") {
		return false, nil
	}
	return strings.HasSuffix(f.Name, ".json"), nil
}

// readEntry decompresses one entry into buf, failing once more than max
// bytes come out, whatever the header claims.
func readEntry(f *zip.File, max int64, buf *bytes.Buffer) error {
	if f.UncompressedSize64 > uint64(max) {
		return fmt.Errorf("claims %d bytes, more than the limit of %d", f.UncompressedSize64, max)
	}
	rc, err := f.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	buf.Reset()
	n, err := buf.ReadFrom(io.LimitReader(rc, max+1))
	if err != nil {
		return err
	}
	if n > max {
		return fmt.Errorf("expands past the limit of %d bytes", max)
	}
	return nil
}
