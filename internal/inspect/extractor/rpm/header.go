package rpm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// An rpm header, as the rpm database stores it (lib/header.c, "on-disk"
// form without the 8-byte magic a package file puts before it):
//
//	il  uint32 BE   number of index entries
//	dl  uint32 BE   bytes of the data store
//	il × {tag int32, type uint32, offset int32, count uint32} (BE)
//	dl bytes of data
//
// The first entry may be a region tag (61-63) whose data is a 16-byte
// trailer; entries after the region (the "dribble", e.g. INSTALLTIME added
// at install) override region entries with the same tag.
const (
	// maxIndexEntries and maxHeaderData are rpm's own limits
	// (hdrchkTags, hdrchkData).
	maxIndexEntries = 0xffff
	maxHeaderData   = 256 << 20
	// MaxHeaderSize bounds one header blob.
	MaxHeaderSize = 8 + 16*maxIndexEntries + maxHeaderData
)

// Data types of index entries.
const (
	typeNull        = 0
	typeChar        = 1
	typeInt8        = 2
	typeInt16       = 3
	typeInt32       = 4
	typeInt64       = 5
	typeString      = 6
	typeBin         = 7
	typeStringArray = 8
	typeI18NString  = 9
)

// Tags read (lib/rpmtag.h).
const (
	tagHeaderImage      = 61
	tagHeaderSignatures = 62
	tagHeaderImmutable  = 63
	tagI18NTable        = 100
	tagName             = 1000
	tagVersion          = 1001
	tagRelease          = 1002
	tagEpoch            = 1003
	tagInstallTime      = 1008
	tagArch             = 1022
	tagOldFilenames     = 1027
	tagSourceRPM        = 1044
	tagDirIndexes       = 1116
	tagBasenames        = 1117
	tagDirnames         = 1118
)

// Header holds the fields of one installed package's header that the
// inventory uses.
type Header struct {
	Name, Version, Release string
	Epoch                  int32 // meaningful when HasEpoch
	HasEpoch               bool
	Arch                   string // empty for gpg-pubkey pseudo-packages
	SourceRPM              string // "bash-5.1.8-6.el9.src.rpm"; empty when none ("(none)")
	InstallTime            time.Time
	Files                  []string // absolute paths, from BASENAMES/DIRINDEXES/DIRNAMES or OLDFILENAMES
}

var (
	nameRE    = regexp.MustCompile(`^[A-Za-z0-9_+][A-Za-z0-9._+-]*$`)
	versionRE = regexp.MustCompile(`^[A-Za-z0-9._+~^]+$`) // rpm forbids '-' in version and release
	archRE    = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
)

// maxField bounds Name, Version, Release, Arch and SourceRPM.
const maxField = 256

// entry is one decoded index entry with its data.
type entry struct {
	typ   uint32
	count uint32
	data  []byte // exactly the entry's bytes
}

