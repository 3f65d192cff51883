package osrelease

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmtrust/vmtrust/internal/fsys"
	"github.com/vmtrust/vmtrust/internal/fsys/fsystest"
	"github.com/vmtrust/vmtrust/internal/inspect/extractor/extractortest"
	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

const (
	debian12 = `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
`
	rocky9 = `NAME="Rocky Linux"
VERSION="9.3 (Blue Onyx)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.3"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Rocky Linux 9.3 (Blue Onyx)"
ANSI_COLOR="0;32"
LOGO="fedora-logo-icon"
CPE_NAME="cpe:/o:rocky:rocky:9::baseos"
HOME_URL="https://rockylinux.org/"
SUPPORT_END="2032-05-31"
ROCKY_SUPPORT_PRODUCT="Rocky-Linux-9"
ROCKY_SUPPORT_PRODUCT_VERSION="9.3"
REDHAT_SUPPORT_PRODUCT="Rocky Linux"
REDHAT_SUPPORT_PRODUCT_VERSION="9.3"
`
	ubuntu2204 = `PRETTY_NAME="Ubuntu 22.04.3 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.3 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
UBUNTU_CODENAME=jammy
`
	alpine319 = "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME=\"Alpine Linux v3.19\"\nHOME_URL=\"https://alpinelinux.org/\"\n"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]string
		wantErr string
	}{
		{name: "debian", in: debian12, want: map[string]string{
			"PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)", "NAME": "Debian GNU/Linux", "VERSION_ID": "12",
			"VERSION": "12 (bookworm)", "VERSION_CODENAME": "bookworm", "ID": "debian", "HOME_URL": "https://www.debian.org/",
			"SUPPORT_URL": "https://www.debian.org/support", "BUG_REPORT_URL": "https://bugs.debian.org/",
		}},
		{name: "quoting", in: "A='single $quoted \\ \"x\"'\nB=\"dq \\\"esc\\\" \\$HOME \\\\ \\n kept\"\nC=un\\ quoted\\$\nD=\"con\"'cat'enated\nE=\nF=\"\"\n", want: map[string]string{
			"A": `single $quoted \ "x"`, "B": `dq "esc" $HOME \ \n kept`, "C": "un quoted$", "D": "concatenated", "E": "", "F": "",
		}},
		{name: "comments, blanks, CRLF, trailing comment", in: "# comment\n\n   \n  ID=fedora # trailing\r\nVERSION_ID=39\r\n", want: map[string]string{"ID": "fedora", "VERSION_ID": "39"}},
		{name: "UTF-8 value", in: "NAME=\"Débian ✓\"\n", want: map[string]string{"NAME": "Débian ✓"}},
		{name: "empty", in: "", want: map[string]string{}},

		{name: "unterminated double quote", in: "NAME=\"Debian\n", wantErr: "unterminated double quote"},
		{name: "unterminated single quote", in: "NAME='Debian\n", wantErr: "unterminated single quote"},
		{name: "backslash at end", in: "NAME=x\\\n", wantErr: "backslash at end"},
		{name: "command substitution", in: "NAME=\"$(reboot)\"\n", wantErr: "shell expansion"},
		{name: "backticks unquoted", in: "NAME=`id`\n", wantErr: "shell expansion"},
		{name: "variable expansion", in: "NAME=$HOME\n", wantErr: "shell expansion"},
		{name: "unquoted blank", in: "NAME=Debian Linux\n", wantErr: "unquoted blank"},
		{name: "shell operator", in: "NAME=a;reboot\n", wantErr: "shell operator"},
		{name: "duplicate key", in: "ID=debian\nID=ubuntu\n", wantErr: "assigned twice"},
		{name: "no equals sign", in: "ID debian\n", wantErr: "no '='"},
		{name: "bad key", in: "1D=x\n", wantErr: "invalid variable name"},
		{name: "export prefix", in: "export ID=x\n", wantErr: "invalid variable name"},
		{name: "NUL byte", in: "ID=deb\x00ian\n", wantErr: "NUL"},
		{name: "non-UTF-8", in: "NAME=\"caf\xe9\"\n", wantErr: "UTF-8"},
		{name: "10 MB line", in: "NAME=" + strings.Repeat("a", 10<<20) + "\n", wantErr: "limit"},
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

func file(s string) *fsystest.MapFile { return &fsystest.MapFile{Data: []byte(s), Mode: 0o644} }

func TestDetect(t *testing.T) {
	tests := []struct {
		name string
		fs   fsystest.MapFS
		want inventory.OS
	}{
		{name: "debian through the relative link", fs: fsystest.MapFS{
			"/etc/os-release":     {Target: "../usr/lib/os-release"},
			"/usr/lib/os-release": file(debian12),
			"/etc/debian_version": file("12.5\n"),
		}, want: inventory.OS{ID: "debian", VersionID: "12", VersionCodename: "bookworm", PrettyName: "Debian GNU/Linux 12 (bookworm)", Source: "/etc/os-release"}},
		{name: "rocky", fs: fsystest.MapFS{"/etc/os-release": file(rocky9), "/etc/rocky-release": file("garbage")},
			want: inventory.OS{ID: "rocky", IDLike: []string{"rhel", "centos", "fedora"}, VersionID: "9.3", PrettyName: "Rocky Linux 9.3 (Blue Onyx)", Source: "/etc/os-release"}},
		{name: "ubuntu", fs: fsystest.MapFS{"/etc/os-release": file(ubuntu2204)},
			want: inventory.OS{ID: "ubuntu", IDLike: []string{"debian"}, VersionID: "22.04", VersionCodename: "jammy", PrettyName: "Ubuntu 22.04.3 LTS", Source: "/etc/os-release"}},
		{name: "only /usr/lib/os-release", fs: fsystest.MapFS{"/usr/lib/os-release": file(alpine319)},
			want: inventory.OS{ID: "alpine", VersionID: "3.19.1", PrettyName: "Alpine Linux v3.19", Source: "/usr/lib/os-release"}},
		{name: "absolute link stays in the guest", fs: fsystest.MapFS{"/etc/os-release": {Target: "/usr/lib/os-release"}, "/usr/lib/os-release": file("ID=arch\n")},
			want: inventory.OS{ID: "arch", Source: "/etc/os-release"}},
		{name: "no ID defaults to linux; NAME as pretty name", fs: fsystest.MapFS{"/etc/os-release": file("NAME=Foo\n")},
			want: inventory.OS{ID: "linux", PrettyName: "Foo", Source: "/etc/os-release"}},
		{name: "debian_version", fs: fsystest.MapFS{"/etc/debian_version": file("7.11\n")},
			want: inventory.OS{ID: "debian", VersionID: "7", VersionCodename: "wheezy", PrettyName: "Debian GNU/Linux 7.11", Source: "/etc/debian_version"}},
		{name: "debian testing", fs: fsystest.MapFS{"/etc/debian_version": file("trixie/sid\n")},
			want: inventory.OS{ID: "debian", VersionCodename: "trixie", PrettyName: "Debian GNU/Linux trixie/sid", Source: "/etc/debian_version"}},
		{name: "old ubuntu via lsb-release", fs: fsystest.MapFS{
			"/etc/debian_version": file("squeeze/sid\n"),
			"/etc/lsb-release":    file("DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=12.04\nDISTRIB_CODENAME=precise\nDISTRIB_DESCRIPTION=\"Ubuntu 12.04.5 LTS\"\n"),
		}, want: inventory.OS{ID: "ubuntu", IDLike: []string{"debian"}, VersionID: "12.04", VersionCodename: "precise", PrettyName: "Ubuntu 12.04.5 LTS", Source: "/etc/lsb-release"}},
		{name: "rocky-release", fs: fsystest.MapFS{"/etc/rocky-release": file("Rocky Linux release 9.3 (Blue Onyx)\n"), "/etc/redhat-release": {Target: "rocky-release"}},
			want: inventory.OS{ID: "rocky", IDLike: []string{"rhel", "centos", "fedora"}, VersionID: "9.3", PrettyName: "Rocky Linux release 9.3 (Blue Onyx)", Source: "/etc/rocky-release"}},
		{name: "almalinux-release", fs: fsystest.MapFS{"/etc/almalinux-release": file("AlmaLinux release 8.9 (Midnight Oncilla)\n")},
			want: inventory.OS{ID: "almalinux", IDLike: []string{"rhel", "centos", "fedora"}, VersionID: "8.9", PrettyName: "AlmaLinux release 8.9 (Midnight Oncilla)", Source: "/etc/almalinux-release"}},
		{name: "centos 6", fs: fsystest.MapFS{"/etc/centos-release": file("CentOS release 6.10 (Final)\n")},
			want: inventory.OS{ID: "centos", IDLike: []string{"rhel", "fedora"}, VersionID: "6.10", PrettyName: "CentOS release 6.10 (Final)", Source: "/etc/centos-release"}},
		{name: "rhel 7 server", fs: fsystest.MapFS{"/etc/redhat-release": file("Red Hat Enterprise Linux Server release 7.9 (Maipo)\n")},
			want: inventory.OS{ID: "rhel", IDLike: []string{"fedora"}, VersionID: "7.9", PrettyName: "Red Hat Enterprise Linux Server release 7.9 (Maipo)", Source: "/etc/redhat-release"}},
		{name: "scientific linux", fs: fsystest.MapFS{"/etc/redhat-release": file("Scientific Linux release 7.9 (Nitrogen)\n")},
			want: inventory.OS{ID: "scientific", IDLike: []string{"rhel", "centos", "fedora"}, VersionID: "7.9", PrettyName: "Scientific Linux release 7.9 (Nitrogen)", Source: "/etc/redhat-release"}},
		{name: "alpine-release", fs: fsystest.MapFS{"/etc/alpine-release": file("3.19.1\n")},
			want: inventory.OS{ID: "alpine", VersionID: "3.19.1", PrettyName: "Alpine Linux v3.19.1", Source: "/etc/alpine-release"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Detect(extractortest.Root(tt.fs))
			if err != nil {
				t.Fatalf("Detect() error = %v", err)
			}
			if diff := extractortest.Diff(tt.want, got); diff != "" {
				t.Errorf("Detect():\n%s", diff)
			}
		})
	}
}

func TestDetectErrors(t *testing.T) {
	tests := []struct {
		name    string
		fs      fsystest.MapFS
		wantErr string
		wantIs  error
	}{
		{name: "nothing", fs: fsystest.MapFS{"/etc/hostname": file("x")}, wantIs: ErrNotFound},
		{name: "link escapes the guest", fs: fsystest.MapFS{"/etc/os-release": {Target: "../../../../../etc/os-release"}}, wantIs: fsys.ErrEscapesRoot},
		{name: "link loop", fs: fsystest.MapFS{"/etc/os-release": {Target: "os-release"}}, wantIs: fsys.ErrSymlinkLoop},
		{name: "too large", fs: fsystest.MapFS{"/etc/os-release": {Data: make([]byte, MaxFileSize+1)}}, wantIs: fsys.ErrTooLarge},
		{name: "directory", fs: fsystest.MapFS{"/etc/os-release": {Mode: fs.ModeDir | 0o755}}, wantIs: fsys.ErrIsDir},
		{name: "malformed os-release does not fall through", fs: fsystest.MapFS{"/etc/os-release": file("ID=\"debian\n"), "/usr/lib/os-release": file(debian12)}, wantErr: "unterminated"},
		{name: "ID with upper case", fs: fsystest.MapFS{"/etc/os-release": file("ID=Debian\n")}, wantErr: "invalid ID"},
		{name: "ID with a slash", fs: fsystest.MapFS{"/etc/os-release": file("ID=../../x\n")}, wantErr: "invalid ID"},
		{name: "VERSION_ID with a space", fs: fsystest.MapFS{"/etc/os-release": file("ID=x\nVERSION_ID=\"1 2\"\n")}, wantErr: "invalid VERSION_ID"},
		{name: "ID_LIKE entry invalid", fs: fsystest.MapFS{"/etc/os-release": file("ID=x\nID_LIKE=\"rhel Fedora!\"\n")}, wantErr: "invalid ID_LIKE"},
		{name: "huge PRETTY_NAME", fs: fsystest.MapFS{"/etc/os-release": file("ID=x\nPRETTY_NAME=" + strings.Repeat("a", 300) + "\n")}, wantErr: "PRETTY_NAME longer"},
		{name: "unknown red hat family", fs: fsystest.MapFS{"/etc/redhat-release": file("Hostile Linux release 1 (x)\n")}, wantErr: "unrecognised distribution"},
		{name: "release line without release", fs: fsystest.MapFS{"/etc/redhat-release": file("Rocky Linux 9.3\n")}, wantErr: "no \" release \""},
		{name: "release line with control characters", fs: fsystest.MapFS{"/etc/centos-release": file("CentOS release 7\x1b[2J\n")}, wantErr: "control character"},
		{name: "empty alpine-release", fs: fsystest.MapFS{"/etc/alpine-release": file("\n")}, wantErr: "empty"},
		{name: "alpine-release with two lines", fs: fsystest.MapFS{"/etc/alpine-release": file("3.19.1\n3.20\n")}, wantErr: "control character"},
		{name: "debian_version garbage", fs: fsystest.MapFS{"/etc/debian_version": file("hello\n")}, wantErr: "unrecognised Debian version"},
		{name: "malformed lsb-release", fs: fsystest.MapFS{"/etc/debian_version": file("12.1\n"), "/etc/lsb-release": file("DISTRIB_ID=`x`\n")}, wantErr: "shell expansion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Detect(extractortest.Root(tt.fs))
			if err == nil {
				t.Fatalf("Detect() = %+v, want an error", got)
			}
			if got.ID != "" || got.Source != "" {
				t.Errorf("Detect() = %+v with an error, want the zero OS", got)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Detect() error = %v, want one wrapping %v", err, tt.wantIs)
			}
			if tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Detect() error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// shellValues sources content with /bin/sh and returns the values the
// shell assigns to keys: the reference semantics os-release(5) names.
func shellValues(t *testing.T, content string, keys []string) map[string]string {
	t.Helper()
	sh := extractortest.NeedTool(t, "sh", "dash")
	f := filepath.Join(t.TempDir(), "os-release")
	if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `. "$1" || exit 1; shift; for k; do eval "printf '%s\\0' \"\${$k}\""; done`
	out, err := exec.Command(sh, append([]string{"-c", script, "sh", f}, keys...)...).Output()
	if err != nil {
		t.Fatalf("sh could not source the input: %v", err)
	}
	vals := strings.Split(string(out), "\x00")
	m := make(map[string]string, len(keys))
	for i, k := range keys {
		m[k] = vals[i]
	}
	return m
}

// TestParseMatchesShell checks that Parse reads each accepted vector as
// the shell does.
func TestParseMatchesShell(t *testing.T) {
	for _, in := range []string{debian12, rocky9, ubuntu2204, alpine319,
		"A='single $quoted \\ \"x\"'\nB=\"dq \\\"esc\\\" \\$HOME \\\\ \\n kept\"\nC=un\\ quoted\\$\nD=\"con\"'cat'enated\nE=\nF=\"\"\n",
		"# comment\n\n   \n  ID=fedora # trailing\nVERSION_ID=39\n",
	} {
		got, err := Parse([]byte(in))
		if err != nil {
			t.Fatalf("Parse(%q) error = %v", in, err)
		}
		keys := make([]string, 0, len(got))
		for k := range got {
			keys = append(keys, k)
		}
		if diff := extractortest.Diff(shellValues(t, in, keys), got); diff != "" {
			t.Errorf("Parse(%q) differs from sh (want: sh):\n%s", in, diff)
		}
	}
}

// TestDetectHost runs Detect on the host's own os-release, loaded into a
// MapFS, and compares its ID with the shell's reading.
func TestDetectHost(t *testing.T) {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		t.Skipf("the host has no /etc/os-release: %v", err)
	}
	got, err := Detect(extractortest.Root(fsystest.MapFS{"/etc/os-release": file(string(b))}))
	if err != nil {
		t.Fatalf("Detect(host os-release) error = %v", err)
	}
	if want := shellValues(t, string(b), []string{"ID"})["ID"]; got.ID != want {
		t.Errorf("Detect().ID = %q, the shell reads %q", got.ID, want)
	}
}
