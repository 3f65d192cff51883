// Package accounts checks /etc/passwd and /etc/shadow against the policy
// clauses "no accounts" and "no credentials of any form": accounts with a
// password hash or an empty password, a second uid 0, and user accounts
// (uid 1000 and up with a login shell).
//
// The parsers are strict and bounded (MaxFileSize, MaxLines, MaxLineLen):
// a line with the wrong number of fields or a malformed number is an
// error naming the line, never skipped, since a line the parser does not
// understand might be a login the system does accept. Findings name the
// account and the hash algorithm, never the hash.
package accounts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/vmtrust/vmtrust/internal/inspect/detector/engine"
	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

// Name is the detector's name.
const Name = "accounts"

// Rules.
const (
	RulePassword      = "account-password"       // a usable password hash (high)
	RuleEmptyPassword = "account-empty-password" // login without a password (critical)
	RuleUser          = "account-user"           // a user account with a login shell (medium)
	RuleDuplicateRoot = "account-duplicate-root" // more than one uid 0 account (critical)
)

// Limits of the parsers.
const (
	MaxFileSize = 4 << 20
	MaxLines    = 100_000
	MaxLineLen  = 8192
)

const (
	passwdPath = "/etc/passwd"
	shadowPath = "/etc/shadow"
)

// Passwd is one /etc/passwd entry.
type Passwd struct {
	Name     string
	Password string // "x": see shadow
	UID, GID uint32
	GECOS    string
	Home     string
	Shell    string
	Line     int
}

// Shadow is one /etc/shadow entry; only the fields the checks use are kept.
type Shadow struct {
	Name     string
	Password string
	Line     int
}

