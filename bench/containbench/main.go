// Command containbench drives internal/contain for vmtrust's containment
// benchmarks (bench/contain.sh). It is not part of vmtrust.
//
//	containbench -netns NAME apply SPEC       Apply every port of SPEC, one call each, timed
//	containbench -netns NAME reconcile SPEC   Reconcile(SPEC's ports), one call, timed
//	containbench -netns NAME noop SPEC        Apply every port of SPEC again, timed (each must be a no-op)
//	containbench -netns NAME one SPEC         one Apply of SPEC's last port, then its Remove, each timed
//	containbench -netns NAME status PORT      the port's PortStatus as JSON
//
// NAME is a network namespace under /run/netns; the Manager works on the
// table "bridge vmtrust" there and nowhere else. SPEC has one port a line,
// "NAME MAC IPV4 IPV6" (class 2, inbound allow, no rate limit). apply and
// reconcile require afterwards (untimed) that Status lists exactly SPEC's
// ports, none quarantined, and exit 1 otherwise.
//
// Stdout is one JSON object. apply: ports, seconds (the sum of the Apply
// calls), per-call p50/p90/max in ms, and the mean of the first and the last
// tenth of the calls (does one Apply grow with the ports already there?).
// reconcile: ports, seconds, added. noop prints what apply prints, for
// Apply calls on ports already installed as SPEC says: what one Apply costs
// before it writes anything (reading the table), with the table as it is.
// one requires (untimed, with Status) every port of SPEC but the last to be
// installed and the last to be absent; it times one Apply of the last port
// and one Remove of it, each checked (untimed) with PortStatus, which reads
// that port only: installed ports, apply_ms, remove_ms. reconcile and one
// also print the process's CPU time (user + system, all threads) over each
// timed call, the cost without the waits of a busy machine.
// -cpuprofile FILE writes a CPU profile of the operation. Progress and errors
// go to stderr.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/vmtrust/vmtrust/internal/contain"
)

func main() {
	netns := flag.String("netns", "", "network namespace name (under /run/netns)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the operation to this file")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: containbench [-cpuprofile FILE] -netns NAME apply|reconcile|noop|one SPEC | status PORT\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *netns == "" || flag.NArg() != 2 || strings.Contains(*netns, "/") {
		flag.Usage()
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "containbench: %v\n", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "containbench: %v\n", err)
			os.Exit(1)
		}
	}
	out, err := run(context.Background(), log, *netns, flag.Arg(0), flag.Arg(1))
	if *cpuprofile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "containbench: %v\n", err)
		os.Exit(1)
	}
	b, err := json.Marshal(out)
	if err != nil {
		fmt.Fprintf(os.Stderr, "containbench: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("%s\n", b)
}

func run(ctx context.Context, log *slog.Logger, netns, op, arg string) (any, error) {
	ns, err := os.Open("/run/netns/" + netns)
	if err != nil {
		return nil, fmt.Errorf("netns %s: %w", netns, err)
	}
	defer ns.Close()
	m, err := contain.New(ns, log)
	if err != nil {
		return nil, fmt.Errorf("netns %s: %w", netns, err)
	}
	switch op {
	case "apply", "reconcile", "noop":
		ports, err := readSpec(arg)
		if err != nil {
			return nil, err
		}
		var out any
		switch op {
		case "apply", "noop":
			out, err = timeApply(ctx, m, ports, op)
		default:
			out, err = timeReconcile(ctx, m, ports)
		}
		if err != nil {
			return nil, err
		}
		return out, check(ctx, m, ports, op != "noop")
	case "one":
		ports, err := readSpec(arg)
		if err != nil {
			return nil, err
		}
		return timeOne(ctx, m, ports)
	case "status":
		st, err := m.Status(ctx)
		if err != nil {
			return nil, err
		}
		for _, s := range st {
			if s.Name == arg {
				return s, nil
			}
		}
		return nil, fmt.Errorf("port %s: not in the table", arg)
	}
	return nil, fmt.Errorf("operation %q: not apply, reconcile, noop, one or status", op)
}

// readSpec parses SPEC: "NAME MAC IPV4 IPV6" a line.
func readSpec(path string) ([]contain.Port, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ports []contain.Port
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		fs := strings.Fields(sc.Text())
		if len(fs) == 0 {
			continue
		}
		if len(fs) != 4 {
			return nil, fmt.Errorf("spec %s:%d: want NAME MAC IPV4 IPV6", path, line)
		}
		mac, err := net.ParseMAC(fs[1])
		if err != nil {
			return nil, fmt.Errorf("spec %s:%d: %w", path, line, err)
		}
		v4, err := netip.ParseAddr(fs[2])
		if err != nil {
			return nil, fmt.Errorf("spec %s:%d: %w", path, line, err)
		}
		v6, err := netip.ParseAddr(fs[3])
		if err != nil {
			return nil, fmt.Errorf("spec %s:%d: %w", path, line, err)
		}
		p := contain.Port{Name: fs[0], VM: "bench-" + fs[0], MAC: mac, IPv4: []netip.Addr{v4}, IPv6: []netip.Addr{v6},
			Class: 2, Inbound: contain.InboundAllow}
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("spec %s:%d: %w", path, line, err)
		}
		ports = append(ports, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("spec %s: %w", path, err)
	}
	if len(ports) == 0 {
		return nil, fmt.Errorf("spec %s: no ports", path)
	}
	return ports, nil
}

