// Package credfile reports credential files of well-known clients left in
// a guest, for the policy clause "no credentials of any form" (rule
// credentials-file, high): AWS (~/.aws/credentials, ~/.aws/config,
// ~/.s3cfg, ~/.boto), Docker (~/.docker/config.json with stored auths),
// Google Cloud (~/.config/gcloud credential stores), Kubernetes
// (~/.kube/config with tokens, passwords or client keys), ~/.netrc with
// passwords, ~/.git-credentials, ~/.pgpass, ~/.my.cnf and ~/.mylogin.cnf,
// ~/.vault-token, ~/.npmrc and ~/.pypirc with tokens or passwords,
// ~/.config/gh/hosts.yml and Azure CLI token caches.
//
// Files are recognised by their path relative to a home directory, in any
// directory the walk meets (so homes outside /root and /home count), and a
// finding needs content that actually stores a secret: an AWS file with
// only a region, a Docker config using a credential helper, a .netrc
// without passwords are not findings. Files installed by a package and
// documentation trees are skipped. At most MaxRead bytes are read.
// Reasons say what kind of credential and how many, never the secret.
package credfile

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path"
	"strings"

	"github.com/vmtrust/vmtrust/internal/fsys"
	"github.com/vmtrust/vmtrust/internal/inspect/detector/engine"
	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

// Name is the detector's name and Rule the rule of its findings.
const (
	Name = "credential-files"
	Rule = "credentials-file"
)

// MaxRead is the most bytes read of one file.
const MaxRead = 1 << 20

// kind is one credential file shape: the path it has relative to a home
// (a path.Match pattern), a description, and a check of its content that
// says how much it holds (0: nothing secret).
type kind struct {
	rel   string
	what  string
	check func(data []byte) (count int, unit string)
}

func kinds() []kind {
	nonEmpty := func(unit string) func([]byte) (int, string) {
		return func(b []byte) (int, string) {
			if len(bytes.TrimSpace(b)) == 0 {
				return 0, ""
			}
			return 1, unit
		}
	}
	awsKeys := []string{"aws_secret_access_key", "aws_session_token", "aws_access_key_id"}
	return []kind{
		{".aws/credentials", "AWS credentials", iniCheck("profile", awsKeys...)},
		{".aws/config", "AWS credentials in the CLI configuration", iniCheck("profile", awsKeys...)},
		{".s3cfg", "S3 (s3cmd) credentials", iniCheck("key", "secret_key", "access_key", "access_token")},
		{".boto", "boto credentials", iniCheck("key", "aws_secret_access_key", "gs_secret_access_key", "gs_oauth2_refresh_token")},
		{".docker/config.json", "Docker registry credentials", dockerCheck},
		{".config/gcloud/credentials.db", "Google Cloud credential store", nonEmpty("store")},
		{".config/gcloud/access_tokens.db", "Google Cloud access token cache", nonEmpty("store")},
		{".config/gcloud/application_default_credentials.json", "Google Cloud application default credentials", nonEmpty("file")},
		{".config/gcloud/legacy_credentials/*/adc.json", "Google Cloud legacy credentials", nonEmpty("file")},
		{".kube/config", "Kubernetes credentials", yamlKeyCheck("secret", "token", "client-key-data", "client-key", "password", "id-token", "refresh-token")},
		{".netrc", "netrc passwords", netrcCheck},
		{"_netrc", "netrc passwords", netrcCheck},
		{".git-credentials", "stored Git credentials", gitCredentialsCheck},
		{".pgpass", "PostgreSQL passwords", pgpassCheck},
		{".my.cnf", "MySQL password", iniCheck("password", "password", "pass")},
		{".mylogin.cnf", "MySQL login path store (obfuscated passwords)", nonEmpty("store")},
		{".vault-token", "HashiCorp Vault token", nonEmpty("token")},
		{".npmrc", "npm registry token", iniCheck("token", "_authtoken", "_password", "_auth")},
		{".pypirc", "PyPI password", iniCheck("password", "password")},
		{".config/gh/hosts.yml", "GitHub CLI token", yamlKeyCheck("token", "oauth_token")},
		{".azure/accessTokens.json", "Azure CLI tokens", nonEmpty("cache")},
		{".azure/msal_token_cache.json", "Azure CLI tokens", nonEmpty("cache")},
	}
}

// match finds the kind a path has, if any: p must end in "/" + rel (rel's
// components matched with path.Match). The last component is compared
// first, since Wants calls this for every walked name.
func match(ks []kind, p string) (kind, bool) {
	base := path.Base(p)
	for _, k := range ks {
		if ok, _ := path.Match(path.Base(k.rel), base); !ok {
			continue
		}
		n := strings.Count(k.rel, "/") + 1
		comps := strings.Split(p, "/")
		if len(comps) < n+1 {
			continue
		}
		if ok, _ := path.Match(k.rel, strings.Join(comps[len(comps)-n:], "/")); ok {
			return k, true
		}
	}
	return kind{}, false
}

