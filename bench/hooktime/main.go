// Command hooktime times a command run as a whole process, many times, for
// vmtrust's benchmarks (bench/admission-hook.sh). It is not part of vmtrust.
//
//	hooktime -n 1000 -warmup 20 -stdin domain.xml -- vmtrust --state S hook run NAME prepare begin -
//	hooktime -n 20 -after 'virsh -c URI destroy NAME' -- virsh -c URI start NAME
//
// Each run is one fork+exec of the command, timed from just before the
// process is started to just after it has exited and been reaped (Go's
// exec.Cmd.Run, wall clock, monotonic). The command's stdin is the file
// given with -stdin, opened anew for every run and handed to the process as
// its own descriptor, or /dev/null; its stdout goes to /dev/null and its
// stderr to a scratch file that is shown when a run fails. No shell is
// involved unless the command is one.
//
// -warmup runs come first and are not counted. -after CMD runs CMD with
// /bin/sh -c after every run (warm-up included), untimed; it must exit 0.
// Every run must exit 0: the first that does not stops hooktime with exit
// status 1 and the run's stderr.
//
// Stdout is one line of key=value pairs, times in milliseconds:
//
//	runs=1000 p50_ms=12.345 p90_ms=… p99_ms=… max_ms=… mean_ms=… min_ms=…
//
// Percentiles are nearest-rank (the ceil(q*n)-th smallest run). With -json
// FILE the same figures and every run's time are written to FILE.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"slices"
	"time"
)

// maxStderr bounds what is shown of a failed run's stderr.
const maxStderr = 8 << 10

// Summary is what -json writes.
type Summary struct {
	Command []string  `json:"command"`
	Runs    int       `json:"runs"`
	Warmup  int       `json:"warmup"`
	P50     float64   `json:"p50_ms"`
	P90     float64   `json:"p90_ms"`
	P99     float64   `json:"p99_ms"`
	Max     float64   `json:"max_ms"`
	Min     float64   `json:"min_ms"`
	Mean    float64   `json:"mean_ms"`
	Times   []float64 `json:"times_ms"`
}

func main() {
	n := flag.Int("n", 1000, "timed runs")
	warmup := flag.Int("warmup", 0, "untimed runs first")
	stdin := flag.String("stdin", "", "file given to every run as its stdin (default /dev/null)")
	after := flag.String("after", "", "shell command run, untimed, after every run; must exit 0")
	jsonOut := flag.String("json", "", "also write the figures and every run's time to this file")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: hooktime [-n N] [-warmup W] [-stdin FILE] [-after CMD] [-json FILE] -- COMMAND [ARG...]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 || *n < 1 || *warmup < 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(flag.Args(), *n, *warmup, *stdin, *after, *jsonOut); err != nil {
		fmt.Fprintf(os.Stderr, "hooktime: %v\n", err)
		os.Exit(1)
	}
}

func run(argv []string, n, warmup int, stdin, after, jsonOut string) error {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return err
	}
	scratch, err := os.CreateTemp("", "hooktime-stderr-*")
	if err != nil {
		return err
	}
	defer os.Remove(scratch.Name())
	defer scratch.Close()

	times := make([]time.Duration, 0, n)
	for i := range warmup + n {
		d, err := once(path, argv, stdin, scratch)
		if err != nil {
			return fmt.Errorf("run %d of %d: %w", i+1, warmup+n, err)
		}
		if i >= warmup {
			times = append(times, d)
		}
		if after != "" {
			if out, err := exec.Command("/bin/sh", "-c", after).CombinedOutput(); err != nil {
				return fmt.Errorf("after run %d: %s: %w: %s", i+1, after, err, tail(out))
			}
		}
	}
	s := summarize(times)
	s.Command, s.Warmup = argv, warmup
	fmt.Printf("runs=%d p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f mean_ms=%.3f min_ms=%.3f\n",
		s.Runs, s.P50, s.P90, s.P99, s.Max, s.Mean, s.Min)
	if jsonOut != "" {
		b, err := json.MarshalIndent(s, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// once runs the command one time and returns its wall time.
func once(path string, argv []string, stdin string, scratch *os.File) (time.Duration, error) {
	if err := scratch.Truncate(0); err != nil {
		return 0, err
	}
	if _, err := scratch.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	cmd := &exec.Cmd{Path: path, Args: argv, Stderr: scratch} // Stdout nil: /dev/null
	if stdin != "" {
		f, err := os.Open(stdin)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		cmd.Stdin = f // an *os.File is passed as the child's fd 0, no copying goroutine
	}
	begin := time.Now()
	err := cmd.Run()
	d := time.Since(begin)
	if err != nil {
		msg, _ := io.ReadAll(io.NewSectionReader(scratch, 0, maxStderr))
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return 0, fmt.Errorf("%s: %v: %s", argv[0], ee.ProcessState, tail(msg))
		}
		return 0, err
	}
	return d, nil
}

func tail(b []byte) []byte {
	if len(b) > maxStderr {
		b = b[len(b)-maxStderr:]
	}
	return b
}

// summarize computes nearest-rank percentiles, min, max and mean in ms.
func summarize(times []time.Duration) Summary {
	ms := make([]float64, len(times))
	var sum float64
	for i, d := range times {
		ms[i] = float64(d.Nanoseconds()) / 1e6
		sum += ms[i]
	}
	sorted := slices.Clone(ms)
	slices.Sort(sorted)
	rank := func(q float64) float64 {
		k := int(math.Ceil(q*float64(len(sorted)))) - 1
		return sorted[max(0, min(k, len(sorted)-1))]
	}
	return Summary{Runs: len(ms), P50: rank(0.50), P90: rank(0.90), P99: rank(0.99),
		Max: sorted[len(sorted)-1], Min: sorted[0], Mean: sum / float64(len(ms)), Times: ms}
}
