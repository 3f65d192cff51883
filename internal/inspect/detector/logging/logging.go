// Package logging checks that a guest's logging is neither prevented nor
// kept only on the machine, for the policy clause "logging not
// prevented".
//
// Rule logging-prevented (high): /var/log is a link to /dev/null,
// systemd-journald is masked, or journald is configured with
// Storage=none (journald.conf and its drop-ins, the last assignment
// winning as in systemd). Rule no-remote-logging (medium): no
// configuration forwards logs off the machine — none of rsyslog
// ("@host", "@@host" or an action() of a network module, in
// /etc/rsyslog.conf and /etc/rsyslog.d/*.conf), syslog-ng (a destination
// with a network driver), systemd-journal-upload (URL= in
// journal-upload.conf), fluent-bit (an [OUTPUT] that is not local),
// filebeat (an output that is not console or file) or vector (a sink that
// is not local).
//
// The parsers are bounded (MaxConfigSize per file, maxFiles per glob) and
// comments and quoted strings never count as configuration. A file that
// cannot be read (too large, a link loop) fails the check rather than
// being skipped.
package logging

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"

	"github.com/vmtrust/vmtrust/internal/inspect/detector/engine"
	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

// Name is the detector's name.
const Name = "logging"

// Rules.
const (
	RulePrevented = "logging-prevented"
	RuleNoRemote  = "no-remote-logging"
)

const maxFiles = 256 // files one glob may name

// source is one log shipper's configuration: fixed files, globs, and the
// parser that finds forwards in one file.
type source struct {
	name  string
	files []string
	globs []string
	find  func([]byte) []Forward
}

func sources() []source {
	return []source{
		{"rsyslog", []string{"/etc/rsyslog.conf"}, []string{"/etc/rsyslog.d/*.conf"}, RsyslogForwards},
		{"syslog-ng", []string{"/etc/syslog-ng/syslog-ng.conf"}, []string{"/etc/syslog-ng/conf.d/*.conf"}, SyslogNGForwards},
		{"systemd-journal-upload", []string{"/etc/systemd/journal-upload.conf"}, []string{"/etc/systemd/journal-upload.conf.d/*.conf"}, func(b []byte) []Forward {
			if line, ok := journalUploadURL(b); ok {
				return []Forward{{Line: line, How: "journal upload URL"}}
			}
			return nil
		}},
		{"fluent-bit", nil, []string{"/etc/fluent-bit/*.conf", "/etc/fluent-bit/*.yaml", "/etc/td-agent-bit/*.conf"}, fluentBitForwards},
		{"filebeat", []string{"/etc/filebeat/filebeat.yml"}, nil, filebeatForwards},
		{"vector", nil, []string{"/etc/vector/*.toml", "/etc/vector/*.yaml", "/etc/vector/*.yml"}, vectorForwards},
	}
}

// Detector is the logging TreeDetector.
type Detector struct{}

var _ engine.TreeDetector = Detector{}

// New returns the logging engine.
func New() Detector { return Detector{} }

func (Detector) Name() string { return Name }

func (Detector) Detect(ctx context.Context, env *engine.Env) ([]inventory.Finding, error) {
	out, err := prevented(env)
	if err != nil {
		return nil, err
	}
	checked := make([]string, 0, 6)
	for _, s := range sources() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		checked = append(checked, s.name)
		names, err := expand(env, s.files, s.globs)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			data, ok, err := engine.ReadConfig(env, n, MaxConfigSize)
			if err != nil {
				return nil, err
			}
			if ok && !hasNUL(data) && len(s.find(data)) > 0 {
				return out, nil // logs leave the machine
			}
		}
	}
	// Point where forwarding would be configured.
	where := "/etc"
	for _, p := range []string{"/etc/rsyslog.d", "/etc/rsyslog.conf", "/etc/syslog-ng/conf.d", "/etc/syslog-ng/syslog-ng.conf", "/etc/systemd/journald.conf"} {
		if _, err := env.Root.Lstat(p); err == nil {
			where = p
			break
		}
	}
	return append(out, inventory.Finding{
		Rule: RuleNoRemote, Severity: inventory.Medium, Path: where, Policy: engine.PolicyLogging,
		Reason: fmt.Sprintf("no log forwarding configured (checked %v)", checked),
	}), nil
}

// expand lists the existing files among files and the matches of globs,
// in order, without repeats.
func expand(env *engine.Env, files, globs []string) ([]string, error) {
	out := slices.Clone(files)
	for _, g := range globs {
		m, err := env.Root.Glob(g)
		if err != nil {
			return nil, err
		}
		if len(m) > maxFiles {
			return nil, fmt.Errorf("%s: %d files, limit %d", g, len(m), maxFiles)
		}
		out = append(out, m...)
	}
	return slices.Compact(out), nil
}

// prevented looks for logging switched off.
func prevented(env *engine.Env) ([]inventory.Finding, error) {
	var out []inventory.Finding
	finding := func(p, reason string) {
		out = append(out, inventory.Finding{Rule: RulePrevented, Severity: inventory.High, Path: p, Policy: engine.PolicyLogging, Reason: reason})
	}
	for _, p := range []string{"/var/log", "/etc/systemd/system/systemd-journald.service"} {
		ok, err := linkToDevNull(env, p)
		if err != nil {
			return nil, err
		}
		if ok && p == "/var/log" {
			finding(p, "/var/log is a link to /dev/null: logs are discarded")
		} else if ok {
			finding(p, "systemd-journald is masked (link to /dev/null)")
		}
	}
	file, line, storage, err := journaldStorage(env)
	if err != nil {
		return nil, err
	}
	if storage == "none" {
		finding(file, fmt.Sprintf("journald Storage=none (line %d) discards all logs", line))
	}
	return out, nil
}

// linkToDevNull reports whether p is a symbolic link to /dev/null.
func linkToDevNull(env *engine.Env, p string) (bool, error) {
	info, err := env.Root.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if info.Mode&fs.ModeSymlink == 0 {
		return false, nil
	}
	target, err := env.Root.Readlink(p)
	if err != nil {
		return false, err
	}
	return path.Clean(target) == "/dev/null", nil
}

// journaldStorage returns journald's effective Storage= setting and where
// it was set: journald.conf, then the drop-ins ordered by file name, a
// drop-in in /etc hiding one of the same name in /usr/lib or /lib.
func journaldStorage(env *engine.Env) (file string, line int, value string, err error) {
	dropins := map[string]string{} // base name -> path
	for _, dir := range []string{"/lib/systemd/journald.conf.d", "/usr/lib/systemd/journald.conf.d", "/etc/systemd/journald.conf.d"} {
		m, err := env.Root.Glob(dir + "/*.conf")
		if err != nil {
			return "", 0, "", err
		}
		if len(m) > maxFiles {
			return "", 0, "", fmt.Errorf("%s: %d files, limit %d", dir, len(m), maxFiles)
		}
		for _, p := range m {
			dropins[path.Base(p)] = p // later directories win
		}
	}
	names := make([]string, 0, len(dropins))
	for b := range dropins {
		names = append(names, b)
	}
	slices.Sort(names)
	files := []string{"/etc/systemd/journald.conf"}
	for _, b := range names {
		files = append(files, dropins[b])
	}
	for _, f := range files {
		data, ok, err := engine.ReadConfig(env, f, MaxConfigSize)
		if err != nil {
			return "", 0, "", err
		}
		if !ok || hasNUL(data) {
			continue
		}
		for _, e := range parseSystemdINI(data) {
			if e.section == "Journal" && e.key == "Storage" {
				file, line, value = f, e.line, e.value
			}
		}
	}
	return file, line, value, nil
}
