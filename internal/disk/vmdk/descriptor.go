package vmdk

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Descriptor bounds: the text is tiny in practice (qemu writes < 1 KiB).
const (
	maxExtents = 1024
	maxKeyLen  = 128
)

// descriptor holds the few descriptor fields the reader needs.
type descriptor struct {
	version    string
	createType string
	parentCID  string
	parentHint bool
	extents    []extent
}

// extent is one extent line: ACCESS SECTORS TYPE "FILE" [OFFSET].
type extent struct {
	access  string
	sectors uint64
	typ     string
	file    string
	offset  int64 // -1 when absent
}

func isAccessMode(s string) bool {
	return s == "RW" || s == "RDONLY" || s == "NOACCESS"
}

func isExtentType(s string) bool {
	switch s {
	case "SPARSE", "FLAT", "ZERO", "VMFS", "VMFSSPARSE", "VMFSRDM", "VMFSRAW", "SESPARSE":
		return true
	}
	return false
}

// parseDescriptor parses descriptor text strictly: every line is blank, a
// comment, key=value or an extent line, with no control characters.
func parseDescriptor(text []byte) (*descriptor, error) {
	if len(text) > maxDescBytes {
		return nil, fmt.Errorf("vmdk: descriptor: %d bytes exceeds %d", len(text), maxDescBytes)
	}
	d := &descriptor{}
	seen := map[string]bool{}
	for i, line := range strings.Split(string(text), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if err := checkChars(line); err != nil {
			return nil, fmt.Errorf("vmdk: descriptor line %d: %w", i+1, err)
		}
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if first, _, _ := strings.Cut(line, " "); isAccessMode(first) {
			if len(d.extents) == maxExtents {
				return nil, fmt.Errorf("vmdk: descriptor: more than %d extents", maxExtents)
			}
			e, err := parseExtent(line)
			if err != nil {
				return nil, fmt.Errorf("vmdk: descriptor line %d: %w", i+1, err)
			}
			d.extents = append(d.extents, e)
			continue
		}
		key, val, err := parseKV(line)
		if err != nil {
			return nil, fmt.Errorf("vmdk: descriptor line %d: %w", i+1, err)
		}
		if seen[key] {
			return nil, fmt.Errorf("vmdk: descriptor line %d: duplicate key %q", i+1, key)
		}
		seen[key] = true
		switch key {
		case "version":
			d.version = val
		case "createType":
			d.createType = val
		case "parentCID":
			d.parentCID = val
		case "parentFileNameHint":
			d.parentHint = true
		}
	}
	switch d.version {
	case "1", "2", "3":
	default:
		return nil, fmt.Errorf("vmdk: descriptor: version %q, want 1, 2 or 3", d.version)
	}
	if d.createType == "" {
		return nil, errors.New("vmdk: descriptor: no createType")
	}
	return d, nil
}

func checkChars(line string) error {
	for _, c := range []byte(line) {
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return fmt.Errorf("control character %#02x", c)
		}
	}
	return nil
}

