// Package hooks delivers the catalog's durable event log to the site's
// hooks: programs run once per event with vmcatcher's VMCATCHER_EVENT_*
// environment, so existing vmcatcher event handlers work unchanged.
//
// # Guarantees
//
//   - Never lost. An event leaves a hook's queue only when the hook's process
//     exited 0 and MarkDelivered recorded it. A non-zero exit, a timeout, a
//     failure to start, or an event that cannot be passed safely is recorded
//     with MarkFailed and retried by a later Deliver once its backoff has
//     passed (Options.Backoff; by default 30 s doubling up to 1 h).
//   - In order. Each hook receives its events in Seq order; a failed event
//     holds back the later ones of that hook (and only of that hook) until it
//     is delivered. Deliver refuses to continue when the queue hands out an
//     event that is not newer than one it just delivered.
//   - Never delivered twice after a recorded success. Delivery is
//     at-least-once: a crash, or a failing MarkDelivered, between the hook's
//     exit and the record means the event is run again. Hooks should be
//     idempotent, as with any durable queue. The bookkeeping after a hook
//     has run is done even when ctx has just ended, so a shutdown does not
//     cause a repeat.
//   - Bounded. Each call has a timeout (config.Hook.Timeout, default 10 s as
//     in vmcatcher). On timeout the hook's whole process group is killed with
//     SIGKILL while its leader is not yet reaped, so the group ID cannot have
//     been reused and no other process is ever signalled. Standard output and
//     error are captured up to MaxOutput bytes each (the rest is read and
//     discarded, so a chatty hook never blocks) and logged.
//   - Clean environment. Only the variables listed below are set; nothing of
//     vmtrust's own environment reaches a hook. Field names must match
//     [A-Z0-9_]+ and values must hold no NUL: an event that breaks this is
//     refused (the hook does not run; the attempt fails with ErrBadEvent)
//     rather than passed partially or altered.
//
// # What a hook sees
//
// Command[0] is executed directly (no shell) with the configured argv, in
// the working directory "/", in a new process group, as vmtrust's user. Its
// environment is exactly:
//
//	PATH=/usr/sbin:/usr/bin:/sbin:/bin
//	VMCATCHER_EVENT_TYPE=<event type>            e.g. AvailablePostfix
//	VMCATCHER_EVENT_<KEY>=<value>                one per event field (DC_IDENTIFIER, HV_URI, ...)
//	VMTRUST_EVENT_SEQ=<seq>                      the event's position in the log
//	VMTRUST_EVENT_TIME=<time>                    RFC 3339 (UTC, fractional seconds when non-zero)
//	VMTRUST_EVENT_JSON=<json>                    the event as one JSON object (see Record); omitted above MaxEnvJSON bytes
//
// Standard input carries the same JSON object followed by a newline, always
// (so an event too large for the environment still reaches a hook that
// wants it); hooks that do not read it may ignore it. Exit status 0 means
// delivered; anything else is a failed attempt.
//
// Processes the hook leaves behind after its leader exits on its own are
// not killed (a hook may start work that outlives it, as with vmcatcher);
// vmtrust stops reading their output after a short grace period. Work meant
// to outlive the hook should detach (setsid, output redirected).
//
// # Caller contract
//
//   - Call EnsureHooks at start-up, before any event is appended that the
//     hooks should receive: a hook gets only the events appended after it
//     was registered.
//   - Serialise delivery per catalog: one Runner's Deliver calls are
//     serialised, but two Runners or two processes delivering to the same
//     hooks of one catalog would run events twice. Use one delivering
//     process (or an exclusive lock).
//   - Call Deliver after appending events and periodically (at most every
//     few seconds is plenty): retries become due only as time passes, and
//     Deliver returns rather than sleeping through a backoff.
//   - A hook failure is an outcome, reported in the Summary, not an error.
//     Deliver's error reports what the caller must act on: a queue (storage)
//     failure, an invalid hook configuration, ctx ending, or a failed write
//     to Options.JSONLines.
//   - An event that can never succeed (ErrBadEvent, or a hook that always
//     rejects it) holds its hook's queue until an operator skips it with the
//     catalog's MarkDelivered: in-order delivery is chosen over progress.
package hooks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/vmtrust/vmtrust/internal/catalog"
	"github.com/vmtrust/vmtrust/internal/config"
)

