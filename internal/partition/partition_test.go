package partition

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// needTool skips (or, under CI, fails) when a real tool is missing.
func needTool(t *testing.T, tool, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err == nil {
		return
	}
	msg := fmt.Sprintf("%s not found: install the Debian package %s", tool, pkg)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func runIn(t *testing.T, stdin string, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// sparseFile creates a sparse file of size bytes.
func sparseFile(t *testing.T, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

// sfdiskJSON is the part of `sfdisk --json` the tests compare.
type sfdiskJSON struct {
	PartitionTable struct {
		Label      string `json:"label"`
		SectorSize int    `json:"sectorsize"`
		Partitions []struct {
			Node     string `json:"node"`
			Start    int64  `json:"start"`
			Size     int64  `json:"size"`
			Type     string `json:"type"`
			UUID     string `json:"uuid"`
			Name     string `json:"name"`
			Bootable bool   `json:"bootable"`
			Attrs    string `json:"attrs"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

var nodeIndex = regexp.MustCompile(`(\d+)$`)

// wantFromSfdisk converts `sfdisk --json` output to the expected table.
func wantFromSfdisk(t *testing.T, out []byte) *Table {
	t.Helper()
	var j sfdiskJSON
	if err := json.Unmarshal(out, &j); err != nil {
		t.Fatalf("sfdisk --json: %v", err)
	}
	pt := j.PartitionTable
	want := &Table{SectorSize: pt.SectorSize}
	switch pt.Label {
	case "gpt":
		want.Scheme = "gpt"
	case "dos":
		want.Scheme = "mbr"
	default:
		t.Fatalf("sfdisk label %q", pt.Label)
	}
	for _, p := range pt.Partitions {
		idx, _ := strconv.Atoi(nodeIndex.FindString(p.Node))
		w := Partition{
			Index: idx,
			Start: p.Start * int64(pt.SectorSize),
			Size:  p.Size * int64(pt.SectorSize),
			Name:  p.Name,
			GUID:  strings.ToLower(p.UUID),
		}
		if want.Scheme == "gpt" {
			w.Type = strings.ToLower(p.Type)
			w.Bootable = strings.Contains(p.Attrs, "LegacyBIOSBootable")
		} else {
			v, err := strconv.ParseUint(p.Type, 16, 8)
			if err != nil {
				t.Fatalf("sfdisk type %q: %v", p.Type, err)
			}
			w.Type = fmt.Sprintf("0x%02x", v)
			w.Bootable = p.Bootable
		}
		want.Partitions = append(want.Partitions, w)
	}
	return want
}

func readFile(t *testing.T, path string) (*Table, io.ReaderAt) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	tab, err := Read(f, st.Size())
	if err != nil {
		t.Fatalf("Read(%s) = %v", filepath.Base(path), err)
	}
	return tab, f
}

// compare checks got against want, ignoring TypeName (checked separately).
func compare(t *testing.T, got, want *Table) {
	t.Helper()
	if got.Scheme != want.Scheme || got.SectorSize != want.SectorSize || got.Backup != want.Backup {
		t.Errorf("Read = scheme %q, sector %d, backup %v; want %q, %d, %v",
			got.Scheme, got.SectorSize, got.Backup, want.Scheme, want.SectorSize, want.Backup)
	}
	if len(got.Partitions) != len(want.Partitions) {
		t.Fatalf("Read = %d partitions, want %d:\n got %+v\nwant %+v", len(got.Partitions), len(want.Partitions), got.Partitions, want.Partitions)
	}
	for i, g := range got.Partitions {
		w := want.Partitions[i]
		g.TypeName = ""
		if g != w {
			t.Errorf("partition %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
}

// The sfdisk scripts of the differential tests.
const (
	gptScript = `label: gpt
size=1MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI system"
size=2MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="root fs ü"
type=E6D6D379-F507-44C2-A23C-238F2A3DF928, name="lvm", attrs="LegacyBIOSBootable"
`
	mbrScript = `label: dos
size=1MiB, type=83, bootable
size=1MiB, type=82
type=5
size=1MiB, type=83
size=1MiB, type=8e
type=83
`
	diskSize = 16 << 20
)

func TestSfdisk(t *testing.T) {
	needTool(t, "sfdisk", "fdisk")
	tests := []struct {
		name, script string
		size         int64
		typeNames    []string
	}{
		{"gpt 3 partitions with names", gptScript, diskSize, []string{"EFI System", "Linux filesystem", "Linux LVM"}},
		{"mbr 2 primaries, extended with 3 logicals", mbrScript, diskSize,
			[]string{"Linux", "Linux swap / Solaris", "Extended", "Linux", "Linux LVM", "Linux"}},
		{"mbr extended 0x0f", "label: dos\nsize=4MiB, type=7\ntype=f\nsize=2MiB, type=c\ntype=83\n", 32 << 20,
			[]string{"HPFS/NTFS/exFAT", "W95 Ext'd (LBA)", "W95 FAT32 (LBA)", "Linux"}},
		{"mbr extended 0x85 in slot 4", "label: dos\nDISK4 : start=4096, type=85\nDISK5 : size=2MiB, type=83\n", 32 << 20,
			[]string{"Linux extended", "Linux"}},
		{"gpt slot 5 only", "label: gpt\nDISK5 : size=4MiB, type=21686148-6449-6E6F-744E-656564454649\n", 16 << 20,
			[]string{"BIOS boot"}},
		{"gpt swap and microsoft data", "label: gpt\nsize=2MiB, type=swap\ntype=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\n", 16 << 20,
			[]string{"Linux swap", "Microsoft basic data"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := sparseFile(t, tt.size)
			runIn(t, strings.ReplaceAll(tt.script, "DISK", p), "sfdisk", "-q", p)
			want := wantFromSfdisk(t, runIn(t, "", "sfdisk", "--json", p))
			got, disk := readFile(t, p)
			compare(t, got, want)
			for i, name := range tt.typeNames {
				if i < len(got.Partitions) && got.Partitions[i].TypeName != name {
					t.Errorf("partition %d TypeName = %q, want %q", got.Partitions[i].Index, got.Partitions[i].TypeName, name)
				}
			}
			// Section covers exactly the partition's bytes.
			for _, part := range got.Partitions {
				sr := part.Section(disk)
				if sr.Size() != part.Size {
					t.Errorf("Section(%d).Size() = %d, want %d", part.Index, sr.Size(), part.Size)
				}
			}
		})
	}
}

// TestFdisk4K checks 4096-byte sectors against `fdisk -b 4096 -l`.
func TestFdisk4K(t *testing.T) {
	needTool(t, "fdisk", "fdisk")
	p := sparseFile(t, 64<<20)
	runIn(t, "g\nn\n\n\n+8M\nn\n\n\n\nx\nn\n2\ndata two\nr\nw\n", "fdisk", "-b", "4096", p)
	out := runIn(t, "", "fdisk", "-b", "4096", "-l", "-o", "Device,Start,Sectors,Type-UUID,UUID,Name", p)
	want := &Table{Scheme: "gpt", SectorSize: 4096}
	inTable := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 && f[0] == "Device" {
			inTable = true
			continue
		}
		if !inTable || len(f) < 5 {
			continue
		}
		idx, _ := strconv.Atoi(nodeIndex.FindString(f[0]))
		start, _ := strconv.ParseInt(f[1], 10, 64)
		n, _ := strconv.ParseInt(f[2], 10, 64)
		want.Partitions = append(want.Partitions, Partition{
			Index: idx, Start: start * 4096, Size: n * 4096,
			Type: strings.ToLower(f[3]), GUID: strings.ToLower(f[4]), Name: strings.Join(f[5:], " "),
		})
	}
	if len(want.Partitions) != 2 {
		t.Fatalf("fdisk -l listed %d partitions, want 2:\n%s", len(want.Partitions), out)
	}
	got, _ := readFile(t, p)
	compare(t, got, want)
}

// TestNoTable: disks without a partition table read as "none".
func TestNoTable(t *testing.T) {
	fatLike := make([]byte, 64<<10)
	copy(fatLike, "\xeb\x3c\x90mkfs.fat")
	fatLike[446] = 0x29 // boot code, not a status byte
	fatLike[510], fatLike[511] = 0x55, 0xaa
	emptyMBR := make([]byte, 64<<10)
	putMBR(emptyMBR, 0)
	tests := []struct {
		name string
		disk func(t *testing.T) []byte
	}{
		{"zeros", func(*testing.T) []byte { return make([]byte, 1<<20) }},
		{"smaller than a sector", func(*testing.T) []byte { return make([]byte, 100) }},
		{"empty", func(*testing.T) []byte { return nil }},
		{"boot sector with code in the table", func(*testing.T) []byte { return fatLike }},
		{"mbr with no used entry", func(*testing.T) []byte { return emptyMBR }},
		{"bare ext4", func(t *testing.T) []byte {
			needTool(t, "mkfs.ext4", "e2fsprogs")
			p := sparseFile(t, 8<<20)
			runIn(t, "", "mkfs.ext4", "-q", "-F", p)
			b, _ := os.ReadFile(p)
			return b
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.disk(t)
			got, err := Read(bytes.NewReader(d), int64(len(d)))
			if err != nil || got.Scheme != "none" || len(got.Partitions) != 0 {
				t.Fatalf("Read = %+v, %v; want scheme none, no partitions", got, err)
			}
		})
	}
}

// TestLogicalChain: positive cases for the synthetic EBR chain builder.
func TestLogicalChain(t *testing.T) {
	for _, n := range []int{1, 3, maxLogical} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			d := buildLogical(int64(2+n*3), 2, n, 2)
			got, err := Read(bytes.NewReader(d), int64(len(d)))
			if err != nil {
				t.Fatalf("Read = %v", err)
			}
			if len(got.Partitions) != n+1 {
				t.Fatalf("Read = %d partitions, want %d", len(got.Partitions), n+1)
			}
			last := got.Partitions[n]
			if last.Index != 4+n || last.Start != int64(2+(n-1)*3+1)*512 || last.Size != 1024 {
				t.Errorf("last logical = %+v", last)
			}
		})
	}
}

// TestBackupGPT: a damaged primary GPT falls back to the backup.
func TestBackupGPT(t *testing.T) {
	needTool(t, "sfdisk", "fdisk")
	p := sparseFile(t, diskSize)
	runIn(t, gptScript, "sfdisk", "-q", p)
	want := wantFromSfdisk(t, runIn(t, "", "sfdisk", "--json", p))
	want.Backup = true
	orig, _ := os.ReadFile(p)
	tests := []struct {
		name    string
		corrupt func(d []byte)
	}{
		{"primary header CRC", func(d []byte) { d[512+60] ^= 1 }},       // disk GUID byte
		{"primary entry array CRC", func(d []byte) { d[1024+57] ^= 1 }}, // a name byte
		{"primary signature", func(d []byte) { copy(d[512:], "EFI FART") }},
		{"primary my-LBA", func(d []byte) {
			binary.LittleEndian.PutUint64(d[512+24:], 7)
			fixHeaderCRC(d, 512, 1)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := bytes.Clone(orig)
			tt.corrupt(d)
			got, err := Read(bytes.NewReader(d), int64(len(d)))
			if err != nil {
				t.Fatalf("Read = %v", err)
			}
			compare(t, got, want)
		})
	}
}

func TestHostile(t *testing.T) {
	needTool(t, "sfdisk", "fdisk")
	gptPath := sparseFile(t, diskSize)
	runIn(t, gptScript, "sfdisk", "-q", gptPath)
	gpt, _ := os.ReadFile(gptPath)
	mbrPath := sparseFile(t, diskSize)
	runIn(t, mbrScript, "sfdisk", "-q", mbrPath)
	mbr, _ := os.ReadFile(mbrPath)
	ext, ebrs := ebrChain(t, mbr)
	lastEBR := ebrs[len(ebrs)-1]
	gptTab, err := Read(bytes.NewReader(gpt), int64(len(gpt)))
	if err != nil {
		t.Fatal(err)
	}
	p1Start := uint64(gptTab.Partitions[0].Start / 512)
	le := binary.LittleEndian
	gptEntry := func(i int, f func(e []byte)) func(d []byte) {
		return func(d []byte) { editGPT(d, 512, func(_, arr []byte) { f(arr[i*128:]) }) }
	}
	gptHeader := func(f func(h []byte)) func(d []byte) {
		return func(d []byte) { editGPT(d, 512, func(h, _ []byte) { f(h) }) }
	}

	tests := []struct {
		name string
		base []byte
		edit func(d []byte)
		size int64 // if not 0, the disk size passed to Read
		want string
	}{
		{name: "ebr loop to first", base: mbr, want: "loops back", edit: func(d []byte) {
			// The last EBR links back to the first one.
			setLink(d, lastEBR, 0)
		}},
		{name: "ebr loop to self", base: mbr, want: "loops back", edit: func(d []byte) {
			setLink(d, lastEBR, uint32(lastEBR-ext))
		}},
		{name: "ebr chain too long", base: buildLogical(2+(maxLogical+1)*3, 2, maxLogical+1, 2), want: "more than 128 EBRs"},
		{name: "ebr signature", base: mbr, want: "no valid signature", edit: func(d []byte) { d[lastEBR*512+510] = 0 }},
		{name: "ebr link outside extended", base: mbr, want: "outside extended", edit: func(d []byte) {
			setLink(d, ext, 1<<30)
		}},
		{name: "logical outside extended", base: mbr, want: "outside extended", edit: func(d []byte) {
			le.PutUint32(d[lastEBR*512+446+12:], 1<<20) // logical size
		}},
		{name: "ebr extra entries", base: mbr, want: "not empty", edit: func(d []byte) { d[ext*512+446+32+4] = 0x83 }},
		{name: "mbr partition beyond disk end", base: mbr, want: "beyond disk end", edit: func(d []byte) {
			le.PutUint32(d[446+16+12:], 1<<30)
		}},
		{name: "mbr truncated disk", base: mbr, size: diskSize / 2, want: "beyond disk end"},
		{name: "mbr overlapping primaries", base: mbr, want: "overlap", edit: func(d []byte) {
			le.PutUint32(d[446+16+8:], le.Uint32(d[446+8:])+1) // partition 2 now starts inside 1
		}},
		{name: "mbr two extended", base: mbr, want: "second extended", edit: func(d []byte) {
			d[446+16+4] = 0x0f
		}},
		{name: "gpt both header CRCs bad", base: gpt, want: "header CRC32", edit: func(d []byte) {
			d[512+60] ^= 1
			d[len(d)-512+60] ^= 1
		}},
		{name: "gpt both array CRCs bad", base: gpt, want: "entry array CRC32", edit: func(d []byte) {
			d[1024+57] ^= 1
			d[len(d)-33*512+57] ^= 1
		}},
		{name: "gpt entry count absurd", base: gpt, want: "partition entries", edit: gptHeader(func(h []byte) { le.PutUint32(h[80:], 1<<20) })},
		{name: "gpt entry size small", base: gpt, want: "entry size", edit: gptHeader(func(h []byte) { le.PutUint32(h[84:], 64) })},
		{name: "gpt entry size odd", base: gpt, want: "entry size", edit: gptHeader(func(h []byte) { le.PutUint32(h[84:], 132) })},
		{name: "gpt usable range beyond disk", base: gpt, want: "usable LBAs", edit: gptHeader(func(h []byte) { le.PutUint64(h[48:], 1<<40) })},
		{name: "gpt entry array in usable area", base: gpt, want: "overlaps usable area", edit: gptHeader(func(h []byte) { le.PutUint64(h[72:], 4096) })},
		{name: "gpt partition beyond disk end", base: gpt, want: "outside usable LBAs", edit: gptEntry(2, func(e []byte) { le.PutUint64(e[40:], 1<<33) })},
		{name: "gpt partition reversed", base: gpt, want: "outside usable LBAs", edit: gptEntry(0, func(e []byte) { le.PutUint64(e[40:], 100) })},
		{name: "gpt overlapping partitions", base: gpt, want: "overlap", edit: gptEntry(1, func(e []byte) { le.PutUint64(e[32:], p1Start+1) })},
		{name: "gpt truncated disk", base: gpt, size: diskSize / 2, want: "usable LBAs"},
		{name: "gpt revision", base: gpt, want: "revision", edit: gptHeader(func(h []byte) { le.PutUint32(h[8:], 0x00020000) })},
		{name: "protective mbr without gpt", base: gpt, want: "no GPT header", edit: func(d []byte) {
			copy(d[512:], "NOT PART")
			copy(d[len(d)-512:], "NOT PART")
		}},
		{name: "negative size", base: gpt, size: -1, want: "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := bytes.Clone(tt.base)
			if tt.edit != nil {
				tt.edit(d)
			}
			size := int64(len(d))
			if tt.size != 0 {
				size = tt.size
			}
			got, err := Read(bytes.NewReader(d), size)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Read = %+v, %v; want error containing %q", got, err, tt.want)
			}
			if got != nil {
				t.Errorf("Read returned a table with an error")
			}
		})
	}
}

// ebrChain returns the extended partition's start and its EBRs (sectors).
func ebrChain(t *testing.T, d []byte) (int64, []int64) {
	t.Helper()
	var ext int64 = -1
	for i := range 4 {
		if e := d[446+16*i:]; isExtendedType(e[4]) {
			ext = int64(binary.LittleEndian.Uint32(e[8:]))
		}
	}
	if ext < 0 {
		t.Fatal("no extended partition")
	}
	ebrs := []int64{ext}
	for len(ebrs) < 10 {
		link := d[ebrs[len(ebrs)-1]*512+446+16:]
		if link[4] == 0 {
			return ext, ebrs
		}
		ebrs = append(ebrs, ext+int64(binary.LittleEndian.Uint32(link[8:])))
	}
	t.Fatal("EBR chain too long")
	return 0, nil
}

// setLink points the EBR at sector ebr to the EBR at ext+rel.
func setLink(d []byte, ebr int64, rel uint32) {
	e := d[ebr*512+446+16:]
	e[4] = 0x05
	binary.LittleEndian.PutUint32(e[8:], rel)
	binary.LittleEndian.PutUint32(e[12:], 2048)
}

// limitedReader records reads past n, to prove Read stays inside size.
type limitedReader struct {
	r   io.ReaderAt
	n   int64
	bad []string
}

func (l *limitedReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > l.n {
		l.bad = append(l.bad, fmt.Sprintf("%d+%d", off, len(p)))
	}
	return l.r.ReadAt(p, off)
}

func TestStaysInsideSize(t *testing.T) {
	needTool(t, "sfdisk", "fdisk")
	p := sparseFile(t, diskSize)
	runIn(t, gptScript, "sfdisk", "-q", p)
	d, _ := os.ReadFile(p)
	for _, size := range []int64{512, 1024, 4096, 20 << 10, 1 << 20, 32 << 20} {
		lr := &limitedReader{r: bytes.NewReader(d), n: size}
		_, _ = Read(lr, size)
		if len(lr.bad) > 0 {
			t.Errorf("Read(disk, %d) read past the size: %v", size, lr.bad)
		}
	}
}
