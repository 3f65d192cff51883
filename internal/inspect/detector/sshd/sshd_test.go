package sshd

import (
	"slices"
	"strings"
	"testing"

	"github.com/vmtrust/vmtrust/internal/fsys/fsystest"
	dt "github.com/vmtrust/vmtrust/internal/inspect/detector/detectortest"
	"github.com/vmtrust/vmtrust/internal/inspect/detector/engine"
)

// debianConfig is the shape of Debian 12's shipped sshd_config.
const debianConfig = `# This is the sshd server system-wide configuration file.  See
# sshd_config(5) for more information.

Include /etc/ssh/sshd_config.d/*.conf

#Port 22
#PermitRootLogin prohibit-password
#PasswordAuthentication yes
#PermitEmptyPasswords no
KbdInteractiveAuthentication no
UsePAM yes
X11Forwarding yes
PrintMotd no
AcceptEnv LANG LC_*
Subsystem	sftp	/usr/lib/openssh/sftp-server
`

func TestDetect(t *testing.T) {
	const main, dropin = "/etc/ssh/sshd_config", "/etc/ssh/sshd_config.d/"
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"debian default: password logins by default", map[string]string{main: debianConfig},
			[]string{"sshd-config medium /etc/ssh/sshd_config"}},
		{"drop-in disables passwords", map[string]string{main: debianConfig, dropin + "50-cloud.conf": "PasswordAuthentication no\n"}, nil},
		{"root login yes", map[string]string{main: "PermitRootLogin yes\nPasswordAuthentication no\n"},
			[]string{"sshd-config high /etc/ssh/sshd_config"}},
		{"explicit prohibit-password is low", map[string]string{main: "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"},
			[]string{"sshd-config low /etc/ssh/sshd_config"}},
		{"empty passwords", map[string]string{main: "PermitEmptyPasswords yes\nPasswordAuthentication no\n"},
			[]string{"sshd-config critical /etc/ssh/sshd_config"}},
		{"keyword=value and case", map[string]string{main: "PERMITROOTLOGIN=YES\npasswordauthentication = no\n"},
			[]string{"sshd-config high /etc/ssh/sshd_config"}},
		{"first drop-in wins over a later yes", map[string]string{main: debianConfig,
			dropin + "10-no.conf": "PasswordAuthentication no\n", dropin + "20-yes.conf": "PasswordAuthentication yes\n"}, nil},
		{"first drop-in yes wins", map[string]string{main: debianConfig,
			dropin + "10-yes.conf": "PasswordAuthentication yes\n", dropin + "20-no.conf": "PasswordAuthentication no\n"},
			[]string{"sshd-config medium /etc/ssh/sshd_config.d/10-yes.conf"}},
		{"include earlier than main's value", map[string]string{main: debianConfig + "PasswordAuthentication no\nPermitRootLogin yes\n",
			dropin + "a.conf": "PermitRootLogin no\n"},
			nil},
		{"relative include", map[string]string{main: "Include sshd_config.d/*.conf\n", dropin + "x.conf": "PasswordAuthentication no\nPermitRootLogin yes\n"},
			[]string{"sshd-config high /etc/ssh/sshd_config.d/x.conf"}},
		{"match block mentioned, lower", map[string]string{main: "PasswordAuthentication no\nMatch User backup\n  PasswordAuthentication yes\n  PermitRootLogin yes\n"},
			[]string{"sshd-config medium /etc/ssh/sshd_config", "sshd-config low /etc/ssh/sshd_config"}},
		{"match in an include ends with the file", map[string]string{main: debianConfig + "PasswordAuthentication no\n",
			dropin + "m.conf": "Match Address 10.0.0.0/8\nPasswordAuthentication yes\n"},
			[]string{"sshd-config low /etc/ssh/sshd_config.d/m.conf"}},
		{"server without configuration", map[string]string{"/usr/sbin/sshd": "\x7fELF"},
			[]string{"sshd-config medium /etc/ssh/sshd_config"}},
		// Negative.
		{"no ssh server", map[string]string{"/etc/hostname": "x\n"}, nil},
		{"commented settings", map[string]string{main: "#PermitRootLogin yes\n  # PermitEmptyPasswords yes\nPasswordAuthentication no # trailing\n"}, nil},
		{"non-matching drop-in names", map[string]string{main: debianConfig + "PasswordAuthentication no\n", dropin + "x.conf.dpkg-old": "PermitRootLogin yes\n"}, nil},
		{"root login no", map[string]string{main: "PermitRootLogin no\nPasswordAuthentication no\nPermitEmptyPasswords no\n"}, nil},
		{"match with safe values", map[string]string{main: "PasswordAuthentication no\nMatch Group sftp\nPermitRootLogin no\n"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := fsystest.MapFS{}
			for p, s := range tt.files {
				m[p] = dt.File(s)
			}
			got := dt.Run(t, dt.Env(m, nil), New())
			if b := dt.Briefs(got); !slices.Equal(b, tt.want) && !(len(b) == 0 && len(tt.want) == 0) {
				t.Fatalf("findings = %q, want %q", b, tt.want)
			}
			dt.Policies(t, got)
		})
	}
}

