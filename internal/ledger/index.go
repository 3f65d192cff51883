package ledger

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"time"
)

// DefaultIndexChunk bounds the entries one index transaction covers (it
// ends at the last checkpoint within the bound, or at the first one
// beyond it when a single ingest is larger).
const DefaultIndexChunk = 100_000

// CatchUp brings the query indexes (leases, runs, timelines) up to the
// latest checkpoint, in transactions of at most Options.IndexChunk entries each
// ending at a checkpoint, and returns the indexed size. The entries are
// read and parsed outside the index transaction; another CatchUp that
// indexed them meanwhile (another process) is not an error.
//
// Ingest does not maintain the indexes: they follow the log. Queries
// (WhoHad, Timeline, Runs) catch up before they answer; a long-running
// ingester may run Follow so that they rarely have to.
func (l *Log) CatchUp(ctx context.Context) (int64, error) {
	latest, err := l.st.Latest(ctx)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	} else if err != nil {
		return 0, fmt.Errorf("ledger: %w", err)
	}
	for {
		from, err := l.st.Indexed(ctx)
		if err != nil {
			return 0, fmt.Errorf("ledger: %w", err)
		}
		if from >= latest.Size {
			return from, nil
		}
		through, err := l.indexEnd(ctx, from)
		if err != nil {
			return 0, err
		}
		if err := l.indexChunk(ctx, from, through); err != nil {
			return 0, err
		}
	}
}

// indexEnd is where the index transaction starting at from ends: the
// largest checkpoint within l.chunk entries, or the first one after
// from when one ingest was larger.
func (l *Log) indexEnd(ctx context.Context, from int64) (int64, error) {
	for _, bound := range []int64{from + l.chunk, from + MaxIngest} {
		c, err := l.st.CheckpointAtMost(ctx, bound)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return 0, fmt.Errorf("ledger: %w", err)
		}
		if err == nil && c.Size > from {
			return c.Size, nil
		}
	}
	return 0, fmt.Errorf("ledger: no checkpoint within %d entries after %d: run ledger verify", MaxIngest, from)
}

// indexChunk indexes entries [from, through).
func (l *Log) indexChunk(ctx context.Context, from, through int64) error {
	bodies := make([][]byte, 0, through-from)
	err := l.st.Entries(ctx, from, through, func(e Entry) error {
		if e.Index != from+int64(len(bodies)) {
			return fmt.Errorf("entry %d where %d is next", e.Index, from+int64(len(bodies)))
		}
		bodies = append(bodies, e.Body)
		return nil
	})
	if err != nil {
		return fmt.Errorf("ledger: index: %w", err)
	}
	if int64(len(bodies)) != through-from {
		return fmt.Errorf("ledger: index: %d entries in [%d, %d): run ledger verify", len(bodies), from, through)
	}
	events, bad, err := parseAll(bodies)
	if err != nil {
		return fmt.Errorf("ledger: index: entry %d: %w (run ledger verify)", from+int64(bad), err)
	}
	var a Append
	ix := newIndexer(&a)
	for i, e := range events {
		ix.add(from+int64(i), e)
	}
	err = l.st.UpdateIndex(ctx, func(tx IndexTx) error {
		n, err := tx.Indexed(ctx)
		if err != nil {
			return err
		}
		if n != from {
			return errIndexMoved // another CatchUp did it
		}
		return tx.AppendIndex(ctx, a, from, through)
	})
	if errors.Is(err, errIndexMoved) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ledger: index: %w", err)
	}
	l.log.Debug("ledger: indexed", "from", from, "through", through)
	return nil
}

var errIndexMoved = errors.New("indexed by another")

// parseAll parses bodies on every CPU; on error, it returns the index of
// a body that does not parse.
func parseAll(bodies [][]byte) ([]Event, int, error) {
	out := make([]Event, len(bodies))
	workers := min(runtime.GOMAXPROCS(0), (len(bodies)+255)/256)
	errs := make([]error, workers)
	bad := make([]int, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := w; j < len(bodies); j += workers {
				e, err := Parse(bodies[j])
				if err != nil {
					errs[w], bad[w] = err, j
					return
				}
				out[j] = e
			}
		}()
	}
	wg.Wait()
	for w, err := range errs {
		if err != nil {
			return nil, bad[w], err
		}
	}
	return out, 0, nil
}

// poke tells Follow that an ingest committed.
func (l *Log) poke() {
	select {
	case l.ingested <- struct{}{}:
	default:
	}
}