// Bounds.
const (
	MaxOutput    = 32 << 10 // bytes of each of stdout and stderr kept per call
	MaxEnvJSON   = 64 << 10 // VMTRUST_EVENT_JSON is omitted when the JSON is longer
	BackoffBase  = 30 * time.Second
	BackoffMax   = time.Hour
	HookPATH     = "/usr/sbin:/usr/bin:/sbin:/bin"
	pendingBatch = 100
	// waitDelay is how long output is still read after the hook's leader
	// exited, for processes it left behind that hold the pipes.
	waitDelay = time.Second
	// bookkeepingTimeout bounds MarkDelivered and MarkFailed after a hook
	// ran; they run even when the caller's ctx has ended.
	bookkeepingTimeout = 10 * time.Second
)

// Error classes of failed attempts (HookSummary.Failure, and the error
// passed to MarkFailed).
var (
	// ErrBadEvent: a field name is not [A-Z0-9_]+, a value holds a NUL, the
	// type is not a plain word, or a TYPE field contradicts the type. The
	// hook was not run.
	ErrBadEvent = errors.New("event cannot be passed to a hook safely")
	// ErrTimeout: the hook ran past its timeout; its process group was killed.
	ErrTimeout = errors.New("hook timed out")
	// ErrStart: the hook's program could not be started.
	ErrStart = errors.New("hook could not be started")
	// ErrExit: the hook exited non-zero or was killed by a signal.
	ErrExit = errors.New("hook failed")
)

// errConfig marks an invalid hook configuration (HookSummary.Err).
var errConfig = errors.New("invalid hook configuration")

// Queue is what hooks needs from the catalog (catalog.EventStore has it).
type Queue interface {
	Pending(ctx context.Context, hook string, now time.Time, limit int) ([]catalog.Delivery, error)
	MarkDelivered(ctx context.Context, hook string, seq int64, t time.Time) error
	MarkFailed(ctx context.Context, hook string, seq int64, err error, next time.Time) error
}

// Options tune a Runner. The zero value is usable.
type Options struct {
	// Now is the clock for due-ness, delivery times and backoff; nil means
	// time.Now. Timeouts use the real clock.
	Now func() time.Time
	// Log receives one record per attempt; nil discards.
	Log *slog.Logger
	// Backoff gives the delay after the attempts-th failed attempt (1 for
	// the first); nil means DefaultBackoff.
	Backoff func(attempts int) time.Duration
	// JSONLines, when set, receives one Record (Hook and DeliveredAt set)
	// per recorded delivery, as one line of JSON. Writes are serialised; a
	// failed write is logged and returned by Deliver, but does not undo the
	// delivery. It is a log, not part of the durable queue: a crash right
	// after MarkDelivered may miss a line.
	JSONLines io.Writer
}

// DefaultBackoff is BackoffBase * 2^(attempts-1), at most BackoffMax.
func DefaultBackoff(attempts int) time.Duration {
	d := BackoffBase
	for i := 1; i < attempts && d < BackoffMax; i++ {
		d *= 2
	}
	return min(d, BackoffMax)
}

// Runner delivers events to the configured hooks. It is safe for
// concurrent use; Deliver calls are serialised.
type Runner struct {
	q       Queue
	hooks   []hookSpec
	now     func() time.Time
	log     *slog.Logger
	backoff func(int) time.Duration

	jsonMu sync.Mutex
	jsonW  io.Writer

	mu sync.Mutex // serialises Deliver
}

type hookSpec struct {
	name    string
	argv    []string
	timeout time.Duration
	err     error // invalid configuration: reported by every Deliver
}

