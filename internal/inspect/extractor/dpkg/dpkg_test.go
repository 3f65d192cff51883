package dpkg

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/internal/fsys"
	"github.com/vmtrust/vmtrust/internal/fsys/fsystest"
	"github.com/vmtrust/vmtrust/internal/inspect/extractor/extractortest"
	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

var (
	t1 = time.Date(2024, 2, 1, 10, 0, 0, 0, time.UTC)
	t2 = time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
)

// debianTree is a small merged-/usr guest with a Multi-Arch package, a
// diversion and a package in config-files state.
func debianTree() fsystest.MapFS {
	status := "Package: coreutils\nStatus: install ok installed\nVersion: 9.1-1\nArchitecture: amd64\n\n" +
		"Package: libc6\nStatus: install ok installed\nVersion: 2.36-9+deb12u4\nArchitecture: amd64\nMulti-Arch: same\nSource: glibc\n\n" +
		"Package: libc6\nStatus: install ok installed\nVersion: 2.36-9+deb12u4\nArchitecture: i386\nMulti-Arch: same\nSource: glibc\n\n" +
		"Package: dash\nStatus: install ok installed\nVersion: 0.5.12-2\nArchitecture: amd64\n\n" +
		"Package: old\nStatus: deinstall ok config-files\nVersion: 1.0\nArchitecture: amd64\n\n" +
		"Package: gone\nStatus: purge ok not-installed\nArchitecture: amd64\n"
	return fsystest.MapFS{
		"/bin":                                  {Target: "usr/bin"},
		"/lib":                                  {Target: "usr/lib"},
		"/usr/bin/ls":                           {Data: []byte("ELF"), Mode: 0o755},
		"/usr/lib/i386-linux-gnu/libc.so.6":     {Data: []byte("ELF"), Mode: 0o755},
		"/var/lib/dpkg/status":                  {Data: []byte(status), Mode: 0o644},
		"/var/lib/dpkg/info/coreutils.list":     {Data: []byte("/.\n/bin\n/bin/ls\n/usr/share/doc/coreutils\n"), ModTime: t1},
		"/var/lib/dpkg/info/libc6:amd64.list":   {Data: []byte("/.\n/lib/x86_64-linux-gnu/libc.so.6\n"), ModTime: t2},
		"/var/lib/dpkg/info/libc6:i386.list":    {Data: []byte("/.\n/lib/i386-linux-gnu/libc.so.6\n"), ModTime: t1},
		"/var/lib/dpkg/info/dash.list":          {Data: []byte("/.\n/bin/dash\n/bin/sh\n"), ModTime: t1},
		"/var/lib/dpkg/info/old.list":           {Data: []byte("/.\n/etc/old.conf\n/bin/sh\n"), ModTime: t2},
		"/var/lib/dpkg/diversions":              {Data: []byte("/bin/sh\n/bin/sh.distrib\ndash\n")},
		"/var/lib/dpkg/info/gone.list":          {Data: []byte("/gone\n")},
		"/var/lib/dpkg/info/coreutils.md5sums":  {Data: []byte("x  usr/bin/ls\n")},
		"/var/lib/dpkg/info/coreutils.postinst": {Data: []byte("#!/bin/sh\n")},
	}
}