// ParsePasswd parses /etc/passwd: seven colon-separated fields per line.
// Blank lines, comments ("#") and NIS compat lines ("+", "-") are skipped.
func ParsePasswd(data []byte) ([]Passwd, error) {
	var out []Passwd
	err := eachLine("passwd", data, func(n int, f []string) error {
		if len(f) != 7 {
			return fmt.Errorf("%d fields, want 7", len(f))
		}
		uid, err := parseID(f[2])
		if err != nil {
			return fmt.Errorf("uid: %w", err)
		}
		gid, err := parseID(f[3])
		if err != nil {
			return fmt.Errorf("gid: %w", err)
		}
		out = append(out, Passwd{Name: f[0], Password: f[1], UID: uid, GID: gid, GECOS: f[4], Home: f[5], Shell: f[6], Line: n})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ParseShadow parses /etc/shadow: nine colon-separated fields per line.
func ParseShadow(data []byte) ([]Shadow, error) {
	var out []Shadow
	err := eachLine("shadow", data, func(n int, f []string) error {
		if len(f) != 9 {
			return fmt.Errorf("%d fields, want 9", len(f))
		}
		out = append(out, Shadow{Name: f[0], Password: f[1], Line: n})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// eachLine splits data into lines and fields, applying the limits; errors
// name the file and line, never its content.
func eachLine(file string, data []byte, fn func(line int, fields []string) error) error {
	if len(data) > MaxFileSize {
		return fmt.Errorf("%s: %d bytes, limit %d", file, len(data), MaxFileSize)
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return fmt.Errorf("%s: NUL byte", file)
	}
	n := 0
	for len(data) > 0 {
		n++
		if n > MaxLines {
			return fmt.Errorf("%s: more than %d lines", file, MaxLines)
		}
		var line []byte
		line, data, _ = bytes.Cut(data, []byte("\n"))
		if len(line) > MaxLineLen {
			return fmt.Errorf("%s: line %d: %d bytes, limit %d", file, n, len(line), MaxLineLen)
		}
		s := string(line)
		if strings.TrimSpace(s) == "" || s[0] == '#' || s[0] == '+' || s[0] == '-' {
			continue
		}
		f := strings.Split(s, ":")
		if f[0] == "" {
			return fmt.Errorf("%s: line %d: empty name", file, n)
		}
		if err := fn(n, f); err != nil {
			return fmt.Errorf("%s: line %d: %w", file, n, err)
		}
	}
	return nil
}

func parseID(s string) (uint32, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, errors.New("not a canonical decimal number")
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, errors.New("not a decimal number below 2^32")
	}
	return uint32(v), nil
}

// passwordKind classifies a password field.
type passwordKind int

const (
	pwLocked passwordKind = iota // "!", "*" or anything no password can match
	pwEmpty                      // no password needed
	pwHash                       // a crypt(3) hash: a password logs in
)

// classify returns the kind of a password field and, for a hash, its
// algorithm.
func classify(pw string) (passwordKind, string) {
	switch {
	case pw == "":
		return pwEmpty, ""
	case pw[0] == '!' || pw[0] == '*':
		return pwLocked, ""
	}
	prefixes := []struct{ prefix, algo string }{
		{"$1$", "md5crypt"}, {"$2a$", "bcrypt"}, {"$2b$", "bcrypt"}, {"$2y$", "bcrypt"},
		{"$5$", "sha256crypt"}, {"$6$", "sha512crypt"}, {"$y$", "yescrypt"},
		{"$gy$", "gost-yescrypt"}, {"$7$", "scrypt"}, {"$sha1$", "sha1crypt"}, {"$md5", "sunmd5"},
	}
	for _, p := range prefixes {
		if strings.HasPrefix(pw, p.prefix) && len(pw) > len(p.prefix) {
			return pwHash, p.algo
		}
	}
	switch {
	case len(pw) == 13 && cryptChars(pw):
		return pwHash, "DES crypt"
	case len(pw) == 20 && pw[0] == '_' && cryptChars(pw[1:]):
		return pwHash, "BSDi extended DES"
	}
	// "x", "LK", "NP", malformed hashes: crypt(3) matches no password.
	return pwLocked, ""
}

func cryptChars(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '/') {
			return false
		}
	}
	return true
}

// loginShell reports whether shell gives an interactive login. An empty
// shell field means /bin/sh.
func loginShell(shell string) bool {
	switch path.Base(shell) {
	case "nologin", "false", "sync", "shutdown", "halt":
		return false
	}
	return true
}

func shellName(s string) string {
	if s == "" {
		return "/bin/sh (empty field)"
	}
	return s
}

// Check applies the rules to parsed passwd and shadow entries (shadow may
// be nil when the file is absent).
func Check(passwd []Passwd, shadow []Shadow) []inventory.Finding {
	var out []inventory.Finding
	users := make(map[string]Passwd, len(passwd))
	var roots []string
	for _, p := range passwd {
		if _, dup := users[p.Name]; !dup {
			users[p.Name] = p // the first entry wins, as in glibc
		}
		if p.UID == 0 {
			roots = append(roots, p.Name)
		}
		out = append(out, checkPassword(passwdPath, p.Name, p.Password, &p)...)
		if p.UID >= 1000 && p.UID != 65534 && loginShell(p.Shell) {
			out = append(out, inventory.Finding{
				Rule: RuleUser, Severity: inventory.Medium, Path: passwdPath, Policy: engine.PolicyNoAccounts,
				Reason: fmt.Sprintf("user account %s (uid %d, shell %s) present", p.Name, p.UID, shellName(p.Shell)),
			})
		}
	}
	for _, s := range shadow {
		if p, ok := users[s.Name]; ok && p.Password != "x" {
			continue // passwd's own field is what counts, checked above
		}
		var pp *Passwd
		if p, ok := users[s.Name]; ok {
			pp = &p
		}
		out = append(out, checkPassword(shadowPath, s.Name, s.Password, pp)...)
	}
	if len(roots) > 1 {
		out = append(out, inventory.Finding{
			Rule: RuleDuplicateRoot, Severity: inventory.Critical, Path: passwdPath, Policy: engine.PolicyNoAccounts,
			Reason: fmt.Sprintf("%d accounts have uid 0: %s", len(roots), strings.Join(roots, ", ")),
		})
	}
	return out
}

// checkPassword judges one password field of account name found in file;
// p is the account's passwd entry (nil when there is none).
func checkPassword(file, name, pw string, p *Passwd) []inventory.Finding {
	kind, algo := classify(pw)
	if file == passwdPath && pw == "x" {
		return nil
	}
	who := "account " + name
	shell := ""
	login := true
	if p != nil {
		who = fmt.Sprintf("account %s (uid %d)", name, p.UID)
		shell, login = shellName(p.Shell), loginShell(p.Shell)
	}
	switch kind {
	case pwEmpty:
		f := inventory.Finding{
			Rule: RuleEmptyPassword, Severity: inventory.Critical, Path: file, Policy: engine.PolicyNoCredentials,
			Reason: who + " has an empty password: it logs in without one",
		}
		if p != nil {
			f.Reason += " (shell " + shell + ")"
		}
		if !login {
			f.Severity = inventory.Medium
			f.Reason = fmt.Sprintf("%s has an empty password; its shell %s refuses interactive logins", who, shell)
		}
		return []inventory.Finding{f}
	case pwHash:
		where := ""
		if file == passwdPath {
			where = " in /etc/passwd instead of /etc/shadow"
		}
		return []inventory.Finding{{
			Rule: RulePassword, Severity: inventory.High, Path: file, Policy: engine.PolicyNoCredentials,
			Reason: fmt.Sprintf("%s has a password set (%s hash%s)", who, algo, where),
		}}
	}
	return nil
}

// Detector reads /etc/passwd and /etc/shadow.
type Detector struct{}

var _ engine.TreeDetector = Detector{}

// New returns the accounts engine.
func New() Detector { return Detector{} }

func (Detector) Name() string { return Name }

// Detect reads the guest's account files and applies Check.
func (Detector) Detect(ctx context.Context, env *engine.Env) ([]inventory.Finding, error) {
	pb, ok, err := engine.ReadConfig(env, passwdPath, MaxFileSize)
	if err != nil {
		return nil, err
	}
	var passwd []Passwd
	if ok {
		if passwd, err = ParsePasswd(pb); err != nil {
			return nil, err
		}
	}
	sb, ok, err := engine.ReadConfig(env, shadowPath, MaxFileSize)
	if err != nil {
		return nil, err
	}
	var shadow []Shadow
	if ok {
		if shadow, err = ParseShadow(sb); err != nil {
			return nil, err
		}
	}
	return Check(passwd, shadow), nil
}
