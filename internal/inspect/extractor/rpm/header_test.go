package rpm

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/internal/inspect/extractor/extractortest"
)

// hentry is one index entry for buildHeader.
type hentry struct {
	tag, typ uint32
	count    uint32
	data     []byte
	off      int32 // used when rawOff is set
	rawOff   bool
}

func str(tag uint32, s string) hentry {
	return hentry{tag: tag, typ: typeString, count: 1, data: []byte(s + "\x00")}
}

func strs(tag uint32, ss ...string) hentry {
	var b []byte
	for _, s := range ss {
		b = append(b, s...)
		b = append(b, 0)
	}
	return hentry{tag: tag, typ: typeStringArray, count: uint32(len(ss)), data: b}
}

func i32(tag uint32, vs ...uint32) hentry {
	b := make([]byte, 4*len(vs))
	for i, v := range vs {
		binary.BigEndian.PutUint32(b[4*i:], v)
	}
	return hentry{tag: tag, typ: typeInt32, count: uint32(len(vs)), data: b}
}

// buildHeader lays out entries the way rpm does: data in entry order,
// aligned for its type. With region set, an immutable region tag comes
// first, its trailer after the data of the others.
func buildHeader(region bool, es ...hentry) []byte {
	var data []byte
	type placed struct {
		e   hentry
		off int32
	}
	var ps []placed
	for _, e := range es {
		align := map[uint32]int{typeInt16: 2, typeInt32: 4, typeInt64: 8}[e.typ]
		for align > 0 && len(data)%align != 0 {
			data = append(data, 0)
		}
		off := int32(len(data))
		if e.rawOff {
			off = e.off
		}
		ps = append(ps, placed{e, off})
		data = append(data, e.data...)
	}
	if region {
		trailer := make([]byte, 16)
		binary.BigEndian.PutUint32(trailer[0:], tagHeaderImmutable)
		binary.BigEndian.PutUint32(trailer[4:], typeBin)
		binary.BigEndian.PutUint32(trailer[8:], uint32(-int32(16*(len(es)+1))))
		binary.BigEndian.PutUint32(trailer[12:], 16)
		ps = append([]placed{{hentry{tag: tagHeaderImmutable, typ: typeBin, count: 16}, int32(len(data))}}, ps...)
		data = append(data, trailer...)
	}
	b := make([]byte, 8, 8+16*len(ps)+len(data))
	binary.BigEndian.PutUint32(b[0:], uint32(len(ps)))
	binary.BigEndian.PutUint32(b[4:], uint32(len(data)))
	for _, p := range ps {
		var e [16]byte
		binary.BigEndian.PutUint32(e[0:], p.e.tag)
		binary.BigEndian.PutUint32(e[4:], p.e.typ)
		binary.BigEndian.PutUint32(e[8:], uint32(p.off))
		binary.BigEndian.PutUint32(e[12:], p.e.count)
		b = append(b, e[:]...)
	}
	return append(b, data...)
}

// bashHeader is a plausible installed header: region, then dribble entries.
func bashHeader() []hentry {
	return []hentry{
		str(tagName, "bash"), str(tagVersion, "5.1.8"), str(tagRelease, "6.el9"),
		i32(tagEpoch, 0), str(tagArch, "x86_64"), str(tagSourceRPM, "bash-5.1.8-6.el9.src.rpm"),
		i32(tagDirIndexes, 0, 0, 1), strs(tagBasenames, "bash", "sh", "bashrc"), strs(tagDirnames, "/usr/bin/", "/etc/skel/"),
		i32(tagInstallTime, 1700000000),
	}
}

