package credfile

import (
	"slices"
	"testing"

	"github.com/vmtrust/vmtrust/internal/fsys/fsystest"
	dt "github.com/vmtrust/vmtrust/internal/inspect/detector/detectortest"
)

// Secret values used below; no reason may contain them.
const (
	awsID     = "AKIAIOSFODNN7EXAMPLE"
	awsSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	dockAuth  = "dXNlcjpodW50ZXIy"
	pw        = "hunter2-s3cret"
	token     = "hvs.CAESIJ2examplevaulttoken"
)

func TestDetect(t *testing.T) {
	tests := []struct {
		name  string
		path  string
		data  string
		owned []string
		want  []string // reasons
	}{
		{"aws credentials two profiles", "/root/.aws/credentials",
			"[default]\naws_access_key_id = " + awsID + "\naws_secret_access_key = " + awsSecret + "\n[prod]\naws_access_key_id=" + awsID + "\n",
			nil, []string{"AWS credentials (3 profiles)"}},
		{"aws config with a secret", "/home/u/.aws/config", "[default]\nregion = eu-west-1\naws_secret_access_key = " + awsSecret + "\n", nil,
			[]string{"AWS credentials in the CLI configuration"}},
		{"docker auths", "/home/u/.docker/config.json", `{"auths":{"registry.example.org":{"auth":"` + dockAuth + `"},"ghcr.io":{"identitytoken":"x"}}}`, nil,
			[]string{"Docker registry credentials (2 registries)"}},
		{"docker undecodable with auth", "/root/.docker/config.json", `{"auths":{"r":{"auth":"` + dockAuth + `"}`, nil,
			[]string{"Docker registry credentials (undecodable file)"}},
		{"gcloud adc", "/root/.config/gcloud/application_default_credentials.json", `{"refresh_token":"x"}`, nil,
			[]string{"Google Cloud application default credentials"}},
		{"gcloud legacy", "/root/.config/gcloud/legacy_credentials/a@b.c/adc.json", `{"x":1}`, nil,
			[]string{"Google Cloud legacy credentials"}},
		{"kubeconfig token", "/home/ci/.kube/config", "users:\n- name: ci\n  user:\n    token: " + token + "\n    client-key-data: LS0t\n", nil,
			[]string{"Kubernetes credentials (2 secrets)"}},
		{"netrc password", "/root/.netrc", "machine example.org login u password " + pw + "\n", nil, []string{"netrc passwords"}},
		{"git credentials", "/home/u/.git-credentials", "https://u:" + pw + "@github.com\n", nil, []string{"stored Git credentials"}},
		{"pgpass", "/var/lib/postgresql/.pgpass", "db:5432:*:app:" + pw + "\n", nil, []string{"PostgreSQL passwords"}},
		{"my.cnf password", "/root/.my.cnf", "[client]\nuser=root\npassword=" + pw + "\n", nil, []string{"MySQL password"}},
		{"s3cfg", "/root/.s3cfg", "[default]\naccess_key = " + awsID + "\nsecret_key = " + awsSecret + "\n", nil, []string{"S3 (s3cmd) credentials (2 keys)"}},
		{"boto", "/root/.boto", "[Credentials]\naws_secret_access_key = " + awsSecret + "\n", nil, []string{"boto credentials"}},
		{"vault token", "/root/.vault-token", token, nil, []string{"HashiCorp Vault token"}},
		{"npmrc token", "/home/u/.npmrc", "//registry.npmjs.org/:_authToken=" + token + "\n", nil, []string{"npm registry token"}},
		{"skeleton netrc is copied to new users", "/etc/skel/.netrc", "machine m password " + pw + "\n", nil, []string{"netrc passwords"}},
		// Negative: look-alikes without secrets, owned files, docs.
		{"aws config region only", "/root/.aws/config", "[default]\nregion = eu-west-1\noutput = json\n", nil, nil},
		{"aws credentials commented", "/root/.aws/credentials", "[default]\n# aws_secret_access_key = " + awsSecret + "\naws_access_key_id =\n", nil, nil},
		{"docker credential helper", "/root/.docker/config.json", `{"credsStore":"pass","auths":{"r":{}}}`, nil, nil},
		{"docker config without auth", "/root/.docker/config.json", `{"proxies":{}}`, nil, nil},
		{"netrc without password", "/root/.netrc", "machine example.org login anonymous\nmacdef init\npassword x\n\n", nil, nil},
		{"kubeconfig with exec plugin", "/root/.kube/config", "users:\n- name: u\n  user:\n    exec:\n      command: aws\n    token:\n", nil, nil},
		{"git credentials without secret", "/root/.git-credentials", "https://github.com\n", nil, nil},
		{"pgpass comment", "/root/.pgpass", "# db:5432:*:app:" + pw + "\nhost:1:db:user:\n", nil, nil},
		{"my.cnf without password", "/root/.my.cnf", "[client]\nuser=root\n", nil, nil},
		{"empty vault token", "/root/.vault-token", "\n", nil, nil},
		{"owned by a package", "/etc/skel/.my.cnf", "[client]\npassword=" + pw + "\n", []string{"/etc/skel/.my.cnf"}, nil},
		{"documentation", "/usr/share/doc/x/examples/.netrc", "machine m password " + pw + "\n", nil, nil},
		{"similar name", "/root/.aws/credentials.bak/x", "aws_secret_access_key = " + awsSecret + "\n", nil, nil},
		{"home is the root directory", "/.vault-token", token, nil, []string{"HashiCorp Vault token"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := fsystest.MapFS{tt.path: dt.Mode(tt.data, 0o600)}
			got := dt.Run(t, dt.Env(m, tt.owned), New())
			var reasons []string
			for _, f := range got {
				reasons = append(reasons, f.Reason)
				if f.Rule != Rule || f.Severity.String() != "high" || f.Path != tt.path {
					t.Errorf("finding %+v, want rule %s, high, path %s", f, Rule, tt.path)
				}
			}
			if !slices.Equal(reasons, tt.want) {
				t.Fatalf("reasons = %q, want %q", reasons, tt.want)
			}
			dt.NoSecrets(t, got, awsID, awsSecret, dockAuth, pw, token)
			dt.Policies(t, got)
		})
	}
}

func TestWantsIgnoresNonRegular(t *testing.T) {
	m := fsystest.MapFS{"/root/.netrc": dt.Link("/srv/netrc"), "/srv/netrc": dt.File("machine m password " + pw + "\n"),
		"/root/.aws/credentials": dt.Dir(0o700)}
	if got := dt.Run(t, dt.Env(m, nil), New()); len(got) != 0 {
		t.Errorf("findings = %+v, want none (a link is not followed, the target has another name)", got)
	}
}