// iniCheck counts assignments of non-empty values to keys (compared
// case-insensitively; "KEY" also matches "//registry/:KEY" as in .npmrc)
// in an INI-like "key = value" file; '#' and ';' start comments.
func iniCheck(unit string, keys ...string) func([]byte) (int, string) {
	return func(data []byte) (int, string) {
		n := 0
		for _, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				continue
			}
			k = strings.ToLower(strings.TrimSpace(k))
			v = strings.Trim(strings.TrimSpace(v), `"'`)
			if v == "" {
				continue
			}
			for _, want := range keys {
				if k == want || strings.HasSuffix(k, ":"+want) {
					n++
					break
				}
			}
		}
		return n, unit
	}
}

// yamlKeyCheck counts "key: value" lines with a non-empty value for the
// given keys, at any indentation (kubeconfig, gh hosts.yml).
func yamlKeyCheck(unit string, keys ...string) func([]byte) (int, string) {
	return func(data []byte) (int, string) {
		n := 0
		for _, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "- "))
			k, v, ok := strings.Cut(line, ":")
			if !ok || strings.HasPrefix(k, "#") {
				continue
			}
			v = strings.Trim(strings.TrimSpace(v), `"'`)
			if v == "" || v == "null" || v == "~" {
				continue
			}
			for _, want := range keys {
				if strings.TrimSpace(k) == want {
					n++
					break
				}
			}
		}
		return n, unit
	}
}

// dockerCheck counts registries with stored credentials in a Docker
// config.json ("auths": {"host": {"auth": ..., "identitytoken": ...}}).
// An undecodable file that mentions "auth" still counts once.
func dockerCheck(data []byte) (int, string) {
	var cfg struct {
		Auths map[string]struct {
			Auth          string `json:"auth"`
			IdentityToken string `json:"identitytoken"`
			Password      string `json:"password"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		if bytes.Contains(data, []byte(`"auth"`)) {
			return 1, "undecodable file"
		}
		return 0, ""
	}
	n := 0
	for _, a := range cfg.Auths {
		if a.Auth != "" || a.IdentityToken != "" || a.Password != "" {
			n++
		}
	}
	return n, "registry"
}

// netrcCheck counts "password" tokens followed by a value; macro
// definitions (macdef, up to a blank line) are skipped.
func netrcCheck(data []byte) (int, string) {
	n := 0
	inMacro := false
	for _, line := range strings.Split(string(data), "\n") {
		if inMacro {
			inMacro = strings.TrimSpace(line) != ""
			continue
		}
		f := strings.Fields(line)
		for i := 0; i < len(f); i++ {
			switch f[i] {
			case "macdef":
				inMacro = true
				i = len(f)
			case "password", "passwd":
				if i+1 < len(f) {
					n++
					i++
				}
			}
		}
	}
	return n, "password"
}

// gitCredentialsCheck counts "scheme://user:secret@host" lines.
func gitCredentialsCheck(data []byte) (int, string) {
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		_, rest, ok := strings.Cut(strings.TrimSpace(line), "://")
		if !ok {
			continue
		}
		userinfo, _, ok := strings.Cut(rest, "@")
		if ok && strings.Contains(userinfo, ":") && !strings.Contains(userinfo, "/") {
			n++
		}
	}
	return n, "credential"
}

// pgpassCheck counts "host:port:db:user:password" lines with a password
// (backslash escapes a colon).
func pgpassCheck(data []byte) (int, string) {
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		fields, cur := 0, 0
		for i := 0; i < len(line); i++ {
			switch line[i] {
			case '\\':
				i++
				cur++
			case ':':
				fields++
				cur = 0
			default:
				cur++
			}
		}
		if fields >= 4 && cur > 0 {
			n++
		}
	}
	return n, "password"
}

// Detector is the credential-files FileDetector.
type Detector struct {
	kinds []kind
}

var _ engine.FileDetector = Detector{}

// New returns the credential-files engine.
func New() Detector { return Detector{kinds: kinds()} }

func (Detector) Name() string { return Name }

// Wants selects regular, non-empty files with a credential file's path.
func (d Detector) Wants(p string, info fsys.Info) bool {
	if !info.Mode.IsRegular() || info.Size <= 0 || strings.HasPrefix(p, "/usr/share/doc/") {
		return false
	}
	_, ok := match(d.kinds, p)
	return ok
}

func (d Detector) File(ctx context.Context, env *engine.Env, p string, info fsys.Info) ([]inventory.Finding, error) {
	k, ok := match(d.kinds, p)
	if !ok {
		return nil, nil
	}
	if _, owned := env.Owned(p); owned {
		return nil, nil
	}
	data, truncated, err := engine.ReadHead(env, info, MaxRead)
	if err != nil {
		return nil, err
	}
	n, unit := k.check(data)
	if n == 0 {
		return nil, nil
	}
	reason := k.what
	if n > 1 {
		reason += fmt.Sprintf(" (%d %s)", n, plural(unit))
	} else if unit == "undecodable file" {
		reason += " (" + unit + ")"
	}
	if truncated {
		reason += fmt.Sprintf("; only the first %d bytes read", MaxRead)
	}
	return []inventory.Finding{{Rule: Rule, Severity: inventory.High, Path: p, Policy: engine.PolicyNoCredentials, Reason: reason}}, nil
}

func plural(s string) string {
	if s == "registry" {
		return "registries"
	}
	return s + "s"
}