func TestParseHeader(t *testing.T) {
	installed := time.Unix(1700000000, 0).UTC()
	tests := []struct {
		name    string
		blob    []byte
		want    *Header
		wantErr string
	}{
		{name: "region and file list", blob: buildHeader(true, bashHeader()...), want: &Header{
			Name: "bash", Version: "5.1.8", Release: "6.el9", HasEpoch: true, Arch: "x86_64",
			SourceRPM: "bash-5.1.8-6.el9.src.rpm", InstallTime: installed,
			Files: []string{"/usr/bin/bash", "/usr/bin/sh", "/etc/skel/bashrc"},
		}},
		{name: "dribble entry overrides the region", blob: buildHeader(true, str(tagName, "a"), str(tagVersion, "1"), str(tagRelease, "1"), i32(tagInstallTime, 1), i32(tagInstallTime, 1700000000)), want: &Header{
			Name: "a", Version: "1", Release: "1", InstallTime: installed,
		}},
		{name: "gpg-pubkey without arch, epoch or source", blob: buildHeader(false, str(tagName, "gpg-pubkey"), str(tagVersion, "fd431d51"), str(tagRelease, "4ae0493b"), str(tagSourceRPM, "(none)")), want: &Header{
			Name: "gpg-pubkey", Version: "fd431d51", Release: "4ae0493b",
		}},
		{name: "old file names and epoch", blob: buildHeader(false, str(tagName, "old"), str(tagVersion, "1.0"), str(tagRelease, "1"), i32(tagEpoch, 2), strs(tagOldFilenames, "/bin/old", "/etc/old")), want: &Header{
			Name: "old", Version: "1.0", Release: "1", Epoch: 2, HasEpoch: true, Files: []string{"/bin/old", "/etc/old"},
		}},

		{name: "too short", blob: []byte{0, 0, 0, 1}, wantErr: "too short"},
		{name: "no entries", blob: []byte{0, 0, 0, 0, 0, 0, 0, 0}, wantErr: "index entries"},
		{name: "too many entries", blob: []byte{0, 1, 0, 0, 0, 0, 0, 0}, wantErr: "index entries"},
		{name: "data too large", blob: []byte{0, 0, 0, 1, 0x10, 0, 0, 1}, wantErr: "data bytes"},
		{name: "length mismatch", blob: append(buildHeader(false, bashHeader()...), 0), wantErr: "want 8+16"},
		{name: "truncated", blob: buildHeader(false, bashHeader()...)[:100], wantErr: "want 8+16"},
		{name: "unknown type", blob: buildHeader(false, str(tagName, "a"), hentry{tag: 5000, typ: 10, count: 1, data: []byte{0}}), wantErr: "unknown type"},
		{name: "misaligned int32", blob: buildHeader(false, str(tagName, "a"), hentry{tag: tagEpoch, typ: typeInt32, count: 1, data: []byte{0, 0, 0, 0}, rawOff: true, off: 5}), wantErr: "not aligned"},
		{name: "int32 array past the data", blob: buildHeader(false, str(tagName, "a"), hentry{tag: tagDirIndexes, typ: typeInt32, count: 1 << 30, data: []byte{0, 0, 0, 0}}), wantErr: "do not fit"},
		{name: "string not terminated", blob: buildHeader(false, hentry{tag: tagName, typ: typeString, count: 1, data: []byte("abc")}), wantErr: "not NUL-terminated"},
		{name: "string array count too large", blob: buildHeader(false, hentry{tag: tagBasenames, typ: typeStringArray, count: 1 << 31, data: []byte("a\x00")}), wantErr: "do not fit"},
		{name: "string with count 2", blob: buildHeader(false, hentry{tag: tagName, typ: typeString, count: 2, data: []byte("a\x00b\x00")}), wantErr: "count 2"},
		{name: "negative offset", blob: buildHeader(false, hentry{tag: tagName, typ: typeString, count: 1, data: []byte("a\x00"), rawOff: true, off: -4}), wantErr: "offset -4"},
		{name: "overlapping entries", blob: buildHeader(false, str(tagName, "aaaa"), hentry{tag: tagVersion, typ: typeString, count: 1, data: []byte("1\x00"), rawOff: true, off: 0}), wantErr: "overlaps"},
		{name: "low tag not first", blob: buildHeader(false, str(tagName, "a"), hentry{tag: 63, typ: typeBin, count: 16, data: make([]byte, 16)}), wantErr: "invalid tag 63"},
		{name: "bad region entry", blob: buildHeader(false, hentry{tag: tagHeaderImmutable, typ: typeInt32, count: 4, data: make([]byte, 16)}), wantErr: "region tag"},
		{name: "no name", blob: buildHeader(false, str(tagVersion, "1"), str(tagRelease, "1")), wantErr: "no tag 1000"},
		{name: "name of the wrong type", blob: buildHeader(false, i32(tagName, 1), str(tagVersion, "1"), str(tagRelease, "1")), wantErr: "want string"},
		{name: "version with a hyphen", blob: buildHeader(false, str(tagName, "a"), str(tagVersion, "1-2"), str(tagRelease, "1")), wantErr: "invalid value"},
		{name: "name with a newline", blob: buildHeader(false, str(tagName, "a\nb"), str(tagVersion, "1"), str(tagRelease, "1")), wantErr: "invalid value"},
		{name: "non-UTF-8 arch", blob: buildHeader(false, str(tagName, "a"), str(tagVersion, "1"), str(tagRelease, "1"), str(tagArch, "x\xff")), wantErr: "invalid value"},
		{name: "dir index out of range", blob: buildHeader(false, str(tagName, "a"), str(tagVersion, "1"), str(tagRelease, "1"), i32(tagDirIndexes, 5), strs(tagBasenames, "f"), strs(tagDirnames, "/")), wantErr: "only 1 DIRNAMES"},
		{name: "dir index count mismatch", blob: buildHeader(false, str(tagName, "a"), str(tagVersion, "1"), str(tagRelease, "1"), i32(tagDirIndexes, 0, 0), strs(tagBasenames, "f"), strs(tagDirnames, "/")), wantErr: "DIRINDEXES for"},
		{name: "basenames without dirnames", blob: buildHeader(false, str(tagName, "a"), str(tagVersion, "1"), str(tagRelease, "1"), strs(tagBasenames, "f")), wantErr: "without DIRINDEXES"},
		{name: "epoch of the wrong type", blob: buildHeader(false, str(tagName, "a"), str(tagVersion, "1"), str(tagRelease, "1"), str(tagEpoch, "1")), wantErr: "EPOCH"},
		{name: "negative epoch", blob: buildHeader(false, str(tagName, "a"), str(tagVersion, "1"), str(tagRelease, "1"), i32(tagEpoch, 0xffffffff)), wantErr: "negative EPOCH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseHeader(tt.blob)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || got != nil {
					t.Fatalf("ParseHeader() = %+v, %v; want nil and an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseHeader() error = %v", err)
			}
			if diff := extractortest.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseHeader():\n%s", diff)
			}
		})
	}
}

