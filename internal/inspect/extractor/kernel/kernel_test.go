package kernel

import (
	"bytes"
	"encoding/binary"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/vmtrust/vmtrust/internal/fsys/fsystest"
	"github.com/vmtrust/vmtrust/internal/inspect/extractor/extractortest"
	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

// bzImage builds the start of an x86 bzImage whose setup header points at
// version, placed at offset at (0 for the usual place).
func bzImage(version string, at int) []byte {
	const setupSects = 27
	b := make([]byte, (setupSects+1)*512+1024)
	b[offSetupSects] = setupSects
	binary.LittleEndian.PutUint16(b[offBootFlag:], bootFlag)
	copy(b[offHeaderMagic:], "HdrS")
	binary.LittleEndian.PutUint16(b[offProtoVersion:], 0x020f)
	if at == 0 {
		at = 0x3000
	}
	binary.LittleEndian.PutUint16(b[offKernelVer:], uint16(at-0x200))
	copy(b[at:], version+"\x00")
	return b
}

const debianVersion = "6.1.0-18-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)"

func TestBzImageVersion(t *testing.T) {
	edit := func(f func([]byte) []byte) []byte { return f(bzImage(debianVersion, 0)) }
	tests := []struct {
		name    string
		in      []byte
		want    string
		wantErr string
	}{
		{name: "debian", in: bzImage(debianVersion, 0), want: "6.1.0-18-amd64"},
		{name: "alpine lts", in: bzImage("6.6.14-0-lts (buildozer@build-3-19-x86_64) #1-Alpine SMP", 0), want: "6.6.14-0-lts"},
		{name: "release only", in: bzImage("5.14.0-362.8.1.el9_3.x86_64", 0), want: "5.14.0-362.8.1.el9_3.x86_64"},
		{name: "setup_sects 0 means 4", in: edit(func(b []byte) []byte {
			b[offSetupSects] = 0
			binary.LittleEndian.PutUint16(b[offKernelVer:], 0x400)
			copy(b[0x600:], "4.19.0-1\x00")
			return b
		}), want: "4.19.0-1"},

		{name: "too short", in: make([]byte, 0x100), wantErr: "too short"},
		{name: "no boot flag", in: edit(func(b []byte) []byte { b[offBootFlag] = 0; return b }), wantErr: "no setup header"},
		{name: "no HdrS", in: edit(func(b []byte) []byte { b[offHeaderMagic] = 'X'; return b }), wantErr: "no setup header"},
		{name: "old protocol", in: edit(func(b []byte) []byte { binary.LittleEndian.PutUint16(b[offProtoVersion:], 0x0100); return b }), wantErr: "predates"},
		{name: "no version pointer", in: edit(func(b []byte) []byte { binary.LittleEndian.PutUint16(b[offKernelVer:], 0); return b }), wantErr: "no kernel_version"},
		{name: "pointer past the setup code", in: edit(func(b []byte) []byte { binary.LittleEndian.PutUint16(b[offKernelVer:], 0xff00); return b }), wantErr: "outside the setup code"},
		{name: "pointer into the header", in: edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint16(b[offKernelVer:], 0)
			b[offKernelVer] = 1
			return b
		}), wantErr: "outside the setup code"},
		{name: "pointer past the file", in: edit(func(b []byte) []byte { return b[:0x2000] }), wantErr: "outside the setup code"},
		{name: "unterminated string", in: edit(func(b []byte) []byte { copy(b[0x3000:], bytes.Repeat([]byte("6"), 300)); return b }), wantErr: "not terminated"},
		{name: "string cut by the end of the file", in: edit(func(b []byte) []byte { return b[:0x3005] }), wantErr: "not terminated"},
		{name: "garbage release", in: edit(func(b []byte) []byte { copy(b[0x3000:], "\xff\xfe\x00"); return b }), wantErr: "invalid kernel release"},
		{name: "empty release", in: edit(func(b []byte) []byte { b[0x3000] = 0; return b }), wantErr: "invalid kernel release"},
		{name: "release with a slash", in: edit(func(b []byte) []byte { copy(b[0x3000:], "6.1/../../x\x00"); return b }), wantErr: "invalid kernel release"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := BzImageVersion(bytes.NewReader(tt.in), int64(len(tt.in)))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || got != "" {
					t.Fatalf("BzImageVersion() = %q, %v; want \"\" and an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("BzImageVersion() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestBzImageVersionReal reads a real kernel when VMTRUST_KERNEL names one
// (e.g. a Debian linux-image's /boot/vmlinuz-*); its release is the part
// of the file name after "vmlinuz-".
func TestBzImageVersionReal(t *testing.T) {
	p := os.Getenv("VMTRUST_KERNEL")
	if p == "" {
		t.Skip("set VMTRUST_KERNEL to a /boot/vmlinuz-RELEASE file to test a real bzImage")
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	got, err := BzImageVersion(f, fi.Size())
	_, want, _ := strings.Cut(fi.Name(), "vmlinuz-")
	if err != nil || got != want {
		t.Errorf("BzImageVersion(%s) = %q, %v; want %q", p, got, err, want)
	}
}

func TestFind(t *testing.T) {
	dir := func() *fsystest.MapFile { return &fsystest.MapFile{Mode: fs.ModeDir | 0o755} }
	img := func(v string) *fsystest.MapFile { return &fsystest.MapFile{Data: bzImage(v, 0), Mode: 0o644} }
	tests := []struct {
		name string
		fs   fsystest.MapFS
		want []inventory.Kernel
	}{
		{name: "debian with two kernels and modules", fs: fsystest.MapFS{
			"/boot/vmlinuz-6.1.0-18-amd64":                img(debianVersion),
			"/boot/vmlinuz-6.1.0-9-amd64":                 img("6.1.0-9-amd64"),
			"/boot/System.map-6.1.0-18-amd64":             {Data: []byte("x")},
			"/boot/vmlinuz.old":                           {Target: "vmlinuz-6.1.0-9-amd64"},
			"/vmlinuz":                                    {Target: "boot/vmlinuz-6.1.0-18-amd64"},
			"/lib":                                        {Target: "usr/lib"},
			"/usr/lib/modules/6.1.0-18-amd64/kernel":      dir(),
			"/usr/lib/modules/6.1.0-9-amd64/modules.dep":  {Data: []byte("x")},
			"/usr/lib/modules/6.1.0-10-amd64/kernel/x.ko": {Data: []byte("x")}, // modules left after removal
			"/usr/lib/modules/6.1.0-11-amd64/readme":      {Data: []byte("x")}, // neither modules nor image
			"/usr/lib/modules/not-a-version/kernel":       dir(),
			"/usr/lib/modules/6.1.0-12-amd64":             {Data: []byte("a file")},
		}, want: []inventory.Kernel{
			{Version: "6.1.0-9-amd64", Path: "/boot/vmlinuz-6.1.0-9-amd64"},
			{Version: "6.1.0-10-amd64", Path: "/usr/lib/modules/6.1.0-10-amd64"},
			{Version: "6.1.0-18-amd64", Path: "/boot/vmlinuz-6.1.0-18-amd64"},
		}},
		{name: "rhel keeps the image beside the modules", fs: fsystest.MapFS{
			"/boot/vmlinuz-5.14.0-362.8.1.el9_3.x86_64":               img("5.14.0-362.8.1.el9_3.x86_64"),
			"/boot/vmlinuz-0-rescue-4b1d3c1a8e6f4d2b9c7e5a3f1d0b2c4e": img("5.14.0-70.13.1.el9_0.x86_64"),
			"/lib/modules/5.14.0-362.8.1.el9_3.x86_64/vmlinuz":        img("5.14.0-362.8.1.el9_3.x86_64"),
			"/lib/modules/5.14.0-427.13.1.el9_4.x86_64/vmlinuz":       img("5.14.0-427.13.1.el9_4.x86_64"),
		}, want: []inventory.Kernel{
			{Version: "5.14.0-70.13.1.el9_0.x86_64", Path: "/boot/vmlinuz-0-rescue-4b1d3c1a8e6f4d2b9c7e5a3f1d0b2c4e"},
			{Version: "5.14.0-362.8.1.el9_3.x86_64", Path: "/boot/vmlinuz-5.14.0-362.8.1.el9_3.x86_64"},
			{Version: "5.14.0-427.13.1.el9_4.x86_64", Path: "/lib/modules/5.14.0-427.13.1.el9_4.x86_64/vmlinuz"},
		}},
		{name: "alpine flavours read from the header", fs: fsystest.MapFS{
			"/boot/vmlinuz-lts":  img("6.6.14-0-lts (buildozer@build) #1-Alpine SMP"),
			"/boot/vmlinuz-virt": img("6.6.14-0-virt (buildozer@build) #1-Alpine SMP"),
			"/boot/vmlinux":      {Data: []byte("\x7fELF not a bzImage")},
		}, want: []inventory.Kernel{
			{Version: "6.6.14-0-lts", Path: "/boot/vmlinuz-lts"},
			{Version: "6.6.14-0-virt", Path: "/boot/vmlinuz-virt"},
			{Version: "", Path: "/boot/vmlinux"},
		}},
		{name: "no kernels", fs: fsystest.MapFS{"/etc/hostname": {Data: []byte("x")}}, want: nil},
		{name: "boot is a file, modules a dangling link", fs: fsystest.MapFS{"/boot": {Data: []byte("x")}, "/lib/modules": {Target: "/nowhere"}}, want: nil},
		{name: "boot links out of the guest", fs: fsystest.MapFS{"/boot/vmlinuz-6.1.0-1-amd64": {Target: "../../../../../boot/vmlinuz"}}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Find(extractortest.Root(tt.fs))
			if err != nil {
				t.Fatalf("Find() error = %v", err)
			}
			if diff := extractortest.Diff(tt.want, got); diff != "" {
				t.Errorf("Find():\n%s", diff)
			}
		})
	}
}

func TestFindErrors(t *testing.T) {
	many := fsystest.MapFS{}
	for i := range MaxCandidates + 1 {
		many["/boot/vmlinuz-1."+strings.Repeat("0", i%7)+string(rune('a'+i%26))+"-"+strconv.Itoa(i)] = &fsystest.MapFile{Data: []byte("x")}
	}
	tests := []struct {
		name    string
		fs      fsystest.MapFS
		wantErr string
	}{
		{name: "too many candidates", fs: many, wantErr: "more than 1024 candidates"},
		{name: "boot link loop", fs: fsystest.MapFS{"/boot": {Target: "boot"}}, wantErr: "too many levels"},
		{name: "modules escape the guest", fs: fsystest.MapFS{"/lib/modules": {Target: "../../.."}}, wantErr: "leaves the guest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Find(extractortest.FastRoot(t, tt.fs))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || got != nil {
				t.Fatalf("Find() = %v, %v; want nil and an error containing %q", got, err, tt.wantErr)
			}
		})
	}
}

func TestCompareVersions(t *testing.T) {
	ordered := []string{"4.19.0", "5.4.0-1", "5.14.0-70.el9", "5.14.0-362.el9", "6.1.0-9-amd64", "6.1.0-10-amd64", "6.1.0-18-amd64", "6.1.0-18-amd64a", "6.10.0"}
	for i := range ordered {
		for j := range ordered {
			got := compareVersions(ordered[i], ordered[j])
			want := 0
			switch {
			case i < j:
				want = -1
			case i > j:
				want = 1
			}
			if got != want {
				t.Errorf("compareVersions(%q, %q) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
}
