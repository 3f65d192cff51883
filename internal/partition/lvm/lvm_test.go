package lvm

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const mib = 1 << 20

// stamp marks every extent of a device with its physical extent number.
func stamp(d []byte, peStart, extent int64) {
	for pe := int64(0); peStart+(pe+1)*extent <= int64(len(d)); pe++ {
		off := peStart + pe*extent
		copy(d[off:], fmt.Sprintf("PE%06d", pe))
		copy(d[off+extent-8:], fmt.Sprintf("pe%06d", pe))
	}
}

// checkVolume reads a linear volume whole and checks that logical extent
// i holds physical extent pes[i].
func checkVolume(t *testing.T, vg *VolumeGroup, name string, pes []int64) {
	t.Helper()
	r, err := vg.Open(name)
	if err != nil {
		t.Fatalf("Open(%s) = %v", name, err)
	}
	if want := int64(len(pes)) * vg.ExtentSize; r.Size() != want {
		t.Fatalf("Open(%s).Size() = %d, want %d", name, r.Size(), want)
	}
	all, err := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
	if err != nil {
		t.Fatalf("reading %s: %v", name, err)
	}
	for le, pe := range pes {
		ext := all[int64(le)*vg.ExtentSize:][:vg.ExtentSize]
		if head, tail := string(ext[:8]), string(ext[len(ext)-8:]); head != fmt.Sprintf("PE%06d", pe) || tail != fmt.Sprintf("pe%06d", pe) {
			t.Errorf("%s extent %d = %q...%q, want physical extent %d", name, le, head, tail, pe)
		}
	}
	// A read across the segment boundaries at an odd offset.
	buf := make([]byte, vg.ExtentSize+17)
	if n, err := r.ReadAt(buf, vg.ExtentSize/2+3); err != nil && !(err == io.EOF && n > 0) {
		t.Errorf("ReadAt across extents = %d, %v", n, err)
	} else if !bytes.Equal(buf[:n], all[vg.ExtentSize/2+3:][:n]) {
		t.Errorf("ReadAt across extents returned other bytes than a whole read")
	}
	if n, err := r.ReadAt(buf[:1], r.Size()); n != 0 || err != io.EOF {
		t.Errorf("ReadAt(Size()) = %d, %v; want 0, EOF", n, err)
	}
}

// lvmTool runs an lvm2 command confined to one loop device, without
// touching /etc/lvm (backups off, LVM_SYSTEM_DIR in a temp dir).
type lvmTool struct {
	t      *testing.T
	loop   string
	sysDir string
}