// parseKV parses key=value or key = "value".
func parseKV(line string) (string, string, error) {
	key, val, ok := strings.Cut(line, "=")
	if !ok {
		return "", "", errors.New("neither key=value nor an extent")
	}
	key, val = strings.TrimSpace(key), strings.TrimSpace(val)
	if key == "" || len(key) > maxKeyLen || strings.IndexFunc(key, func(r rune) bool {
		return !(r == '.' || r == '_' || r == '-' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z')
	}) >= 0 {
		return "", "", fmt.Errorf("bad key %.40q", key)
	}
	if strings.HasPrefix(val, `"`) {
		if len(val) < 2 || !strings.HasSuffix(val, `"`) || strings.Contains(val[1:len(val)-1], `"`) {
			return "", "", fmt.Errorf("key %s: badly quoted value", key)
		}
		val = val[1 : len(val)-1]
	} else if strings.ContainsAny(val, "\" \t") {
		return "", "", fmt.Errorf("key %s: unquoted value with spaces or quotes", key)
	}
	return key, val, nil
}

// parseExtent parses ACCESS SECTORS TYPE "FILE" [OFFSET].
func parseExtent(line string) (extent, error) {
	e := extent{offset: -1}
	head, rest, ok := strings.Cut(line, `"`)
	if !ok {
		return e, errors.New("extent: no quoted file name")
	}
	name, tail, ok := strings.Cut(rest, `"`)
	if !ok {
		return e, errors.New("extent: unterminated file name")
	}
	f := strings.Fields(head)
	if len(f) != 3 {
		return e, errors.New("extent: want ACCESS SECTORS TYPE \"FILE\" [OFFSET]")
	}
	e.access, e.typ, e.file = f[0], f[2], name
	n, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil || n == 0 || strconv.FormatUint(n, 10) != f[1] {
		return e, fmt.Errorf("extent: bad sector count %.24q", f[1])
	}
	e.sectors = n
	if !isExtentType(e.typ) {
		return e, fmt.Errorf("extent: unknown type %.16q", e.typ)
	}
	switch t := strings.Fields(tail); len(t) {
	case 0:
	case 1:
		o, err := strconv.ParseInt(t[0], 10, 64)
		if err != nil || o < 0 || strconv.FormatInt(o, 10) != t[0] {
			return e, fmt.Errorf("extent: bad offset %.24q", t[0])
		}
		e.offset = o
	default:
		return e, errors.New("extent: trailing fields")
	}
	return e, nil
}

// checkMonolithic accepts only a self-contained single sparse extent that
// matches the header.
func (d *descriptor) checkMonolithic(h header) error {
	compressed := h.flags&flagCompress != 0
	switch d.createType {
	case "monolithicSparse":
		if compressed {
			return errors.New("vmdk: descriptor: monolithicSparse with compressed grains")
		}
	case "streamOptimized":
		if !compressed {
			return errors.New("vmdk: descriptor: streamOptimized without compressed grains")
		}
	default:
		return fmt.Errorf("%w: createType %.40q", ErrExternalFile, d.createType)
	}
	if d.parentHint || (d.parentCID != "" && !strings.EqualFold(d.parentCID, "ffffffff")) {
		return fmt.Errorf("%w: child image (parentCID %.16q)", ErrExternalFile, d.parentCID)
	}
	if len(d.extents) != 1 {
		return fmt.Errorf("%w: %d extents", ErrExternalFile, len(d.extents))
	}
	e := d.extents[0]
	if e.typ != "SPARSE" || e.offset != -1 {
		return fmt.Errorf("%w: extent type %s", ErrExternalFile, e.typ)
	}
	if e.access == "NOACCESS" {
		return errors.New("vmdk: descriptor: extent is NOACCESS")
	}
	if e.sectors != h.capacity {
		return fmt.Errorf("vmdk: descriptor: extent of %d sectors, header says %d", e.sectors, h.capacity)
	}
	return nil
}

// readDescriptor reads the descriptor embedded in a sparse extent.
func readDescriptor(r io.ReaderAt, fileSize int64, h header) (*descriptor, error) {
	if h.descOffset == 0 || h.descSize == 0 {
		// A hosted sparse extent without a descriptor is one part of a
		// multi-file disk whose descriptor lives elsewhere.
		return nil, fmt.Errorf("%w: sparse extent without an embedded descriptor", ErrExternalFile)
	}
	if h.descSize > maxDescBytes/sectorSize {
		return nil, fmt.Errorf("vmdk: descriptor of %d sectors exceeds %d bytes", h.descSize, maxDescBytes)
	}
	n := int64(h.descSize) * sectorSize
	off, ok := sectorRange(h.descOffset, n, fileSize)
	if !ok {
		return nil, fmt.Errorf("vmdk: descriptor at sector %d outside file", h.descOffset)
	}
	buf := make([]byte, n)
	if err := readFull(r, buf, off); err != nil {
		return nil, fmt.Errorf("vmdk: descriptor: %w", err)
	}
	// The text ends at the first NUL. What follows is padding that is not
	// always zero: qemu-img's streamOptimized writer has been seen leaving
	// other bytes there. QEMU ignores it; so do we (it is never parsed).
	text, _, _ := bytes.Cut(buf, []byte{0})
	return parseDescriptor(text)
}

// isDescriptorText reports whether the file starts like a text descriptor.
func isDescriptorText(r io.ReaderAt, fileSize int64) bool {
	const probe = len("# Disk DescriptorFile")
	if fileSize < int64(probe) || fileSize > maxDescBytes {
		return false
	}
	buf := make([]byte, probe)
	if readFull(r, buf, 0) != nil {
		return false
	}
	return string(buf) == "# Disk DescriptorFile" || bytes.HasPrefix(buf, []byte("version="))
}

// refuseDescriptorOnly explains why a descriptor-only file is refused. It
// parses the text (bounded) only to name the extents in the error.
func refuseDescriptorOnly(r io.ReaderAt, fileSize int64) error {
	buf := make([]byte, fileSize) // fileSize <= maxDescBytes, see isDescriptorText
	if err := readFull(r, buf, 0); err != nil {
		return fmt.Errorf("vmdk: descriptor: %w", err)
	}
	d, err := parseDescriptor(buf)
	if err != nil {
		return fmt.Errorf("%w: descriptor-only file (%v)", ErrExternalFile, err)
	}
	if len(d.extents) == 0 {
		return fmt.Errorf("%w: descriptor-only file (createType %.40q, no extents)", ErrExternalFile, d.createType)
	}
	e := d.extents[0]
	return fmt.Errorf("%w: descriptor-only file (createType %.40q, %d extents, first %s %.64q)",
		ErrExternalFile, d.createType, len(d.extents), e.typ, e.file)
}