func TestExtract(t *testing.T) {
	res, err := Extract(context.Background(), extractortest.Root(debianTree()))
	if err != nil {
		t.Fatalf("Extract() error = %v", err)
	}
	want := []inventory.Package{
		{Name: "coreutils", Version: "9.1-1", Arch: "amd64", SourceName: "coreutils", SourceVersion: "9.1-1", Manager: "dpkg", InstallTime: t1},
		{Name: "dash", Version: "0.5.12-2", Arch: "amd64", SourceName: "dash", SourceVersion: "0.5.12-2", Manager: "dpkg", InstallTime: t1},
		{Name: "libc6", Version: "2.36-9+deb12u4", Arch: "amd64", SourceName: "glibc", SourceVersion: "2.36-9+deb12u4", Manager: "dpkg", InstallTime: t2},
		{Name: "libc6", Version: "2.36-9+deb12u4", Arch: "i386", SourceName: "glibc", SourceVersion: "2.36-9+deb12u4", Manager: "dpkg", InstallTime: t1},
		{Name: "old", Version: "1.0", Arch: "amd64", SourceName: "old", SourceVersion: "1.0", Manager: "dpkg", InstallTime: t2},
	}
	if diff := extractortest.Diff(want, res.Packages); diff != "" {
		t.Errorf("Extract().Packages:\n%s", diff)
	}
	owners := []struct {
		path, want string
	}{
		{"/bin/ls", "coreutils"},
		{"/usr/bin/ls", "coreutils"}, // through the /bin -> usr/bin link
		{"/usr/bin//./ls", "coreutils"},
		{"/lib/x86_64-linux-gnu/libc.so.6", "libc6"},
		{"/usr/lib/i386-linux-gnu/libc.so.6", "libc6"},
		{"/bin/sh", "dash"},        // dash diverts it and ships its own
		{"/bin/sh.distrib", "old"}, // old's /bin/sh lives under the diverted name
		{"/etc/old.conf", "old"},   // config-files packages still own their conffiles
		{"/usr/share/doc/coreutils", "coreutils"},
		{"/gone", ""}, // not-installed packages own nothing
		{"/", ""},     // "/." is not recorded
		{"/usr/bin/cat", ""},
		{"relative/bin/ls", ""},
	}
	for _, o := range owners {
		got, ok := res.Owner(o.path)
		if got != o.want || ok != (o.want != "") {
			t.Errorf("Owner(%q) = %q, %v; want %q, %v", o.path, got, ok, o.want, o.want != "")
		}
	}
}

func TestExtractStatusD(t *testing.T) {
	m := fsystest.MapFS{
		"/var/lib/dpkg/status.d/base-files":         {Data: []byte("Package: base-files\nStatus: install ok installed\nVersion: 12.4+deb12u5\nArchitecture: amd64\n")},
		"/var/lib/dpkg/status.d/base-files.md5sums": {Data: []byte("not a stanza")},
		"/var/lib/dpkg/status.d/libssl3":            {Data: []byte("Package: libssl3\nStatus: install ok installed\nVersion: 3.0.11-1~deb12u2\nArchitecture: amd64\nSource: openssl\n")},
		"/var/lib/dpkg/status.d/tzdata":             {Data: []byte("Package: tzdata\nStatus: install ok installed\nVersion: 2024a-0+deb12u1\nArchitecture: all\n")},
	}
	res, err := Extract(context.Background(), extractortest.Root(m))
	if err != nil {
		t.Fatalf("Extract() error = %v", err)
	}
	var got []string
	for _, p := range res.Packages {
		got = append(got, p.Name+"="+p.Version+"/"+p.SourceName)
		if !p.InstallTime.IsZero() {
			t.Errorf("%s: InstallTime = %v, want zero without a .list file", p.Name, p.InstallTime)
		}
	}
	want := []string{"base-files=12.4+deb12u5/base-files", "libssl3=3.0.11-1~deb12u2/openssl", "tzdata=2024a-0+deb12u1/tzdata"}
	if diff := extractortest.Diff(want, got); diff != "" {
		t.Errorf("Extract() packages:\n%s", diff)
	}
}