func (l lvmTool) run(args ...string) []byte {
	l.t.Helper()
	cfg := fmt.Sprintf(`devices{obtain_device_list_from_udev=0 filter=["a|^%s$|","r|.*|"]} activation{udev_sync=0 udev_rules=0 monitoring=0} backup{backup=0 archive=0}`, l.loop)
	args = append([]string{args[0], "--config", cfg}, args[1:]...)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "LVM_SYSTEM_DIR="+l.sysDir, "LVM_SUPPRESS_FD_WARNINGS=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		l.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// TestLVMTools builds a PV with the real lvm2 tools on a loop device and
// compares the segment mapping with `lvs`.
func TestLVMTools(t *testing.T) {
	skip := func(msg string) {
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	for _, tool := range []string{"pvcreate", "vgcreate", "lvcreate", "lvextend", "lvs", "pvs"} {
		if _, err := exec.LookPath(tool); err != nil {
			skip(tool + " not found: install the Debian package lvm2")
		}
	}
	if _, err := exec.LookPath("losetup"); err != nil {
		skip("losetup not found: install the Debian package mount")
	}
	if os.Geteuid() != 0 {
		skip("lvm2 tools need root and a loop device")
	}
	img := filepath.Join(t.TempDir(), "pv.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 32*mib); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "-f", "--show", img).CombinedOutput()
	if err != nil {
		skip(fmt.Sprintf("losetup: no loop device available: %v %s", err, out))
	}
	loop := strings.TrimSpace(string(out))
	detached := false
	detach := func() {
		if !detached {
			detached = true
			if out, err := exec.Command("losetup", "-d", loop).CombinedOutput(); err != nil {
				t.Errorf("losetup -d %s: %v %s", loop, err, out)
			}
		}
	}
	t.Cleanup(detach)
	l := lvmTool{t: t, loop: loop, sysDir: t.TempDir()}
	noDM := []string{"--driverloaded", "n", "-an", "-Zn"} // no device-mapper here
	l.run("pvcreate", "-q", loop)
	l.run("vgcreate", "-q", "-s", "1M", "vgt", loop)
	l.run(append([]string{"lvcreate", "-q", "-l", "3", "-n", "lv1"}, append(noDM, "vgt")...)...)
	l.run(append([]string{"lvcreate", "-q", "-l", "2", "-n", "lv2"}, append(noDM, "vgt")...)...)
	l.run("lvextend", "-q", "--driverloaded", "n", "-l", "+4", "vgt/lv1") // a second segment
	l.run(append([]string{"lvcreate", "-q", "-l", "2", "--type", "striped", "-i", "2", "--alloc", "anywhere", "-n", "s2"}, append(noDM, "vgt")...)...)
	report := l.run("lvs", "--reportformat", "json", "--units", "b", "--nosuffix",
		"-o", "lv_name,lv_size,seg_start_pe,seg_size_pe,seg_pe_ranges,segtype,vg_extent_size", "vgt")
	pvs := l.run("pvs", "--noheadings", "--units", "b", "--nosuffix", "-o", "pe_start", loop)
	detach()
	peStart, err := strconv.ParseInt(strings.TrimSpace(string(pvs)), 10, 64)
	if err != nil {
		t.Fatalf("pvs pe_start %q: %v", pvs, err)
	}

	var rep struct {
		Report []struct {
			LV []map[string]string `json:"lv"`
		} `json:"report"`
	}
	if err := json.Unmarshal(report, &rep); err != nil || len(rep.Report) != 1 {
		t.Fatalf("lvs json: %v\n%s", err, report)
	}
	type want struct {
		size int64
		typ  string
		pes  []int64
	}
	wants := map[string]*want{}
	var order []string
	var extent int64
	for _, seg := range rep.Report[0].LV {
		name := seg["lv_name"]
		w := wants[name]
		if w == nil {
			w = &want{typ: seg["segtype"]}
			w.size, _ = strconv.ParseInt(seg["lv_size"], 10, 64)
			wants[name] = w
			order = append(order, name)
		}
		extent, _ = strconv.ParseInt(seg["vg_extent_size"], 10, 64)
		if seg["segtype"] != "linear" {
			w.typ = seg["segtype"]
			continue
		}
		// "/dev/loop0:3-6"
		_, rng, _ := strings.Cut(seg["seg_pe_ranges"], ":")
		a, b, _ := strings.Cut(rng, "-")
		lo, _ := strconv.ParseInt(a, 10, 64)
		hi, _ := strconv.ParseInt(b, 10, 64)
		for pe := lo; pe <= hi; pe++ {
			w.pes = append(w.pes, pe)
		}
	}

	d, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	stamp(d, peStart, extent)
	vg, err := Read(bytes.NewReader(d), int64(len(d)))
	if err != nil {
		t.Fatalf("Read = %v", err)
	}
	if vg.Name != "vgt" || vg.ExtentSize != extent || vg.PV != "pv0" {
		t.Errorf("Read = VG %q, extent %d, PV %q; want vgt, %d, pv0", vg.Name, vg.ExtentSize, vg.PV, extent)
	}
	var got []string
	for _, v := range vg.Volumes {
		got = append(got, v.Name)
		w := wants[v.Name]
		if w == nil {
			t.Errorf("volume %s not listed by lvs", v.Name)
			continue
		}
		if v.Size != w.size || !v.Visible {
			t.Errorf("volume %s: size %d visible %v, want %d, true", v.Name, v.Size, v.Visible, w.size)
		}
		if w.typ == "linear" {
			checkVolume(t, vg, v.Name, w.pes)
		} else if _, err := vg.Open(v.Name); err == nil || !strings.Contains(err.Error(), "striped over 2") {
			t.Errorf("Open(%s) = %v, want refusal of a %s volume", v.Name, err, w.typ)
		}
	}
	if strings.Join(got, ",") != strings.Join(order, ",") {
		t.Errorf("volumes = %v, lvs lists %v", got, order)
	}
	if len(wants["lv1"].pes) != 7 {
		t.Errorf("lvs reports lv1 on %v, want 7 extents in 2 segments", wants["lv1"].pes)
	}
}

// TestBuilt reads hand-built PVs (layout as lvm2 writes it).
func TestBuilt(t *testing.T) {
	const size = 16 * mib
	twoSegs := lvText{name: "root", segs: []string{linearSeg(0, 2, 5), linearSeg(2, 3, 0)}}
	tests := []struct {
		name string
		o    pvOpts
		lvs  map[string][]int64 // linear volumes and their physical extents
		refs map[string]string  // refused volumes and a part of the error
	}{
		{
			name: "two segments out of order",
			o:    pvOpts{text: vgText(2048, 2048, 15, twoSegs)},
			lvs:  map[string][]int64{"root": {5, 6, 0, 1, 2}},
		},
		{
			name: "label in sector 3, metadata wraps around the ring",
			o: pvOpts{labelSector: 3, mdaSize: 8192, peStart: 3 * mib, textOff: 8192 - 700,
				text: vgText(2048, 6144, 13, lvText{name: "a", segs: []string{linearSeg(0, 1, 12)}})},
			lvs: map[string][]int64{"a": {12}},
		},
		{
			name: "unsupported volumes are listed and refused",
			o: pvOpts{text: vgText(2048, 2048, 15,
				lvText{name: "lin", segs: []string{linearSeg(0, 1, 0)}},
				lvText{name: "thin", segs: []string{"start_extent = 0\nextent_count = 4\n\ntype = \"thin\"\nthin_pool = \"pool\"\ntransaction_id = 1\ndevice_id = 1\n"}},
				lvText{name: "pool_tdata", hidden: true, segs: []string{linearSeg(0, 2, 1)}},
				lvText{name: "r1", segs: []string{"start_extent = 0\nextent_count = 1\n\ntype = \"raid1\"\ndevice_count = 2\nregion_size = 1024\n\nraids = [\n\"r1_rmeta_0\", \"r1_rimage_0\",\n\"r1_rmeta_1\", \"r1_rimage_1\"\n]\n"}},
				lvText{name: "s", segs: []string{"start_extent = 0\nextent_count = 2\n\ntype = \"striped\"\nstripe_count = 2\nstripe_size = 128\n\nstripes = [\n\"pv0\", 3,\n\"pv0\", 4\n]\n"}},
				lvText{name: "other", segs: []string{linearSeg(0, 1, 3), strings.Replace(linearSeg(1, 1, 0), `"pv0"`, `"pv1"`, 1)}},
			)},
			lvs:  map[string][]int64{"lin": {0}, "pool_tdata": {1, 2}},
			refs: map[string]string{"thin": `segment type "thin"`, "r1": `segment type "raid1"`, "s": "striped over 2", "other": `physical volume "pv1"`},
		},
		{
			name: "no logical volumes",
			o:    pvOpts{text: vgText(2048, 2048, 15)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.size = size
			d := buildPV(tt.o)
			peStart := int64(tt.o.peStart)
			if peStart == 0 {
				peStart = mib // buildPV's default
			}
			stamp(d, peStart, mib)
			vg, err := Read(bytes.NewReader(d), size)
			if err != nil {
				t.Fatalf("Read = %v", err)
			}
			if len(vg.Volumes) != len(tt.lvs)+len(tt.refs) {
				t.Errorf("Read listed %d volumes, want %d", len(vg.Volumes), len(tt.lvs)+len(tt.refs))
			}
			for name, pes := range tt.lvs {
				checkVolume(t, vg, name, pes)
			}
			for name, want := range tt.refs {
				if r, err := vg.Open(name); r != nil || err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("Open(%s) = %v, %v; want refusal containing %q", name, r, err, want)
				}
			}
			for _, v := range vg.Volumes {
				if v.Name == "pool_tdata" && v.Visible {
					t.Errorf("pool_tdata is visible")
				}
			}
			if _, err := vg.Open("missing"); err == nil {
				t.Errorf("Open(missing) = nil error")
			}
		})
	}
}

func TestHostile(t *testing.T) {
	const size = 4 * mib
	lin := lvText{name: "lv", segs: []string{linearSeg(0, 1, 0)}}
	good := vgText(2048, 2048, 3, lin)
	base := buildPV(pvOpts{size: size, text: good})
	le := binary.LittleEndian
	edit := func(f func(d []byte)) []byte {
		d := bytes.Clone(base)
		f(d)
		return d
	}
	// mdaEdit changes the metadata area header and fixes its CRC.
	mdaEdit := func(f func(m []byte)) []byte {
		return edit(func(d []byte) {
			m := d[4096:][:512]
			f(m)
			le.PutUint32(m[0:], lvmCRC(m[4:]))
		})
	}
	withText := func(text string) []byte { return buildPV(pvOpts{size: size, text: text}) }
	tests := []struct {
		name    string
		d       []byte
		size    int64
		want    string
		noLabel bool
	}{
		{name: "no label", d: make([]byte, size), want: "no LVM2 label", noLabel: true},
		{name: "tiny device", d: make([]byte, 100), want: "no LVM2 label", noLabel: true},
		{name: "label CRC", d: edit(func(d []byte) { d[512+40] ^= 1 }), want: "label CRC"},
		{name: "label sector number", d: edit(func(d []byte) { le.PutUint64(d[512+8:], 2); fixLabelCRC(d, 1) }), want: "says sector 2"},
		{name: "label type", d: edit(func(d []byte) { copy(d[512+24:], "LVM1 001"); fixLabelCRC(d, 1) }), want: "label type"},
		{name: "pv header offset", d: edit(func(d []byte) { le.PutUint32(d[512+20:], 500); fixLabelCRC(d, 1) }), want: "offset 500"},
		{name: "pv uuid", d: edit(func(d []byte) { d[512+32] = '/'; fixLabelCRC(d, 1) }), want: "bad uuid"},
		{name: "unterminated area list", d: edit(func(d []byte) {
			for i := 512 + 32 + 40; i < 1024; i += 8 {
				le.PutUint64(d[i:], 4096)
			}
			fixLabelCRC(d, 1)
		}), want: "runs past the label sector"},
		{name: "device size", d: edit(func(d []byte) { le.PutUint64(d[512+32+32:], 1<<40); fixLabelCRC(d, 1) }), want: "device size"},
		{name: "truncated device", d: base[:2*mib], size: 2 * mib, want: "device size"},
		{name: "mda outside device", d: edit(func(d []byte) { le.PutUint64(d[512+32+72:], 1<<40); fixLabelCRC(d, 1) }), want: "outside device"},
		{name: "mda header CRC", d: edit(func(d []byte) { d[4096+100] ^= 1 }), want: "header CRC"},
		{name: "mda magic", d: mdaEdit(func(m []byte) { m[5] = 'X' }), want: "bad magic"},
		{name: "mda start disagrees", d: mdaEdit(func(m []byte) { le.PutUint64(m[24:], 8192) }), want: "disagrees"},
		{name: "text offset in header", d: mdaEdit(func(m []byte) { le.PutUint64(m[40:], 100) }), want: "out of range"},
		{name: "text bigger than ring", d: mdaEdit(func(m []byte) { le.PutUint64(m[48:], 1<<30) }), want: "out of range"},
		{name: "text CRC", d: edit(func(d []byte) { d[4096+512+3] ^= 1 }), want: "text CRC"},
		{name: "no metadata", d: mdaEdit(func(m []byte) { clear(m[40:64]) }), want: "no metadata"},
		{name: "ignored metadata", d: mdaEdit(func(m []byte) { le.PutUint32(m[60:], 1) }), want: "no metadata"},
		{name: "duplicate key", d: withText(strings.Replace(good, "seqno = 4\n", "seqno = 4\nseqno = 5\n", 1)), want: "duplicate key"},
		{name: "unbalanced", d: withText(good + "}\n"), want: "unbalanced"},
		{name: "bad escape", d: withText(strings.Replace(good, `"vm"`, `"v\m"`, 1)), want: "bad escape"},
		{name: "deep nesting", d: withText(strings.Repeat("a {\n", 20) + strings.Repeat("}\n", 20)), want: "nested deeper"},
		{name: "bad value", d: withText(strings.Replace(good, "seqno = 4", "seqno = 4x", 1)), want: "bad value"},
		{name: "contents", d: withText(strings.Replace(good, "Text Format Volume Group", "Text Format Something", 1)), want: "contents"},
		{name: "version", d: withText(strings.Replace(good, "version = 1", "version = 2", 1)), want: "version is not 1"},
		{name: "two volume groups", d: withText(good + "vg2 {\nseqno = 1\n}\n"), want: "more than one volume group"},
		{name: "pv not listed", d: withText(strings.Replace(good, dashed(testUUID), dashed("A"+testUUID[1:]), 1)), want: "does not list this physical volume"},
		{name: "pe count beyond device", d: withText(vgText(2048, 2048, 100, lin)), want: "beyond device"},
		{name: "pe start disagrees", d: withText(vgText(2048, 4096, 1, lin)), want: "disagrees with data area"},
		{name: "zero extent size", d: withText(vgText(0, 2048, 3, lin)), want: "extent size"},
		{name: "segment beyond extents", d: withText(vgText(2048, 2048, 3, lvText{name: "lv", segs: []string{linearSeg(0, 2, 2)}})), want: "beyond the 3"},
		{name: "segment gap", d: withText(vgText(2048, 2048, 3, lvText{name: "lv", segs: []string{linearSeg(0, 1, 0), linearSeg(2, 1, 1)}})), want: "do not follow"},
		{name: "segment missing", d: withText(strings.Replace(good, "segment_count = 1", "segment_count = 2", 1)), want: "segment2"},
		{name: "segment count absurd", d: withText(strings.Replace(good, "segment_count = 1", "segment_count = 99999999", 1)), want: "segment_count"},
		{name: "negative extent", d: withText(vgText(2048, 2048, 3, lvText{name: "lv", segs: []string{linearSeg(0, 1, -1)}})), want: "beyond the 3"},
		{name: "bad stripes", d: withText(strings.Replace(good, "\"pv0\", 0", "0, \"pv0\"", 1)), want: "stripes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			size := int64(len(tt.d))
			if tt.size != 0 {
				size = tt.size
			}
			vg, err := Read(bytes.NewReader(tt.d), size)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Read = %v, %v; want error containing %q", vg, err, tt.want)
			}
			if vg != nil {
				t.Errorf("Read returned a volume group with an error")
			}
			if errors.Is(err, ErrNoLabel) != tt.noLabel {
				t.Errorf("errors.Is(%v, ErrNoLabel) = %v, want %v", err, !tt.noLabel, tt.noLabel)
			}
		})
	}
}

