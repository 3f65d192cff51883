package dpkg

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vmtrust/vmtrust/internal/inspect/extractor/extractortest"
)

const (
	stanzaA = "Package: a\nStatus: install ok installed\nVersion: 1.0-1\nArchitecture: amd64\nDescription: first\n second line\n .\n third\n"
	stanzaB = "Package: b\nStatus: deinstall ok config-files\nVersion: 2.0\nArchitecture: amd64\n"
	stanzaC = "Package: c\nStatus: purge ok not-installed\nArchitecture: amd64\n"
	stanzaD = "Package: d\nStatus: install ok half-configured\nVersion: 1:3.0-2+b1\nSource: dsrc (3.0-2)\nArchitecture: all\n"
)

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Entry // nil when an error is expected
		wantErr string
		// stricter marks inputs dpkg-query accepts and ParseStatus
		// refuses on purpose.
		stricter bool
	}{
		{name: "states", in: stanzaA + "\n" + stanzaB + "\n" + stanzaC + "\n" + stanzaD, want: []Entry{
			{Package: "a", Version: "1.0-1", Arch: "amd64", SourceName: "a", SourceVersion: "1.0-1", Want: "install", Flag: "ok", State: "installed"},
			{Package: "b", Version: "2.0", Arch: "amd64", SourceName: "b", SourceVersion: "2.0", Want: "deinstall", Flag: "ok", State: "config-files"},
			{Package: "c", Arch: "amd64", SourceName: "c", Want: "purge", Flag: "ok", State: "not-installed"},
			{Package: "d", Version: "1:3.0-2+b1", Arch: "all", SourceName: "dsrc", SourceVersion: "3.0-2", Want: "install", Flag: "ok", State: "half-configured"},
		}},
		{name: "case-insensitive fields, source without version, uppercase name", in: "package: Libfoo\nSTATUS: install ok unpacked\nversion: 2.1\nsource: FooSrc\n", want: []Entry{
			{Package: "libfoo", Version: "2.1", SourceName: "FooSrc", SourceVersion: "2.1", Want: "install", Flag: "ok", State: "unpacked"},
		}},
		{name: "no status is not-installed", in: "Package: x\nVersion: 1\n", want: []Entry{
			{Package: "x", Version: "1", SourceName: "x", SourceVersion: "1", Want: "unknown", Flag: "ok", State: "not-installed"},
		}},
		{name: "multi-arch same package twice", in: "Package: m\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\nMulti-Arch: same\n\nPackage: m\nStatus: install ok installed\nVersion: 1\nArchitecture: i386\nMulti-Arch: same\n", want: []Entry{
			{Package: "m", Version: "1", Arch: "amd64", SourceName: "m", SourceVersion: "1", Want: "install", Flag: "ok", State: "installed"},
			{Package: "m", Version: "1", Arch: "i386", SourceName: "m", SourceVersion: "1", Want: "install", Flag: "ok", State: "installed"},
		}},
		{name: "many blank lines", in: "\n\n" + stanzaB + "\n\n\n" + stanzaA, want: []Entry{
			{Package: "b", Version: "2.0", Arch: "amd64", SourceName: "b", SourceVersion: "2.0", Want: "deinstall", Flag: "ok", State: "config-files"},
			{Package: "a", Version: "1.0-1", Arch: "amd64", SourceName: "a", SourceVersion: "1.0-1", Want: "install", Flag: "ok", State: "installed"},
		}},
		{name: "10 MB description line and non-UTF-8 maintainer", in: "Package: big\nStatus: install ok installed\nVersion: 1\nMaintainer: J\xf6rg\nDescription: " + strings.Repeat("x", 10<<20) + "\n", want: []Entry{
			{Package: "big", Version: "1", SourceName: "big", SourceVersion: "1", Want: "install", Flag: "ok", State: "installed"},
		}},
		{name: "empty", in: "", want: []Entry{}},

		{name: "10 MB package line", in: "Package: " + strings.Repeat("a", 10<<20) + "\nStatus: install ok installed\nVersion: 1\n", wantErr: "longer than", stricter: true},
		{name: "duplicate field", in: "Package: a\nStatus: install ok installed\nVersion: 1\nVersion: 2\n", wantErr: "duplicate field"},
		{name: "duplicate field differing in case", in: "Package: a\nStatus: install ok installed\nVersion: 1\nversion: 2\n", wantErr: "duplicate field"},
		{name: "stanza without Package", in: stanzaA + "\nStatus: install ok installed\nVersion: 1\n", wantErr: "no Package"},
		{name: "NUL byte", in: "Package: a\x00\nStatus: install ok installed\nVersion: 1\n", wantErr: "NUL", stricter: true},
		{name: "missing final newline", in: strings.TrimSuffix(stanzaA, "\n"), wantErr: "final newline"},
		{name: "non-UTF-8 package name", in: "Package: caf\xe9\nStatus: install ok installed\nVersion: 1\n", wantErr: "invalid package name"},
		{name: "listed without version", in: "Package: a\nStatus: install ok installed\n", wantErr: "no Version"},
		{name: "same package twice", in: "Package: a\nStatus: install ok installed\nVersion: 1\n\nPackage: a\nStatus: install ok installed\nVersion: 2\n", wantErr: "listed twice"},
		{name: "comment line", in: "# hello\n" + stanzaA, wantErr: "not a field"},
		{name: "line without colon", in: "Package a\n", wantErr: "not a field"},
		{name: "continuation first", in: " continued\nPackage: a\n", wantErr: "continuation line without a field"},
		{name: "blank-only line inside a stanza then a repeated field", in: "Package: a\nStatus: install ok installed\nVersion: 1\n \nPackage: b\n", wantErr: "duplicate field"},
		{name: "status with two words", in: "Package: a\nStatus: install installed\nVersion: 1\n", wantErr: "invalid Status"},
		{name: "status with unknown state", in: "Package: a\nStatus: install ok running\nVersion: 1\n", wantErr: "invalid Status"},
		{name: "version with space", in: "Package: a\nStatus: install ok installed\nVersion: 1 2\n", wantErr: "invalid Version", stricter: true},
		{name: "version with empty revision", in: "Package: a\nStatus: install ok installed\nVersion: 1.0-\n", wantErr: "invalid Version"},
		{name: "arch with upper case", in: "Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: AMD64\n", wantErr: "invalid Architecture", stricter: true},
		{name: "source with unclosed version", in: "Package: a\nStatus: install ok installed\nVersion: 1\nSource: s (1.0\n", wantErr: "invalid Source", stricter: true},
		{name: "multi-line version", in: "Package: a\nStatus: install ok installed\nVersion: 1\n 2\n", wantErr: "second line", stricter: true},
		{name: "package name starting with a dash", in: "Package: -a\nStatus: install ok installed\nVersion: 1\n", wantErr: "invalid package name"},
		{name: "too many fields", in: "Package: a\n" + manyFields(300), wantErr: "more than 256 fields", stricter: true},
		{name: "too many stanzas", in: manyStanzas(MaxStanzas + 1), wantErr: "more than 100000 stanzas", stricter: true},
		{name: "too large", in: strings.Repeat("#", MaxStatusSize+1), wantErr: "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStatus([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseStatus() error = %v, want one containing %q", err, tt.wantErr)
				}
				if got != nil {
					t.Errorf("ParseStatus() = %v with an error, want nil", got)
				}
			} else {
				if err != nil {
					t.Fatalf("ParseStatus() error = %v", err)
				}
				if got == nil {
					got = []Entry{}
				}
				if diff := extractortest.Diff(tt.want, got); diff != "" {
					t.Errorf("ParseStatus() mismatch :\n%s", diff)
				}
			}
			if len(tt.in) < 1<<20 {
				compareDpkgQuery(t, tt.in, got, err, tt.stricter)
			}
		})
	}
}

