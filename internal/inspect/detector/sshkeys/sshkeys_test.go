package sshkeys

import (
	"encoding/base64"
	"encoding/binary"
	"slices"
	"strings"
	"testing"

	"github.com/vmtrust/vmtrust/internal/fsys/fsystest"
	dt "github.com/vmtrust/vmtrust/internal/inspect/detector/detectortest"
)

// pub returns a well-formed public key line of type typ.
func pub(typ, comment string) string {
	blob := binary.BigEndian.AppendUint32(nil, uint32(len(typ)))
	blob = append(blob, typ...)
	blob = binary.BigEndian.AppendUint32(blob, 32)
	blob = append(blob, make([]byte, 32)...)
	s := typ + " " + base64.StdEncoding.EncodeToString(blob)
	if comment != "" {
		s += " " + comment
	}
	return s
}

func TestDetect(t *testing.T) {
	three := pub("ssh-ed25519", "alice@laptop") + "\n" + pub("ssh-rsa", "bob@ci") + "\n" +
		`no-pty,command="echo \"hi there\"" ` + pub("ecdsa-sha2-nistp256", "backup") + "\n"
	tests := []struct {
		name  string
		files map[string]*fsystest.MapFile
		want  []string
	}{
		{"root keys", map[string]*fsystest.MapFile{"/root/.ssh/authorized_keys": dt.Mode(three, 0o600)},
			[]string{"ssh-authorized-keys high /root/.ssh/authorized_keys"}},
		{"user keys2", map[string]*fsystest.MapFile{"/home/alice/.ssh/authorized_keys2": dt.File(pub("ssh-ed25519", ""))},
			[]string{"ssh-authorized-keys high /home/alice/.ssh/authorized_keys2"}},
		{"home outside /home", map[string]*fsystest.MapFile{"/var/lib/jenkins/.ssh/authorized_keys": dt.File(pub("sk-ssh-ed25519@openssh.com", "yubi"))},
			[]string{"ssh-authorized-keys high /var/lib/jenkins/.ssh/authorized_keys"}},
		{"certificate key type", map[string]*fsystest.MapFile{"/root/.ssh/authorized_keys": dt.File(pub("ssh-ed25519-cert-v01@openssh.com", ""))},
			[]string{"ssh-authorized-keys high /root/.ssh/authorized_keys"}},
		{"host keys", map[string]*fsystest.MapFile{
			"/etc/ssh/ssh_host_ed25519_key": dt.Mode("-----BEGIN OPENSSH PRIVATE KEY-----\n", 0o600), "/etc/ssh/ssh_host_ed25519_key.pub": dt.File(pub("ssh-ed25519", "root@build")),
			"/etc/ssh/ssh_host_rsa_key": dt.Mode("x", 0o600)},
			[]string{"ssh-host-key high /etc/ssh/ssh_host_ed25519_key", "ssh-host-key high /etc/ssh/ssh_host_rsa_key"}},
		// Negative.
		{"empty file", map[string]*fsystest.MapFile{"/root/.ssh/authorized_keys": dt.File("")}, nil},
		{"only comments and blanks", map[string]*fsystest.MapFile{"/root/.ssh/authorized_keys": dt.File("# add keys here\n\n   \n")}, nil},
		{"garbage lines", map[string]*fsystest.MapFile{"/root/.ssh/authorized_keys": dt.File("ssh-rsa notbase64!! x\nssh-foo AAAA\n" + strings.Replace(pub("ssh-rsa", ""), "ssh-rsa ", "ssh-ed25519 ", 1) + "\n")}, nil},
		{"directory named authorized_keys", map[string]*fsystest.MapFile{"/root/.ssh/authorized_keys": dt.Dir(0o700)}, nil},
		{"link named authorized_keys", map[string]*fsystest.MapFile{"/root/.ssh/authorized_keys": dt.Link("/dev/null")}, nil},
		{"public host keys only", map[string]*fsystest.MapFile{"/etc/ssh/ssh_host_ed25519_key.pub": dt.File(pub("ssh-ed25519", ""))}, nil},
		{"empty host key file", map[string]*fsystest.MapFile{"/etc/ssh/ssh_host_rsa_key": dt.File("")}, nil},
		{"host key name elsewhere", map[string]*fsystest.MapFile{"/usr/share/doc/x/ssh_host_rsa_key": dt.File("x")}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := dt.Run(t, dt.Env(fsystest.MapFS(tt.files), nil), New())
			if b := dt.Briefs(got); !slices.Equal(b, tt.want) && !(len(b) == 0 && len(tt.want) == 0) {
				t.Fatalf("findings = %q, want %q", b, tt.want)
			}
			dt.NoSecrets(t, got, base64.StdEncoding.EncodeToString(make([]byte, 24)), "AAAAC3NzaC1lZDI1NTE5")
			dt.Policies(t, got)
		})
	}
}

func TestReason(t *testing.T) {
	keys := pub("ssh-ed25519", "alice@laptop") + "\n" + pub("ssh-rsa", "bob@ci\x1b[31m") + "\n" + pub("ssh-rsa", "") + "\n"
	m := fsystest.MapFS{"/root/.ssh/authorized_keys": dt.File(keys)}
	got := dt.Run(t, dt.Env(m, nil), New())
	want := "3 keys grant logins, comments alice@laptop, bob@ci?[31m"
	if len(got) != 1 || got[0].Reason != want {
		t.Fatalf("findings = %+v, want one with reason %q", got, want)
	}
}

func TestParseAuthorizedKeys(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // types
	}{
		{"plain", pub("ssh-ed25519", "a b c"), []string{"ssh-ed25519"}},
		{"options with quoted spaces", `from="10.0.0.1",command="/bin/echo a b" ` + pub("ssh-rsa", ""), []string{"ssh-rsa"}},
		{"tabs and CRLF", "\t" + strings.Replace(pub("ssh-dss", "x"), " ", "\t", 1) + "\r\n", []string{"ssh-dss"}},
		{"two keys", pub("ecdsa-sha2-nistp521", "") + "\n" + pub("ssh-ed448", ""), []string{"ecdsa-sha2-nistp521", "ssh-ed448"}},
		// Negative.
		{"unknown type", pub("ssh-foo", ""), nil},
		{"blob of another type", strings.Replace(pub("ssh-rsa", ""), "ssh-rsa ", "ssh-dss ", 1), nil},
		{"truncated blob", "ssh-rsa AAAA", nil},
		{"not base64", "ssh-rsa ****", nil},
		{"options only", `command="x y"`, nil},
		{"unterminated quote", `command="x ` + pub("ssh-rsa", ""), nil},
		{"commented key", "#" + pub("ssh-rsa", ""), nil},
	}
	for _, tt := range tests {
		var got []string
		for _, k := range ParseAuthorizedKeys([]byte(tt.in)) {
			got = append(got, k.Type)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: ParseAuthorizedKeys = %q, want %q", tt.name, got, tt.want)
		}
	}
}