func TestParseText(t *testing.T) {
	tests := []struct {
		name, text, want string // want: "" for success, else an error substring
	}{
		{"empty", "", ""},
		{"comments and blank lines", "# c\n\n  a = 1 # trailing\n", ""},
		{"nested sections", "a {\nb {\nc = \"x\"\n}\n}\n", ""},
		{"arrays", "a = []\nb = [\"x\", 1, -2]\nc = [\n\"y\"\n]\n", ""},
		{"escapes", `a = "q\"b\\"`, ""},
		{"float", "a = 1.5\n", ""},
		{"nul padding", "a = 1\n\x00\x00\x00", ""},
		{"data after nul", "a = 1\n\x00b", "data after NUL"},
		{"nested array", "a = [[1]]\n", "bad value"},
		{"missing comma", "a = [1 2]\n", "want ','"},
		{"unterminated string", "a = \"abc", "unterminated"},
		{"nul in string", "a = \"a\x00b\"", "NUL"},
		{"unterminated section", "a {\nb = 1\n", "unexpected end"},
		{"key without value", "a", "without value"},
		{"missing equals", "a 1\n", "want '='"},
		{"stray character", "a = 1\n;\n", "unexpected character"},
		{"inf is not a number", "a = inf\n", "bad value"},
		{"huge integer", "a = 99999999999999999999\n", "bad value"},
		{"long array", "a = [" + strings.Repeat("1,", maxArray) + "1]\n", "array longer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := parseText([]byte(tt.text))
			if tt.want == "" {
				if err != nil || s == nil {
					t.Fatalf("parseText = %v, %v; want success", s, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || s != nil {
				t.Fatalf("parseText = %v, %v; want error containing %q", s, err, tt.want)
			}
		})
	}
	s, err := parseText([]byte(`a { b = ["x", "y"] n = -3 }`))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := s.sub("a")
	if b, _ := a.strings("b"); strings.Join(b, ",") != "x,y" {
		t.Errorf("a.b = %v, want [x y]", b)
	}
	if n, _ := a.int("n"); n != -3 {
		t.Errorf("a.n = %d, want -3", n)
	}
}
