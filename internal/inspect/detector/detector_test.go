package detector_test

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/internal/fsys"
	"github.com/vmtrust/vmtrust/internal/fsys/ext4"
	"github.com/vmtrust/vmtrust/internal/fsys/fsystest"
	"github.com/vmtrust/vmtrust/internal/inspect/detector"
	dt "github.com/vmtrust/vmtrust/internal/inspect/detector/detectortest"
	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

func TestDefault(t *testing.T) {
	name := regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	seen := map[string]bool{}
	for _, d := range detector.All(nil, time.Now()) {
		n := d.Name()
		if !name.MatchString(n) || seen[n] {
			t.Errorf("detector name %q malformed or repeated", n)
		}
		seen[n] = true
		_, file := d.(detector.FileDetector)
		_, tree := d.(detector.TreeDetector)
		_, coll := d.(detector.Collector)
		if !file && !tree && !coll {
			t.Errorf("detector %s implements no detector kind", n)
		}
	}
	if a, b := detector.Default(), detector.Default(); &a[0] == &b[0] {
		t.Error("Default returned the same slice twice")
	}
}

const sshdConfig = "Include /etc/ssh/sshd_config.d/*.conf\nKbdInteractiveAuthentication no\nUsePAM yes\n"

// A clean Debian-like guest: only the unavoidable findings remain.
func TestCleanGuest(t *testing.T) {
	m := fsystest.MapFS{
		"/etc/passwd":                           dt.File("root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
		"/etc/shadow":                           dt.Mode("root:*:19800:0:99999:7:::\nnobody:*:19800:0:99999:7:::\n", 0o640),
		"/etc/ssh/sshd_config":                  dt.File(sshdConfig),
		"/etc/ssh/sshd_config.d/hardening.conf": dt.File("PasswordAuthentication no\n"),
		"/etc/rsyslog.d/90-forward.conf":        dt.File("*.* @@logs.example.org:6514\n"),
		"/usr/bin/su":                           dt.Mode("\x7fELF", fs.ModeSetuid|0o755),
		"/tmp":                                  dt.Dir(fs.ModeSticky | 0o777),
		"/root/.bashrc":                         dt.File("# ~/.bashrc\n"),
	}
	env := dt.Env(m, []string{"/usr/bin/su"})
	env.OS = inventory.OS{ID: "rocky", VersionID: "9.4", Source: "/etc/os-release"}
	got := dt.Run(t, env, detector.All(nil, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))...)
	if b := dt.Briefs(got); !slices.Equal(b, []string{"eol-os info /etc/os-release"}) {
		t.Fatalf("findings = %q, want only the support notice", b)
	}
}

// plantedTree writes a small guest with one planted breach per rule into
// dir, using the real tools for keys and certificates.
func plantedTree(t *testing.T, dir string) {
	t.Helper()
	requireTools(t, []string{"ssh-keygen", "openssh-client"}, []string{"openssl", "openssl"})
	w := func(rel, data string, mode fs.FileMode) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %q: %v\n%s", name, args, err, out)
		}
	}
	w("etc/passwd", "root:x:0:0:root:/root:/bin/bash\nbob:x:1001:1001::/home/bob:/bin/bash\n", 0o644)
	w("etc/shadow", "root:*:19800:0:99999:7:::\nbob::19800:0:99999:7:::\n", 0o640)
	w("etc/ssh/sshd_config", sshdConfig+"PermitRootLogin yes\n", 0o644)
	run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "host", "-f", filepath.Join(dir, "etc/ssh/ssh_host_ed25519_key"))
	if err := os.MkdirAll(filepath.Join(dir, "root/.ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "root@build", "-f", filepath.Join(dir, "root/.ssh/id_ed25519"))
	pub, err := os.ReadFile(filepath.Join(dir, "root/.ssh/id_ed25519.pub"))
	if err != nil {
		t.Fatal(err)
	}
	w("root/.ssh/authorized_keys", string(pub), 0o600)
	if err := os.MkdirAll(filepath.Join(dir, "etc/pki/tls/private"), 0o700); err != nil {
		t.Fatal(err)
	}
	run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
		"-subj", "/CN=svc.example", "-keyout", filepath.Join(dir, "etc/pki/tls/private/svc.key"), "-out", filepath.Join(dir, "etc/pki/tls/svc.crt"))
	w("root/.bash_history", "ls\nmysql -uroot -pSecret123\n", 0o600)
	w("home/bob/.aws/credentials", "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n", 0o600)
	w("usr/local/bin/rootsh", "\x7fELF-not-really", fs.ModeSetuid|0o755)
	w("usr/bin/su", "\x7fELF-not-really", fs.ModeSetuid|0o755)
	w("etc/cron.d/backdoor", "* * * * * root /usr/local/bin/rootsh\n", 0o666)
	w("var/lib/dpkg/info/login.list", "/.\n/usr\n/usr/bin\n/usr/bin/su\n", 0o644)
	w("etc/rsyslog.conf", "*.* -/var/log/syslog\n", 0o644)
}