// ParseHeader decodes an rpm header blob strictly: il and dl within rpm's
// limits and matching the blob's length exactly; every entry's type known,
// its offset aligned and its data (strings NUL-terminated) inside the data
// store, in data order without overlap; tags below 100 only as the first
// (region) entry; at most MaxFiles paths; the tags used
// of the right type; NAME, VERSION and RELEASE present and well-formed;
// DIRINDEXES within DIRNAMES and as many as BASENAMES.
func ParseHeader(blob []byte) (*Header, error) {
	if len(blob) < 8 {
		return nil, fmt.Errorf("rpm header: %d bytes, too short", len(blob))
	}
	il := binary.BigEndian.Uint32(blob[0:])
	dl := binary.BigEndian.Uint32(blob[4:])
	if il < 1 || il > maxIndexEntries {
		return nil, fmt.Errorf("rpm header: %d index entries, want 1..%d", il, maxIndexEntries)
	}
	if dl > maxHeaderData {
		return nil, fmt.Errorf("rpm header: %d data bytes, limit %d", dl, maxHeaderData)
	}
	dataStart := 8 + 16*int64(il)
	if want := dataStart + int64(dl); int64(len(blob)) != want {
		return nil, fmt.Errorf("rpm header: %d bytes, want 8+16*%d+%d = %d", len(blob), il, dl, want)
	}
	data := blob[dataStart:]
	entries := make(map[int32]entry)
	// As rpm's hdrblobVerifyInfo does, entries after the region tag must
	// not overlap and come in data order; this also bounds the work of
	// scanning strings to one pass over the data store.
	var end int64
	for i := range int64(il) {
		e := blob[8+16*i : 8+16*i+16]
		tag := int32(binary.BigEndian.Uint32(e[0:]))
		typ := binary.BigEndian.Uint32(e[4:])
		off := int32(binary.BigEndian.Uint32(e[8:]))
		count := binary.BigEndian.Uint32(e[12:])
		region := i == 0 && (tag == tagHeaderImage || tag == tagHeaderSignatures || tag == tagHeaderImmutable)
		if tag < tagI18NTable && !region {
			return nil, fmt.Errorf("rpm header: entry %d: invalid tag %d", i, tag)
		}
		if region && (typ != typeBin || count != 16) {
			return nil, fmt.Errorf("rpm header: region tag %d: type %d count %d, want %d and 16", tag, typ, count, typeBin)
		}
		if !region && int64(off) < end {
			return nil, fmt.Errorf("rpm header: entry %d (tag %d): offset %d overlaps the previous entry", i, tag, off)
		}
		d, err := entryData(data, typ, off, count)
		if err != nil {
			return nil, fmt.Errorf("rpm header: entry %d (tag %d): %w", i, tag, err)
		}
		if !region {
			end = int64(off) + int64(len(d))
		}
		entries[tag] = entry{typ: typ, count: count, data: d} // later entries win
	}
	return decode(entries)
}

// entryData returns the bytes of an entry of type typ with count elements
// at off in data, checking alignment, bounds and string termination.
func entryData(data []byte, typ uint32, off int32, count uint32) ([]byte, error) {
	if off < 0 || int64(off) > int64(len(data)) {
		return nil, fmt.Errorf("offset %d outside the %d-byte data store", off, len(data))
	}
	rest := data[off:]
	switch typ {
	case typeNull:
		return nil, nil
	case typeChar, typeInt8, typeBin, typeInt16, typeInt32, typeInt64:
		size := map[uint32]int64{typeChar: 1, typeInt8: 1, typeBin: 1, typeInt16: 2, typeInt32: 4, typeInt64: 8}[typ]
		if int64(off)%size != 0 {
			return nil, fmt.Errorf("offset %d not aligned to %d", off, size)
		}
		n := size * int64(count)
		if count == 0 || n > int64(len(rest)) {
			return nil, fmt.Errorf("%d elements of %d bytes do not fit in %d bytes", count, size, len(rest))
		}
		return rest[:n], nil
	case typeString, typeStringArray, typeI18NString:
		if typ == typeString && count != 1 {
			return nil, fmt.Errorf("string with count %d", count)
		}
		if count == 0 || int64(count) > int64(len(rest)) {
			return nil, fmt.Errorf("%d strings do not fit in %d bytes", count, len(rest))
		}
		n := 0
		for range count {
			i := bytes.IndexByte(rest[n:], 0)
			if i < 0 {
				return nil, errors.New("string not NUL-terminated within the data store")
			}
			n += i + 1
		}
		return rest[:n], nil
	}
	return nil, fmt.Errorf("unknown type %d", typ)
}

