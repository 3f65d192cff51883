package accounts

import (
	"slices"
	"strings"
	"testing"

	"github.com/vmtrust/vmtrust/internal/fsys/fsystest"
	dt "github.com/vmtrust/vmtrust/internal/inspect/detector/detectortest"
	"github.com/vmtrust/vmtrust/internal/inspect/detector/engine"
)

// A Debian minbase passwd and shadow: every account locked.
const (
	basePasswd = `root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
bin:x:2:2:bin:/bin:/usr/sbin/nologin
sync:x:4:65534:sync:/bin:/bin/sync
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
_apt:x:42:65534::/nonexistent:/usr/sbin/nologin
`
	baseShadow = `root:*:19800:0:99999:7:::
daemon:*:19800:0:99999:7:::
bin:*:19800:0:99999:7:::
sync:*:19800:0:99999:7:::
nobody:*:19800:0:99999:7:::
_apt:*:19800:0:99999:7:::
`
	sha512Hash = "$6$Zx1abcdEFGH$7hQmKq0tKmV4m1vE4mJ1f1mO7x0M2yX2Q7Sx1aB9cD8eF7gH6iJ5kL4mN3oP2qR1sT0uV9wX8yZ7aB6cD5eF4g"
	yesHash    = "$y$j9T$Ow2ecKJ3dUOQnYTgVvXq50$Fb7hxIYP3cR2qPZQ9aN7kmeWq.ZtXk/2Gq0sLqD6Hc2"
	desHash    = "abJnggxhB/yWI"
)

func TestDetect(t *testing.T) {
	tests := []struct {
		name           string
		passwd, shadow string
		want           []string
	}{
		{"clean minbase", basePasswd, baseShadow, nil},
		{"root password sha512", basePasswd, strings.Replace(baseShadow, "root:*:", "root:"+sha512Hash+":", 1),
			[]string{"account-password high /etc/shadow"}},
		{"root empty password", basePasswd, strings.Replace(baseShadow, "root:*:", "root::", 1),
			[]string{"account-empty-password critical /etc/shadow"}},
		{"empty password with nologin shell", basePasswd, strings.Replace(baseShadow, "daemon:*:", "daemon::", 1),
			[]string{"account-empty-password medium /etc/shadow"}},
		{"empty password field in passwd", strings.Replace(basePasswd, "root:x:", "root::", 1), baseShadow,
			[]string{"account-empty-password critical /etc/passwd"}},
		{"DES hash in passwd field", strings.Replace(basePasswd, "root:x:", "root:"+desHash+":", 1), baseShadow,
			[]string{"account-password high /etc/passwd"}},
		{"user with yescrypt password and shell", basePasswd + "alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash\n",
			baseShadow + "alice:" + yesHash + ":19800:0:99999:7:::\n",
			[]string{"account-password high /etc/shadow", "account-user medium /etc/passwd"}},
		{"locked user with shell still an account", basePasswd + "debian:x:1000:1000::/home/debian:/bin/bash\n",
			baseShadow + "debian:!:19800:0:99999:7:::\n",
			[]string{"account-user medium /etc/passwd"}},
		{"second uid 0", basePasswd + "toor:x:0:0::/root:/bin/sh\n", baseShadow + "toor:!*:19800::::::\n",
			[]string{"account-duplicate-root critical /etc/passwd"}},
		{"no shadow file, hash in passwd", "root:" + sha512Hash + ":0:0:root:/root:/bin/bash\n", "",
			[]string{"account-password high /etc/passwd"}},
		// Negative: locked or unusable passwords, system accounts.
		{"locked with bang before hash", basePasswd, strings.Replace(baseShadow, "root:*:", "root:!"+sha512Hash+":", 1), nil},
		{"double bang", basePasswd, strings.Replace(baseShadow, "root:*:", "root:!!:", 1), nil},
		{"star lock", basePasswd, strings.Replace(baseShadow, "bin:*:", "bin:*LK*:", 1), nil},
		{"x in shadow is unusable", basePasswd, strings.Replace(baseShadow, "bin:*:", "bin:x:", 1), nil},
		{"user with nologin shell", basePasswd + "svc:x:1001:1001::/srv:/usr/sbin/nologin\n", baseShadow + "svc:!:19800:0:99999:7:::\n", nil},
		{"user with false shell", basePasswd + "svc:x:1001:1001::/srv:/bin/false\n", baseShadow, nil},
		{"nobody uid 65534 with shell", strings.Replace(basePasswd, "/nonexistent:/usr/sbin/nologin\n_apt", "/nonexistent:/bin/sh\n_apt", 1), baseShadow, nil},
		{"system uid below 1000 with shell", basePasswd + "postgres:x:105:110::/var/lib/postgresql:/bin/bash\n", baseShadow + "postgres:*:19800:0:99999:7:::\n", nil},
		{"comments and NIS compat lines", "# comment\n\n" + basePasswd + "+::::::\n", baseShadow, nil},
		{"no account files", "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := fsystest.MapFS{}
			if tt.passwd != "" {
				m["/etc/passwd"] = dt.File(tt.passwd)
			}
			if tt.shadow != "" {
				m["/etc/shadow"] = dt.Mode(tt.shadow, 0o640)
			}
			got := dt.Run(t, dt.Env(m, nil), New())
			if b := dt.Briefs(got); !slices.Equal(b, tt.want) && !(len(b) == 0 && len(tt.want) == 0) {
				t.Fatalf("findings = %q, want %q", b, tt.want)
			}
			dt.NoSecrets(t, got, sha512Hash, yesHash, desHash, sha512Hash[3:15])
			dt.Policies(t, got)
		})
	}
}

