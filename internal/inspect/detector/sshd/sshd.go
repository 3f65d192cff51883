// Package sshd checks the OpenSSH server configuration of a guest
// (/etc/ssh/sshd_config and the files it includes) for root logins,
// password logins and empty passwords, under the policy clause "no
// credentials of any form".
//
// The configuration is read as sshd reads it: keywords are
// case-insensitive, the first value obtained for a keyword wins, Include
// directives are expanded in place (relative paths from /etc/ssh, globs
// sorted) and a Match block lasts until the next Match or the end of the
// file that opened it. Settings inside Match blocks do not change the
// global value; risky ones are reported at a lower severity, naming the
// block. Unset keywords take OpenSSH's defaults: PasswordAuthentication
// yes (Debian's sshd_config leaves it unset), PermitRootLogin
// prohibit-password, PermitEmptyPasswords no.
//
// Parsing is bounded (MaxFileSize, MaxDepth, MaxFiles, MaxLineLen) and an
// unbalanced quote is an error, as it is for sshd.
package sshd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/vmtrust/vmtrust/internal/inspect/detector/engine"
	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

// Name is the detector's name and Rule the rule of its findings.
const (
	Name = "sshd-config"
	Rule = "sshd-config"
)

// Limits of the parser.
const (
	MaxFileSize = 256 << 10 // bytes of one file
	MaxDepth    = 16        // nested Include levels (sshd's own limit)
	MaxFiles    = 256       // files read in all
	MaxLineLen  = 16 << 10
	MaxLines    = 20_000  // lines of one file
	MaxTotal    = 4 << 20 // bytes read in all
)

const (
	configPath = "/etc/ssh/sshd_config"
	configDir  = "/etc/ssh"
	sshdBinary = "/usr/sbin/sshd"
)

// Setting is one keyword line.
type Setting struct {
	Keyword string // lowercased
	Value   string // first argument, lowercased
	File    string
	Line    int
	Match   string // the Match criteria in force; "" when global
}

func (s Setting) where() string { return fmt.Sprintf("%s line %d", s.File, s.Line) }

// Config is what Parse found.
type Config struct {
	// Global holds, per lowercased keyword, the first setting outside any
	// Match block: the value sshd uses.
	Global map[string]Setting
	// Matched lists the settings inside Match blocks, in file order.
	Matched []Setting
	// Files lists the files read, in order.
	Files []string
}

// File is one configuration file an Include names.
type File struct {
	Path string
	Data []byte
}

// Includer expands one Include argument, made absolute, to the files it
// names in the order sshd reads them. A pattern that matches nothing
// gives no files and no error.
type Includer func(pattern string) ([]File, error)

// Parse reads the configuration file at name with contents data,
// expanding Include directives through include (nil: Includes are
// ignored).
func Parse(name string, data []byte, include Includer) (*Config, error) {
	p := &parser{include: include, cfg: &Config{Global: map[string]Setting{}}}
	if err := p.file(name, data, "", 0); err != nil {
		return nil, err
	}
	return p.cfg, nil
}

type parser struct {
	include Includer
	cfg     *Config
}

func (p *parser) file(name string, data []byte, match string, depth int) error {
	if len(p.cfg.Files) >= MaxFiles {
		return fmt.Errorf("sshd_config: more than %d files included", MaxFiles)
	}
	p.cfg.Files = append(p.cfg.Files, name)
	if len(data) > MaxFileSize {
		return fmt.Errorf("%s: %d bytes, limit %d", name, len(data), MaxFileSize)
	}
	n := 0
	for len(data) > 0 {
		n++
		if n > MaxLines {
			return fmt.Errorf("%s: more than %d lines", name, MaxLines)
		}
		var line []byte
		line, data, _ = bytes.Cut(data, []byte("\n"))
		if len(line) > MaxLineLen {
			return fmt.Errorf("%s: line %d: %d bytes, limit %d", name, n, len(line), MaxLineLen)
		}
		args, err := tokenize(string(line))
		if err != nil {
			return fmt.Errorf("%s: line %d: %w", name, n, err)
		}
		if len(args) == 0 {
			continue
		}
		kw := strings.ToLower(args[0])
		args = args[1:]
		switch kw {
		case "match":
			match = strings.Join(args, " ")
			if match == "" {
				return fmt.Errorf("%s: line %d: match without criteria", name, n)
			}
		case "include":
			if len(args) == 0 {
				return fmt.Errorf("%s: line %d: include without a path", name, n)
			}
			if err := p.includes(args, match, depth); err != nil {
				return fmt.Errorf("%s: line %d: %w", name, n, err)
			}
		default:
			s := Setting{Keyword: kw, File: name, Line: n, Match: match}
			if len(args) > 0 {
				s.Value = strings.ToLower(args[0])
			}
			if match != "" {
				p.cfg.Matched = append(p.cfg.Matched, s)
			} else if _, set := p.cfg.Global[kw]; !set {
				p.cfg.Global[kw] = s
			}
		}
	}
	return nil
}

