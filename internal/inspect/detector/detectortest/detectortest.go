// Package detectortest helps test detectors: it builds an Env over an
// in-memory guest (fsystest.MapFS), runs detectors through engine.Run
// and checks findings. It is for tests only.
package detectortest

import (
	"context"
	"io/fs"
	"slices"
	"strings"
	"testing"

	"github.com/vmtrust/vmtrust/internal/fsys"
	"github.com/vmtrust/vmtrust/internal/fsys/fsystest"
	"github.com/vmtrust/vmtrust/internal/inspect/detector/engine"
	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

// Env returns an Env over m. When owned is non-nil, package ownership is
// known and the paths in it are owned (by package "pkg"); when nil,
// ownership is unknown.
func Env(m fsystest.MapFS, owned []string) *engine.Env {
	env := &engine.Env{Root: fsys.NewRoot(m), OS: inventory.OS{ID: "debian", VersionID: "12"}}
	if owned != nil {
		env.Owner = func(p string) (string, bool) {
			if slices.Contains(owned, p) {
				return "pkg", true
			}
			return "", false
		}
	}
	return env
}

// File is a regular file with mode 0644 holding s.
func File(s string) *fsystest.MapFile { return &fsystest.MapFile{Data: []byte(s), Mode: 0o644} }

// Mode is a regular file with the given mode holding s.
func Mode(s string, mode fs.FileMode) *fsystest.MapFile {
	return &fsystest.MapFile{Data: []byte(s), Mode: mode}
}

// Dir is a directory with the given permission bits.
func Dir(perm fs.FileMode) *fsystest.MapFile { return &fsystest.MapFile{Mode: fs.ModeDir | perm} }

// Link is a symbolic link to target.
func Link(target string) *fsystest.MapFile {
	return &fsystest.MapFile{Mode: fs.ModeSymlink | 0o777, Target: target}
}

// Run runs ds over env and fails the test if Run fails.
func Run(t testing.TB, env *engine.Env, ds ...engine.Detector) []inventory.Finding {
	t.Helper()
	got, err := engine.Run(context.Background(), env, ds, engine.RunOptions{})
	if err != nil {
		t.Fatalf("engine.Run = %v", err)
	}
	return got
}

// Brief is a finding reduced to what tables compare: "rule severity path".
func Brief(f inventory.Finding) string {
	return f.Rule + " " + f.Severity.String() + " " + f.Path
}

// Briefs maps Brief over fs.
func Briefs(fs []inventory.Finding) []string {
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		out = append(out, Brief(f))
	}
	return out
}

// NoSecrets fails the test if any finding's reason or path contains one
// of secrets.
func NoSecrets(t testing.TB, fs []inventory.Finding, secrets ...string) {
	t.Helper()
	for _, f := range fs {
		for _, s := range secrets {
			if s != "" && (strings.Contains(f.Reason, s) || strings.Contains(f.Path, s)) {
				t.Errorf("finding %+v reveals the secret %q", f, s)
			}
		}
	}
}

// Policies fails the test if a finding other than inspection-failed has
// no policy clause.
func Policies(t testing.TB, fs []inventory.Finding) {
	t.Helper()
	for _, f := range fs {
		if f.Policy == "" && f.Rule != engine.RuleInspectionFailed {
			t.Errorf("finding %+v has no policy clause", f)
		}
	}
}
