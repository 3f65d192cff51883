package ledger

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// memIndex applies Appends as both stores do: rows inserted (closed or
// open), then each LeaseEnd/RunEnd closes the open rows of its key that
// began before it.
type memIndex struct {
	leases []Lease
	runs   []Run
	tl     []VMEvent
}

func (m *memIndex) apply(a Append) {
	m.leases = append(m.leases, a.Leases...)
	for _, e := range a.LeaseEnds {
		for i, l := range m.leases {
			if l.IP == e.IP && l.MAC == e.MAC && l.VM == e.VM && l.Host == e.Host && l.Start < e.Index && l.End == -1 {
				m.leases[i].End, m.leases[i].To = e.Index, e.To
			}
		}
	}
	m.runs = append(m.runs, a.Runs...)
	for _, e := range a.RunEnds {
		for i, r := range m.runs {
			if r.VM == e.VM && r.Host == e.Host && r.Start < e.Index && r.End == -1 {
				m.runs[i].End, m.runs[i].To = e.Index, e.To
			}
		}
	}
	m.tl = append(m.tl, a.VMEvents...)
}

// index derives events in chunks of n (the last shorter).
func index(events []Event, n int) *memIndex {
	m := &memIndex{}
	for from := 0; from < len(events); from += n {
		var a Append
		x := newIndexer(&a)
		for i := from; i < min(from+n, len(events)); i++ {
			x.add(int64(i), events[i])
		}
		m.apply(a)
	}
	return m
}

// spec is the end rule written out naively: a row's end is the first end
// event of its key after its start.
func spec(events []Event) *memIndex {
	m := index(events, len(events)+1) // rows, timeline; ends recomputed below
	for i := range m.leases {
		l := &m.leases[i]
		l.End, l.To = -1, time.Time{}
		for j := l.Start + 1; j < int64(len(events)); j++ {
			e := events[j]
			if d, err := e.LeaseData(); e.Type == LeaseEndType && err == nil && netip.MustParseAddr(d.IP) == l.IP && d.MAC == l.MAC && e.VM == l.VM && e.Host == l.Host {
				l.End, l.To = j, e.Time
				break
			}
		}
	}
	for i := range m.runs {
		r := &m.runs[i]
		r.End, r.To = -1, time.Time{}
		for j := r.Start + 1; j < int64(len(events)); j++ {
			e := events[j]
			ends := e.Type == VMStopped && e.Host == r.Host
			if d, err := e.MigrateData(); e.Type == VMMigrated && err == nil {
				ends = d.From == r.Host
			}
			if ends && e.VM == r.VM {
				r.End, r.To = j, e.Time
				break
			}
		}
	}
	return m
}