func TestParseSourceRPM(t *testing.T) {
	tests := []struct {
		in                     string
		name, version, release string
		wantErr                bool
	}{
		{in: "bash-5.1.8-6.el9.src.rpm", name: "bash", version: "5.1.8", release: "6.el9"},
		{in: "python3-dnf-plugins-core-4.3.0-5.el9.src.rpm", name: "python3-dnf-plugins-core", version: "4.3.0", release: "5.el9"},
		{in: "kernel-5.14.0-362.8.1.el9_3.nosrc.rpm", name: "kernel", version: "5.14.0", release: "362.8.1.el9_3"},
		{in: "libstdc++-11.2.1-1.fc35.src.rpm", name: "libstdc++", version: "11.2.1", release: "1.fc35"},
		{in: "bash-5.1.8-6.el9.rpm", wantErr: true},
		{in: "bash.src.rpm", wantErr: true},
		{in: "bash-5.1.8.src.rpm", wantErr: true},
		{in: "-5.1.8-6.src.rpm", wantErr: true},
		{in: "bash-5.1.8-.src.rpm", wantErr: true},
		{in: "ba sh-5.1.8-6.src.rpm", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			n, v, r, err := ParseSourceRPM(tt.in)
			if (err != nil) != tt.wantErr || n != tt.name || v != tt.version || r != tt.release {
				t.Errorf("ParseSourceRPM(%q) = %q, %q, %q, %v; want %q, %q, %q, error %v", tt.in, n, v, r, err, tt.name, tt.version, tt.release, tt.wantErr)
			}
		})
	}
}

func TestPackage(t *testing.T) {
	h, err := ParseHeader(buildHeader(true, append(bashHeader()[:3], i32(tagEpoch, 1), str(tagArch, "x86_64"), str(tagSourceRPM, "bash-5.1.8-6.el9.src.rpm"))...))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Package(h)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != "1:5.1.8-6.el9" || got.SourceName != "bash" || got.SourceVersion != "1:5.1.8-6.el9" || got.Manager != "rpm" || got.Arch != "x86_64" {
		t.Errorf("Package() = %+v", got)
	}
	h.SourceRPM = "garbage"
	if p, err := Package(h); err == nil {
		t.Errorf("Package(bad SOURCERPM) = %+v, want an error", p)
	}
}
