package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmtrust/vmtrust/internal/admission"
	"github.com/vmtrust/vmtrust/internal/admission/domain"
	"github.com/vmtrust/vmtrust/internal/admission/policy"
	"github.com/vmtrust/vmtrust/internal/ledger"
)

// DefaultHookPath is where libvirtd looks for its qemu hook.
const DefaultHookPath = "/etc/libvirt/hooks/qemu"

// hookMarker is the comment line that makes a hook file ours.
const hookMarker = "# vmtrust-hook: written by 'vmtrust hook install'; do not edit"

func newHookCmd(g *Globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "hook",
		Short: "Install, check and run vmtrust as libvirt's qemu hook",
		Long: `libvirtd runs /etc/libvirt/hooks/qemu with the domain XML on stdin before it
starts, restores or receives a domain. 'hook install' writes a small wrapper
there that runs 'vmtrust hook run'; 'hook check' says whether the running
libvirtd has noticed it (libvirtd only notices a hook that existed when it
started).`,
	}
	c.AddCommand(newHookRunCmd(g), newHookInstallCmd(g), newHookCheckCmd(g), newHookServeCmd(g))
	return c
}

func newHookRunCmd(g *Globals) *cobra.Command {
	var policyFile string
	c := &cobra.Command{
		Use:   "run NAME OP SUBOP [EXTRA]",
		Short: "The hook libvirtd calls (domain XML on stdin)",
		Long: `run is what libvirtd executes. On "prepare begin" (start and restore) and
"migrate begin" (incoming migration) it reads the domain XML on stdin (at
most 4 MiB), takes the admission decision (as 'vmtrust admit'), records it
in STATE/admission.jsonl and, when the domain is refused, prints one line
"vmtrust: error: refused domain NAME: REASON" and exits non-zero, which aborts the
start. Any error on these operations refuses too (fail closed): a state
directory or catalog that is missing or unreadable, a policy that does not
load; the refusal names what failed and is recorded when the decision log
is writable. An allowed domain's containment plan (class, profile) is kept;
on "started begin" every interface with a host device is contained ('vmtrust
net': the addresses come from the domain's vmtrust network metadata), and a
failure stops the domain; on "release end" the containment is removed and
the leases end. "stopped end" and "release end" are recorded as lifecycle
lines in the decision log. Other operations exit 0. run never calls libvirt.

EXIT STATUS
  0  allowed, or an operation vmtrust does not act on   6  refused
  other non-zero: an error, which refuses the domain too`,
		Args: cobra.RangeArgs(3, 4),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runHook(cmd.Context(), g, args, policyFile, nil)
		},
	}
	c.Flags().StringVar(&policyFile, "policy", "", "site policy file (default: the built-in policy)")
	return c
}

// hookSite is what a hook invocation decides with: the open site and its
// policy. The admission service keeps one for its lifetime; 'hook run'
// opens one per invocation.
type hookSite struct {
	site  *site
	pol   *policy.Policy
	err   error  // why the policy could not be loaded: every decision refuses
	netns string // the caller's network namespace (a path), for containment; "" the current one
	// ledger, when the admission service keeps one open, is where the
	// hook's events go; nil: recordLedger opens the ledger per call.
	ledger *localLedger
}

// hookRecord records events in the ledger hs keeps open, or in one opened
// for the call.
func hookRecord(ctx context.Context, g *Globals, hs *hookSite, evs ...ledgerEvent) error {
	if hs == nil || hs.ledger == nil {
		return recordLedger(ctx, g, evs...)
	}
	return hs.ledger.recordAll(ctx, evs...)
}