func TestDetectMalformed(t *testing.T) {
	tests := []struct {
		name, file, data string
	}{
		{"passwd six fields", "/etc/passwd", "root:x:0:0:root:/root\n"},
		{"passwd eight fields", "/etc/passwd", "root:x:0:0:root:/root:/bin/bash:extra\n"},
		{"passwd uid not a number", "/etc/passwd", "root:x:zero:0:root:/root:/bin/bash\n"},
		{"passwd uid too large", "/etc/passwd", "root:x:4294967296:0:root:/root:/bin/bash\n"},
		{"passwd uid with leading zero", "/etc/passwd", "root:x:00:0:root:/root:/bin/bash\n"},
		{"passwd negative gid", "/etc/passwd", "root:x:0:-1:root:/root:/bin/bash\n"},
		{"passwd empty name", "/etc/passwd", ":x:0:0:root:/root:/bin/bash\n"},
		{"passwd NUL", "/etc/passwd", "root:x:0:0:ro\x00ot:/root:/bin/bash\n"},
		{"shadow two fields", "/etc/shadow", "root:" + sha512Hash + "\n"},
		{"shadow line too long", "/etc/shadow", "root:" + strings.Repeat("a", MaxLineLen) + ":1::::::\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := fsystest.MapFS{"/etc/passwd": dt.File(basePasswd), "/etc/shadow": dt.File(baseShadow)}
			m[tt.file] = dt.File(tt.data)
			got := dt.Run(t, dt.Env(m, nil), New())
			if len(got) != 1 || got[0].Rule != engine.RuleInspectionFailed || got[0].Severity.String() != "high" {
				t.Fatalf("findings = %+v, want one high inspection-failed", got)
			}
			dt.NoSecrets(t, got, sha512Hash, "ro\x00ot", "zero")
		})
	}
}

func TestReasons(t *testing.T) {
	m := fsystest.MapFS{
		"/etc/passwd": dt.File(basePasswd + "alice:x:1000:1000::/home/alice:/bin/zsh\n"),
		"/etc/shadow": dt.File(strings.Replace(baseShadow, "root:*:", "root::", 1) + "alice:" + yesHash + ":1::::::\n"),
	}
	got := dt.Run(t, dt.Env(m, nil), New())
	want := []string{
		"account root (uid 0) has an empty password: it logs in without one (shell /bin/bash)",
		"account alice (uid 1000) has a password set (yescrypt hash)",
		"user account alice (uid 1000, shell /bin/zsh) present",
	}
	var reasons []string
	for _, f := range got {
		reasons = append(reasons, f.Reason)
	}
	if !slices.Equal(reasons, want) {
		t.Errorf("reasons = %q, want %q", reasons, want)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		pw   string
		kind passwordKind
		algo string
	}{
		{"", pwEmpty, ""},
		{sha512Hash, pwHash, "sha512crypt"},
		{yesHash, pwHash, "yescrypt"},
		{"$1$salt$abc", pwHash, "md5crypt"},
		{"$2b$10$abcdefghijklmnopqrstuu", pwHash, "bcrypt"},
		{"$5$rounds=5000$x$y", pwHash, "sha256crypt"},
		{desHash, pwHash, "DES crypt"},
		{"_J9..abcdabcdefghijk", pwHash, "BSDi extended DES"},
		{"!", pwLocked, ""},
		{"*", pwLocked, ""},
		{"!" + sha512Hash, pwLocked, ""},
		{"x", pwLocked, ""},
		{"$6$", pwLocked, ""},
		{"abJnggxhB/yW!", pwLocked, ""},
		{"NP", pwLocked, ""},
	}
	for _, tt := range tests {
		k, a := classify(tt.pw)
		if k != tt.kind || a != tt.algo {
			t.Errorf("classify(%q) = %v, %q; want %v, %q", tt.pw, k, a, tt.kind, tt.algo)
		}
	}
}
