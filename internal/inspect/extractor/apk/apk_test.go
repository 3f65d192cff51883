package apk

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/internal/fsys"
	"github.com/vmtrust/vmtrust/internal/fsys/fsystest"
	"github.com/vmtrust/vmtrust/internal/inspect/extractor/extractortest"
	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

// installed is shaped like Alpine 3.19's /lib/apk/db/installed.
const installed = `C:Q1jMZ0Zc4k5mMA5ZmfCkLMYb2IsOg=
P:musl
V:1.2.4_git20230717-r4
A:x86_64
S:407278
I:663552
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Timo Teräs <timo.teras@iki.fi>
t:1701290096
c:2a6e8f6d8d9e1b1a8d0e2d9f0d5d0d7a1e6e1c3f
p:so:libc.musl-x86_64.so.1=1
F:lib
R:ld-musl-x86_64.so.1
a:0:0:755
Z:Q1kT3h5X0dEJMGK9h6Q7kT4dAF8XM=
R:libc.musl-x86_64.so.1
a:0:0:777
Z:Q17yJ3JFNypA4mxhJJr0ou6CzsJVI=

C:Q1g0cXv8o8Cz1C1wW8hcvUd0t4m7c=
P:busybox-binsh
V:1.36.1-r15
A:x86_64
S:1525
I:1
T:busybox ash /bin/sh
o:busybox
t:1702917036
D:busybox=1.36.1-r15
F:bin
R:sh
a:0:0:777
Z:Q1pcfTfDNEbNKQc2s1tia7da05M8Q=

C:Q1abc=
P:ca-certificates-bundle
V:20230506-r0
A:x86_64
o:ca-certificates
t:1683559020
F:etc
F:etc/ssl
F:etc/ssl/certs
R:ca-certificates.crt
Z:Q1x=

`

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Entry // nil when an error is expected
		wantErr string
	}{
		{name: "alpine", in: installed, want: []Entry{
			{Name: "musl", Version: "1.2.4_git20230717-r4", Arch: "x86_64", Origin: "musl", BuildTime: time.Unix(1701290096, 0).UTC(),
				Paths: []string{"/lib", "/lib/ld-musl-x86_64.so.1", "/lib/libc.musl-x86_64.so.1"}},
			{Name: "busybox-binsh", Version: "1.36.1-r15", Arch: "x86_64", Origin: "busybox", BuildTime: time.Unix(1702917036, 0).UTC(),
				Paths: []string{"/bin", "/bin/sh"}},
			{Name: "ca-certificates-bundle", Version: "20230506-r0", Arch: "x86_64", Origin: "ca-certificates", BuildTime: time.Unix(1683559020, 0).UTC(),
				Paths: []string{"/etc", "/etc/ssl", "/etc/ssl/certs", "/etc/ssl/certs/ca-certificates.crt"}},
		}},
		{name: "minimal, no final newline, file at the root", in: "P:a\nV:1.0-r0\nR:top", want: []Entry{
			{Name: "a", Version: "1.0-r0", Origin: "a", Paths: []string{"/top"}},
		}},
		{name: "non-UTF-8 description", in: "P:a\nV:1\nT:caf\xe9\n", want: []Entry{{Name: "a", Version: "1", Origin: "a"}}},
		{name: "empty", in: "", want: nil},

		{name: "stanza without P", in: "V:1.0\nA:x86_64\n", wantErr: "without P:"},
		{name: "stanza without V", in: "P:a\nA:x86_64\n", wantErr: "no V:"},
		{name: "duplicate P", in: "P:a\nP:b\nV:1\n", wantErr: "P: given twice"},
		{name: "duplicate V", in: "P:a\nV:1\nV:2\n", wantErr: "V: given twice"},
		{name: "same package twice", in: "P:a\nV:1\n\nP:a\nV:2\n", wantErr: "listed twice"},
		{name: "NUL byte", in: "P:a\x00\nV:1\n", wantErr: "NUL"},
		{name: "non-UTF-8 name", in: "P:caf\xe9\nV:1\n", wantErr: "invalid package name"},
		{name: "line without colon", in: "P:a\nV:1\nhello\n", wantErr: "not a \"X:value\" line"},
		{name: "two-letter key", in: "P:a\nPP:b\n", wantErr: "not a \"X:value\" line"},
		{name: "10 MB name line", in: "P:" + strings.Repeat("a", 10<<20) + "\nV:1\n", wantErr: "longer than"},
		{name: "version not starting with a digit", in: "P:a\nV:abc\n", wantErr: "invalid version"},
		{name: "bad arch", in: "P:a\nV:1\nA:x86 64\n", wantErr: "invalid arch"},
		{name: "bad build time", in: "P:a\nV:1\nt:-5\n", wantErr: "invalid build time"},
		{name: "absolute directory", in: "P:a\nV:1\nF:/etc\n", wantErr: "invalid directory"},
		{name: "file name with a slash", in: "P:a\nV:1\nF:etc\nR:../shadow\n", wantErr: "invalid file name"},
		{name: "file name dot-dot", in: "P:a\nV:1\nR:..\n", wantErr: "invalid file name"},
		{name: "too many packages", in: manyPackages(MaxPackages + 1), wantErr: "more than 100000 packages"},
		{name: "too large", in: strings.Repeat("x", MaxDBSize+1), wantErr: "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || got != nil {
					t.Fatalf("Parse() = %v, %v; want nil and an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse() error = %v", err)
			}
			if diff := extractortest.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse():\n%s", diff)
			}
		})
	}
}