func manyStanzas(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "Package: p%d\n\n", i)
	}
	return b.String()
}

func manyFields(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "X-F%d: v\n", i)
	}
	return b.String()
}

// compareDpkgQuery runs dpkg-query -W on status content and checks that it
// agrees with ParseStatus: the same listed packages when both accept the
// input, an error from both otherwise (except for stricter cases).
func compareDpkgQuery(t *testing.T, status string, got []Entry, gotErr error, stricter bool) {
	t.Helper()
	if testing.Short() {
		return // interop (-short)
	}
	dpkgQuery, err := exec.LookPath("dpkg-query")
	if err != nil {
		return // TestDpkgQueryInterop reports the missing tool
	}
	admin := t.TempDir()
	for _, d := range []string{"info", "updates"} {
		if err := os.Mkdir(filepath.Join(admin, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(admin, "status"), []byte(status), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(admin, "available"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(dpkgQuery, "--admindir="+admin, "-W", "-f", "${Package}\t${Version}\t${Architecture}\t${source:Package}\t${source:Version}\n")
	var out bytes.Buffer
	cmd.Stdout = &out
	qerr := cmd.Run()
	switch {
	case qerr != nil && gotErr == nil:
		t.Errorf("dpkg-query -W failed (%v) but ParseStatus accepted the input", qerr)
	case qerr == nil && gotErr != nil:
		if !stricter {
			t.Errorf("dpkg-query -W accepted the input but ParseStatus failed: %v", gotErr)
		}
	case qerr == nil:
		var want []string
		for _, e := range got {
			if e.Listed() {
				want = append(want, strings.Join([]string{e.Package, e.Version, e.Arch, e.SourceName, e.SourceVersion}, "\t"))
			}
		}
		// dpkg-query lists by name and arch; ParseStatus keeps file order.
		slices.Sort(want)
		have := lines(out.String())
		slices.Sort(have)
		if diff := extractortest.Diff(want, have); diff != "" {
			t.Errorf("listed packages differ from dpkg-query -W (want: ours, got: dpkg-query):\n%s", diff)
		}
	}
}

func lines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestParseList(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		max     int
		want    []string
		wantErr string
	}{
		{name: "typical", in: "/.\n/usr\n/usr/bin\n/usr/bin/ls\n", max: 10, want: []string{"/.", "/usr", "/usr/bin", "/usr/bin/ls"}},
		{name: "no final newline, odd bytes", in: "/a b\n/c\td\r", max: 10, want: []string{"/a b", "/c\td\r"}},
		{name: "empty", in: "", max: 10, want: nil},
		{name: "relative line", in: "/a\nb\n", max: 10, wantErr: "line 2: not an absolute path"},
		{name: "empty line", in: "/a\n\n/b\n", max: 10, wantErr: "line 2"},
		{name: "NUL", in: "/a\x00b\n", max: 10, wantErr: "NUL"},
		{name: "over the bound", in: "/a\n/b\n/c\n", max: 2, wantErr: "more than 2 lines"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseList([]byte(tt.in), tt.max)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || got != nil {
					t.Fatalf("ParseList() = %q, %v; want nil and an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseList() error = %v", err)
			}
			if diff := extractortest.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseList() mismatch :\n%s", diff)
			}
		})
	}
}

func TestParseDiversions(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]Diversion
		wantErr string
	}{
		{name: "package and local", in: "/usr/bin/pg_config\n/usr/bin/pg_config.libpq-dev\npostgresql-common\n/etc/x\n/etc/x.orig\n:\n", want: map[string]Diversion{
			"/usr/bin/pg_config": {To: "/usr/bin/pg_config.libpq-dev", By: "postgresql-common"},
			"/etc/x":             {To: "/etc/x.orig", By: ":"},
		}},
		{name: "empty", in: "", want: map[string]Diversion{}},
		{name: "incomplete group", in: "/a\n/b\n", wantErr: "multiple of 3"},
		{name: "relative path", in: "a\n/b\np\n", wantErr: "not an absolute path"},
		{name: "bad package", in: "/a\n/b\nP Q\n", wantErr: "invalid package"},
		{name: "diverted twice", in: "/a\n/b\np\n/a\n/c\nq\n", wantErr: "diverted twice"},
		{name: "NUL", in: "/a\x00\n/b\np\n", wantErr: "NUL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDiversions([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || got != nil {
					t.Fatalf("ParseDiversions() = %v, %v; want nil and an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseDiversions() error = %v", err)
			}
			if diff := extractortest.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseDiversions() mismatch :\n%s", diff)
			}
		})
	}
}
