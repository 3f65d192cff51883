package inspect_test

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/internal/inspect"
	"github.com/vmtrust/vmtrust/internal/inspect/eol"
	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
	"github.com/vmtrust/vmtrust/internal/vmtest"
)

// plantedRules maps the kinds of expected/debian12-dirty.planted (written
// by scripts/fixtures.sh) to the rules that must report them.
var plantedRules = map[string][]string{
	"ssh-host-key":      {"ssh-host-key"},
	"sshd-config":       {"sshd-config"},
	"authorized-keys":   {"ssh-authorized-keys"},
	"private-key":       {"private-key", "x509-cert-with-key"},
	"certificate":       {"x509-cert-with-key"},
	"grid-proxy":        {"grid-proxy"},
	"password-hash":     {"account-password"},
	"empty-password":    {"account-empty-password"},
	"setuid":            {"setuid-unowned"},
	"world-writable":    {"world-writable"},
	"credentials":       {"credentials-file", "shell-history-secret"},
	"no-remote-logging": {"no-remote-logging"},
}

type planted struct{ path, kind string }

func readTSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); line != "" {
			rows = append(rows, strings.Split(line, "\t"))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

func inspectFixture(t *testing.T, dir, name string, opts inspect.Options) *inventory.Report {
	t.Helper()
	if opts.Now == nil {
		opts.Now = func() time.Time { return time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC) }
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := inspect.Inspect(ctx, filepath.Join(dir, name), opts)
	if err != nil {
		t.Fatalf("Inspect(%s): %v", name, err)
	}
	return rep
}

// The package list must equal what dpkg-query reports for the same root.
func checkDpkg(t *testing.T, rep *inventory.Report, expected string) {
	t.Helper()
	var want, got []string
	for _, r := range readTSV(t, expected) {
		want = append(want, strings.Join(r, "\t"))
	}
	for _, p := range rep.Packages {
		if p.Manager != "dpkg" {
			t.Errorf("package %s from %s in a Debian image", p.Name, p.Manager)
		}
		got = append(got, strings.Join([]string{p.Name, p.Version, p.Arch, p.SourceName, p.SourceVersion}, "\t"))
	}
	sort.Strings(want)
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("packages differ from dpkg-query's (%d vs %d):\n%s", len(got), len(want), diffLines(got, want))
	}
}

func diffLines(got, want []string) string {
	in := func(s []string) map[string]bool {
		m := map[string]bool{}
		for _, x := range s {
			m[x] = true
		}
		return m
	}
	g, w := in(got), in(want)
	var b strings.Builder
	for _, x := range want {
		if !g[x] {
			b.WriteString("- " + x + "\n")
		}
	}
	for _, x := range got {
		if !w[x] {
			b.WriteString("+ " + x + "\n")
		}
	}
	return b.String()
}

func hasFinding(rep *inventory.Report, path string, rules []string) bool {
	for _, f := range rep.Findings {
		for _, r := range rules {
			if f.Rule == r && (f.Path == path || strings.HasPrefix(f.Path, path+"/")) {
				return true
			}
		}
	}
	return false
}

func TestDirtyImages(t *testing.T) {
	dir := vmtest.Fixtures(t)
	var plants []planted
	for _, r := range readTSV(t, filepath.Join(dir, "expected/debian12-dirty.planted")) {
		if _, ok := plantedRules[r[1]]; !ok {
			t.Fatalf("planted kind %q has no rule mapping", r[1])
		}
		plants = append(plants, planted{r[0], r[1]})
	}
	skippedXFS := map[string]bool{}
	for _, r := range readTSV(t, filepath.Join(dir, "expected/debian12-dirty-xfs.skipped")) {
		skippedXFS[r[0]] = true
	}
	var kernels []string
	for _, r := range readTSV(t, filepath.Join(dir, "expected/debian12.kernels")) {
		if v, ok := strings.CutPrefix(r[0], "boot/vmlinuz-"); ok {
			kernels = append(kernels, v)
		}
	}
	images := []struct {
		name, format, scheme, fs string
		opts                     inspect.Options
	}{
		{"debian12-dirty.raw", "raw", "none", "ext4", inspect.Options{}},
		{"debian12-dirty.qcow2", "qcow2", "none", "ext4", inspect.Options{}},
		{"debian12-dirty-zstd.qcow2", "qcow2", "none", "ext4", inspect.Options{}},
		{"debian12-dirty-v2.qcow2", "qcow2", "none", "ext4", inspect.Options{}},
		{"debian12-dirty-gpt.qcow2", "qcow2", "gpt", "ext4", inspect.Options{}},
		{"debian12-dirty-mbr.qcow2", "qcow2", "mbr", "ext4", inspect.Options{}},
		{"debian12-dirty.vmdk", "vmdk", "none", "ext4", inspect.Options{}},
		{"debian12-dirty-stream.vmdk", "vmdk", "none", "ext4", inspect.Options{}},
		{"debian12-dirty-xfs.qcow2", "qcow2", "none", "xfs", inspect.Options{}},
		{"overlay.qcow2", "qcow2", "none", "ext4", inspect.Options{BackingDirs: []string{dir}}},
	}
	for _, im := range images {
		t.Run(im.name, func(t *testing.T) {
			rep := inspectFixture(t, dir, im.name, im.opts)
			if rep.Image.Format != im.format || rep.Image.Scheme != im.scheme {
				t.Errorf("format %s, scheme %s; want %s, %s", rep.Image.Format, rep.Image.Scheme, im.format, im.scheme)
			}
			var rootFS string
			for _, p := range rep.Image.Partitions {
				if p.Root {
					rootFS = p.Filesystem
				}
			}
			if !strings.HasPrefix(rootFS, im.fs) {
				t.Errorf("root filesystem %q, want %s (partitions %+v)", rootFS, im.fs, rep.Image.Partitions)
			}
			if rep.OS.ID != "debian" || rep.OS.VersionID != "12" {
				t.Errorf("OS %+v, want debian 12", rep.OS)
			}
			checkDpkg(t, rep, filepath.Join(dir, "expected/debian12-dirty.dpkg"))
			var gotK []string
			for _, k := range rep.Kernels {
				gotK = append(gotK, k.Version)
			}
			if strings.Join(gotK, " ") != strings.Join(kernels, " ") {
				t.Errorf("kernels %v, want %v", gotK, kernels)
			}
			if rep.BuildTime.IsZero() {
				t.Errorf("no build time estimate")
			}
			for _, p := range plants {
				if im.fs == "xfs" && skippedXFS[p.path] {
					continue
				}
				if !hasFinding(rep, p.path, plantedRules[p.kind]) {
					t.Errorf("planted %s at %s not found (rules %v)", p.kind, p.path, plantedRules[p.kind])
				}
			}
			if rep.Image.BytesRead <= 0 || rep.Image.BytesRead >= rep.Image.VirtualSize {
				t.Errorf("bytes read %d of a %d-byte disk", rep.Image.BytesRead, rep.Image.VirtualSize)
			}
			if t.Failed() {
				for _, f := range rep.Findings {
					t.Logf("finding %s %s %s: %s", f.Severity, f.Rule, f.Path, f.Reason)
				}
			}
		})
	}
}