// runHook acts on one libvirt hook invocation (args: NAME OP SUBOP
// [EXTRA], the domain XML in g.Stdin). With hs nil it opens the site and
// loads the policy itself. The error is what cmd/vmtrust prints and maps to
// the exit status: a refusal wraps ErrDenied.
func runHook(ctx context.Context, g *Globals, args []string, policyFile string, hs *hookSite) error {
	name, op, sub := args[0], args[1], args[2]
	netns := ""
	if hs != nil {
		netns = hs.netns
	}
	switch {
	case op == "stopped" && sub == "end":
		return hookLifecycle(g, name, op, sub, nil)
	case op == "release" && sub == "end":
		x, _ := readBounded(g.Stdin, "-", domain.MaxSize)
		err := hookLifecycle(g, name, op, sub, x)
		evs := uncontainDomain(ctx, g, name, x, netns)
		vm := name
		if dom, err := domain.Parse(x); err == nil && dom.UUID != "" {
			vm = dom.UUID
		}
		evs = append(evs, ledgerEvent{Type: ledger.VMStopped, VM: vm})
		if lerr := hookRecord(ctx, g, hs, evs...); lerr != nil {
			g.Log.Warn("stop not recorded in the ledger", "domain", name, "err", lerr)
		}
		return err
	case op == "started" && sub == "begin":
		// The domain's devices exist now: contain its interfaces, or stop
		// it; the start and its leases go to the ledger, or it stops.
		evs, err := containDomain(ctx, g, name, policyFile, hs)
		if err != nil {
			return &classed{ErrDenied, fmt.Errorf("refused domain %s (started begin): network containment: %w", name, err)}
		}
		if err := hookRecord(ctx, g, hs, evs...); err != nil {
			return &classed{ErrDenied, fmt.Errorf("refused domain %s (started begin): %w", name, err)}
		}
		return nil
	case !(op == "prepare" || op == "migrate") || sub != "begin":
		return nil
	}
	d, err := hookDecide(ctx, g, name, policyFile, hs)
	if err == nil && d.Allow {
		err = savePlan(g, d)
	}
	if err == nil {
		// The decision goes to the ledger; an allowed domain whose
		// decision cannot be recorded is refused.
		if lerr := hookRecord(ctx, g, hs, decisionEvent(d)); lerr != nil && d.Allow {
			err = lerr
		} else if lerr != nil {
			g.Log.Warn("refusal not recorded in the ledger", "domain", name, "err", lerr)
		}
	}
	if err != nil {
		// Fail closed: record the refusal where possible and say what failed.
		d = admission.Decision{Time: time.Now().UTC(), Domain: name, Reason: err.Error()}
		if rerr := admission.Record(g.State, d); rerr != nil {
			g.Log.Error("refusal not recorded", "err", rerr)
		}
		return &classed{ErrDenied, fmt.Errorf("refused domain %s (%s %s): %w", name, op, sub, err)}
	}
	if d.Allow {
		if d.FailOpen {
			g.Log.Warn("admission failed open for class 1", "domain", name, "reason", d.Reason)
		}
		return nil
	}
	// cmd/vmtrust prints this as the one line libvirt shows
	// ("vmtrust: error: refused domain NAME: REASON") and exits 6.
	return &classed{ErrDenied, fmt.Errorf("refused domain %s: %s", name, d.Reason)}
}

// hookDecide reads the domain XML, decides and records the decision.
func hookDecide(ctx context.Context, g *Globals, name, policyFile string, hs *hookSite) (admission.Decision, error) {
	x, err := readBounded(g.Stdin, "-", domain.MaxSize)
	if err != nil {
		return admission.Decision{}, fmt.Errorf("domain xml: %w", err)
	}
	if hs == nil {
		s, err := openExistingSite(ctx, g)
		if err != nil {
			return admission.Decision{}, err
		}
		defer s.Close()
		pol, err := sitePolicy(s, policyFile)
		if err != nil {
			return admission.Decision{}, err
		}
		hs = &hookSite{site: s, pol: pol}
	}
	if hs.err != nil {
		return admission.Decision{}, hs.err
	}
	return decideAndRecord(ctx, g, hs.site, hs.pol, x, name)
}

// hookLifecycle records that a domain stopped ("stopped end") or released
// its resources ("release end"), for the ledger. It never fails the
// operation: libvirt ignores the hook's status there, and the domain is
// gone either way. x is the domain XML when the caller read it already.
func hookLifecycle(g *Globals, name, op, sub string, x []byte) error {
	ev := admission.Lifecycle{Time: time.Now().UTC(), Domain: name, Event: op + " " + sub}
	var err error
	if x == nil {
		x, err = readBounded(g.Stdin, "-", domain.MaxSize)
	}
	if err == nil {
		if dom, err := domain.Parse(x); err == nil {
			ev.UUID = dom.UUID
			for _, i := range dom.Interfaces {
				if i.MAC != "" {
					ev.MACs = append(ev.MACs, i.MAC)
				}
			}
		}
	}
	if g.State != "" {
		if err := admission.RecordLifecycle(g.State, ev); err != nil {
			g.Log.Warn("lifecycle event not recorded", "domain", name, "event", ev.Event, "err", err)
		}
	}
	return nil
}