func TestExtractErrors(t *testing.T) {
	valid := "Package: a\nStatus: install ok installed\nVersion: 1\n"
	tests := []struct {
		name    string
		fs      fsystest.MapFS
		wantErr string
		wantIs  error
	}{
		{name: "no database", fs: fsystest.MapFS{"/etc/hostname": {Data: []byte("x")}}, wantIs: fs.ErrNotExist},
		{name: "status too large", fs: fsystest.MapFS{statusPath: {Data: make([]byte, MaxStatusSize+1)}}, wantIs: fsys.ErrTooLarge},
		{name: "status is a directory", fs: fsystest.MapFS{statusPath: {Mode: fs.ModeDir | 0o755}}, wantIs: fsys.ErrIsDir},
		{name: "status link escapes the guest", fs: fsystest.MapFS{statusPath: {Target: "../../../../../etc/shadow"}}, wantIs: fsys.ErrEscapesRoot},
		{name: "status link loop", fs: fsystest.MapFS{statusPath: {Target: "status"}}, wantIs: fsys.ErrSymlinkLoop},
		{name: "malformed status", fs: fsystest.MapFS{statusPath: {Data: []byte("garbage\n")}}, wantErr: "not a field"},
		{name: "relative path in a list", fs: fsystest.MapFS{statusPath: {Data: []byte(valid)}, infoDir + "/a.list": {Data: []byte("/.\netc/passwd\n")}}, wantErr: "not an absolute path"},
		{name: "list too large", fs: fsystest.MapFS{statusPath: {Data: []byte(valid)}, infoDir + "/a.list": {Data: bytes.Repeat([]byte("/x\n"), MaxListSize/3+1)}}, wantErr: "limit"},
		{name: "malformed diversions", fs: fsystest.MapFS{statusPath: {Data: []byte(valid)}, diversionsPath: {Data: []byte("/a\n")}}, wantErr: "multiple of 3"},
		{name: "malformed status.d stanza", fs: fsystest.MapFS{statusDir + "/a": {Data: []byte("Package: a\nVersion: 1\nVersion: 2\n")}}, wantErr: "duplicate field"},
		{name: "duplicate across status.d files", fs: fsystest.MapFS{statusDir + "/a": {Data: []byte(valid)}, statusDir + "/b": {Data: []byte(valid)}}, wantErr: "listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Extract(context.Background(), extractortest.Root(tt.fs))
			if err == nil || res != nil {
				t.Fatalf("Extract() = %v, %v; want nil and an error", res, err)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Extract() error = %v, want one wrapping %v", err, tt.wantIs)
			}
			if tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Extract() error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if res, err := Extract(ctx, extractortest.Root(debianTree())); !errors.Is(err, context.Canceled) || res != nil {
			t.Errorf("Extract(cancelled) = %v, %v; want nil, context.Canceled", res, err)
		}
	})
}

