package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildBinaries builds vmtrust and vmtrust-hook into one directory, as
// make build does.
func buildBinaries(t *testing.T) (vmtrust, hook string) {
	t.Helper()
	dir := t.TempDir()
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	for _, b := range [][2]string{{"vmtrust", "."}, {"vmtrust-hook", "../vmtrust-hook"}} {
		if out, err := exec.Command(gobin, "build", "-o", filepath.Join(dir, b[0]), b[1]).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b[1], err, out)
		}
	}
	return filepath.Join(dir, "vmtrust"), filepath.Join(dir, "vmtrust-hook")
}

// TestHookService runs the installed --service wrapper against a real
// 'vmtrust hook serve' process, then without it (fallback to 'hook run').
func TestHookService(t *testing.T) {
	bin, _ := buildBinaries(t)
	w, cached := newCachedWorld(t)
	pol := w.write(t, "policy.toml", policySource(t))
	args := func(a ...string) []string {
		return append([]string{"--state", w.state, "--config", w.config(t)}, a...)
	}
	hook := filepath.Join(w.dir, "hooks", "qemu")
	if code, out, errs := vmtrustProc(t, bin, nil, args("hook", "install", "--service", "--path", hook, "--policy", pol)...); code != 0 {
		t.Fatalf("hook install --service: %d\n%s\n%s", code, out, errs)
	}
	if script, _ := os.ReadFile(hook); !strings.Contains(string(script), "/vmtrust-hook ") {
		t.Fatalf("the wrapper does not run vmtrust-hook:\n%s", script)
	}

	serve := exec.Command(bin, args("hook", "serve", "--policy", pol)...)
	var serveLog bytes.Buffer
	serve.Stderr = &serveLog
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func(sig syscall.Signal) {
		if !stopped {
			serve.Process.Signal(sig)
			serve.Wait()
			stopped = true
		}
	}
	t.Cleanup(func() { stop(syscall.SIGKILL) })
	sock := filepath.Join(w.state, "hook.sock")
	for i := 0; i < 200; i++ {
		if fi, err := os.Stat(sock); err == nil && fi.Mode().Type() == os.ModeSocket {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %s: %v %v\n%s", sock, fi, err, serveLog.String())
	}
	decisions := func() int {
		b, _ := os.ReadFile(filepath.Join(w.state, "admission.jsonl"))
		return strings.Count(string(b), `"message_type":"admission"`)
	}
	runHook := func(stdin []byte, a ...string) (int, string) {
		t.Helper()
		cmd := exec.Command(hook, a...)
		cmd.Stdin = bytes.NewReader(stdin)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), errb.String()
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, errb.String()
	}
	good, _ := os.ReadFile(admitDomain(t, w, "good", cached))
	cp := filepath.Join(w.dir, "copy.img")
	b, _ := os.ReadFile(cached)
	os.WriteFile(cp, b, 0o444)
	bad, _ := os.ReadFile(admitDomain(t, w, "copy", cp))

	check := func(t *testing.T, via string) {
		t.Helper()
		n := decisions()
		if code, errs := runHook(good, "good", "prepare", "begin", "-"); code != 0 || errs != "" {
			t.Fatalf("%s: good: exit %d %q", via, code, errs)
		}
		if code, errs := runHook(bad, "copy", "migrate", "begin", "-"); code != exitDenied || !strings.HasPrefix(errs, "vmtrust: error: refused domain copy: ") || !strings.Contains(errs, cp+" is unknown") {
			t.Fatalf("%s: unknown image: exit %d %q", via, code, errs)
		}
		if code, errs := runHook(good, "good", "started", "begin", "-"); code != 0 || errs != "" {
			t.Fatalf("%s: started begin: exit %d %q", via, code, errs)
		}
		if code, errs := runHook(good, "good", "release", "end", "-"); code != 0 || errs != "" {
			t.Fatalf("%s: release end: exit %d %q", via, code, errs)
		}
		if got := decisions() - n; got != 2 {
			t.Fatalf("%s: %d decisions recorded, want 2", via, got)
		}
	}
	check(t, "service")

	// The service reloads a changed policy file; one that does not load
	// refuses, naming why.
	closed := "[[rule]]\nname = \"maintenance\"\nwhen = \"true\"\ndecision = \"deny\"\nreason = \"hypervisor in maintenance\"\n"
	os.WriteFile(pol, []byte(closed), 0o644)
	if code, errs := runHook(good, "good", "prepare", "begin", "-"); code != exitDenied || !strings.Contains(errs, "hypervisor in maintenance") {
		t.Fatalf("after a policy change: exit %d %q", code, errs)
	}
	os.WriteFile(pol, []byte("[[rule]\n"), 0o644)
	if code, errs := runHook(good, "good", "prepare", "begin", "-"); code != exitDenied || !strings.Contains(errs, "refused domain good (prepare begin): policy") {
		t.Fatalf("with a broken policy: exit %d %q", code, errs)
	}
	os.WriteFile(pol, policySource(t), 0o644)

	// Killed: the socket stays behind, the wrapper falls back to 'hook run'.
	stop(syscall.SIGKILL)
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("a killed service leaves its socket: %v", err)
	}
	check(t, "fallback after kill")
	// A new service replaces the stale socket; SIGTERM removes it.
	serve2 := exec.Command(bin, args("hook", "serve", "--policy", pol)...)
	if err := serve2.Start(); err != nil {
		t.Fatal(err)
	}
	defer serve2.Process.Kill()
	up := false
	for i := 0; i < 200 && !up; i++ {
		time.Sleep(50 * time.Millisecond)
		out, _ := exec.Command(bin, append(args("hook", "check", "--path", hook), "--json")...).Output()
		up = strings.Contains(string(out), `"service_up": true`)
	}
	if !up {
		t.Fatal("hook check never saw the second service up")
	}
	check(t, "second service")
	serve2.Process.Signal(syscall.SIGTERM)
	serve2.Wait()
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket after SIGTERM: %v", err)
	}
	check(t, "fallback after stop")
}