// New returns a Runner for hooks, which it copies. An invalid hook (unsafe
// name, duplicate name, command not an absolute path) is not run; every
// Deliver reports it in that hook's HookSummary.Err. A zero or negative
// Timeout means config.DefaultHookTimeout.
func New(q Queue, hooks []config.Hook, o Options) *Runner {
	r := &Runner{q: q, now: o.Now, log: o.Log, backoff: o.Backoff, jsonW: o.JSONLines}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.backoff == nil {
		r.backoff = DefaultBackoff
	}
	seen := map[string]bool{}
	for _, h := range hooks {
		s := hookSpec{name: h.Name, argv: append([]string(nil), h.Command...), timeout: time.Duration(h.Timeout)}
		if s.timeout <= 0 {
			s.timeout = config.DefaultHookTimeout
		}
		switch {
		case !catalog.ValidName(h.Name):
			s.err = fmt.Errorf("hook %q: name is not a safe identifier: %w", h.Name, errConfig)
		case seen[h.Name]:
			s.err = fmt.Errorf("hook %q: configured twice: %w", h.Name, errConfig)
		case len(h.Command) == 0 || !filepath.IsAbs(h.Command[0]):
			s.err = fmt.Errorf("hook %q: command must start with an absolute path: %w", h.Name, errConfig)
		}
		seen[h.Name] = true
		r.hooks = append(r.hooks, s)
	}
	return r
}

// Summary reports one Deliver call: one entry per configured hook, in
// configuration order.
type Summary []HookSummary

// HookSummary is what one Deliver call did for one hook.
type HookSummary struct {
	Hook      string
	Delivered int // events the hook accepted and that were recorded delivered
	// Failed is the Seq of the event whose attempt failed in this call (0:
	// none). It was recorded with MarkFailed and now holds back the hook's
	// later events until its backoff has passed and it succeeds.
	Failed int64
	// Failure is why that attempt failed; it wraps ErrBadEvent, ErrTimeout,
	// ErrStart or ErrExit.
	Failure error
	// Err is what stopped this hook other than a failed attempt: a queue
	// error, an invalid configuration or the end of ctx. Deliver's error
	// includes it.
	Err error
}

// Delivered is the number of events delivered to all hooks.
func (s Summary) Delivered() int {
	n := 0
	for _, h := range s {
		n += h.Delivered
	}
	return n
}

// Deliver runs each hook for its pending events, in Seq order, until its
// queue is empty, an attempt fails (the event is then held back with
// MarkFailed and a backoff, and the hook's later events wait), or ctx ends.
// Hooks are served concurrently, each one event at a time. A hook running
// when ctx ends is killed and its event stays pending without counting an
// attempt. See the package doc for the error contract.
func (r *Runner) Deliver(ctx context.Context) (Summary, error) {
	r.mu.Lock()
	defer r.mu.Unlock()

	sum := make(Summary, len(r.hooks))
	jsonErrs := make([]error, len(r.hooks))
	var wg sync.WaitGroup
	for i := range r.hooks {
		wg.Go(func() { sum[i], jsonErrs[i] = r.deliverHook(ctx, &r.hooks[i]) })
	}
	wg.Wait()

	var errs []error
	for i, s := range sum {
		if s.Err != nil {
			errs = append(errs, fmt.Errorf("hook %q: %w", s.Hook, s.Err))
		}
		if jsonErrs[i] != nil {
			errs = append(errs, jsonErrs[i])
		}
	}
	return sum, errors.Join(errs...)
}

