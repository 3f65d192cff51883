package engine_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"testing"

	"github.com/vmtrust/vmtrust/internal/fsys"
	"github.com/vmtrust/vmtrust/internal/fsys/fsystest"
	dt "github.com/vmtrust/vmtrust/internal/inspect/detector/detectortest"
	"github.com/vmtrust/vmtrust/internal/inspect/detector/engine"
	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

// fileDet reports every regular file it is offered, failing or panicking
// on chosen paths, and records what it saw.
type fileDet struct {
	name    string
	seen    *[]string
	failOn  string
	panicOn string
}

func (d fileDet) Name() string { return d.name }
func (d fileDet) Wants(p string, info fsys.Info) bool {
	*d.seen = append(*d.seen, p)
	return info.Mode.IsRegular()
}
func (d fileDet) File(ctx context.Context, env *engine.Env, p string, info fsys.Info) ([]inventory.Finding, error) {
	switch p {
	case d.failOn:
		return nil, errors.New("bad file")
	case d.panicOn:
		panic("boom")
	}
	return []inventory.Finding{{Rule: d.name, Severity: inventory.Low, Path: p, Reason: "seen", Policy: "p"}}, nil
}

type treeDet struct {
	name string
	out  []inventory.Finding
	err  error
}

func (d treeDet) Name() string { return d.name }
func (d treeDet) Detect(ctx context.Context, env *engine.Env) ([]inventory.Finding, error) {
	return d.out, d.err
}

// countCollector reports, at Finish, how many files its run saw.
type countCollector struct{}

type countRun struct{ n int }

func (countCollector) Name() string                            { return "count" }
func (countCollector) Begin(env *engine.Env) engine.Collection { return &countRun{} }
func (c *countRun) Wants(p string, info fsys.Info) bool        { return info.Mode.IsRegular() }
func (c *countRun) File(ctx context.Context, env *engine.Env, p string, info fsys.Info) ([]inventory.Finding, error) {
	c.n++
	return nil, nil
}
func (c *countRun) Finish(ctx context.Context, env *engine.Env) ([]inventory.Finding, error) {
	return []inventory.Finding{{Rule: "count", Path: "/", Reason: fmt.Sprint(c.n), Policy: "p"}}, nil
}

func guest() fsystest.MapFS {
	return fsystest.MapFS{
		"/etc/a":         dt.File("a"),
		"/etc/b":         dt.File("b"),
		"/proc/1/status": dt.File("x"),
		"/sys/kernel/x":  dt.File("x"),
		"/dev/null":      dt.File(""),
		"/run/lock/x":    dt.File("x"),
		"/var/run":       dt.Link("/run"),
		"/home/u/f":      dt.File("f"),
	}
}

func TestRunOneWalkAndSkip(t *testing.T) {
	var seen []string
	got := dt.Run(t, dt.Env(guest(), nil), fileDet{name: "files", seen: &seen})
	want := []string{"/", "/dev", "/etc", "/etc/a", "/etc/b", "/home", "/home/u", "/home/u/f", "/proc", "/run", "/sys", "/var", "/var/run"}
	if !slices.Equal(seen, want) {
		t.Errorf("paths offered = %q, want each once, pseudo-filesystems not entered: %q", seen, want)
	}
	if b := dt.Briefs(got); !slices.Equal(b, []string{"files low /etc/a", "files low /etc/b", "files low /home/u/f"}) {
		t.Errorf("findings = %q", b)
	}
}

func TestRunFailuresBecomeFindings(t *testing.T) {
	var seen []string
	ds := []engine.Detector{
		fileDet{name: "files", seen: &seen, failOn: "/etc/a", panicOn: "/etc/b"},
		treeDet{name: "tree", err: errors.New("cannot parse")},
		treeDet{name: "ok", out: []inventory.Finding{{Rule: "ok", Severity: inventory.Critical, Path: "/z", Reason: "r", Policy: "p"}}},
	}
	got := dt.Run(t, dt.Env(guest(), nil), ds...)
	want := []string{
		"ok critical /z",
		"inspection-failed high /",
		"inspection-failed high /etc/a",
		"inspection-failed high /etc/b",
		"files low /home/u/f",
	}
	if b := dt.Briefs(got); !slices.Equal(b, want) {
		t.Fatalf("findings = %q, want %q", b, want)
	}
	for _, f := range got {
		if f.Rule == engine.RuleInspectionFailed && !strings.Contains(f.Reason, "could not be completed") {
			t.Errorf("failure reason %q does not say the check was incomplete", f.Reason)
		}
	}
	if !strings.Contains(got[3].Reason, "panic: boom") || !strings.Contains(got[1].Reason, "check tree") {
		t.Errorf("failures = %q, %q; want the panic and the detector named", got[3].Reason, got[1].Reason)
	}
}

