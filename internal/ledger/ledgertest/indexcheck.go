package ledgertest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/internal/ledger"
)

// indexEvents is a history that exercises the end rule: two starts of
// the same run and lease before one end, an end repeated, an end of
// nothing, a migration followed by a second start on the new host.
func indexEvents(t testing.TB) []ledger.Event {
	ip1, ip2 := "10.7.0.1", "10.7.0.2"
	m1 := "52:54:00:00:07:01"
	run := func(host, vm string, m int, owner string) ledger.Event {
		return Ev(t, ledger.VMStarted, host, vm, m, ledger.RunData{Name: vm, Owner: owner, Image: "aa"})
	}
	return []ledger.Event{
		run("h1", "a", 0, "alice"),                               // 0: run a/h1
		Ev(t, ledger.LeaseStart, "h1", "a", 1, lease(m1, ip1)),   // 1: lease
		run("h1", "a", 2, "alice2"),                              // 2: run a/h1 again, no stop between
		Ev(t, ledger.LeaseStart, "h1", "a", 3, lease(m1, ip1)),   // 3: same lease again
		Ev(t, ledger.OperatorAction, "h1", "a", 4, nil),          // 4
		Ev(t, ledger.LeaseEndType, "h1", "a", 5, lease(m1, ip1)), // 5: ends leases 1 and 3
		Ev(t, ledger.VMStopped, "h1", "a", 6, nil),               // 6: ends runs 0 and 2
		Ev(t, ledger.LeaseEndType, "h1", "a", 7, lease(m1, ip1)), // 7: ends nothing (first end kept)
		run("h1", "b", 8, "bob"),                                 // 8: run b/h1
		Ev(t, ledger.VMMigrated, "h2", "b", 9, ledger.MigrateData{From: "h1", Run: ledger.RunData{Name: "b", Owner: "bob"}}), // 9: ends 8, starts b/h2
		run("h2", "b", 10, "bob2"),                                // 10: b/h2 again
		Ev(t, ledger.VMStopped, "h2", "b", 11, nil),               // 11: ends 9 and 10
		Ev(t, ledger.VMStopped, "h1", "a", 12, nil),               // 12: ends nothing
		run("h1", "a", 13, "alice3"),                              // 13: open
		Ev(t, ledger.LeaseStart, "h1", "a", 14, lease(m1, ip1)),   // 14: open
		Ev(t, ledger.LeaseEndType, "h1", "a", 15, lease(m1, ip2)), // 15: another address: ends nothing
		Ev(t, ledger.LeaseStart, "h1", "a", 16, lease(m1, ip2)),   // 16: begins after that end: open
	}
}

