package ledger

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ErrCorruptIndex is wrapped by a Store's Scan error when a stored index
// row does not parse (Verify reports it as a problem).
var ErrCorruptIndex = errors.New("an index row does not parse")

// errStopScan ends a scan of the entries early; never returned.
var errStopScan = errors.New("stop")

// verifyIndex checks the query indexes against the log: it derives the
// rows of the entries [0, Indexed) in one pass with the indexer CatchUp
// uses (its rows do not depend on where chunks end, so one chunk gives
// what any sequence of chunks stored) and compares them, row by row, with
// the stored leases, lease ends, runs, run ends and timelines. Every
// missing, extra or differing row is a problem of rep.
//
// bound is the size of Verify's snapshot. Indexes that cover more entries
// than the store holds are a problem; when the log grew since the
// snapshot, the first bound entries are checked. Index transactions that
// commit meanwhile add only rows that begin at or after Indexed and ends
// at or after it, so the rows are read as of the Indexed read first:
// rows beginning later are left out, later ends read as open.
//
// Memory is O(rows) of the indexes (the derived rows are held while the
// stored ones stream past); the entries are not held.
func (l *Log) verifyIndex(ctx context.Context, rep *Report, bound int64) error {
	n, err := l.st.Indexed(ctx)
	if err != nil {
		return err
	}
	if n > bound {
		now, err := l.st.Size(ctx)
		if err != nil {
			return err
		}
		if now <= bound {
			rep.add(-1, "index: covers %d entries but the log holds %d", n, bound)
		}
		n = bound
	}
	var a Append
	ix := newIndexer(&a)
	var next int64
	var bad string
	err = l.st.Entries(ctx, 0, n, func(e Entry) error {
		if e.Index != next {
			bad = fmt.Sprintf("entry %d is missing", next)
			return errStopScan
		}
		ev, err := Parse(e.Body)
		if err != nil {
			bad = fmt.Sprintf("entry %d: %v", e.Index, err)
			return errStopScan
		}
		ix.add(e.Index, ev)
		next++
		return nil
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return err
	}
	if bad == "" && next < n {
		bad = fmt.Sprintf("entries %d..%d are missing", next, n-1)
	}
	if bad != "" {
		rep.add(-1, "index: not checked: %s", bad)
		return nil
	}
	// Indexes stop at a checkpoint, always.
	if n > 0 {
		if _, err := l.st.Checkpoint(ctx, n); errors.Is(err, ErrNotFound) {
			rep.add(-1, "index: covers %d entries, which is not the size of a checkpoint", n)
		} else if err != nil {
			return err
		}
	}
	// Ends without a start (a.LeaseEnds, a.RunEnds of one chunk from 0)
	// close nothing.
	var beyond int64 // rows beginning or ending at or after n
	if err := compareLeases(ctx, l.st, rep, a.Leases, n, &beyond); err != nil {
		return err
	}
	if err := compareRuns(ctx, l.st, rep, a.Runs, n, &beyond); err != nil {
		return err
	}
	if err := compareTimeline(ctx, l.st, rep, a.VMEvents, n, &beyond); err != nil {
		return err
	}
	// Rows beyond the indexes are an index transaction committing
	// meanwhile, or planted: planted when Indexed has not moved.
	if beyond > 0 {
		now, err := l.st.Indexed(ctx)
		if err != nil {
			return err
		}
		if now == n {
			rep.add(-1, "index: %d rows begin or end at or after entry %d, which the indexes have not reached", beyond, n)
		}
	}
	return nil
}

// corrupt reports a scan's ErrCorruptIndex as a problem (the rest of that
// table is not compared) and returns other errors.
func corrupt(rep *Report, err error) error {
	if errors.Is(err, ErrCorruptIndex) {
		rep.add(-1, "index: %v", err)
		return nil
	}
	return err
}

// mergeByStart walks want (derived, ascending Start) beside the stored
// rows scan yields (ascending Start) of entries [0, n): a stored row that
// begins at or beyond n is counted in beyond and skipped, one whose end is
// at or beyond n is read as open (and counted); missing gets each wanted
// row the store lacks, match each stored row with its wanted one (nil:
// none).
func mergeByStart[T any](rep *Report, want []T, n int64, beyond *int64,
	scan func(fn func(T) error) error, span func(*T) (start int64, end *int64, to *time.Time),
	missing func(T), match func(got T, w *T)) error {
	i := 0
	start := func(x *T) int64 { s, _, _ := span(x); return s }
	err := scan(func(got T) error {
		s, end, to := span(&got)
		if s >= n {
			*beyond++
			return nil
		}
		if *end >= n {
			*beyond++
			*end, *to = -1, time.Time{}
		}
		for i < len(want) && start(&want[i]) < s {
			missing(want[i])
			i++
		}
		if i < len(want) && start(&want[i]) == s {
			match(got, &want[i])
			i++
			return nil
		}
		match(got, nil)
		return nil
	})
	if err != nil {
		return corrupt(rep, err)
	}
	for ; i < len(want); i++ {
		missing(want[i])
	}
	return nil
}

// compareLeases compares want (by Start, as derived) with the stored
// leases of entries [0, n).
func compareLeases(ctx context.Context, r Reader, rep *Report, want []Lease, n int64, beyond *int64) error {
	return mergeByStart(rep, want, n, beyond,
		func(fn func(Lease) error) error { return r.ScanLeases(ctx, fn) },
		func(l *Lease) (int64, *int64, *time.Time) { return l.Start, &l.End, &l.To },
		func(w Lease) {
			rep.add(w.Start, "index: lease of %v started at entry %d: in the log, missing from the index", w.IP, w.Start)
		},
		func(got Lease, w *Lease) {
			switch {
			case w != nil && !got.IP.IsValid():
				rep.add(got.Start, "index: lease of %v started at entry %d: in the log, only its end is in the index", w.IP, got.Start)
			case w != nil:
				if d := diffLease(*w, got); d != "" {
					rep.add(got.Start, "index: lease of %v started at entry %d: %s", w.IP, got.Start, d)
				}
			case !got.IP.IsValid():
				rep.add(got.Start, "index: a lease end for entry %d, where no lease began", got.Start)
			default:
				rep.add(got.Start, "index: lease of %v started at entry %d: in the index, not in the log", got.IP, got.Start)
			}
		})
}

// compareRuns compares want (by Start, as derived) with the stored runs
// of entries [0, n).
func compareRuns(ctx context.Context, r Reader, rep *Report, want []Run, n int64, beyond *int64) error {
	return mergeByStart(rep, want, n, beyond,
		func(fn func(Run) error) error { return r.ScanRuns(ctx, fn) },
		func(x *Run) (int64, *int64, *time.Time) { return x.Start, &x.End, &x.To },
		func(w Run) {
			rep.add(w.Start, "index: run of %s on %s started at entry %d: in the log, missing from the index", w.VM, w.Host, w.Start)
		},
		func(got Run, w *Run) {
			if w == nil {
				rep.add(got.Start, "index: run of %s on %s started at entry %d: in the index, not in the log", got.VM, got.Host, got.Start)
			} else if d := diffRun(*w, got); d != "" {
				rep.add(got.Start, "index: run of %s on %s started at entry %d: %s", w.VM, w.Host, got.Start, d)
			}
		})
}

// compareTimeline compares the derived timeline events with the stored
// ones of entries [0, n), as sets (each (VM, index) once).
func compareTimeline(ctx context.Context, r Reader, rep *Report, want []VMEvent, n int64, beyond *int64) error {
	left := make(map[VMEvent]bool, len(want))
	for _, e := range want {
		left[e] = true
	}
	err := r.ScanTimeline(ctx, func(got VMEvent) error {
		if got.Index >= n {
			*beyond++
			return nil
		}
		if !left[got] {
			rep.add(got.Index, "index: the timeline of %q holds entry %d, which the log does not put there (or twice)", got.VM, got.Index)
			return nil
		}
		delete(left, got)
		return nil
	})
	if err != nil {
		return corrupt(rep, err)
	}
	lost := make([]VMEvent, 0, len(left))
	for e := range left {
		lost = append(lost, e)
	}
	slices.SortFunc(lost, func(a, b VMEvent) int { return cmp.Or(cmp.Compare(a.Index, b.Index), cmp.Compare(a.VM, b.VM)) })
	for _, e := range lost {
		rep.add(e.Index, "index: the timeline of %q lacks entry %d", e.VM, e.Index)
	}
	return nil
}

// field is one compared column: its name and the log's and the index's
// values.
type field struct{ name, log, index string }

// diffFields describes the fields that differ ("" when none).
func diffFields(fs []field) string {
	var out []string
	for _, f := range fs {
		if f.log != f.index {
			out = append(out, fmt.Sprintf("%s %q in the log, %q in the index", f.name, f.log, f.index))
		}
	}
	return join(out...)
}

// diffEnd describes how two ends differ ("" when they do not).
func diffEnd(wantEnd, gotEnd int64, wantTo, gotTo time.Time) string {
	switch {
	case wantEnd >= 0 && gotEnd < 0:
		return fmt.Sprintf("ended at entry %d in the log, open in the index", wantEnd)
	case wantEnd < 0 && gotEnd >= 0:
		return fmt.Sprintf("open in the log, ended at entry %d in the index", gotEnd)
	case wantEnd != gotEnd:
		return fmt.Sprintf("ended at entry %d in the log, at entry %d in the index", wantEnd, gotEnd)
	case !wantTo.Equal(gotTo):
		return fmt.Sprintf("ended at %s in the log, at %s in the index", stamp(wantTo), stamp(gotTo))
	}
	return ""
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "no time"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// join joins the non-empty parts with "; ".
func join(parts ...string) string {
	return strings.Join(slices.DeleteFunc(parts, func(p string) bool { return p == "" }), "; ")
}

func diffLease(want, got Lease) string {
	return join(diffFields([]field{
		{"address", want.IP.String(), got.IP.String()},
		{"mac", want.MAC, got.MAC},
		{"vm", want.VM, got.VM},
		{"host", want.Host, got.Host},
		{"start time", stamp(want.From), stamp(got.From)},
	}), diffEnd(want.End, got.End, want.To, got.To))
}

func diffRun(want, got Run) string {
	return join(diffFields([]field{
		{"vm", want.VM, got.VM},
		{"name", want.Name, got.Name},
		{"host", want.Host, got.Host},
		{"owner", want.Owner, got.Owner},
		{"image", want.Image, got.Image},
		{"list", want.List, got.List},
		{"endorser", want.Endorser, got.Endorser},
		{"start time", stamp(want.From), stamp(got.From)},
	}), diffEnd(want.End, got.End, want.To, got.To))
}
