package perms

import (
	"io/fs"
	"slices"
	"testing"

	"github.com/vmtrust/vmtrust/internal/fsys/fsystest"
	dt "github.com/vmtrust/vmtrust/internal/inspect/detector/detectortest"
)

func TestDetect(t *testing.T) {
	suid := func(perm fs.FileMode) *fsystest.MapFile { return dt.Mode("\x7fELF", fs.ModeSetuid|perm) }
	tests := []struct {
		name  string
		files fsystest.MapFS
		owned []string // nil: ownership unknown
		want  []string
	}{
		{"unowned setuid root shell", fsystest.MapFS{"/usr/local/bin/rootsh": suid(0o755), "/usr/bin/passwd": suid(0o755)}, []string{"/usr/bin/passwd"},
			[]string{"setuid-unowned high /usr/local/bin/rootsh"}},
		{"setgid in a home", fsystest.MapFS{"/home/u/x": dt.Mode("x", fs.ModeSetgid|0o755)}, []string{},
			[]string{"setuid-unowned high /home/u/x"}},
		{"ownership unknown", fsystest.MapFS{"/usr/bin/passwd": suid(0o755)}, nil,
			[]string{"setuid-unowned medium /usr/bin/passwd"}},
		{"world-writable config", fsystest.MapFS{"/etc/sudoers.d/x": dt.Mode("x", 0o666)}, []string{},
			[]string{"world-writable medium /etc/sudoers.d/x"}},
		{"world-writable directory", fsystest.MapFS{"/usr/local/bin": dt.Dir(0o777)}, []string{},
			[]string{"world-writable medium /usr/local/bin"}},
		{"lib64 and var/lib", fsystest.MapFS{"/lib64/ld.so": dt.Mode("x", 0o757), "/var/lib/app/db": dt.Mode("x", 0o646)}, []string{},
			[]string{"world-writable medium /lib64/ld.so", "world-writable medium /var/lib/app/db"}},
		{"setuid and world-writable", fsystest.MapFS{"/usr/bin/evil": suid(0o777)}, []string{},
			[]string{"setuid-unowned high /usr/bin/evil", "world-writable medium /usr/bin/evil"}},
		// Negative.
		{"package-owned setuid", fsystest.MapFS{"/usr/bin/su": suid(0o755), "/usr/bin/wall": dt.Mode("x", fs.ModeSetgid|0o755)}, []string{"/usr/bin/su", "/usr/bin/wall"}, nil},
		{"setgid directory", fsystest.MapFS{"/var/mail": dt.Dir(fs.ModeSetgid | 0o775)}, []string{}, nil},
		{"sticky world-writable directory", fsystest.MapFS{"/var/lib/php/sessions": dt.Dir(fs.ModeSticky | 0o777)}, []string{}, nil},
		{"world-writable outside system trees", fsystest.MapFS{"/tmp/x": dt.Mode("x", 0o666), "/home/u/f": dt.Mode("x", 0o666), "/var/tmp": dt.Dir(0o777)}, []string{}, nil},
		{"symlinks excluded", fsystest.MapFS{"/etc/alternatives/x": dt.Link("/usr/bin/x")}, []string{}, nil},
		{"group-writable only", fsystest.MapFS{"/etc/x": dt.Mode("x", 0o664)}, []string{}, nil},
		{"look-alike prefix", fsystest.MapFS{"/etcetera/x": dt.Mode("x", 0o666), "/var/library/x": dt.Mode("x", 0o666)}, []string{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := dt.Run(t, dt.Env(tt.files, tt.owned), New())
			if b := dt.Briefs(got); !slices.Equal(b, tt.want) && !(len(b) == 0 && len(tt.want) == 0) {
				t.Fatalf("findings = %q, want %q", b, tt.want)
			}
			dt.Policies(t, got)
		})
	}
}

func TestReasons(t *testing.T) {
	m := fsystest.MapFS{"/usr/local/bin/x": &fsystest.MapFile{Data: []byte("x"), Mode: fs.ModeSetuid | fs.ModeSetgid | 0o777, Uid: 0, Gid: 50}}
	got := dt.Run(t, dt.Env(m, []string{}), New())
	want := []string{
		"setuid (uid 0), setgid (gid 50) file not installed by any package",
		"world-writable file (mode 6777, owner uid 0)",
	}
	var reasons []string
	for _, f := range got {
		reasons = append(reasons, f.Reason)
	}
	if !slices.Equal(reasons, want) {
		t.Errorf("reasons = %q, want %q", reasons, want)
	}
}
