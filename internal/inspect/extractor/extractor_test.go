package extractor_test

import (
	"errors"
	"testing"

	"github.com/vmtrust/vmtrust/internal/fsys/fsystest"
	"github.com/vmtrust/vmtrust/internal/inspect/extractor"
	"github.com/vmtrust/vmtrust/internal/inspect/extractor/extractortest"
	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

func TestCleanPath(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"/usr/bin/ls", "/usr/bin/ls", true},
		{"/usr//bin/./ls/", "/usr/bin/ls", true},
		{"/.", "/", true},
		{"/../etc/x", "/etc/x", true},
		{"", "", false},
		{"usr/bin", "", false},
		{"./usr", "", false},
		{"/a\x00b", "", false},
	}
	for _, tt := range tests {
		got, ok := extractor.CleanPath(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("CleanPath(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestOwners(t *testing.T) {
	o := extractor.NewOwners(4)
	for _, a := range []struct{ path, pkg string }{
		{"/bin/ls", "coreutils"},
		{"/bin/ls", "busybox"}, // smaller name wins
		{"/bin", "zzz"},
		{"/bin/", "base-files"},
		{"/", "base-files"}, // the root is not recorded
		{"/etc/x", "x"},
	} {
		if err := o.Add(a.path, a.pkg); err != nil {
			t.Fatalf("Add(%q, %q) error = %v", a.path, a.pkg, err)
		}
	}
	res := extractor.NewResult([]inventory.Package{{Name: "b"}, {Name: "a", Version: "2"}, {Name: "a", Version: "1"}}, o)
	for p, want := range map[string]string{"/bin/ls": "busybox", "/bin": "base-files", "//bin//": "base-files", "/etc/x": "x", "/": "", "bin/ls": "", "/nope": ""} {
		if got, ok := res.Owner(p); got != want || ok != (want != "") {
			t.Errorf("Owner(%q) = %q, %v; want %q", p, got, ok, want)
		}
	}
	if res.OwnedPaths() != 3 {
		t.Errorf("OwnedPaths() = %d, want 3", res.OwnedPaths())
	}
	var order []string
	for _, p := range res.Packages {
		order = append(order, p.Name+p.Version)
	}
	if diff := extractortest.Diff([]string{"a1", "a2", "b"}, order); diff != "" {
		t.Errorf("NewResult() order:\n%s", diff)
	}

	// Errors: a relative path, and the bound.
	if err := o.Add("etc/y", "y"); err == nil {
		t.Error("Add(relative path) succeeded, want an error")
	}
	if err := o.Add("/etc/y", "y"); err != nil {
		t.Fatalf("Add(4th path) error = %v", err)
	}
	if err := o.Add("/etc/z", "z"); !errors.Is(err, extractor.ErrTooManyPaths) {
		t.Errorf("Add(5th path) error = %v, want ErrTooManyPaths", err)
	}
	var nilRes *extractor.Result
	if got, ok := nilRes.Owner("/bin/ls"); ok || got != "" {
		t.Errorf("nil Result Owner = %q, %v", got, ok)
	}
}

func TestAddAliases(t *testing.T) {
	m := fsystest.MapFS{
		"/bin":             {Target: "usr/bin"},
		"/sbin":            {Target: "/usr/sbin"},
		"/lib64":           {Target: "../../../../usr/lib64"}, // escapes: Root refuses it
		"/usr/bin/ls":      {Data: []byte("x")},
		"/usr/sbin/init":   {Data: []byte("x")},
		"/usr/lib64/ld.so": {Data: []byte("x")},
		"/loop":            {Target: "loop"},
	}
	tests := []struct {
		name    string
		adds    [][2]string
		max     int
		want    map[string]string
		wantErr bool
	}{
		{name: "merged usr", max: 100, adds: [][2]string{{"/bin/ls", "coreutils"}, {"/sbin/init", "systemd"}, {"/usr/bin/ls", "other"}, {"/loop/x", "l"}, {"/missing/x", "m"}},
			want: map[string]string{"/bin/ls": "coreutils", "/usr/bin/ls": "other", "/sbin/init": "systemd", "/usr/sbin/init": "systemd", "/loop/x": "l", "/missing/x": "m"}},
		{name: "two aliases for one path", max: 100, adds: [][2]string{{"/bin/ls", "zeta"}, {"/usr/bin/../bin/ls", "alpha"}},
			want: map[string]string{"/bin/ls": "zeta", "/usr/bin/ls": "alpha"}},
		{name: "escaping link is an error, not followed", max: 100, adds: [][2]string{{"/lib64/ld.so", "libc"}},
			want: map[string]string{"/lib64/ld.so": "libc"}},
		{name: "aliases over the bound", max: 2, adds: [][2]string{{"/bin/ls", "a"}, {"/sbin/init", "b"}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := extractor.NewOwners(tt.max)
			for _, a := range tt.adds {
				if err := o.Add(a[0], a[1]); err != nil {
					t.Fatal(err)
				}
			}
			err := o.AddAliases(extractortest.Root(m))
			if tt.wantErr {
				if !errors.Is(err, extractor.ErrTooManyPaths) {
					t.Fatalf("AddAliases() error = %v, want ErrTooManyPaths", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("AddAliases() error = %v", err)
			}
			res := extractor.NewResult(nil, o)
			if res.OwnedPaths() != len(tt.want) {
				t.Errorf("OwnedPaths() = %d, want %d", res.OwnedPaths(), len(tt.want))
			}
			for p, w := range tt.want {
				if got, _ := res.Owner(p); got != w {
					t.Errorf("Owner(%q) = %q, want %q", p, got, w)
				}
			}
		})
	}
}
