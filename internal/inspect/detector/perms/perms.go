// Package perms checks file modes in a guest: setuid and setgid files that
// no package installed (rule setuid-unowned, policy "no setuid files
// outside packages") and world-writable system files and directories
// (rule world-writable, policy "system files not world-writable").
//
// Both rules look only at the inode the walk reports (no reads). A
// setuid or setgid regular file installed by a package is no finding;
// when package ownership is unknown every setuid or setgid file is
// reported at medium severity, saying so. World-writable means the "other
// write" bit on a regular file or a directory without the sticky bit
// under /etc, /usr, /bin, /sbin, /lib*, /boot or /var/lib; links are
// never reported (their mode means nothing).
package perms

import (
	"context"
	"fmt"
	"io/fs"
	"strings"

	"github.com/vmtrust/vmtrust/internal/fsys"
	"github.com/vmtrust/vmtrust/internal/inspect/detector/engine"
	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

// Name is the detector's name.
const Name = "file-permissions"

// Rules.
const (
	RuleSetuid        = "setuid-unowned"
	RuleWorldWritable = "world-writable"
)

// Detector is the file-permissions FileDetector.
type Detector struct{}

var _ engine.FileDetector = Detector{}

// New returns the file-permissions engine.
func New() Detector { return Detector{} }

func (Detector) Name() string { return Name }

func setID(info fsys.Info) bool {
	return info.Mode.IsRegular() && info.Mode&(fs.ModeSetuid|fs.ModeSetgid) != 0
}

func worldWritable(p string, info fsys.Info) bool {
	if !(info.Mode.IsRegular() || info.Mode.IsDir()) || info.Mode.Perm()&0o002 == 0 {
		return false
	}
	if info.Mode.IsDir() && info.Mode&fs.ModeSticky != 0 {
		return false
	}
	return systemPath(p)
}

// systemPath reports whether p is in a tree whose files must not be
// world-writable.
func systemPath(p string) bool {
	first, _, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	switch {
	case first == "etc", first == "usr", first == "bin", first == "sbin", first == "boot":
		return true
	case strings.HasPrefix(first, "lib"):
		return true
	}
	return p == "/var/lib" || strings.HasPrefix(p, "/var/lib/")
}

// Wants selects setuid/setgid regular files anywhere and world-writable
// files and directories in system trees.
func (Detector) Wants(p string, info fsys.Info) bool {
	return setID(info) || worldWritable(p, info)
}

func (Detector) File(ctx context.Context, env *engine.Env, p string, info fsys.Info) ([]inventory.Finding, error) {
	var out []inventory.Finding
	if setID(info) {
		if f, ok := setuidFinding(env, p, info); ok {
			out = append(out, f)
		}
	}
	if worldWritable(p, info) {
		what := "file"
		if info.Mode.IsDir() {
			what = "directory without the sticky bit"
		}
		out = append(out, inventory.Finding{
			Rule: RuleWorldWritable, Severity: inventory.Medium, Path: p, Policy: engine.PolicyWorldWritable,
			Reason: fmt.Sprintf("world-writable %s (mode %s, owner uid %d)", what, modeString(info.Mode), info.Uid),
		})
	}
	return out, nil
}

func setuidFinding(env *engine.Env, p string, info fsys.Info) (inventory.Finding, bool) {
	var bits []string
	if info.Mode&fs.ModeSetuid != 0 {
		bits = append(bits, fmt.Sprintf("setuid (uid %d)", info.Uid))
	}
	if info.Mode&fs.ModeSetgid != 0 {
		bits = append(bits, fmt.Sprintf("setgid (gid %d)", info.Gid))
	}
	f := inventory.Finding{Rule: RuleSetuid, Severity: inventory.High, Path: p, Policy: engine.PolicySetuid}
	switch _, owned := env.Owned(p); {
	case owned:
		return inventory.Finding{}, false
	case !env.OwnerKnown():
		f.Severity = inventory.Medium
		f.Reason = fmt.Sprintf("%s file; package ownership unknown", strings.Join(bits, ", "))
	default:
		f.Reason = fmt.Sprintf("%s file not installed by any package", strings.Join(bits, ", "))
	}
	return f, true
}

// modeString renders permission and special bits in octal, as chmod takes
// them ("4755").
func modeString(m fs.FileMode) string {
	v := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	return fmt.Sprintf("%04o", v)
}