// plantedWant are the findings plantedTree must give.
var plantedWant = []string{
	"private-key critical /etc/pki/tls/private/svc.key",
	"account-empty-password critical /etc/shadow",
	"private-key critical /root/.ssh/id_ed25519",
	"x509-cert-with-key high /etc/pki/tls/svc.crt",
	"ssh-host-key high /etc/ssh/ssh_host_ed25519_key",
	"sshd-config high /etc/ssh/sshd_config",
	"credentials-file high /home/bob/.aws/credentials",
	"shell-history-secret high /root/.bash_history",
	"ssh-authorized-keys high /root/.ssh/authorized_keys",
	"setuid-unowned high /usr/local/bin/rootsh",
	"world-writable medium /etc/cron.d/backdoor",
	"account-user medium /etc/passwd",
	"no-remote-logging medium /etc/rsyslog.conf",
	"sshd-config medium /etc/ssh/sshd_config",
}

func requireTools(t *testing.T, tools ...[]string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool[0]); err != nil {
			msg := tool[0] + " not found: install the Debian package " + tool[1]
			if os.Getenv("CI") != "" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
}

// ownerFromDpkg builds Env.Owner from the guest's dpkg file lists, as the
// inspection driver does from the package database.
func ownerFromDpkg(t *testing.T, root *fsys.Root) func(string) (string, bool) {
	t.Helper()
	lists, err := root.Glob("/var/lib/dpkg/info/*.list")
	if err != nil {
		t.Fatal(err)
	}
	owned := map[string]string{}
	for _, l := range lists {
		b, err := root.ReadFile(l, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range strings.Split(string(b), "\n") {
			owned[p] = strings.TrimSuffix(filepath.Base(l), ".list")
		}
	}
	return func(p string) (string, bool) { s, ok := owned[p]; return s, ok }
}

// The planted guest as a real ext4 filesystem made by mkfs.ext4 -d, read
// through the ext4 driver: one finding per planted breach, no others, and
// no secret in any reason.
func TestExt4Image(t *testing.T) {
	requireTools(t, []string{"mkfs.ext4", "e2fsprogs"})
	tree := t.TempDir()
	plantedTree(t, tree)
	img := filepath.Join(t.TempDir(), "guest.ext4")
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-d", tree, img, "32M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	efs, err := ext4.Open(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	root := fsys.NewRoot(efs)
	env := &detector.Env{Root: root, OS: inventory.OS{ID: "debian", VersionID: "12"}, Owner: ownerFromDpkg(t, root)}
	start := time.Now()
	got, err := detector.Run(context.Background(), env, detector.Default(), detector.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("detectors over the ext4 image: %v", time.Since(start))
	if b := dt.Briefs(got); !slices.Equal(b, plantedWant) {
		t.Errorf("findings =\n%s\nwant\n%s", strings.Join(b, "\n"), strings.Join(plantedWant, "\n"))
	}
	dt.NoSecrets(t, got, "Secret123", "wJalrXUtnFEMI", "AKIAIOSFODNN7EXAMPLE")
	dt.Policies(t, got)
}