// ApplyResult is what apply prints.
type ApplyResult struct {
	Op          string  `json:"op"`
	Ports       int     `json:"ports"`
	Seconds     float64 `json:"seconds"`
	P50ms       float64 `json:"call_p50_ms"`
	P90ms       float64 `json:"call_p90_ms"`
	Maxms       float64 `json:"call_max_ms"`
	FirstMeanms float64 `json:"first_tenth_mean_ms"`
	LastMeanms  float64 `json:"last_tenth_mean_ms"`
}

func timeApply(ctx context.Context, m *contain.Manager, ports []contain.Port, op string) (ApplyResult, error) {
	ms := make([]float64, len(ports))
	var total time.Duration
	for i, p := range ports {
		begin := time.Now()
		err := m.Apply(ctx, p)
		d := time.Since(begin)
		if err != nil {
			return ApplyResult{}, fmt.Errorf("apply %d of %d: %w", i+1, len(ports), err)
		}
		total += d
		ms[i] = float64(d.Nanoseconds()) / 1e6
	}
	tenth := max(1, len(ms)/10)
	sorted := slices.Clone(ms)
	slices.Sort(sorted)
	rank := func(q float64) float64 {
		k := int(math.Ceil(q*float64(len(sorted)))) - 1
		return sorted[max(0, min(k, len(sorted)-1))]
	}
	return ApplyResult{Op: op, Ports: len(ports), Seconds: total.Seconds(),
		P50ms: rank(0.5), P90ms: rank(0.9), Maxms: sorted[len(sorted)-1],
		FirstMeanms: mean(ms[:tenth]), LastMeanms: mean(ms[len(ms)-tenth:])}, nil
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// ReconcileResult is what reconcile prints.
type ReconcileResult struct {
	Op      string  `json:"op"`
	Ports   int     `json:"ports"`
	Seconds float64 `json:"seconds"`
	CPU     float64 `json:"cpu_seconds"`
	Added   int     `json:"added"`
	Table   bool    `json:"table_created"`
}

func timeReconcile(ctx context.Context, m *contain.Manager, ports []contain.Port) (ReconcileResult, error) {
	cpu0, begin := cpuTime(), time.Now()
	rep, err := m.Reconcile(ctx, ports)
	d, cpu := time.Since(begin), cpuTime()-cpu0
	if err != nil {
		return ReconcileResult{}, fmt.Errorf("reconcile: %w", err)
	}
	return ReconcileResult{Op: "reconcile", Ports: len(ports), Seconds: d.Seconds(), CPU: cpu.Seconds(),
		Added: len(rep.Added), Table: rep.Table}, nil
}

// cpuTime is the process's user and system time so far, all threads.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// OneResult is what one prints.
type OneResult struct {
	Op          string  `json:"op"`
	Installed   int     `json:"ports_installed"` // before the Apply
	Port        string  `json:"port"`
	ApplyMs     float64 `json:"apply_ms"`
	ApplyCPUMs  float64 `json:"apply_cpu_ms"`
	RemoveMs    float64 `json:"remove_ms"`
	RemoveCPUMs float64 `json:"remove_cpu_ms"`
}

func millis(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// timeOne times one Apply of the last port of ports, with the others
// installed, and one Remove of it.
func timeOne(ctx context.Context, m *contain.Manager, ports []contain.Port) (OneResult, error) {
	if len(ports) < 2 {
		return OneResult{}, fmt.Errorf("one: the spec needs the installed ports and the new one")
	}
	p := ports[len(ports)-1]
	if err := check(ctx, m, ports[:len(ports)-1], true); err != nil {
		return OneResult{}, fmt.Errorf("one: before: %w", err)
	}
	out := OneResult{Op: "one", Installed: len(ports) - 1, Port: p.Name}

	cpu0, begin := cpuTime(), time.Now()
	err := m.Apply(ctx, p)
	out.ApplyMs, out.ApplyCPUMs = millis(time.Since(begin)), millis(cpuTime()-cpu0)
	if err != nil {
		return out, fmt.Errorf("one: apply %s: %w", p.Name, err)
	}
	st, ok, err := m.PortStatus(ctx, p.Name)
	switch {
	case err != nil:
		return out, fmt.Errorf("one: status %s: %w", p.Name, err)
	case !ok || st.Quarantined || st.VM != p.VM || st.MAC != p.MAC.String():
		return out, fmt.Errorf("one: port %s after Apply: found %v, %+v; want installed, not quarantined", p.Name, ok, st)
	}

	cpu0, begin = cpuTime(), time.Now()
	err = m.Remove(ctx, p.Name)
	out.RemoveMs, out.RemoveCPUMs = millis(time.Since(begin)), millis(cpuTime()-cpu0)
	if err != nil {
		return out, fmt.Errorf("one: remove %s: %w", p.Name, err)
	}
	if _, ok, err := m.PortStatus(ctx, p.Name); err != nil || ok {
		return out, fmt.Errorf("one: port %s after Remove: found %v, %v; want gone", p.Name, ok, err)
	}
	return out, nil
}

// check requires the kernel to hold ports (exactly them when exact), none quarantined.
func check(ctx context.Context, m *contain.Manager, ports []contain.Port, exact bool) error {
	st, err := m.Status(ctx)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	want := map[string]bool{}
	for _, p := range ports {
		want[p.Name] = true
	}
	if exact && len(st) != len(ports) {
		return fmt.Errorf("status: %d ports in the table, want %d", len(st), len(ports))
	}
	found := 0
	for _, s := range st {
		switch {
		case s.Quarantined:
			return fmt.Errorf("status: port %s: quarantined", s.Name)
		case want[s.Name]:
			found++
		case exact:
			return fmt.Errorf("status: port %s: not in the spec", s.Name)
		}
	}
	if found != len(ports) {
		return fmt.Errorf("status: %d of the spec's %d ports in the table", found, len(ports))
	}
	return nil
}
