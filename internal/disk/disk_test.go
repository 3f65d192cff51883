package disk_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/internal/disk"
)

// needTool skips the test when a tool is missing, or fails it under CI,
// naming the Debian package that provides it.
func needTool(t testing.TB, tool, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err == nil {
		return
	}
	msg := fmt.Sprintf("%s is not installed: apt-get install -y --no-install-recommends %s", tool, pkg)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func run(t testing.TB, dir, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// qemuRaw returns the guest content of an image as qemu-img reads it.
func qemuRaw(t testing.TB, path string) []byte {
	t.Helper()
	out := path + ".qemu.raw"
	run(t, filepath.Dir(path), "qemu-img", "convert", "-O", "raw", path, out)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(out)
	return b
}

// writeData writes size bytes of mixed random, text and zero blocks.
func writeData(t testing.TB, path string, size int, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, size)
	for off := 0; off < size; off += 32 << 10 {
		blk := b[off:min(off+32<<10, size)]
		switch r.IntN(3) {
		case 0:
			for i := range blk {
				blk[i] = byte(r.Uint32())
			}
		case 1:
			for i := range blk {
				blk[i] = "vmtrust disk "[i%13]
			}
		}
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// readAll reads img in odd-sized chunks and checks some unaligned reads.
func readAll(t *testing.T, img disk.Image, want []byte) {
	t.Helper()
	if img.Size() != int64(len(want)) {
		t.Fatalf("Size() = %d, want %d", img.Size(), len(want))
	}
	got, err := io.ReadAll(io.NewSectionReader(img, 0, img.Size()))
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("content differs from qemu-img's at offset %d", firstDiff(got, want))
	}
	for _, off := range []int64{1, 65535, 65537, 1<<20 - 3, img.Size() - 5} {
		p := make([]byte, 70000)
		n, err := img.ReadAt(p, off)
		end := min(off+int64(len(p)), img.Size())
		if int64(n) != end-off || (end < off+int64(len(p))) != errors.Is(err, io.EOF) || !bytes.Equal(p[:n], want[off:end]) {
			t.Fatalf("ReadAt(70000, %d) = %d, %v; want %d bytes matching", off, n, err, end-off)
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// recorder is an open function that records every host path opened.
type recorder struct {
	mu    sync.Mutex
	paths []string
}

func (r *recorder) open(name string, flag int) (*os.File, error) {
	r.mu.Lock()
	r.paths = append(r.paths, name)
	r.mu.Unlock()
	return os.OpenFile(name, flag, 0)
}

// options returns Options whose opens are recorded by r.
func (r *recorder) options(dirs ...string) disk.Options {
	var o disk.Options
	o.BackingDirs = dirs
	disk.SetOpen(&o, r.open)
	return o
}

// checkConfined fails the test if anything outside dir, or a host file
// the hostile images name, was opened.
func (r *recorder) checkConfined(t *testing.T, dir string) {
	t.Helper()
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range r.paths {
		if p == "/etc/hostname" || p == "/etc/passwd" || strings.HasPrefix(p, "/etc/") {
			t.Errorf("host file %s was opened", p)
		}
		if !strings.HasPrefix(p, real+"/") && !strings.HasPrefix(p, dir+"/") {
			t.Errorf("%s, outside the test directory, was opened", p)
		}
	}
}

// within fails the test when f does not return within d.
func within(t *testing.T, d time.Duration, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("did not return within %v", d)
	}
}

// TestOpenChainsMatchQEMU opens images and backing chains made by qemu-img
// (allowed by BackingDirs) and compares every byte with qemu-img's view.
func TestOpenChainsMatchQEMU(t *testing.T) {
	needTool(t, "qemu-img", "qemu-utils")
	needTool(t, "qemu-io", "qemu-utils")
	dir := t.TempDir()
	writeData(t, filepath.Join(dir, "base.raw"), 3<<20, 1)
	run(t, dir, "qemu-img", "convert", "-O", "qcow2", "-c", "base.raw", "base.qcow2")
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("base.qcow2", filepath.Join(dir, "link.qcow2")); err != nil {
		t.Fatal(err)
	}
	overlay := func(name, backing, format string, size ...string) func(t *testing.T) {
		return func(t *testing.T) {
			args := append([]string{"create", "-f", "qcow2", "-b", backing, "-F", format, name}, size...)
			run(t, dir, "qemu-img", args...)
			run(t, dir, "qemu-io", "-f", "qcow2", "-c", "write -P 0xab 1M 64k", "-c", "write -z 2M 4k", "-c", "write -P 0x33 100k 3k", name)
		}
	}
	tests := []struct {
		name   string
		setup  func(t *testing.T)
		path   string
		format string
	}{
		{"raw", func(*testing.T) {}, "base.raw", "raw"},
		{"qcow2", func(*testing.T) {}, "base.qcow2", "qcow2"},
		{"overlay", overlay("ovl.qcow2", "base.qcow2", "qcow2"), "ovl.qcow2", "qcow2"},
		{"overlay-larger", overlay("big.qcow2", "base.qcow2", "qcow2", "5M"), "big.qcow2", "qcow2"},
		{"overlay-on-raw", overlay("onraw.qcow2", "base.raw", "raw"), "onraw.qcow2", "qcow2"},
		{"raw-format-on-qcow2-file", overlay("asraw.qcow2", "base.qcow2", "raw", "3M"), "asraw.qcow2", "qcow2"},
		{"absolute-name", overlay("abs.qcow2", filepath.Join(dir, "base.qcow2"), "qcow2"), "abs.qcow2", "qcow2"},
		{"relative-up", overlay("sub/up.qcow2", "../base.qcow2", "qcow2"), "sub/up.qcow2", "qcow2"},
		{"symlink-inside", overlay("vialink.qcow2", "link.qcow2", "qcow2"), "vialink.qcow2", "qcow2"},
		{"three-levels", func(t *testing.T) {
			overlay("mid.qcow2", "base.raw", "raw")(t)
			run(t, dir, "qemu-img", "create", "-f", "qcow2", "-o", "compat=0.10", "-b", "mid.qcow2", "-F", "qcow2", "top.qcow2")
			run(t, dir, "qemu-io", "-f", "qcow2", "-c", "write -P 0x77 1040k 8k", "top.qcow2")
		}, "top.qcow2", "qcow2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.setup(t)
			path := filepath.Join(dir, tt.path)
			want := qemuRaw(t, path)
			var rec recorder
			opts := rec.options(dir)
			opts.Stats = &disk.Stats{}
			img, err := disk.Open(path, opts)
			if err != nil {
				t.Fatalf("Open(%s) = %v", tt.path, err)
			}
			defer img.Close()
			if img.Format() != tt.format {
				t.Errorf("Format() = %q, want %q", img.Format(), tt.format)
			}
			readAll(t, img, want)
			rec.checkConfined(t, dir)
			if got := disk.BytesRead(img); got <= 0 || got != opts.Stats.BytesRead() || opts.Stats.Reads() <= 0 {
				t.Errorf("BytesRead = %d, Stats = %d bytes in %d reads; want equal and positive", got, opts.Stats.BytesRead(), opts.Stats.Reads())
			}
		})
	}
}

// TestBackingRefused builds images whose backing file name points at the
// host, escapes the allowed directory, loops, or is otherwise unusable.
// Each is refused, quickly, and nothing outside the test directory — in
// particular no host file the image names — is ever opened.
func TestBackingRefused(t *testing.T) {
	needTool(t, "qemu-img", "qemu-utils")
	dir := t.TempDir()
	depth := strings.Count(filepath.Clean(dir), "/")
	toPasswd := strings.Repeat("../", depth+1) + "etc/passwd"
	writeData(t, filepath.Join(dir, "base.raw"), 1<<20, 2)
	for _, l := range []struct{ name, target string }{
		{"hostname-link.raw", "/etc/hostname"},
		{"etc", "/etc"},
	} {
		if err := os.Symlink(l.target, filepath.Join(dir, l.name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.raw"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	// create writes an image naming backing without checking it (-u).
	create := func(t *testing.T, name, backing, format string) {
		run(t, dir, "qemu-img", "create", "-f", "qcow2", "-u", "-b", backing, "-F", format, name, "1M")
	}
	tests := []struct {
		name  string
		setup func(t *testing.T)
		path  string
		dirs  []string
		chain int
		want  string
	}{
		{"host-absolute", func(t *testing.T) { create(t, "abs.qcow2", "/etc/hostname", "raw") }, "abs.qcow2", nil, 0, "no backing directory is allowed (allow one with --backing-dir DIR)"},
		{"host-absolute-allowed-dir", nil, "abs.qcow2", []string{dir}, 0, "/etc/hostname is outside the backing directories"},
		{"dotdot", func(t *testing.T) { create(t, "dotdot.qcow2", "../../etc/passwd", "raw") }, "dotdot.qcow2", nil, 0, "no backing directory is allowed"},
		{"dotdot-allowed-dir", nil, "dotdot.qcow2", []string{dir}, 0, "outside the backing directories"},
		{"dotdot-to-passwd", func(t *testing.T) { create(t, "deep.qcow2", toPasswd, "raw") }, "deep.qcow2", []string{dir}, 0, "/etc/passwd is outside the backing directories"},
		{"symlink-to-host", func(t *testing.T) { create(t, "link.qcow2", "hostname-link.raw", "raw") }, "link.qcow2", []string{dir}, 0, "resolves to /etc/hostname, outside"},
		{"symlinked-dir-to-host", func(t *testing.T) { create(t, "linkdir.qcow2", "etc/passwd", "raw") }, "linkdir.qcow2", []string{dir}, 0, "resolves to /etc/passwd, outside"},
		{"protocol", func(t *testing.T) { create(t, "nbd.qcow2", "nbd:localhost:10809", "raw") }, "nbd.qcow2", []string{dir}, 0, "protocol"},
		{"json", func(t *testing.T) {
			create(t, "json.qcow2", `json:{"driver":"raw","file":{"driver":"file","filename":"/etc/hostname"}}`, "raw")
		}, "json.qcow2", []string{dir}, 0, "protocol"},
		{"format-unsupported", func(t *testing.T) { create(t, "vpc.qcow2", "base.raw", "vpc") }, "vpc.qcow2", []string{dir}, 0, `format "vpc", which is not supported`},
		{"format-mismatch", func(t *testing.T) { create(t, "mismatch.qcow2", "base.raw", "qcow2") }, "mismatch.qcow2", []string{dir}, 0, "named as qcow2 by the image above it, but its content is raw"},
		{"missing", func(t *testing.T) { create(t, "missing.qcow2", "nothere.raw", "raw") }, "missing.qcow2", []string{dir}, 0, "no such file"},
		{"directory", func(t *testing.T) { create(t, "isdir.qcow2", "adir", "raw") }, "isdir.qcow2", []string{dir}, 0, "not a regular file"},
		{"fifo", func(t *testing.T) { create(t, "fifo.qcow2", "fifo.raw", "raw") }, "fifo.qcow2", []string{dir}, 0, "not a regular file"},
		{"self-loop", func(t *testing.T) {
			create(t, "tmp.qcow2", "self.qcow2", "qcow2") // qemu-img refuses to name the file itself
			if err := os.Rename(filepath.Join(dir, "tmp.qcow2"), filepath.Join(dir, "self.qcow2")); err != nil {
				t.Fatal(err)
			}
		}, "self.qcow2", []string{dir}, 0, "backing loop"},
		{"loop", func(t *testing.T) { create(t, "a.qcow2", "b.qcow2", "qcow2"); create(t, "b.qcow2", "a.qcow2", "qcow2") }, "a.qcow2", []string{dir}, 0, "backing loop"},
		{"chain-too-long", func(t *testing.T) {
			create(t, "l1.qcow2", "base.raw", "raw")
			create(t, "l2.qcow2", "l1.qcow2", "qcow2")
			create(t, "l3.qcow2", "l2.qcow2", "qcow2")
		}, "l3.qcow2", []string{dir}, 2, "backing chain longer than 2 files"},
		{"backing-dir-missing", nil, "l1.qcow2", []string{filepath.Join(dir, "nope")}, 0, "backing directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup(t)
			}
			var rec recorder
			opts := rec.options(tt.dirs...)
			opts.MaxChain = tt.chain
			within(t, 10*time.Second, func() {
				img, err := disk.Open(filepath.Join(dir, tt.path), opts)
				if err == nil {
					img.Close()
					t.Fatalf("Open(%s) succeeded, want an error containing %q", tt.path, tt.want)
				}
				if img != nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "disk: ") {
					t.Errorf("Open(%s) = %v, %q; want nil and an error starting \"disk: \" containing %q", tt.path, img, err, tt.want)
				}
			})
			rec.checkConfined(t, dir)
		})
	}
	// The chain that is too long for 2 is fine with 3.
	var rec recorder
	opts := rec.options(dir)
	opts.MaxChain = 3
	img, err := disk.Open(filepath.Join(dir, "l3.qcow2"), opts)
	if err != nil {
		t.Fatalf("Open(l3.qcow2, MaxChain 3) = %v", err)
	}
	img.Close()
}

// TestBackingSwapped replaces the checked backing file between the check
// and the open: by another file, or by a symbolic link to a host file.
// Open must notice and refuse.
func TestBackingSwapped(t *testing.T) {
	needTool(t, "qemu-img", "qemu-utils")
	tests := []struct {
		name string
		swap func(dir, target string) error
		want string
	}{
		{"other-file", func(dir, target string) error {
			return os.Rename(filepath.Join(dir, "other.raw"), target)
		}, "changed between the check and the open"},
		{"symlink-to-host", func(dir, target string) error {
			if err := os.Remove(target); err != nil {
				return err
			}
			return os.Symlink("/etc/hostname", target)
		}, "too many levels of symbolic links"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeData(t, filepath.Join(dir, "base.raw"), 1<<20, 3)
			writeData(t, filepath.Join(dir, "other.raw"), 1<<20, 4)
			run(t, dir, "qemu-img", "create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", "top.qcow2")
			var rec recorder
			opts := rec.options(dir)
			disk.SetOpen(&opts, func(name string, flag int) (*os.File, error) {
				if filepath.Base(name) == "base.raw" {
					if err := tt.swap(dir, name); err != nil {
						t.Fatal(err)
					}
				}
				return rec.open(name, flag)
			})
			img, err := disk.Open(filepath.Join(dir, "top.qcow2"), opts)
			if err == nil {
				img.Close()
				t.Fatal("Open succeeded after the backing file was swapped")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestFormats checks detection and the refusal of formats that are not
// read, including VMDK descriptor files whose extents must not be opened.
func TestFormats(t *testing.T) {
	needTool(t, "qemu-img", "qemu-utils")
	dir := t.TempDir()
	tests := []struct {
		name   string
		create []string // qemu-img create arguments (file last)
		file   string
		format string // detected format, or "" when Open must fail
		want   string // error text
	}{
		{"raw", []string{"-f", "raw"}, "x.raw", "raw", ""},
		{"qcow2", []string{"-f", "qcow2"}, "x.qcow2", "qcow2", ""},
		{"vmdk-sparse", []string{"-f", "vmdk"}, "x.vmdk", "vmdk", ""},
		{"vmdk-stream", []string{"-f", "vmdk", "-o", "subformat=streamOptimized"}, "s.vmdk", "vmdk", ""},
		{"vmdk-descriptor", []string{"-f", "vmdk", "-o", "subformat=monolithicFlat"}, "d.vmdk", "", "VMDK descriptor file refused"},
		{"qed", []string{"-f", "qed"}, "x.qed", "", "QED images are not supported"},
		{"vhd", []string{"-f", "vpc"}, "x.vhd", "", "VHD images are not supported"},
		{"vhdx", []string{"-f", "vhdx"}, "x.vhdx", "", "VHDX images are not supported"},
		{"vdi", []string{"-f", "vdi"}, "x.vdi", "", "VDI images are not supported"},
		{"qcow1", []string{"-f", "qcow"}, "x.qcow", "", "unsupported version 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run(t, dir, "qemu-img", append(append([]string{"create"}, tt.create...), tt.file, "4M")...)
			path := filepath.Join(dir, tt.file)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fi, _ := f.Stat()
			got, derr := disk.Detect(f, fi.Size())
			if tt.format != "" {
				if derr != nil || got != tt.format {
					t.Fatalf("Detect = %q, %v; want %q", got, derr, tt.format)
				}
				return
			}
			var rec recorder
			img, err := disk.Open(path, rec.options(dir))
			if err == nil || img != nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open = %v, %v; want an error containing %q", img, err, tt.want)
			}
			if len(rec.paths) != 1 || rec.paths[0] != path {
				t.Errorf("opened %q, want only %s", rec.paths, path)
			}
		})
	}
}

// TestOpenRefusesSpecialFiles: a FIFO or a directory given as the image
// is refused without blocking.
func TestOpenRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{fifo, dir, filepath.Join(dir, "missing")} {
		within(t, 5*time.Second, func() {
			if img, err := disk.Open(path, disk.Options{}); err == nil || img != nil {
				t.Errorf("Open(%s) = %v, %v; want an error", path, img, err)
			}
		})
	}
}

// TestRaw checks the io.ReaderAt contract of raw images.
func TestRaw(t *testing.T) {
	img := disk.NewRaw(strings.NewReader("0123456789"), 10)
	tests := []struct {
		name    string
		off     int64
		n       int
		want    string
		wantErr error
	}{
		{"inside", 2, 3, "234", nil},
		{"to-end", 7, 3, "789", nil},
		{"across-end", 8, 5, "89", io.EOF},
		{"at-end", 10, 1, "", io.EOF},
		{"past-end", 11, 1, "", io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := make([]byte, tt.n)
			n, err := img.ReadAt(p, tt.off)
			if string(p[:n]) != tt.want || !errors.Is(err, tt.wantErr) && err != tt.wantErr {
				t.Errorf("ReadAt(%d, %d) = %q, %v; want %q, %v", tt.n, tt.off, p[:n], err, tt.want, tt.wantErr)
			}
		})
	}
	if _, err := img.ReadAt(make([]byte, 1), -1); err == nil {
		t.Error("ReadAt(-1) succeeded")
	}
	short := disk.NewRaw(strings.NewReader("0123"), 10) // the file shrank
	if _, err := short.ReadAt(make([]byte, 8), 0); err == nil || errors.Is(err, io.EOF) {
		t.Errorf("ReadAt on a shrunk file = %v, want an error other than io.EOF", err)
	}
}