func manyPackages(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "P:p%d\nV:1\n\n", i)
	}
	return b.String()
}

func TestExtract(t *testing.T) {
	m := fsystest.MapFS{
		DBPath:    {Data: []byte(installed), ModTime: time.Now()},
		"/bin/sh": {Target: "/bin/busybox"},
		"/lib":    {Mode: fs.ModeDir | 0o755},
	}
	res, err := Extract(context.Background(), extractortest.Root(m))
	if err != nil {
		t.Fatalf("Extract() error = %v", err)
	}
	want := []inventory.Package{
		{Name: "busybox-binsh", Version: "1.36.1-r15", Arch: "x86_64", SourceName: "busybox", SourceVersion: "1.36.1-r15", Manager: "apk"},
		{Name: "ca-certificates-bundle", Version: "20230506-r0", Arch: "x86_64", SourceName: "ca-certificates", SourceVersion: "20230506-r0", Manager: "apk"},
		{Name: "musl", Version: "1.2.4_git20230717-r4", Arch: "x86_64", SourceName: "musl", SourceVersion: "1.2.4_git20230717-r4", Manager: "apk"},
	}
	if diff := extractortest.Diff(want, res.Packages); diff != "" {
		t.Errorf("Extract().Packages:\n%s", diff)
	}
	for p, w := range map[string]string{
		"/lib/libc.musl-x86_64.so.1":         "musl",
		"/bin/sh":                            "busybox-binsh",
		"/etc/ssl/certs/ca-certificates.crt": "ca-certificates-bundle",
		"/etc/ssl":                           "ca-certificates-bundle",
		"/etc/passwd":                        "",
		"/":                                  "",
	} {
		if got, ok := res.Owner(p); got != w || ok != (w != "") {
			t.Errorf("Owner(%q) = %q, %v; want %q", p, got, ok, w)
		}
	}
}

func TestExtractErrors(t *testing.T) {
	tests := []struct {
		name    string
		fs      fsystest.MapFS
		wantErr string
		wantIs  error
	}{
		{name: "no database", fs: fsystest.MapFS{"/etc/alpine-release": {Data: []byte("3.19.1\n")}}, wantIs: fs.ErrNotExist},
		{name: "too large", fs: fsystest.MapFS{DBPath: {Data: make([]byte, MaxDBSize+1)}}, wantIs: fsys.ErrTooLarge},
		{name: "link escapes", fs: fsystest.MapFS{"/lib/apk/db": {Target: "../../../../../var/lib"}}, wantIs: fsys.ErrEscapesRoot},
		{name: "malformed", fs: fsystest.MapFS{DBPath: {Data: []byte("P:a\n")}}, wantErr: "no V:"},
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
}