// deliverHook drains one hook's queue. It returns the summary and the
// first JSONLines write error.
func (r *Runner) deliverHook(ctx context.Context, h *hookSpec) (HookSummary, error) {
	s := HookSummary{Hook: h.name}
	if h.err != nil {
		r.log.Error("hook not run", "hook", h.name, "error", h.err)
		s.Err = h.err
		return s, nil
	}
	var jsonErr error
	last := int64(-1 << 63)
	for {
		if err := ctx.Err(); err != nil {
			s.Err = err
			return s, jsonErr
		}
		ds, err := r.q.Pending(ctx, h.name, r.now(), pendingBatch)
		if err != nil && ctx.Err() != nil {
			s.Err = ctx.Err()
			return s, jsonErr
		}
		if err != nil {
			s.Err = fmt.Errorf("pending events: %w", err)
			r.log.Error("hook queue failed", "hook", h.name, "error", err)
			return s, jsonErr
		}
		if len(ds) == 0 {
			return s, jsonErr
		}
		for _, d := range ds {
			if d.Seq <= last {
				s.Err = fmt.Errorf("queue returned event %d after event %d: refusing to deliver out of order or twice", d.Seq, last)
				r.log.Error("hook queue out of order", "hook", h.name, "event.seq", d.Seq, "after", last)
				return s, jsonErr
			}
			if err := ctx.Err(); err != nil {
				s.Err = err
				return s, jsonErr
			}
			out := r.attempt(ctx, h, d)
			if out.canceled {
				s.Err = ctx.Err()
				return s, jsonErr
			}
			// The hook has run: record the outcome even if ctx just ended.
			bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
			if out.err == nil {
				at := r.now()
				err := r.q.MarkDelivered(bctx, h.name, d.Seq, at)
				cancel()
				if err != nil {
					s.Err = fmt.Errorf("event %d ran but was not recorded (it will run again): %w", d.Seq, err)
					r.log.Error("hook delivery not recorded", "hook", h.name, "event.seq", d.Seq, "event.type", string(d.Type), "error", err)
					return s, jsonErr
				}
				s.Delivered++
				last = d.Seq
				if err := r.writeJSON(h.name, d, at); err != nil && jsonErr == nil {
					jsonErr = err
				}
				continue
			}
			attempts := d.Attempts + 1
			next := r.now().Add(r.backoff(attempts))
			err := r.q.MarkFailed(bctx, h.name, d.Seq, out.err, next)
			cancel()
			if err != nil {
				s.Err = fmt.Errorf("event %d failed (%v) and the failure was not recorded: %w", d.Seq, out.err, err)
				r.log.Error("hook failure not recorded", "hook", h.name, "event.seq", d.Seq, "event.type", string(d.Type), "error", err)
				return s, jsonErr
			}
			s.Failed, s.Failure = d.Seq, out.err
			r.log.Warn("hook event held back", "hook", h.name, "event.seq", d.Seq, "event.type", string(d.Type),
				"attempt", attempts, "retry.at", next, "error", out.err)
			return s, jsonErr
		}
	}
}

func (r *Runner) writeJSON(hook string, d catalog.Delivery, at time.Time) error {
	if r.jsonW == nil {
		return nil
	}
	rec := newRecord(d.Event)
	rec.Hook = hook
	rec.DeliveredAt = formatTime(at)
	line, err := rec.marshal()
	if err == nil {
		line = append(line, '\n')
		r.jsonMu.Lock()
		_, err = r.jsonW.Write(line)
		r.jsonMu.Unlock()
	}
	if err != nil {
		r.log.Error("hook JSON line not written", "hook", hook, "event.seq", d.Seq, "event.type", string(d.Type), "error", err)
		return fmt.Errorf("hook %q: event %d: JSON line: %w", hook, d.Seq, err)
	}
	return nil
}

// Registry is what EnsureHooks needs from the catalog.
type Registry interface {
	AddHook(ctx context.Context, h catalog.Hook) error
	Hooks(ctx context.Context) ([]catalog.Hook, error)
}

// EnsureHooks registers the configured hooks the store does not know yet.
// A hook registered concurrently (catalog.ErrExists) is fine. Hooks the
// store knows but the configuration no longer names are left alone: removing
// one drops its bookkeeping, which is an operator's decision.
func EnsureHooks(ctx context.Context, store Registry, hooks []config.Hook) error {
	known, err := store.Hooks(ctx)
	if err != nil {
		return fmt.Errorf("hooks: %w", err)
	}
	have := make(map[string]bool, len(known))
	for _, h := range known {
		have[h.Name] = true
	}
	var errs []error
	for _, h := range hooks {
		if have[h.Name] {
			continue
		}
		if err := store.AddHook(ctx, catalog.Hook{Name: h.Name}); err != nil && !errors.Is(err, catalog.ErrExists) {
			errs = append(errs, fmt.Errorf("hooks: %w", err))
			continue
		}
		have[h.Name] = true
	}
	return errors.Join(errs...)
}