// eventsOf turns bytes into events over a small key space: two VMs, two
// hosts, two addresses.
func eventsOf(t testing.TB, b []byte) []Event {
	var out []Event
	for i, c := range b {
		vm, host, ip := "a", "h1", "10.0.0.1"
		if c&8 != 0 {
			vm = "b"
		}
		if c&16 != 0 {
			host = "h2"
		}
		if c&32 != 0 {
			ip = "10.0.0.2"
		}
		other := map[string]string{"h1": "h2", "h2": "h1"}[host]
		if c&64 != 0 {
			other = host // a migration within one host
		}
		var typ Type
		var data any
		switch c % 6 {
		case 0:
			typ, data = VMStarted, RunData{Owner: fmt.Sprint(i)}
		case 1:
			typ = VMStopped
		case 2:
			typ, data = LeaseStart, LeaseData{MAC: "52:54:00:00:00:01", IP: ip}
		case 3:
			typ, data = LeaseEndType, LeaseData{MAC: "52:54:00:00:00:01", IP: ip}
		case 4:
			typ, data = VMMigrated, MigrateData{From: other, Run: RunData{Owner: fmt.Sprint(i)}}
		default:
			typ = OperatorAction
		}
		e, err := NewEvent(typ, host, vm, t0.Add(time.Duration(i)*time.Minute), data)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func checkChunks(t *testing.T, b []byte, chunk int) {
	events := eventsOf(t, b)
	want := spec(events)
	got := index(events, chunk)
	if !slices.Equal(got.leases, want.leases) {
		t.Errorf("leases in chunks of %d:\n%v\nwant\n%v", chunk, got.leases, want.leases)
	}
	if !slices.Equal(got.runs, want.runs) {
		t.Errorf("runs in chunks of %d:\n%v\nwant\n%v", chunk, got.runs, want.runs)
	}
	if !slices.Equal(got.tl, want.tl) {
		t.Errorf("timeline in chunks of %d differs", chunk)
	}
}

// The indexed rows are the end rule's, whatever the chunks.
func TestIndexChunkIndependent(t *testing.T) {
	for _, tc := range []struct {
		name   string
		events []byte
	}{
		// start, start, stop: both runs end (the old indexer kept one).
		{"double start", []byte{0, 0, 1}},
		{"double lease", []byte{2, 2, 3, 3}},
		{"end before start", []byte{1, 3, 0, 2}},
		{"migration", []byte{0, 4 | 16, 0 | 16, 1 | 16, 1}},
		{"migration within a host", []byte{0, 4 | 64, 1}},
		{"two keys", []byte{0, 0 | 8, 2, 2 | 32, 1 | 8, 3 | 32, 1, 3}},
	} {
		for _, chunk := range []int{1, 2, 3, 1000} {
			t.Run(fmt.Sprintf("%s/%d", tc.name, chunk), func(t *testing.T) { checkChunks(t, tc.events, chunk) })
		}
	}
	// A closed row keeps its first end.
	m := index(eventsOf(t, []byte{0, 1, 1}), 1)
	if len(m.runs) != 1 || m.runs[0].End != 1 {
		t.Errorf("run after two stops = %+v, want ended at 1", m.runs)
	}
}

func FuzzIndexChunks(f *testing.F) {
	f.Add([]byte{0, 0, 1}, uint8(2))
	f.Add([]byte{2, 2, 3, 0, 4 | 16, 1 | 16}, uint8(1))
	f.Add([]byte{0, 8, 16, 24, 1, 9, 17, 25, 4, 12, 68}, uint8(3))
	f.Fuzz(func(t *testing.T, b []byte, chunk uint8) {
		if len(b) > 200 {
			return
		}
		checkChunks(t, b, int(chunk%16)+1)
	})
}

// fakeIndex serves stored rows to compare*; the rest of Reader is nil.
type fakeIndex struct {
	Reader
	leases []Lease
	runs   []Run
	tl     []VMEvent
	err    error
}

func scan[T any](rows []T, err error, fn func(T) error) error {
	for _, r := range rows {
		if err := fn(r); err != nil {
			return err
		}
	}
	return err
}

func (f fakeIndex) ScanLeases(_ context.Context, fn func(Lease) error) error {
	return scan(f.leases, f.err, fn)
}
func (f fakeIndex) ScanRuns(_ context.Context, fn func(Run) error) error {
	return scan(f.runs, f.err, fn)
}
func (f fakeIndex) ScanTimeline(_ context.Context, fn func(VMEvent) error) error {
	return scan(f.tl, f.err, fn)
}

func TestCompareIndex(t *testing.T) {
	ctx := context.Background()
	ip := netip.MustParseAddr("10.0.0.5")
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	l41 := Lease{IP: ip, MAC: "m", VM: "a", Host: "h1", From: at(1), Start: 41, To: at(2), End: 80}
	l50 := Lease{IP: ip, MAC: "m", VM: "a", Host: "h1", From: at(3), Start: 50, End: -1}
	r10 := Run{VM: "a", Host: "h1", Owner: "alice", From: at(0), Start: 10, To: at(9), End: 90}
	with := func(l Lease, f func(*Lease)) Lease { f(&l); return l }
	withRun := func(r Run, f func(*Run)) Run { f(&r); return r }
	const n = 100
	for _, tc := range []struct {
		name  string
		store fakeIndex
		want  []string // each in one problem, in order; none: clean
	}{
		{"equal", fakeIndex{leases: []Lease{l41, l50}, runs: []Run{r10}, tl: []VMEvent{{"a", 10}, {"a", 41}}}, nil},
		{"rows of later entries ignored", fakeIndex{leases: []Lease{l41, l50, with(l50, func(l *Lease) { l.Start = n })},
			runs: []Run{r10, withRun(r10, func(r *Run) { r.Start = n + 5 })}, tl: []VMEvent{{"a", 10}, {"a", 41}, {"b", n}}}, nil},
		{"a later end is open", fakeIndex{leases: []Lease{l41, with(l50, func(l *Lease) { l.End, l.To = n, at(50) })}, runs: []Run{r10}, tl: []VMEvent{{"a", 10}, {"a", 41}}}, nil},
		{"end deleted", fakeIndex{leases: []Lease{with(l41, func(l *Lease) { l.End, l.To = -1, time.Time{} }), l50}, runs: []Run{r10}, tl: []VMEvent{{"a", 10}, {"a", 41}}},
			[]string{"index: lease of 10.0.0.5 started at entry 41: ended at entry 80 in the log, open in the index"}},
		{"end added", fakeIndex{leases: []Lease{l41, with(l50, func(l *Lease) { l.End, l.To = 60, at(4) })}, runs: []Run{r10}, tl: []VMEvent{{"a", 10}, {"a", 41}}},
			[]string{"started at entry 50: open in the log, ended at entry 60 in the index"}},
		{"end time", fakeIndex{leases: []Lease{with(l41, func(l *Lease) { l.To = at(7) }), l50}, runs: []Run{r10}, tl: []VMEvent{{"a", 10}, {"a", 41}}},
			[]string{"ended at 2026-11-01T12:02:00Z in the log, at 2026-11-01T12:07:00Z in the index"}},
		{"fields", fakeIndex{leases: []Lease{with(l41, func(l *Lease) { l.VM, l.MAC = "x", "y" }), l50}, runs: []Run{r10}, tl: []VMEvent{{"a", 10}, {"a", 41}}},
			[]string{`mac "m" in the log, "y" in the index; vm "a" in the log, "x" in the index`}},
		{"lease missing, orphan end", fakeIndex{leases: []Lease{{Start: 41, To: at(2), End: 80}, l50}, runs: []Run{r10}, tl: []VMEvent{{"a", 10}, {"a", 41}}},
			[]string{"started at entry 41: in the log, only its end is in the index"}},
		{"orphan end, duplicate, extra", fakeIndex{leases: []Lease{{Start: 7, End: 9}, l41, l41, l50, with(l50, func(l *Lease) { l.Start = 99 })}, runs: []Run{r10}, tl: []VMEvent{{"a", 10}, {"a", 41}}},
			[]string{"a lease end for entry 7, where no lease began", "started at entry 41: in the index, not in the log", "started at entry 99: in the index, not in the log"}},
		{"all missing", fakeIndex{},
			[]string{"lease of 10.0.0.5 started at entry 41: in the log, missing", "started at entry 50: in the log, missing",
				"run of a on h1 started at entry 10: in the log, missing", `the timeline of "a" lacks entry 10`, `the timeline of "a" lacks entry 41`}},
		{"run reopened, owner", fakeIndex{leases: []Lease{l41, l50}, runs: []Run{withRun(r10, func(r *Run) { r.End, r.To, r.Owner = -1, time.Time{}, "mallory" })}, tl: []VMEvent{{"a", 10}, {"a", 41}}},
			[]string{`run of a on h1 started at entry 10: owner "alice" in the log, "mallory" in the index; ended at entry 90 in the log, open in the index`}},
		{"timeline twice and foreign", fakeIndex{leases: []Lease{l41, l50}, runs: []Run{r10}, tl: []VMEvent{{"a", 10}, {"a", 10}, {"a", 41}, {"b", 41}}},
			[]string{`the timeline of "a" holds entry 10`, `the timeline of "b" holds entry 41`}},
		{"corrupt row", fakeIndex{err: fmt.Errorf("row: %w", ErrCorruptIndex)},
			[]string{"index: row: an index row does not parse", "index: row", "index: row"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := &Report{}
			var beyond int64
			for _, err := range []error{
				compareLeases(ctx, tc.store, rep, []Lease{l41, l50}, n, &beyond),
				compareRuns(ctx, tc.store, rep, []Run{r10}, n, &beyond),
				compareTimeline(ctx, tc.store, rep, []VMEvent{{"a", 10}, {"a", 41}}, n, &beyond),
			} {
				if err != nil {
					t.Fatal(err)
				}
			}
			var got []string
			for _, p := range rep.Problems {
				got = append(got, p.What)
			}
			ok := len(got) == len(tc.want)
			for i := 0; ok && i < len(got); i++ {
				ok = strings.Contains(got[i], tc.want[i])
			}
			if !ok {
				t.Errorf("problems:\n%s\nwant, in order:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
	// A store error that is not a corrupt row is Verify's error.
	boom := errors.New("boom")
	var beyond int64
	if err := compareRuns(ctx, fakeIndex{err: boom}, &Report{}, nil, n, &beyond); !errors.Is(err, boom) {
		t.Errorf("compareRuns with a failing store = %v, want boom", err)
	}
}
