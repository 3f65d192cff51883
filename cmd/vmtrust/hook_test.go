package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// vmtrustProc runs the test binary as vmtrust in its own process (the hook
// ends the process on a refusal) with stdin.
func vmtrustProc(t *testing.T, bin string, stdin []byte, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "VMTRUST_TEST_AS_MAIN=1")
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errb.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errb.String()
	}
	t.Fatalf("%s %v: %v", bin, args, err)
	return 0, "", ""
}

// vmtrustIn runs vmtrust in this process with stdin.
func vmtrustIn(stdin []byte, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, bytes.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestHookRun(t *testing.T) {
	w, cached := newCachedWorld(t)
	base := []string{"--state", w.state, "--config", w.config(t), "hook", "run"}

	good, err := os.ReadFile(admitDomain(t, w, "good", cached))
	if err != nil {
		t.Fatal(err)
	}
	if code, out, errs := vmtrustIn(good, append(base, "good", "prepare", "begin", "-")...); code != 0 || out != "" {
		t.Fatalf("hook run prepare (cached image): exit %d\n%s\n%s", code, out, errs)
	}
	// libvirt's NAME must be the XML's name.
	if code, _, errs := vmtrustProc(t, os.Args[0], good, append(base, "other", "prepare", "begin", "-")...); code != exitDenied || !strings.Contains(errs, "vmtrust: error: refused domain other: ") {
		t.Fatalf("hook run with another name: exit %d\n%s", code, errs)
	}

	disk, err := os.ReadFile(cached)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(w.dir, "copy.img")
	if err := os.WriteFile(cp, disk, 0o444); err != nil {
		t.Fatal(err)
	}
	bad, err := os.ReadFile(admitDomain(t, w, "copy", cp))
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range [][]string{{"prepare", "begin", "-"}, {"migrate", "begin", "-"}} {
		code, out, errs := vmtrustProc(t, os.Args[0], bad, append(append(base, "copy"), op...)...)
		lines := strings.Split(strings.TrimSuffix(errs, "\n"), "\n")
		if code != exitDenied || out != "" || len(lines) != 1 || !strings.HasPrefix(lines[0], "vmtrust: error: refused domain copy: ") || !strings.Contains(errs, cp+" is unknown") {
			t.Fatalf("hook run %v (unknown image): exit %d, want %d\nstdout %q\nstderr %q", op, code, exitDenied, out, errs)
		}
	}

	// Operations vmtrust does not act on succeed without reading anything.
	for _, op := range []string{"start begin", "reconnect begin", "release end", "stopped end"} {
		args := append(append([]string{"--state", filepath.Join(w.dir, "no", "such", "state"), "hook", "run", "copy"}, strings.Fields(op)...), "-")
		if code, out, _ := vmtrustIn([]byte("not xml"), args...); code != 0 || out != "" {
			t.Fatalf("hook run %s: exit %d\n%s", op, code, out)
		}
	}
	// "started begin" contains the domain's interfaces; a domain without
	// host devices has nothing to contain, and unreadable XML stops it.
	if code, out, errs := vmtrustIn(good, append(base, "good", "started", "begin", "-")...); code != 0 || out != "" || errs != "" {
		t.Fatalf("hook run started begin: exit %d\n%s\n%s", code, out, errs)
	}
	if code, _, errs := vmtrustIn([]byte("<domain"), append(base, "good", "started", "begin", "-")...); code != exitDenied || !strings.Contains(errs, "network containment") {
		t.Fatalf("hook run started begin with malformed XML: exit %d\n%s", code, errs)
	}
	// Stops and releases are recorded for the ledger, and never fail.
	for _, op := range []string{"stopped end", "release end"} {
		if code, out, errs := vmtrustIn(good, append(append(base, "good"), append(strings.Fields(op), "-")...)...); code != 0 || out != "" || errs != "" {
			t.Fatalf("hook run %s: exit %d\n%s\n%s", op, code, out, errs)
		}
	}
	// Fail closed: unreadable XML or policy refuse.
	if code, _, errs := vmtrustProc(t, os.Args[0], []byte("<domain"), append(base, "x", "prepare", "begin", "-")...); code != exitDenied || !strings.Contains(errs, "vmtrust: error: refused domain x: ") {
		t.Fatalf("hook run with malformed XML: exit %d\n%s", code, errs)
	}
	if code, _, errs := vmtrustIn(good, append(base, "--policy", filepath.Join(w.dir, "missing.policy"), "good", "prepare", "begin", "-")...); code != exitDenied || !strings.Contains(errs, "refused domain good (prepare begin): policy: open ") {
		t.Fatalf("hook run with a missing policy: exit %d\n%s", code, errs)
	}

	b, err := os.ReadFile(filepath.Join(w.state, "admission.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), `"message_type":"admission"`); n != 6 {
		t.Fatalf("admission.jsonl: %d decisions, want 6:\n%s", n, b)
	}
	if n := strings.Count(string(b), `"message_type":"lifecycle"`); n != 2 || !strings.Contains(string(b), `"event":"stopped end"`) || !strings.Contains(string(b), `"event":"release end"`) {
		t.Fatalf("admission.jsonl: %d lifecycle lines, want stopped and release:\n%s", n, b)
	}
}

type hookCheckReport struct {
	Exists       bool   `json:"exists"`
	Ours         bool   `json:"ours"`
	Executable   bool   `json:"executable"`
	Binary       string `json:"binary"`
	BinaryExists bool   `json:"binary_exists"`
	OK           bool   `json:"ok"`
	Action       string `json:"action"`
	Libvirtd     []struct {
		PID        int  `json:"pid"`
		BeforeHook bool `json:"before_hook"`
	} `json:"libvirtd"`
}

func hookCheck(t *testing.T, run func(args ...string) (int, string, string), path string) (int, hookCheckReport) {
	t.Helper()
	code, out, errs := run("hook", "check", "--json", "--path", path)
	var r hookCheckReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("hook check --json: %v\n%s\n%s", err, out, errs)
	}
	return code, r
}

func TestHookInstallCheck(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	p := filepath.Join(dir, "hooks", "qemu")
	in := func(args ...string) (int, string, string) {
		return vmtrust(t, append([]string{"--state", state}, args...)...)
	}

	if code, _, errs := in("hook", "install", "--path", p); code != 0 {
		t.Fatalf("hook install: %d\n%s", code, errs)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("hook file: %v %v", fi, err)
	}
	b, _ := os.ReadFile(p)
	exe, _ := os.Executable()
	exe, _ = filepath.EvalSymlinks(exe)
	if !strings.HasPrefix(string(b), "#!/bin/sh\n# vmtrust-hook:") || !strings.Contains(string(b), "exec "+exe+" --state "+state+" hook run \"$@\"\n") {
		t.Fatalf("hook file:\n%s", b)
	}
	code, r := hookCheck(t, in, p)
	if !r.Exists || !r.Ours || !r.Executable || r.Binary != exe || !r.BinaryExists {
		t.Fatalf("hook check: exit %d %+v", code, r)
	}
	// Any libvirtd running now started before the hook was written.
	if len(r.Libvirtd) == 0 && (code != 0 || !r.OK) || len(r.Libvirtd) > 0 && (code != exitPartial || r.OK || r.Action != "restart libvirtd") {
		t.Fatalf("hook check: exit %d %+v", code, r)
	}

	foreign := filepath.Join(dir, "foreign")
	orig := []byte("#!/bin/sh\nexit 0\n")
	if err := os.WriteFile(foreign, orig, 0o755); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := in("hook", "install", "--path", foreign); code != exitInput || !strings.Contains(errs, "not written by vmtrust") {
		t.Fatalf("hook install over a foreign hook: exit %d\n%s", code, errs)
	}
	if b, _ := os.ReadFile(foreign); !bytes.Equal(b, orig) {
		t.Fatalf("foreign hook changed:\n%s", b)
	}
	if code, r := hookCheck(t, in, foreign); code != exitInput || r.Ours || r.OK {
		t.Fatalf("hook check of a foreign hook: exit %d %+v", code, r)
	}
	if code, _, errs := in("hook", "install", "--path", foreign, "--force"); code != 0 {
		t.Fatalf("hook install --force: exit %d\n%s", code, errs)
	}
	if code, r := hookCheck(t, in, filepath.Join(dir, "missing")); code != exitInput || r.Exists {
		t.Fatalf("hook check of a missing hook: exit %d %+v", code, r)
	}
}
