package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/vmtrust/vmtrust/internal/fsys"
	"github.com/vmtrust/vmtrust/internal/inspect/inventory"
)

// RunOptions tunes Run. The zero value is ready to use.
type RunOptions struct {
	// Walk bounds the walk (entries, depth).
	Walk fsys.WalkOptions
	// Skip lists directories whose contents are not walked; nil means
	// DefaultSkip. The directories themselves are offered to detectors.
	Skip []string
	// MaxFailures is how many inspection-failed findings one detector
	// gives before the rest are counted in one more; default 10.
	MaxFailures int
	// MaxPerRule is how many findings of one rule are listed before the
	// rest are counted in one more (at the highest severity among them);
	// default 1000. It keeps a hostile image from flooding the report.
	MaxPerRule int
}

// DefaultSkip are the pseudo-filesystem mount points whose contents, if an
// image has any, say nothing about the image.
func DefaultSkip() []string { return []string{"/proc", "/sys", "/dev", "/run"} }

const (
	defaultMaxFailures = 10
	defaultMaxPerRule  = 1000
)

// Run inspects the guest in env with the detectors ds: one walk of the
// whole filesystem for the FileDetectors and Collectors, then the
// TreeDetectors, then the Collectors' reports. See the package
// documentation for how failures are reported.
func Run(ctx context.Context, env *Env, ds []Detector, opts RunOptions) ([]inventory.Finding, error) {
	if env == nil || env.Root == nil {
		return nil, errors.New("detector: no guest filesystem to inspect")
	}
	if opts.Skip == nil {
		opts.Skip = DefaultSkip()
	}
	if opts.MaxFailures <= 0 {
		opts.MaxFailures = defaultMaxFailures
	}
	if opts.MaxPerRule <= 0 {
		opts.MaxPerRule = defaultMaxPerRule
	}
	r := &runner{env: env, opts: opts, failures: make(map[string]int), perRule: make(map[string]*ruleCount)}

	type scanner struct {
		name string
		s    FileScanner
	}
	var scanners []scanner
	var collections []scanner
	var trees []TreeDetector
	for _, d := range ds {
		switch d := d.(type) {
		case Collector:
			var c Collection
			if err := r.guard(d.Name(), "/", func() error { c = d.Begin(env); return nil }); err == nil && c != nil {
				scanners = append(scanners, scanner{d.Name(), c})
				collections = append(collections, scanner{d.Name(), c})
			}
		case FileDetector:
			scanners = append(scanners, scanner{d.Name(), d})
		}
		if t, ok := d.(TreeDetector); ok {
			trees = append(trees, t)
		}
	}

	if len(scanners) > 0 {
		skip := make(map[string]bool, len(opts.Skip))
		for _, p := range opts.Skip {
			skip[p] = true
		}
		err := env.Root.Walk(ctx, "/", opts.Walk, func(p string, info fsys.Info) error {
			for _, sc := range scanners {
				if !sc.s.Wants(p, info) {
					continue
				}
				_ = r.guard(sc.name, p, func() error {
					found, err := sc.s.File(ctx, env, p, info)
					r.add(found)
					return err
				})
			}
			if info.Mode.IsDir() && skip[p] {
				return fs.SkipDir
			}
			return ctx.Err()
		})
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err != nil {
			// The walk stopped on a damaged directory (or a limit): every
			// file detector saw only part of the tree.
			r.fail("walk", "/", err)
		}
	}

	for _, t := range trees {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		_ = r.guard(t.Name(), "/", func() error {
			found, err := t.Detect(ctx, env)
			r.add(found)
			return err
		})
	}
	for _, c := range collections {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		col := c.s.(Collection)
		_ = r.guard(c.name, "/", func() error {
			found, err := col.Finish(ctx, env)
			r.add(found)
			return err
		})
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return Sort(r.summarise()), nil
}

type runner struct {
	env      *Env
	opts     RunOptions
	out      []inventory.Finding
	failures map[string]int        // detector name -> failures seen
	perRule  map[string]*ruleCount // rule -> findings seen
}

type ruleCount struct {
	n, dropped int
	worst      inventory.Severity // among the dropped
	policy     string
}

func (r *runner) add(found []inventory.Finding) {
	for _, f := range found {
		c := r.perRule[f.Rule]
		if c == nil {
			c = &ruleCount{policy: f.Policy}
			r.perRule[f.Rule] = c
		}
		if c.n++; c.n <= r.opts.MaxPerRule {
			r.out = append(r.out, f)
			continue
		}
		c.dropped++
		c.worst = max(c.worst, f.Severity)
	}
}

// summarise adds one finding per rule that had findings dropped.
func (r *runner) summarise() []inventory.Finding {
	for rule, c := range r.perRule {
		if c.dropped > 0 {
			r.out = append(r.out, inventory.Finding{
				Rule: rule, Severity: c.worst, Path: "/", Policy: c.policy,
				Reason: fmt.Sprintf("%d more findings of this rule not listed", c.dropped),
			})
		}
	}
	return r.out
}

// guard runs f, turning an error or a panic into an inspection-failed
// finding for detector name at path. A context error is not a failure of
// the detector and is left to Run.
func (r *runner) guard(name, path string, f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("panic: %v", v)
			r.fail(name, path, err)
		}
	}()
	err = f()
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		r.fail(name, path, err)
	}
	return err
}

func (r *runner) fail(name, path string, err error) {
	r.failures[name]++
	n := r.failures[name]
	switch {
	case n <= r.opts.MaxFailures:
		r.out = append(r.out, inventory.Finding{
			Rule:     RuleInspectionFailed,
			Severity: inventory.High,
			Path:     path,
			Reason:   fmt.Sprintf("check %s could not be completed: %v", name, err),
		})
	case n == r.opts.MaxFailures+1:
		r.out = append(r.out, inventory.Finding{
			Rule:     RuleInspectionFailed,
			Severity: inventory.High,
			Path:     "/",
			Reason:   fmt.Sprintf("check %s failed on more files than are listed", name),
		})
	}
}

// Sort orders findings by severity (highest first), path, rule and reason,
// and drops exact duplicates. It sorts in place and returns the result,
// never nil.
func Sort(found []inventory.Finding) []inventory.Finding {
	if found == nil {
		return []inventory.Finding{}
	}
	slices.SortFunc(found, func(a, b inventory.Finding) int {
		return cmp.Or(
			cmp.Compare(b.Severity, a.Severity),
			strings.Compare(a.Path, b.Path),
			strings.Compare(a.Rule, b.Rule),
			strings.Compare(a.Reason, b.Reason),
			strings.Compare(a.Policy, b.Policy),
		)
	})
	return slices.Compact(found)
}
