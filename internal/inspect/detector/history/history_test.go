package history

import (
	"slices"
	"strings"
	"testing"

	"github.com/vmtrust/vmtrust/internal/fsys/fsystest"
	dt "github.com/vmtrust/vmtrust/internal/inspect/detector/detectortest"
)

const (
	awsID  = "AKIAIOSFODNN7EXAMPLE"
	secret = "Tr0ub4dor3xyz"
	ghTok  = "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"
)

func TestScan(t *testing.T) {
	tests := []struct {
		name string
		line string
		want string // kind, "" for none
	}{
		{"aws key id", "aws configure set aws_access_key_id " + awsID, "AWS access key id"},
		{"password assignment", "curl 'https://x/api?user=a&password=" + secret + "'", "password assignment"},
		{"PGPASSWORD", "PGPASSWORD=" + secret + " psql -h db", "password assignment"},
		{"exported secret", "export GITHUB_TOKEN=" + secret, "exported secret variable"},
		{"mysql -p", "mysql -u root -p" + secret + " app", "password on a database command line"},
		{"password option", "mongo --password " + secret, "password option"},
		{"bearer header", `curl -H "Authorization: Bearer ` + secret + `" https://api`, "HTTP authorization header"},
		{"private key block", "echo '-----BEGIN OPENSSH PRIVATE KEY-----' > k", "private key block"},
		{"sshpass", "sshpass -p " + secret + " ssh host", "sshpass password"},
		{"url credentials", "git clone https://bob:" + secret + "@git.example.org/r.git", "credentials in a URL"},
		{"curl -u", "curl -u admin:" + secret + " https://x", "user:password option"},
		{"docker login", "docker login -u me -p " + secret + " registry", "docker login password"},
		{"github token", "echo " + ghTok, "GitHub token"},
		{"zsh extended format", ": 1700000000:0;export AWS_SECRET_ACCESS_KEY=" + secret, "exported secret variable"},
		// Negative.
		{"plain command", "apt-get install -y nginx", ""},
		{"mysql prompting", "mysql -u root -p app", ""},
		{"password from stdin", "docker login --password-stdin < f", ""},
		{"variable reference", "mysql --user=x password=$DBPASS", ""},
		{"OLDPWD", "export OLDPWD=/tmp", ""},
		{"url without password", "git clone https://git@github.com/x.git", ""},
		{"public key", "cat ~/.ssh/id_rsa.pub", ""},
		{"pwd command", "cd /srv && pwd", ""},
	}
	s := NewScanner()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, lines := s.Scan([]byte(tt.line + "\n"))
			var kinds []string
			for _, x := range m {
				kinds = append(kinds, x.Kind)
			}
			if tt.want == "" && len(kinds) != 0 || tt.want != "" && !slices.Contains(kinds, tt.want) || lines != 1 {
				t.Errorf("Scan(%q) = %q, %d lines; want %q, 1 line", tt.line, kinds, lines, tt.want)
			}
		})
	}
}

func TestDetect(t *testing.T) {
	withSecrets := "ls\nexport AWS_ACCESS_KEY_ID=" + awsID + "\ncd /srv\nmysql -uroot -p" + secret + "\nmysql -uroot -p" + secret + " db\n"
	tests := []struct {
		name, path, data string
		want             []string // "severity reason"
	}{
		{"bash history with secrets", "/root/.bash_history", withSecrets,
			[]string{"high history holds likely secrets: AWS access key id (line 2); exported secret variable (line 2); password on a database command line (lines 4, 5)"}},
		{"zsh history anywhere", "/var/lib/app/.zsh_history", ": 1:0;curl -H 'Authorization: Bearer " + secret + "'\n",
			[]string{"high history holds likely secrets: HTTP authorization header (line 1)"}},
		{"mysql history", "/home/u/.mysql_history", "CREATE\\040USER\\040x\\040IDENTIFIED\\040BY\\040'x';\nSELECT 1;\n",
			[]string{"low shell history left in image (2 lines)"}},
		{"clean history", "/home/u/.bash_history", "apt update\napt upgrade\n",
			[]string{"low shell history left in image (2 lines)"}},
		// Negative.
		{"empty history", "/root/.bash_history", "", nil},
		{"blank history", "/root/.bash_history", "\n \n\t\n", nil},
		{"not a history name", "/root/.bash_history.txt", withSecrets, nil},
		{"bashrc", "/root/.bashrc", "export API_TOKEN=" + secret + "\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := dt.Run(t, dt.Env(fsystest.MapFS{tt.path: dt.Mode(tt.data, 0o600)}, nil), New())
			var out []string
			for _, f := range got {
				out = append(out, f.Severity.String()+" "+f.Reason)
				if f.Path != tt.path || f.Rule != Rule {
					t.Errorf("finding %+v, want path %s rule %s", f, tt.path, Rule)
				}
			}
			if !slices.Equal(out, tt.want) {
				t.Fatalf("findings = %q, want %q", out, tt.want)
			}
			dt.NoSecrets(t, got, awsID, secret, ghTok)
			dt.Policies(t, got)
		})
	}
}

func TestDetectTruncated(t *testing.T) {
	data := strings.Repeat("ls -l\n", MaxRead/6+10) + "export SECRET_KEY=" + secret + "\n"
	got := dt.Run(t, dt.Env(fsystest.MapFS{"/root/.bash_history": dt.File(data)}, nil), New())
	if len(got) != 1 || got[0].Severity.String() != "low" || !strings.Contains(got[0].Reason, "only the first") {
		t.Fatalf("findings = %+v, want one low finding saying the read was cut", got)
	}
}