// A clean image has none of the planted kinds of finding, and the same
// packages.
func TestCleanImages(t *testing.T) {
	dir := vmtest.Fixtures(t)
	forbidden := map[string]bool{}
	for _, rules := range plantedRules {
		for _, r := range rules {
			forbidden[r] = true
		}
	}
	for _, name := range []string{"debian12-clean.qcow2", "debian12-clean-gpt.qcow2"} {
		t.Run(name, func(t *testing.T) {
			rep := inspectFixture(t, dir, name, inspect.Options{})
			checkDpkg(t, rep, filepath.Join(dir, "expected/debian12-clean.dpkg"))
			for _, f := range rep.Findings {
				if forbidden[f.Rule] || f.Rule == "inspection-failed" {
					t.Errorf("clean image: finding %s %s %s: %s", f.Severity, f.Rule, f.Path, f.Reason)
				}
			}
		})
	}
}

// End of life from the host's distro-info-data: Debian 12 at a fixed date.
func TestEndOfLife(t *testing.T) {
	dir := vmtest.Fixtures(t)
	data, err := eol.LoadDistroInfo("/usr/share/distro-info")
	if err != nil {
		t.Fatalf("distro-info-data (apt-get install distro-info-data): %v", err)
	}
	at := func(s string) func() time.Time {
		return func() time.Time { t, _ := time.Parse(time.DateOnly, s); return t }
	}
	rep := inspectFixture(t, dir, "debian12-clean.qcow2", inspect.Options{EOL: data, Now: at("2025-06-01")})
	if !rep.EndOfLife.Known || rep.EndOfLife.EOL {
		t.Errorf("2025: end of life %+v, want supported", rep.EndOfLife)
	}
	rep = inspectFixture(t, dir, "debian12-clean.qcow2", inspect.Options{EOL: data, Now: at("2029-01-01")})
	if !rep.EndOfLife.EOL || !hasFinding(rep, rep.OS.Source, []string{"eol-os"}) {
		t.Errorf("2029: end of life %+v, findings %v; want eol-os", rep.EndOfLife, rep.Findings)
	}
}

func TestRPMImage(t *testing.T) {
	dir := vmtest.Fixtures(t)
	rep := inspectFixture(t, dir, "rocky-rpm.qcow2", inspect.Options{})
	if rep.OS.ID != "rocky" {
		t.Errorf("OS %+v, want rocky", rep.OS)
	}
	var want, got []string
	for _, r := range readTSV(t, filepath.Join(dir, "expected/rocky-rpm.rpm")) {
		want = append(want, strings.Join([]string{r[0], strings.TrimPrefix(r[1], "0:"), r[2], r[3]}, "\t"))
	}
	for _, p := range rep.Packages {
		src := p.SourceName + "-" + p.SourceVersion + ".src.rpm"
		if p.SourceName == "" {
			src = "(none)"
		}
		// The source version carries the binary's epoch; SOURCERPM does not.
		if i := strings.Index(p.SourceVersion, ":"); i >= 0 {
			src = p.SourceName + "-" + p.SourceVersion[i+1:] + ".src.rpm"
		}
		got = append(got, strings.Join([]string{p.Name, strings.TrimPrefix(p.Version, "0:"), p.Arch, src}, "\t"))
	}
	sort.Strings(want)
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rpm packages differ from rpm -qa's:\n%s", diffLines(got, want))
	}
}

// An overlay whose backing file is not in an allowed directory is refused.
func TestOverlayNeedsBackingDir(t *testing.T) {
	dir := vmtest.Fixtures(t)
	_, err := inspect.Inspect(context.Background(), filepath.Join(dir, "overlay.qcow2"), inspect.Options{})
	if err == nil || !strings.Contains(err.Error(), "debian12-clean.qcow2") || !strings.Contains(err.Error(), "--backing-dir") {
		t.Fatalf("Inspect(overlay.qcow2) without a backing dir = %v, want a refusal naming the backing file", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
}