func (p *parser) includes(args []string, match string, depth int) error {
	if depth+1 > MaxDepth {
		return fmt.Errorf("include nested deeper than %d", MaxDepth)
	}
	if p.include == nil {
		return nil
	}
	for _, a := range args {
		if !path.IsAbs(a) {
			a = path.Join(configDir, a)
		}
		files, err := p.include(a)
		if err != nil {
			return fmt.Errorf("include %s: %w", a, err)
		}
		for _, f := range files {
			// A Match opened in an included file ends with that file.
			if err := p.file(f.Path, f.Data, match, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// tokenize splits a line as sshd does: arguments separated by spaces or
// tabs, double quotes group, a token starting with "#" begins a comment,
// and the keyword may be followed by "=" ("Keyword=value",
// "Keyword = value").
func tokenize(line string) ([]string, error) {
	line = strings.TrimSuffix(line, "\r")
	var out []string
	i := 0
	for {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		if i >= len(line) || line[i] == '#' {
			break
		}
		var tok strings.Builder
		if line[i] == '"' {
			end := strings.IndexByte(line[i+1:], '"')
			if end < 0 {
				return nil, errors.New("unbalanced quote")
			}
			tok.WriteString(line[i+1 : i+1+end])
			i += end + 2
		} else {
			for i < len(line) && line[i] != ' ' && line[i] != '\t' {
				if line[i] == '"' {
					return nil, errors.New("quote inside an argument")
				}
				tok.WriteByte(line[i])
				i++
			}
		}
		out = append(out, tok.String())
	}
	if len(out) == 0 {
		return nil, nil
	}
	// Split "Keyword=value", and drop a lone "=" or a leading "=".
	kw, rest, hasEq := strings.Cut(out[0], "=")
	args := out[1:]
	if hasEq {
		if rest != "" {
			args = append([]string{rest}, args...)
		}
	} else if len(args) > 0 && strings.HasPrefix(args[0], "=") {
		if v := args[0][1:]; v != "" {
			args[0] = v
		} else {
			args = args[1:]
		}
	}
	if kw == "" {
		return nil, errors.New("empty keyword")
	}
	return append([]string{kw}, args...), nil
}

// rule is one risky setting: keyword, risky values and their severity
// outside Match blocks.
type rule struct {
	keyword  string
	name     string // spelled as sshd_config(5) spells it
	def      string // OpenSSH's default
	severity map[string]inventory.Severity
}

func rules() []rule {
	return []rule{
		{"permitrootlogin", "PermitRootLogin", "prohibit-password", map[string]inventory.Severity{
			"yes": inventory.High, "prohibit-password": inventory.Low, "without-password": inventory.Low, "forced-commands-only": inventory.Low,
		}},
		{"passwordauthentication", "PasswordAuthentication", "yes", map[string]inventory.Severity{"yes": inventory.Medium}},
		{"permitemptypasswords", "PermitEmptyPasswords", "no", map[string]inventory.Severity{"yes": inventory.Critical}},
	}
}

// Check applies the rules to a parsed configuration; main is the path of
// the top-level file (defaults are reported against it).
func Check(cfg *Config, main string) []inventory.Finding {
	var out []inventory.Finding
	for _, r := range rules() {
		if s, set := cfg.Global[r.keyword]; set {
			if sev, risky := r.severity[s.Value]; risky {
				out = append(out, finding(sev, s.File, fmt.Sprintf("%s %s (%s)", r.name, s.Value, s.where())))
			}
		} else if r.def == "yes" {
			// Only a risky default is worth a finding; PermitRootLogin's
			// prohibit-password default matters only with root keys,
			// which their own rule reports.
			sev := r.severity[r.def]
			out = append(out, finding(sev, main, fmt.Sprintf("%s is not set and defaults to %s", r.name, r.def)))
		}
		for _, s := range cfg.Matched {
			if s.Keyword != r.keyword {
				continue
			}
			sev, risky := r.severity[s.Value]
			if !risky {
				continue
			}
			if !strings.EqualFold(s.Match, "all") && sev > inventory.Low {
				sev-- // applies to some connections only
			}
			out = append(out, finding(sev, s.File, fmt.Sprintf("%s %s in the block \"Match %s\" (%s)", r.name, s.Value, s.Match, s.where())))
		}
	}
	return out
}

func finding(sev inventory.Severity, file, reason string) inventory.Finding {
	return inventory.Finding{Rule: Rule, Severity: sev, Path: file, Reason: reason, Policy: engine.PolicyNoCredentials}
}

// Detector checks the guest's sshd configuration.
type Detector struct{}

var _ engine.TreeDetector = Detector{}

// New returns the sshd-config engine.
func New() Detector { return Detector{} }

func (Detector) Name() string { return Name }

// Detect reads /etc/ssh/sshd_config and its includes. A guest with
// neither the file nor /usr/sbin/sshd runs no SSH server: no findings.
func (Detector) Detect(ctx context.Context, env *engine.Env) ([]inventory.Finding, error) {
	data, ok, err := engine.ReadConfig(env, configPath, MaxFileSize)
	if err != nil {
		return nil, err
	}
	if !ok {
		if _, err := env.Root.Lstat(sshdBinary); err != nil {
			return nil, nil
		}
		// The server is installed without a configuration: all defaults.
		return Check(&Config{Global: map[string]Setting{}}, configPath), nil
	}
	total := int64(len(data))
	include := func(pattern string) ([]File, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		names, err := env.Root.Glob(pattern)
		if err != nil {
			return nil, err
		}
		if len(names) > MaxFiles {
			return nil, fmt.Errorf("%d files match, limit %d", len(names), MaxFiles)
		}
		var files []File
		for _, n := range names {
			b, ok, err := engine.ReadConfig(env, n, MaxFileSize)
			if err != nil {
				return nil, err
			}
			if total += int64(len(b)); total > MaxTotal {
				return nil, fmt.Errorf("included files exceed %d bytes in all", MaxTotal)
			}
			if ok {
				files = append(files, File{Path: n, Data: b})
			}
		}
		return files, nil
	}
	cfg, err := Parse(configPath, data, include)
	if err != nil {
		return nil, err
	}
	return Check(cfg, configPath), nil
}
