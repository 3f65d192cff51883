// Package history reports shell and client histories left in a guest
// (.bash_history, .zsh_history, .mysql_history, .psql_history, ...), for
// the policy clause "no credentials of any form": a history holding
// something that looks like a secret — an AWS access key id, a
// "password=" assignment, "mysql -p<secret>", an exported *_SECRET or
// *_TOKEN variable, an Authorization header, a private key block,
// "sshpass -p", credentials in a URL, a GitHub, GitLab or Slack token — is
// rule shell-history-secret (high); any other non-empty history is the
// same rule at low severity ("shell history left in image").
//
// At most MaxRead bytes of a history are read. Reasons name the kind of
// secret and its line numbers, never the secret.
package history

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/vmtrust/vmtrust/internal/fsys"
	"github.com/vmtrust/vmtrust/internal/inspect/detector/engine"
	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

// Name is the detector's name and Rule the rule of its findings.
const (
	Name = "shell-history"
	Rule = "shell-history-secret"
)

// Limits.
const (
	MaxRead      = 1 << 20 // bytes read of one history
	maxLineLen   = 64 << 10
	maxLinesKept = 3 // line numbers named per kind of secret
)

// historyFile reports whether base names a history file.
func historyFile(base string) bool {
	switch base {
	case ".bash_history", ".zsh_history", ".ash_history", ".sh_history", ".ksh_history",
		".mysql_history", ".psql_history", ".python_history", ".sqlite_history",
		".rediscli_history", ".node_repl_history", ".histfile":
		return true
	}
	return false
}

type pattern struct {
	name string
	re   *regexp.Regexp
}

// Scanner matches history lines against the secret patterns. It is
// immutable and safe for concurrent use.
type Scanner struct {
	patterns []pattern
}

// NewScanner compiles the patterns.
func NewScanner() *Scanner {
	p := func(name, expr string) pattern { return pattern{name, regexp.MustCompile(expr)} }
	return &Scanner{patterns: []pattern{
		p("AWS access key id", `\b(AKIA|ASIA)[0-9A-Z]{16}\b`),
		// Not OLDPWD=, not password=$VAR.
		p("password assignment", `(?i)(^|[^a-z])(pgpassword|password|passwd|passwort|pwd|pass)\s*=\s*['"]?[^\s'"&;|$]+`),
		p("exported secret variable", `(?i)\bexport\s+[a-z0-9_]*(secret|token|password|passwd|api_?key|access_key|credential)[a-z0-9_]*=\S+`),
		p("password on a database command line", `\b(mysql|mysqldump|mysqladmin|mariadb|mariadb-dump)\b.*\s-p[^\s-]\S*`),
		p("password option", `(?i)\s--pass(word)?(=|\s+)[^\s-]\S*`),
		p("HTTP authorization header", `(?i)authorization:\s*(bearer|basic|token)\s+\S+`),
		p("private key block", `-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----`),
		p("sshpass password", `\bsshpass\s+-p\s*\S+`),
		p("credentials in a URL", `\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:[^/\s@]+@`),
		p("user:password option", `\b(curl|wget)\b.*\s(-u|--user|--http-user)(=|\s+)\S+:\S+`),
		p("docker login password", `\bdocker\s+login\b.*\s-p\s+\S+`),
		p("GitHub token", `\bgh[pousr]_[A-Za-z0-9]{36,}\b`),
		p("GitLab token", `\bglpat-[A-Za-z0-9_-]{20,}`),
		p("Slack token", `\bxox[abprs]-[A-Za-z0-9-]{10,}`),
	}}
}

// Match is one kind of secret found, with the lines it is on.
type Match struct {
	Kind  string
	Lines []int // the first few line numbers
	Count int   // lines matching in all
}

// Scan returns the kinds of secret found in a history, in pattern order,
// and the number of non-blank lines.
func (s *Scanner) Scan(data []byte) (matches []Match, lines int) {
	byKind := make([]Match, len(s.patterns))
	n := 0
	for len(data) > 0 {
		n++
		var line []byte
		line, data, _ = bytes.Cut(data, []byte("\n"))
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		lines++
		if len(line) > maxLineLen {
			line = line[:maxLineLen]
		}
		for i, p := range s.patterns {
			if p.re.Match(line) {
				m := &byKind[i]
				m.Kind = p.name
				m.Count++
				if len(m.Lines) < maxLinesKept {
					m.Lines = append(m.Lines, n)
				}
			}
		}
	}
	for _, m := range byKind {
		if m.Count > 0 {
			matches = append(matches, m)
		}
	}
	return matches, lines
}

// Describe turns matches into a reason.
func Describe(matches []Match) string {
	var parts []string
	for _, m := range matches {
		nums := make([]string, len(m.Lines))
		for i, l := range m.Lines {
			nums[i] = fmt.Sprint(l)
		}
		where := "line " + nums[0]
		if len(nums) > 1 {
			where = "lines " + strings.Join(nums, ", ")
		}
		if extra := m.Count - len(m.Lines); extra > 0 {
			where += fmt.Sprintf(" and %d more", extra)
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", m.Kind, where))
	}
	return "history holds likely secrets: " + strings.Join(parts, "; ")
}

// Detector is the shell-history FileDetector.
type Detector struct {
	scan *Scanner
}

var _ engine.FileDetector = Detector{}

// New returns the shell-history engine.
func New() Detector { return Detector{scan: NewScanner()} }

func (Detector) Name() string { return Name }

// Wants selects regular, non-empty history files anywhere.
func (Detector) Wants(p string, info fsys.Info) bool {
	return info.Mode.IsRegular() && info.Size > 0 && historyFile(path.Base(p))
}

func (d Detector) File(ctx context.Context, env *engine.Env, p string, info fsys.Info) ([]inventory.Finding, error) {
	data, truncated, err := engine.ReadHead(env, info, MaxRead)
	if err != nil {
		return nil, err
	}
	matches, lines := d.scan.Scan(data)
	f := inventory.Finding{Rule: Rule, Path: p, Policy: engine.PolicyNoCredentials}
	switch {
	case len(matches) > 0:
		f.Severity = inventory.High
		f.Reason = Describe(matches)
	case lines > 0:
		f.Severity = inventory.Low
		f.Reason = fmt.Sprintf("shell history left in image (%d lines)", lines)
	default:
		return nil, nil
	}
	if truncated {
		f.Reason += fmt.Sprintf("; only the first %d bytes read", MaxRead)
	}
	return []inventory.Finding{f}, nil
}