// debianRoots returns host directories holding a Debian root to compare
// with dpkg-query: $VMTRUST_DEBIAN_ROOTS (colon-separated, e.g. a
// debootstrap tree), else the host itself when it runs dpkg.
func debianRoots(t *testing.T) []string {
	if env := os.Getenv("VMTRUST_DEBIAN_ROOTS"); env != "" {
		return strings.Split(env, ":")
	}
	if _, err := os.Stat("/var/lib/dpkg/status"); err != nil {
		msg := "no Debian root to compare with: set VMTRUST_DEBIAN_ROOTS (e.g. to a 'debootstrap --variant=minbase bookworm DIR' tree) or run on Debian"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return []string{"/"}
}

// TestDpkgQueryInterop loads real dpkg databases into a MapFS and compares
// Extract with dpkg-query -W (packages) and dpkg-query -S (owners).
func TestDpkgQueryInterop(t *testing.T) {
	if testing.Short() {
		t.Skip("interop test (-short)")
	}
	dpkgQuery := extractortest.NeedTool(t, "dpkg-query", "dpkg")
	for _, root := range debianRoots(t) {
		t.Run(root, func(t *testing.T) {
			admin := filepath.Join(root, "var/lib/dpkg")
			m := fsystest.MapFS{}
			extractortest.Load(t, m, root, "/var/lib/dpkg", func(p string) bool {
				return p == statusPath || p == diversionsPath || strings.HasSuffix(p, ".list")
			})
			for _, l := range []string{"/bin", "/sbin", "/lib", "/lib64"} {
				if target, err := os.Readlink(filepath.Join(root, l)); err == nil {
					m[l] = &fsystest.MapFile{Target: target}
				}
			}
			res, err := Extract(context.Background(), extractortest.FastRoot(t, m))
			if err != nil {
				t.Fatalf("Extract() error = %v", err)
			}
			out, err := exec.Command(dpkgQuery, "--admindir="+admin, "-W", "-f", "${Package}\t${Version}\t${Architecture}\t${source:Package}\t${source:Version}\n").Output()
			if err != nil {
				t.Fatalf("dpkg-query -W: %v", err)
			}
			want := lines(string(out))
			var got []string
			for _, p := range res.Packages {
				got = append(got, strings.Join([]string{p.Name, p.Version, p.Arch, p.SourceName, p.SourceVersion}, "\t"))
				if p.Manager != "dpkg" {
					t.Errorf("%s: Manager = %q, want dpkg", p.Name, p.Manager)
				}
			}
			slices.Sort(want)
			slices.Sort(got)
			if diff := extractortest.Diff(want, got); diff != "" {
				t.Errorf("Extract() packages differ from dpkg-query -W (want: dpkg-query):\n%s", diff)
			}
			if len(got) < 10 {
				t.Errorf("only %d packages in %s; not a real root?", len(got), root)
			}
			checkInstallTimes(t, root, res.Packages)
			checkOwners(t, dpkgQuery, root, res)
		})
	}
}

// checkInstallTimes compares InstallTime with the .list files' mtimes.
func checkInstallTimes(t *testing.T, root string, pkgs []inventory.Package) {
	t.Helper()
	for _, p := range pkgs {
		var want time.Time
		for _, n := range []string{p.Name + ":" + p.Arch + ".list", p.Name + ".list"} {
			if fi, err := os.Stat(filepath.Join(root, "var/lib/dpkg/info", n)); err == nil {
				want = fi.ModTime()
				break
			}
		}
		if !p.InstallTime.Equal(want) {
			t.Errorf("%s: InstallTime = %v, want %v (the .list mtime)", p.Name, p.InstallTime, want)
		}
	}
}

// checkOwners asks dpkg-query -S about a sample of the regular files the
// lists name (about 40, spread evenly) and checks that Owner gives one of
// the packages it names.
func checkOwners(t *testing.T, dpkgQuery, root string, res *Result) {
	t.Helper()
	lists, err := filepath.Glob(filepath.Join(root, "var/lib/dpkg/info/*.list"))
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, l := range lists {
		f, err := os.Open(l)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			p := sc.Text()
			if fi, err := os.Lstat(filepath.Join(root, p)); err != nil || !fi.Mode().IsRegular() {
				continue
			}
			files = append(files, p)
		}
		f.Close()
	}
	if len(files) == 0 {
		t.Fatal("no owned regular files found to check")
	}
	var sample []string
	for i := 0; i < len(files); i += max(1, len(files)/40) {
		sample = append(sample, files[i])
	}
	// One dpkg-query -S call for the whole sample: each call reads every
	// list file.
	args := append([]string{"--admindir=" + filepath.Join(root, "var/lib/dpkg"), "-S"}, sample...)
	out, err := exec.Command(dpkgQuery, args...).Output()
	if err != nil {
		t.Fatalf("dpkg-query -S: %v", err)
	}
	names := make(map[string][]string) // path -> packages
	for _, line := range lines(string(out)) {
		if strings.HasPrefix(line, "diversion by") {
			continue
		}
		pkgs, p, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("dpkg-query -S: unexpected line %q", line)
		}
		for _, q := range strings.Split(pkgs, ", ") {
			q, _, _ = strings.Cut(q, ":") // drop ":amd64"
			names[p] = append(names[p], q)
		}
	}
	for _, p := range sample {
		got, ok := res.Owner(p)
		if !ok || !slices.Contains(names[p], got) {
			t.Errorf("Owner(%q) = %q, %v; dpkg-query -S names %q", p, got, ok, names[p])
		}
	}
	t.Logf("%s: %d packages, %d owned paths, %d owners checked with dpkg-query -S", root, len(res.Packages), res.OwnedPaths(), len(sample))
}