type hookInstallOptions struct {
	Path    string
	Policy  string
	Force   bool
	Service bool
}

// HookClient is the small program that forwards to the admission service;
// hook install --service expects it next to the vmtrust binary.
const HookClient = "vmtrust-hook"

func newHookInstallCmd(g *Globals) *cobra.Command {
	o := &hookInstallOptions{}
	c := &cobra.Command{
		Use:   "install",
		Short: "Write the qemu hook wrapper that runs this vmtrust binary",
		Long: `install writes, atomically and with mode 0755, a /bin/sh wrapper at --path
that runs this vmtrust binary (its absolute path) as 'vmtrust --state STATE
hook run' with libvirt's arguments. It refuses to replace a hook file that
it did not write unless --force is given. libvirtd must be started, or
restarted, after the hook exists: see 'vmtrust hook check'.

With --service the wrapper runs vmtrust-hook (built next to vmtrust:
make build), which asks the admission service ('vmtrust hook serve',
socket STATE/hook.sock) and falls back to 'vmtrust hook run' when the
service is not running: the same decision, without starting the whole
vmtrust binary for every domain start.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runHookInstall(g, o) },
	}
	c.Flags().StringVar(&o.Path, "path", DefaultHookPath, "hook file")
	c.Flags().StringVar(&o.Policy, "policy", "", "site policy file the hook uses (default: the built-in policy)")
	c.Flags().BoolVar(&o.Force, "force", false, "replace a hook file vmtrust did not write")
	c.Flags().BoolVar(&o.Service, "service", false, "forward to the admission service ('hook serve') through "+HookClient)
	return c
}

func runHookInstall(g *Globals, o *hookInstallOptions) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the vmtrust binary: %w", err)
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return fmt.Errorf("finding the vmtrust binary: %w", err)
	}
	if g.State == "" {
		return usageErr(errors.New("no state directory: give --state or set VMTRUST_STATE"))
	}
	state, err := filepath.Abs(g.State)
	if err != nil {
		return usageErr(err)
	}
	words := []string{exe, "--state", state}
	if g.Config != "" {
		cfg, err := filepath.Abs(g.Config)
		if err != nil {
			return usageErr(err)
		}
		words = append(words, "--config", cfg)
	}
	words = append(words, "hook", "run")
	if o.Policy != "" {
		p, err := filepath.Abs(o.Policy)
		if err != nil {
			return usageErr(err)
		}
		if _, err := policy.Load(p); err != nil {
			return inputErr(err)
		}
		words = append(words, "--policy", p)
	}
	if o.Service {
		client := filepath.Join(filepath.Dir(exe), HookClient)
		if fi, err := os.Stat(client); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return withHint(inputErr(fmt.Errorf("%s: not an executable file next to %s", client, exe)),
				"build it there: go build -o "+client+" ./cmd/vmtrust-hook (make build does)")
		}
		words = append([]string{client, filepath.Join(state, HookSocket)}, append(words, "--")...)
	}
	var line strings.Builder
	line.WriteString("exec")
	for _, w := range words {
		if strings.ContainsAny(w, "\n\r\x00") {
			return usageErr(fmt.Errorf("path %q contains a line break", w))
		}
		line.WriteString(" " + shQuote(w))
	}
	// libvirtd runs the hook for every operation (prepare, start, started,
	// stopped, release, migrate, restore, reconnect, attach): the shell
	// answers those vmtrust does not act on without starting a program.
	script := "#!/bin/sh\n" + hookMarker + "\n" +
		"case \"$2 $3\" in\n\"prepare begin\" | \"migrate begin\" | \"started begin\" | \"release end\" | \"stopped end\") ;;\n*) exit 0 ;;\nesac\n" +
		line.String() + ` "$@"` + "\n"

	if b, err := readFileBounded(o.Path, 1<<20); err == nil {
		if !isOurHook(b) && !o.Force {
			return withHint(inputErr(fmt.Errorf("%s exists and was not written by vmtrust", o.Path)),
				"merge it by hand, or replace it with --force")
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return inputErr(fmt.Errorf("hook %s: %w", o.Path, err))
	}
	if err := os.MkdirAll(filepath.Dir(o.Path), 0o755); err != nil {
		return inputErr(err)
	}
	if err := writeOutput(g, o.Path, []byte(script), 0o755); err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "installed %s: runs %s with state %s\n", o.Path, exe, state)
	if procs, err := libvirtdProcs(); err == nil && len(procs) > 0 {
		g.Log.Warn("a libvirtd is running: it notices the hook only after a restart", "pids", len(procs))
	}
	return nil
}

// isOurHook reports whether b has the marker line of a hook we wrote.
func isOurHook(b []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if sc.Text() == hookMarker {
			return true
		}
	}
	return false
}

// shQuote quotes s as one /bin/sh word; words of safe characters only
// stay bare.
func shQuote(s string) string {
	safe := s != ""
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.ContainsRune("_./-=:@,+%", c)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// hookBinary is the first word after "exec" in our wrapper, unquoted.
func hookBinary(b []byte) (string, bool) {
	for _, l := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(l, "exec ")
		if !ok {
			continue
		}
		var w strings.Builder
		for len(rest) > 0 && rest[0] != ' ' {
			if rest[0] == '\\' && len(rest) > 1 {
				w.WriteByte(rest[1])
				rest = rest[2:]
				continue
			}
			if rest[0] != '\'' {
				w.WriteByte(rest[0])
				rest = rest[1:]
				continue
			}
			end := strings.IndexByte(rest[1:], '\'')
			if end < 0 {
				return "", false
			}
			w.WriteString(rest[1 : 1+end])
			rest = rest[end+2:]
		}
		return w.String(), w.Len() > 0
	}
	return "", false
}

// HookCheck is what 'hook check' reports.
type HookCheck struct {
	MessageType  string     `json:"message_type"`
	Path         string     `json:"path"`
	Exists       bool       `json:"exists"`
	Ours         bool       `json:"ours"`
	Executable   bool       `json:"executable"`
	Binary       string     `json:"binary,omitempty"`
	BinaryExists bool       `json:"binary_exists"`
	HookMTime    time.Time  `json:"hook_mtime,omitzero"`
	Libvirtd     []Libvirtd `json:"libvirtd"`
	OK           bool       `json:"ok"`
	// Service: the hook forwards to the admission service; ServiceUp: it
	// answers on STATE/hook.sock (when down, every start runs 'hook run').
	Service   bool     `json:"service"`
	ServiceUp bool     `json:"service_up"`
	Problems  []string `json:"problems,omitempty"`
	Action    string   `json:"action,omitempty"`
}

// Libvirtd is one running libvirtd process.
type Libvirtd struct {
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	// BeforeHook: started before the hook file was last written, so it
	// does not run it.
	BeforeHook bool `json:"before_hook"`
}

func newHookCheckCmd(g *Globals) *cobra.Command {
	var path string
	var jsonOut bool
	c := &cobra.Command{
		Use:   "check",
		Short: "Check that the qemu hook is installed, ours, and noticed by libvirtd",
		Long: `check verifies that the hook file exists, was written by 'vmtrust hook
install', is executable and runs an existing vmtrust binary, and that no
running libvirtd started before the hook file was written (libvirtd only
notices a hook that existed when it started; such a libvirtd must be
restarted). Start times come from /proc/PID/stat and have a resolution of
about a second.

EXIT STATUS
  0  the hook is in place and every running libvirtd started after it
  3  the hook file is missing, not ours, not executable or its binary is gone
  4  the hook is in place but a running libvirtd predates it: restart libvirtd`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r := checkHook(path)
			if r.Service = filepath.Base(r.Binary) == HookClient; r.Service && g.State != "" {
				// Informational: vmtrust-hook falls back to 'hook run'.
				if c, err := net.DialTimeout("unix", filepath.Join(g.State, HookSocket), time.Second); err == nil {
					c.Close()
					r.ServiceUp = true
				}
			}
			if jsonOut {
				if err := printJSON(g.Stdout, r); err != nil {
					return err
				}
			} else {
				printHookCheck(g, r)
			}
			switch {
			case r.OK:
				return nil
			case r.Exists && r.Ours && r.Executable && r.BinaryExists:
				return withHint(fmt.Errorf("%w: %s", ErrPartial, strings.Join(r.Problems, "; ")), r.Action)
			}
			return inputErr(errors.New(strings.Join(r.Problems, "; ")))
		},
	}
	c.Flags().StringVar(&path, "path", DefaultHookPath, "hook file")
	c.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	return c
}

func printHookCheck(g *Globals, r HookCheck) {
	verdict := "OK"
	if !r.OK {
		verdict = "NOT ACTIVE"
	}
	fmt.Fprintf(g.Stdout, "hook  %s\nstatus  %s\n", Clean(r.Path, false), verdict)
	if r.Binary != "" {
		fmt.Fprintf(g.Stdout, "binary  %s\n", Clean(r.Binary, false))
	}
	if r.Service {
		up := "not running: every start runs 'vmtrust hook run' (slower, same decision)"
		if r.ServiceUp {
			up = "running"
		}
		fmt.Fprintf(g.Stdout, "service  %s\n", up)
	}
	for _, p := range r.Libvirtd {
		fmt.Fprintf(g.Stdout, "libvirtd  pid %d started %s before_hook=%t\n", p.PID, p.Started.Format(time.RFC3339), p.BeforeHook)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(g.Stdout, "problem  %s\n", Clean(p, false))
	}
	if r.Action != "" {
		fmt.Fprintf(g.Stdout, "action  %s\n", r.Action)
	}
}

func checkHook(path string) HookCheck {
	r := HookCheck{MessageType: "hook_check", Path: path, Libvirtd: []Libvirtd{}}
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		r.Problems = append(r.Problems, fmt.Sprintf("hook %s: %v", path, err))
		r.Action = "run 'vmtrust hook install', then restart libvirtd"
		return r
	case !fi.Mode().IsRegular():
		r.Problems = append(r.Problems, fmt.Sprintf("hook %s is not a regular file", path))
		return r
	}
	r.Exists = true
	r.HookMTime = fi.ModTime().UTC()
	r.Executable = fi.Mode().Perm()&0o111 == 0o111
	if !r.Executable {
		r.Problems = append(r.Problems, fmt.Sprintf("hook %s is not executable (mode %v)", path, fi.Mode().Perm()))
	}
	b, err := readFileBounded(path, 1<<20)
	if err != nil {
		r.Problems = append(r.Problems, fmt.Sprintf("hook %s: %v", path, err))
		return r
	}
	r.Ours = isOurHook(b)
	if !r.Ours {
		r.Problems = append(r.Problems, fmt.Sprintf("hook %s was not written by vmtrust", path))
		r.Action = "replace it with 'vmtrust hook install --force', then restart libvirtd"
		return r
	}
	if bin, ok := hookBinary(b); ok {
		r.Binary = bin
		if bi, err := os.Stat(bin); err == nil && bi.Mode().IsRegular() && bi.Mode().Perm()&0o111 != 0 {
			r.BinaryExists = true
		}
	}
	if !r.BinaryExists {
		r.Problems = append(r.Problems, fmt.Sprintf("hook %s runs %q, which is not an executable file", path, r.Binary))
		r.Action = "run 'vmtrust hook install' again"
	}
	procs, err := libvirtdProcs()
	if err != nil {
		r.Problems = append(r.Problems, fmt.Sprintf("listing libvirtd processes: %v", err))
	}
	for _, p := range procs {
		// Start times are truncated to the second of the boot time: a
		// libvirtd that started in the same second as the write counts
		// as before it (the safe side).
		p.BeforeHook = p.Started.Before(r.HookMTime)
		if p.BeforeHook {
			r.Problems = append(r.Problems, fmt.Sprintf("libvirtd (pid %d) started at %s, before the hook was written at %s: it does not run the hook",
				p.PID, p.Started.Format(time.RFC3339), r.HookMTime.Format(time.RFC3339)))
			r.Action = "restart libvirtd"
		}
		r.Libvirtd = append(r.Libvirtd, p)
	}
	r.OK = len(r.Problems) == 0
	return r
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's starttime (100 on
// every Linux architecture Go supports).
const clockTicks = 100

// libvirtdProcs lists running libvirtd processes with their start times.
func libvirtdProcs() ([]Libvirtd, error) {
	btime, err := bootTime()
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []Libvirtd
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone
		}
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open || s[open+1:end] != "libvirtd" {
			continue
		}
		f := strings.Fields(s[end+1:])
		// After "(comm)": state is field 3, starttime field 22.
		if len(f) < 20 {
			continue
		}
		ticks, err := strconv.ParseInt(f[19], 10, 64)
		if err != nil {
			continue
		}
		started := btime.Add(time.Duration(ticks) * time.Second / clockTicks)
		out = append(out, Libvirtd{PID: pid, Started: started.UTC()})
	}
	return out, nil
}

func bootTime() (time.Time, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "btime "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, err
			}
			return time.Unix(n, 0), nil
		}
	}
	return time.Time{}, errors.New("/proc/stat: no btime")
}