// decode reads the tags the inventory uses.
func decode(entries map[int32]entry) (*Header, error) {
	var h Header
	var err error
	str := func(tag int32, dst *string, re *regexp.Regexp, required bool) {
		if err != nil {
			return
		}
		e, ok := entries[tag]
		if !ok {
			if required {
				err = fmt.Errorf("rpm header: no tag %d", tag)
			}
			return
		}
		if e.typ != typeString {
			err = fmt.Errorf("rpm header: tag %d has type %d, want string", tag, e.typ)
			return
		}
		s := string(e.data[:len(e.data)-1])
		if len(s) > maxField || (re != nil && !re.MatchString(s)) {
			err = fmt.Errorf("rpm header: tag %d: invalid value %q", tag, trunc(s))
			return
		}
		*dst = s
	}
	str(tagName, &h.Name, nameRE, true)
	str(tagVersion, &h.Version, versionRE, true)
	str(tagRelease, &h.Release, versionRE, true)
	if e, ok := entries[tagArch]; ok && e.typ == typeString && string(e.data) == "\x00" {
		delete(entries, tagArch) // an empty arch is absent
	}
	str(tagArch, &h.Arch, archRE, false)
	str(tagSourceRPM, &h.SourceRPM, nil, false)
	if err != nil {
		return nil, err
	}
	if h.SourceRPM == "(none)" {
		h.SourceRPM = ""
	}
	if e, ok := entries[tagEpoch]; ok {
		if e.typ != typeInt32 {
			return nil, fmt.Errorf("rpm header: EPOCH has type %d, want int32", e.typ)
		}
		h.Epoch = int32(binary.BigEndian.Uint32(e.data))
		if h.Epoch < 0 {
			return nil, fmt.Errorf("rpm header: negative EPOCH %d", h.Epoch)
		}
		h.HasEpoch = true
	}
	if e, ok := entries[tagInstallTime]; ok {
		if e.typ != typeInt32 {
			return nil, fmt.Errorf("rpm header: INSTALLTIME has type %d, want int32", e.typ)
		}
		// rpm stores the time as an unsigned 32-bit number of seconds.
		h.InstallTime = time.Unix(int64(binary.BigEndian.Uint32(e.data)), 0).UTC()
	}
	files, err := fileList(entries)
	if err != nil {
		return nil, err
	}
	h.Files = files
	return &h, nil
}

// fileList rebuilds the package's paths: DIRNAMES[DIRINDEXES[i]] +
// BASENAMES[i], or OLDFILENAMES in headers older than rpm 4.
func fileList(entries map[int32]entry) ([]string, error) {
	base, hasBase := entries[tagBasenames]
	if !hasBase {
		old, ok := entries[tagOldFilenames]
		if !ok {
			return nil, nil
		}
		if old.typ != typeStringArray {
			return nil, fmt.Errorf("rpm header: OLDFILENAMES has type %d, want string array", old.typ)
		}
		if old.count > MaxFiles {
			return nil, fmt.Errorf("rpm header: more than %d files", MaxFiles)
		}
		return splitStrings(old.data), nil
	}
	idx, okIdx := entries[tagDirIndexes]
	dirs, okDirs := entries[tagDirnames]
	switch {
	case !okIdx || !okDirs:
		return nil, errors.New("rpm header: BASENAMES without DIRINDEXES or DIRNAMES")
	case base.typ != typeStringArray || dirs.typ != typeStringArray || idx.typ != typeInt32:
		return nil, errors.New("rpm header: file list tags of the wrong type")
	case idx.count != base.count:
		return nil, fmt.Errorf("rpm header: %d DIRINDEXES for %d BASENAMES", idx.count, base.count)
	case base.count > MaxFiles || dirs.count > MaxFiles:
		return nil, fmt.Errorf("rpm header: more than %d files", MaxFiles)
	}
	names, dirNames := splitStrings(base.data), splitStrings(dirs.data)
	files := make([]string, len(names))
	for i, n := range names {
		d := binary.BigEndian.Uint32(idx.data[4*i:])
		if int64(d) >= int64(len(dirNames)) {
			return nil, fmt.Errorf("rpm header: DIRINDEXES[%d] = %d, only %d DIRNAMES", i, d, len(dirNames))
		}
		files[i] = dirNames[d] + n
	}
	return files, nil
}

// splitStrings splits NUL-terminated strings.
func splitStrings(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	parts := bytes.Split(b[:len(b)-1], []byte{0})
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = string(p)
	}
	return out
}

// trunc shortens s for an error message.
func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