func TestDetectFails(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
	}{
		{"unbalanced quote", map[string]string{"/etc/ssh/sshd_config": "Banner \"/etc/issue\n"}},
		{"include loop", map[string]string{"/etc/ssh/sshd_config": "Include /etc/ssh/sshd_config\n"}},
		{"match without criteria", map[string]string{"/etc/ssh/sshd_config": "Match\n"}},
		{"include without path", map[string]string{"/etc/ssh/sshd_config": "Include\n"}},
		{"oversized file", map[string]string{"/etc/ssh/sshd_config": strings.Repeat("#\n", MaxFileSize)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := fsystest.MapFS{}
			for p, s := range tt.files {
				m[p] = dt.File(s)
			}
			got := dt.Run(t, dt.Env(m, nil), New())
			if len(got) != 1 || got[0].Rule != engine.RuleInspectionFailed {
				t.Fatalf("findings = %+v, want one inspection-failed", got)
			}
		})
	}
}

func TestReasons(t *testing.T) {
	cfg, err := Parse("/etc/ssh/sshd_config", []byte("PermitRootLogin yes\nMatch User bob\nPermitEmptyPasswords yes\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range Check(cfg, "/etc/ssh/sshd_config") {
		got = append(got, f.Severity.String()+": "+f.Reason)
	}
	want := []string{
		"high: PermitRootLogin yes (/etc/ssh/sshd_config line 1)",
		"medium: PasswordAuthentication is not set and defaults to yes",
		"high: PermitEmptyPasswords yes in the block \"Match User bob\" (/etc/ssh/sshd_config line 3)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Check reasons = %q, want %q", got, want)
	}
}

func TestTokenize(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		ok   bool
	}{
		{"PermitRootLogin yes", []string{"PermitRootLogin", "yes"}, true},
		{"  PermitRootLogin\tyes  # comment", []string{"PermitRootLogin", "yes"}, true},
		{"PermitRootLogin=yes", []string{"PermitRootLogin", "yes"}, true},
		{"PermitRootLogin = yes", []string{"PermitRootLogin", "yes"}, true},
		{"PermitRootLogin =yes", []string{"PermitRootLogin", "yes"}, true},
		{`Banner "/etc/my issue"`, []string{"Banner", "/etc/my issue"}, true},
		{"# only a comment", nil, true},
		{"\r", nil, true},
		{`Banner "/etc/issue`, nil, false},
		{`Ban"ner x`, nil, false},
		{"=yes", nil, false},
	}
	for _, tt := range tests {
		got, err := tokenize(tt.in)
		if (err == nil) != tt.ok || !slices.Equal(got, tt.want) {
			t.Errorf("tokenize(%q) = %q, %v; want %q, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