func TestRunWalkFailureKeepsTreeDetectors(t *testing.T) {
	m := guest()
	m["/etc/loop"] = &fsystest.MapFile{HardLink: "/etc"} // a directory loop
	var seen []string
	got := dt.Run(t, dt.Env(m, nil), fileDet{name: "files", seen: &seen},
		treeDet{name: "tree", out: []inventory.Finding{{Rule: "tree", Path: "/t", Policy: "p"}}})
	var rules []string
	for _, f := range got {
		rules = append(rules, f.Rule)
	}
	if !slices.Contains(rules, engine.RuleInspectionFailed) || !slices.Contains(rules, "tree") {
		t.Errorf("findings = %+v, want the walk failure and the tree detector's finding", got)
	}
}

func TestRunCaps(t *testing.T) {
	m := fsystest.MapFS{}
	for i := range 30 {
		m[fmt.Sprintf("/data/f%02d", i)] = dt.File("x")
	}
	var seen []string
	env := dt.Env(m, nil)
	got, err := engine.Run(context.Background(), env, []engine.Detector{fileDet{name: "files", seen: &seen}}, engine.RunOptions{MaxPerRule: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 11 || got[0].Reason != "20 more findings of this rule not listed" || got[0].Path != "/" {
		t.Errorf("findings = %d, first %+v; want 10 listed and one summary", len(got), got[0])
	}
	// Failures are capped per detector.
	failing := failAll{}
	got, err = engine.Run(context.Background(), env, []engine.Detector{failing}, engine.RunOptions{MaxFailures: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || !slices.ContainsFunc(got, func(f inventory.Finding) bool { return strings.Contains(f.Reason, "more files than are listed") }) {
		t.Errorf("failure findings = %+v, want 3 and one summary", got)
	}
}

type failAll struct{}

func (failAll) Name() string                 { return "fail" }
func (failAll) Wants(string, fsys.Info) bool { return true }
func (failAll) File(context.Context, *engine.Env, string, fsys.Info) ([]inventory.Finding, error) {
	return nil, errors.New("no")
}

func TestRunCollectorFreshPerRun(t *testing.T) {
	env := dt.Env(guest(), nil)
	c := countCollector{}
	for range 2 {
		got := dt.Run(t, env, c)
		if len(got) != 1 || got[0].Reason != "3" {
			t.Fatalf("findings = %+v, want one counting 3 files (state must not carry over)", got)
		}
	}
}

func TestRunErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var seen []string
	if got, err := engine.Run(ctx, dt.Env(guest(), nil), []engine.Detector{fileDet{name: "f", seen: &seen}}, engine.RunOptions{}); !errors.Is(err, context.Canceled) || got != nil {
		t.Errorf("Run(cancelled) = %v, %v; want nil, context.Canceled", got, err)
	}
	if _, err := engine.Run(context.Background(), nil, nil, engine.RunOptions{}); err == nil {
		t.Error("Run(nil env) succeeded")
	}
	if _, err := engine.Run(context.Background(), &engine.Env{}, nil, engine.RunOptions{}); err == nil {
		t.Error("Run(env without Root) succeeded")
	}
	got, err := engine.Run(context.Background(), dt.Env(fsystest.MapFS{}, nil), nil, engine.RunOptions{})
	if err != nil || got == nil || len(got) != 0 {
		t.Errorf("Run(no detectors) = %#v, %v; want an empty, non-nil slice", got, err)
	}
}

func TestSortDeterministic(t *testing.T) {
	in := []inventory.Finding{
		{Rule: "b", Severity: inventory.Low, Path: "/a"},
		{Rule: "a", Severity: inventory.High, Path: "/z"},
		{Rule: "a", Severity: inventory.Low, Path: "/a"},
		{Rule: "a", Severity: inventory.Low, Path: "/a"},
	}
	got := engine.Sort(in)
	want := []string{"a high /z", "a low /a", "b low /a"}
	if b := dt.Briefs(got); !slices.Equal(b, want) {
		t.Errorf("Sort = %q, want %q", b, want)
	}
}

func TestReadHelpers(t *testing.T) {
	m := fsystest.MapFS{"/etc/x": dt.File("hello world"), "/etc/l": dt.Link("/dev/null"), "/dev/null": &fsystest.MapFile{Mode: fs.ModeDevice | fs.ModeCharDevice | 0o666}}
	env := dt.Env(m, nil)
	info, err := env.Root.Lstat("/etc/x")
	if err != nil {
		t.Fatal(err)
	}
	b, trunc, err := engine.ReadHead(env, info, 5)
	if err != nil || string(b) != "hello" || !trunc {
		t.Errorf("ReadHead(5) = %q, %v, %v; want hello, truncated", b, trunc, err)
	}
	tests := []struct {
		name   string
		max    int64
		ok     bool
		hasErr bool
	}{
		{"/etc/x", 100, true, false},
		{"/etc/x", 3, false, true},
		{"/etc/missing", 100, false, false},
		{"/etc/l", 100, false, false}, // link to a device: no configuration
	}
	for _, tt := range tests {
		_, ok, err := engine.ReadConfig(env, tt.name, tt.max)
		if ok != tt.ok || (err != nil) != tt.hasErr {
			t.Errorf("ReadConfig(%s, %d) = ok %v, err %v; want ok %v, error %v", tt.name, tt.max, ok, err, tt.ok, tt.hasErr)
		}
	}
}