// Follow keeps the query indexes caught up until ctx ends: after each
// Ingest of this Log and at least every interval (ingests by other
// processes). An error is logged and retried at the next round. It
// returns ctx's error.
func (l *Log) Follow(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := l.CatchUp(ctx); err != nil && ctx.Err() == nil {
			l.log.Error("ledger: index", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-l.ingested:
		case <-t.C:
		}
	}
}

// indexer derives the query index rows of a range of entries (one index
// chunk). The rule, which makes the rows independent of where chunks
// end: an end event closes every lease of its (ip, mac, vm, host), or run
// of its (vm, host), that began before it (smaller entry index) and is
// still open; a row already closed keeps its first end. A migration ends
// the run on its source host and starts one on its host, by the same rule.
//
// Rows begun in the chunk are closed here, all of a key's open ones at
// each end. For rows of earlier chunks the indexer emits one LeaseEnd or
// RunEnd per key: the first end of the key in the chunk. That suffices,
// because every row of an earlier chunk still open when the chunk begins
// started before that first end, which therefore closes all of them
// (stores apply an end only to open rows that began before it); a later
// end of the key in the chunk would find them closed, and closes rows of
// the chunk only, which are closed here.
type indexer struct {
	a         *Append
	openLease map[leaseKey][]int // indexes in a.Leases of open leases begun in this chunk
	endedOld  map[leaseKey]bool
	openRun   map[runKey][]int
	endedRun  map[runKey]bool
}

type leaseKey struct {
	ip            netip.Addr
	mac, vm, host string
}

type runKey struct{ vm, host string }

func newIndexer(a *Append) *indexer {
	return &indexer{a: a, openLease: map[leaseKey][]int{}, endedOld: map[leaseKey]bool{}, openRun: map[runKey][]int{}, endedRun: map[runKey]bool{}}
}

func (x *indexer) startRun(r Run) {
	k := runKey{r.VM, r.Host}
	x.openRun[k] = append(x.openRun[k], len(x.a.Runs))
	x.a.Runs = append(x.a.Runs, r)
}

func (x *indexer) endRun(vm, host string, to time.Time, index int64) {
	k := runKey{vm, host}
	for _, i := range x.openRun[k] {
		x.a.Runs[i].To, x.a.Runs[i].End = to, index
	}
	delete(x.openRun, k)
	if !x.endedRun[k] {
		x.endedRun[k] = true
		x.a.RunEnds = append(x.a.RunEnds, RunEnd{VM: vm, Host: host, To: to, Index: index})
	}
}

func (x *indexer) add(index int64, e Event) {
	if e.VM != "" {
		x.a.VMEvents = append(x.a.VMEvents, VMEvent{VM: e.VM, Index: index})
	}
	switch e.Type {
	case VMStarted, VMRestored:
		d, _ := e.RunData() // checked by Parse
		x.startRun(runOf(e, d, index))
	case VMMigrated:
		d, _ := e.MigrateData()
		x.endRun(e.VM, d.From, e.Time, index)
		x.startRun(runOf(e, d.Run, index))
	case VMStopped:
		x.endRun(e.VM, e.Host, e.Time, index)
	case LeaseStart:
		d, _ := e.LeaseData()
		ip, _ := netip.ParseAddr(d.IP)
		l := Lease{IP: ip.Unmap(), MAC: strings.ToLower(d.MAC), VM: e.VM, Host: e.Host, From: e.Time, Start: index, End: -1}
		k := leaseKey{l.IP, l.MAC, l.VM, l.Host}
		x.openLease[k] = append(x.openLease[k], len(x.a.Leases))
		x.a.Leases = append(x.a.Leases, l)
	case LeaseEndType:
		d, _ := e.LeaseData()
		ip, _ := netip.ParseAddr(d.IP)
		k := leaseKey{ip.Unmap(), strings.ToLower(d.MAC), e.VM, e.Host}
		for _, i := range x.openLease[k] {
			x.a.Leases[i].To, x.a.Leases[i].End = e.Time, index
		}
		delete(x.openLease, k)
		if !x.endedOld[k] {
			x.endedOld[k] = true
			x.a.LeaseEnds = append(x.a.LeaseEnds, LeaseEnd{IP: k.ip, MAC: k.mac, VM: e.VM, Host: e.Host, To: e.Time, Index: index})
		}
	}
}

func runOf(e Event, d RunData, index int64) Run {
	return Run{VM: e.VM, Name: d.Name, Host: e.Host, Owner: d.Owner, Image: d.Image, List: d.List, Endorser: d.Endorser,
		From: e.Time, Start: index, End: -1}
}