// indexRows is everything the index scans return, as text.
func indexRows(t testing.TB, st ledger.Store) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	if err := st.ScanLeases(ctx, func(l ledger.Lease) error {
		out = append(out, fmt.Sprintf("lease %d %v %s %s %s end %d", l.Start, l.IP, l.MAC, l.VM, l.Host, l.End))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.ScanRuns(ctx, func(r ledger.Run) error {
		out = append(out, fmt.Sprintf("run %d %s/%s %s end %d", r.Start, r.VM, r.Host, r.Owner, r.End))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var tl []string
	if err := st.ScanTimeline(ctx, func(e ledger.VMEvent) error {
		tl = append(tl, fmt.Sprintf("timeline %s %d", e.VM, e.Index))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(tl)
	return append(out, tl...)
}

// testIndexChunks indexes the same history in chunks of 1, 3 and 1000
// entries (one ingest, one checkpoint, per event) on fresh stores: the
// rows are the ones the end rule gives, whatever the chunks, and Verify
// (which derives them in one pass) finds them clean.
func testIndexChunks(t *testing.T, newWorld func(*testing.T) *World) {
	ctx := context.Background()
	want := []string{
		"lease 1 10.7.0.1 52:54:00:00:07:01 a h1 end 5",
		"lease 3 10.7.0.1 52:54:00:00:07:01 a h1 end 5",
		"lease 14 10.7.0.1 52:54:00:00:07:01 a h1 end -1",
		"lease 16 10.7.0.2 52:54:00:00:07:01 a h1 end -1",
		"run 0 a/h1 alice end 6",
		"run 2 a/h1 alice2 end 6",
		"run 8 b/h1 bob end 9",
		"run 9 b/h2 bob end 11",
		"run 10 b/h2 bob2 end 11",
		"run 13 a/h1 alice3 end -1",
	}
	for i := range 17 {
		vm := "a"
		if i >= 8 && i <= 11 {
			vm = "b"
		}
		want = append(want, fmt.Sprintf("timeline %s %d", vm, i))
	}
	slices.Sort(want[10:])
	var first []string
	for _, chunk := range []int64{1, 3, 1000} {
		t.Run(fmt.Sprint(chunk), func(t *testing.T) {
			w := newWorld(t)
			for _, e := range indexEvents(t) {
				w.Ingest(t, e)
			}
			l, err := ledger.New(w.Store, w.LogKey, ledger.Options{IndexChunk: chunk, Now: func() time.Time { return T0 }})
			if err != nil {
				t.Fatal(err)
			}
			if n, err := l.CatchUp(ctx); err != nil || n != 17 {
				t.Fatalf("CatchUp = %d, %v; want 17", n, err)
			}
			got := indexRows(t, w.Store)
			if !slices.Equal(got, want) {
				t.Errorf("rows with chunks of %d:\n%s\nwant:\n%s", chunk, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if first == nil {
				first = got
			} else if !slices.Equal(got, first) {
				t.Errorf("rows with chunks of %d differ from chunks of 1", chunk)
			}
			if rep, err := w.Log.Verify(ctx); err != nil || !rep.OK() {
				t.Errorf("Verify after chunks of %d = %+v, %v", chunk, rep, err)
			}
		})
	}
}

// testTamperIndex changes index rows directly: each change is a problem
// of Verify, about the index, and the untampered log verifies clean.
func testTamperIndex(t *testing.T, newWorld func(*testing.T) *World) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		do   func(w *World) error
		want string // in some problem
	}{
		{"none", nil, ""},
		{"delete a lease end", func(w *World) error { return w.Tamper.TamperDeleteLeaseEnd(ctx, 3) },
			"lease of 10.7.0.1 started at entry 3: ended at entry 5 in the log, open in the index"},
		{"change a lease's vm", func(w *World) error { return w.Tamper.TamperSetLeaseVM(ctx, 14, "mallory") },
			`lease of 10.7.0.1 started at entry 14: vm "a" in the log, "mallory" in the index`},
		{"add a timeline row", func(w *World) error { return w.Tamper.TamperAddTimeline(ctx, "a", 9) },
			`the timeline of "a" holds entry 9`},
		{"reopen a run", func(w *World) error { return w.Tamper.TamperReopenRun(ctx, 0) },
			"run of a on h1 started at entry 0: ended at entry 6 in the log, open in the index"},
		{"delete a run", func(w *World) error { return w.Tamper.TamperDeleteRun(ctx, 13) },
			"run of a on h1 started at entry 13: in the log, missing from the index"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			w.Ingest(t, indexEvents(t)[:9]...)
			w.Ingest(t, indexEvents(t)[9:12]...)
			w.CatchUp(t)
			w.Ingest(t, indexEvents(t)[12:]...)
			w.CatchUp(t)
			if rep, err := w.Log.Verify(ctx); err != nil || !rep.OK() {
				t.Fatalf("Verify before tampering = %+v, %v", rep, err)
			}
			if tc.do == nil {
				return
			}
			if err := tc.do(w); err != nil {
				t.Fatalf("tampering: %v", err)
			}
			rep, err := w.Log.Verify(ctx)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			found := false
			for _, p := range rep.Problems {
				if !strings.HasPrefix(p.What, "index: ") {
					t.Errorf("problem not about the index: %s", p.What)
				}
				found = found || strings.Contains(p.What, tc.want)
			}
			if !found {
				t.Errorf("Verify after %s: problems %+v, want one with %q", tc.name, rep.Problems, tc.want)
			}
		})
	}
}
