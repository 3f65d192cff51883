// Package sshkeys reports SSH keys left in a guest, for the policy clause
// "no SSH keys": authorized_keys files granting logins (rule
// ssh-authorized-keys), wherever the walk finds one — under /root,
// /home/*, any other home or elsewhere — and SSH host private keys, which
// must be generated at first boot, not shipped (rule ssh-host-key).
//
// An authorized_keys file counts only the lines sshd would accept: an
// optional options field, a known key type and a base64 blob that
// decodes to a key of that type. A file without such a line is no
// finding. Reasons give the number of keys and their comments (sanitised,
// shortened), never key material. At most MaxAuthorizedKeys bytes of a
// file are read.
package sshkeys

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"path"
	"strings"

	"github.com/vmtrust/vmtrust/internal/fsys"
	"github.com/vmtrust/vmtrust/internal/inspect/detector/engine"
	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

// Name is the detector's name.
const Name = "ssh-keys"

// Rules.
const (
	RuleAuthorizedKeys = "ssh-authorized-keys"
	RuleHostKey        = "ssh-host-key"
)

// Limits.
const (
	MaxAuthorizedKeys = 1 << 20 // bytes read of an authorized_keys file
	maxBlob           = 16 << 10
	maxComments       = 3  // comments named in a reason
	maxCommentLen     = 64 // bytes of one comment in a reason
)

// Key is one accepted authorized_keys line.
type Key struct {
	Type    string
	Comment string
	Line    int
}

// keyTypes are the public key algorithms OpenSSH accepts.
func keyType(t string) bool {
	base := strings.TrimSuffix(t, "-cert-v01@openssh.com")
	switch base {
	case "ssh-rsa", "ssh-dss", "ssh-ed25519", "ssh-ed448",
		"ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
		"sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com":
		return true
	}
	return false
}

// ParseAuthorizedKeys returns the keys sshd would accept from an
// authorized_keys file. Lines it would ignore are skipped.
func ParseAuthorizedKeys(data []byte) []Key {
	var out []Key
	n := 0
	for len(data) > 0 {
		n++
		var line []byte
		line, data, _ = bytes.Cut(data, []byte("\n"))
		s := strings.TrimSpace(string(line))
		if s == "" || s[0] == '#' {
			continue
		}
		if k, ok := parseLine(s); ok {
			k.Line = n
			out = append(out, k)
		}
	}
	return out
}

// parseLine reads "[options] type base64 [comment]".
func parseLine(s string) (Key, bool) {
	typ, rest := field(s)
	if !keyType(typ) {
		// An options field comes first; it may quote spaces.
		opts := skipOptions(s)
		if opts == len(s) {
			return Key{}, false
		}
		typ, rest = field(strings.TrimLeft(s[opts:], " \t"))
		if !keyType(typ) {
			return Key{}, false
		}
	}
	blob, comment := field(rest)
	if len(blob) > maxBlob*4/3+4 {
		return Key{}, false
	}
	raw, err := base64.StdEncoding.DecodeString(blob)
	if err != nil || len(raw) < 4 {
		return Key{}, false
	}
	l := binary.BigEndian.Uint32(raw)
	if uint64(l) > uint64(len(raw)-4) || string(raw[4:4+l]) != typ {
		return Key{}, false
	}
	return Key{Type: typ, Comment: strings.TrimSpace(comment)}, true
}

// field splits off the first space- or tab-separated field.
func field(s string) (string, string) {
	s = strings.TrimLeft(s, " \t")
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimLeft(s[i:], " \t")
}

// skipOptions returns the end of a leading options field: the first
// space or tab outside double quotes (backslash escapes a quote).
func skipOptions(s string) int {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted && i+1 < len(s):
			i++
		case c == '"':
			quoted = !quoted
		case (c == ' ' || c == '\t') && !quoted:
			return i
		}
	}
	return len(s)
}

// sanitize keeps a comment printable and short.
func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= maxCommentLen {
			b.WriteString("...")
			break
		}
		if r >= 0x20 && r < 0x7f {
			b.WriteRune(r)
		} else {
			b.WriteByte('?')
		}
	}
	return b.String()
}

// Detector is the ssh-keys FileDetector.
type Detector struct{}

var _ engine.FileDetector = Detector{}

// New returns the ssh-keys engine.
func New() Detector { return Detector{} }

func (Detector) Name() string { return Name }

func isAuthorizedKeys(p string) bool {
	b := path.Base(p)
	return b == "authorized_keys" || b == "authorized_keys2"
}

func hostKeyType(p string) (string, bool) {
	if ok, _ := path.Match("/etc/ssh/ssh_host_*_key", p); !ok {
		return "", false
	}
	return strings.TrimSuffix(strings.TrimPrefix(p, "/etc/ssh/ssh_host_"), "_key"), true
}

// Wants selects regular files named authorized_keys or authorized_keys2
// anywhere, and /etc/ssh/ssh_host_*_key.
func (Detector) Wants(p string, info fsys.Info) bool {
	if !info.Mode.IsRegular() {
		return false
	}
	_, host := hostKeyType(p)
	return host || isAuthorizedKeys(p)
}

func (Detector) File(ctx context.Context, env *engine.Env, p string, info fsys.Info) ([]inventory.Finding, error) {
	if typ, ok := hostKeyType(p); ok {
		if info.Size == 0 {
			return nil, nil
		}
		return []inventory.Finding{{
			Rule: RuleHostKey, Severity: inventory.High, Path: p, Policy: engine.PolicyNoSSHKeys,
			Reason: fmt.Sprintf("SSH host private key (%s) present: every VM from the image would share it; host keys must be generated at first boot", typ),
		}}, nil
	}
	data, truncated, err := engine.ReadHead(env, info, MaxAuthorizedKeys)
	if err != nil {
		return nil, err
	}
	keys := ParseAuthorizedKeys(data)
	if len(keys) == 0 {
		return nil, nil
	}
	return []inventory.Finding{{
		Rule: RuleAuthorizedKeys, Severity: inventory.High, Path: p, Policy: engine.PolicyNoSSHKeys,
		Reason: describe(keys, truncated),
	}}, nil
}

func describe(keys []Key, truncated bool) string {
	var b strings.Builder
	if len(keys) == 1 {
		b.WriteString("1 key grants logins")
	} else {
		fmt.Fprintf(&b, "%d keys grant logins", len(keys))
	}
	var comments []string
	for _, k := range keys {
		if k.Comment != "" && len(comments) < maxComments {
			comments = append(comments, sanitize(k.Comment))
		}
	}
	switch {
	case len(comments) == 1:
		fmt.Fprintf(&b, ", comment %s", comments[0])
	case len(comments) > 1:
		fmt.Fprintf(&b, ", comments %s", strings.Join(comments, ", "))
	}
	if truncated {
		fmt.Fprintf(&b, " (only the first %d bytes read)", MaxAuthorizedKeys)
	}
	return b.String()
}
