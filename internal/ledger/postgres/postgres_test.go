package postgres

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/vmtrust/vmtrust/internal/ledger"
	"github.com/vmtrust/vmtrust/internal/ledger/ledgertest"
	"github.com/vmtrust/vmtrust/internal/pgtest"
	"golang.org/x/mod/sumdb/tlog"
)

var server pgtest.Shared

func TestMain(m *testing.M) { os.Exit(server.Main(m)) }

func open(t testing.TB) (*Store, string) {
	t.Helper()
	dsn := server.NewDatabase(t)
	s, err := Open(t.Context(), dsn, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dsn
}

// entries returns n entries from index first, in batch, with the stored
// hashes they add (random-looking, at their real storage indexes).
func entries(first, n, batch int64) ([]ledger.Entry, []ledger.Hash) {
	var es []ledger.Entry
	var hs []ledger.Hash
	for i := first; i < first+n; i++ {
		es = append(es, ledger.Entry{Index: i, Batch: batch, Body: fmt.Appendf(nil, "event %d", i)})
	}
	for id := tlog.StoredHashCount(first); id < tlog.StoredHashCount(first+n); id++ {
		hs = append(hs, ledger.Hash{Index: id, Hash: sha256.Sum256(fmt.Appendf(nil, "%d", id))})
	}
	return es, hs
}

func appendRows(t *testing.T, s *Store, a ledger.Append) {
	t.Helper()
	if err := s.Update(t.Context(), func(tx ledger.Tx) error { return tx.Append(t.Context(), a) }); err != nil {
		t.Fatalf("Append: %v", err)
	}
}

func storeSize(t *testing.T, s *Store) int64 {
	t.Helper()
	n, err := s.Size(t.Context())
	if err != nil {
		t.Fatalf("Size: %v", err)
	}
	return n
}

func bodies(t *testing.T, s *Store) []string {
	t.Helper()
	var got []string
	if err := s.Entries(t.Context(), 0, 1<<62, func(e ledger.Entry) error {
		got = append(got, fmt.Sprintf("%d:%d:%s", e.Index, e.Batch, e.Body))
		return nil
	}); err != nil {
		t.Fatalf("Entries: %v", err)
	}
	return got
}

// TestStore runs the conformance suite shared with the SQLite store.
func TestStore(t *testing.T) {
	ledgertest.TestStore(t, func(t *testing.T) (ledger.Store, ledgertest.Tamperer) {
		s, _ := open(t)
		return s, s
	})
}

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

func at(minutes int) time.Time { return t0.Add(time.Duration(minutes) * time.Minute) }

func TestAppendContinuity(t *testing.T) {
	s, _ := open(t)
	if n := storeSize(t, s); n != 0 {
		t.Fatalf("Size() of a new store = %d, want 0", n)
	}
	es, hs := entries(0, 3, 1)
	appendRows(t, s, ledger.Append{Entries: es, Hashes: hs})
	for _, tc := range []struct {
		name    string
		entries []ledger.Entry
	}{
		{"overlaps", []ledger.Entry{{Index: 2, Body: []byte("x")}}},
		{"restarts", []ledger.Entry{{Index: 0, Body: []byte("x")}}},
		{"gap before", []ledger.Entry{{Index: 4, Body: []byte("x")}}},
		{"gap inside", []ledger.Entry{{Index: 3, Body: []byte("x")}, {Index: 5, Body: []byte("y")}}},
		{"repeat inside", []ledger.Entry{{Index: 3, Body: []byte("x")}, {Index: 3, Body: []byte("y")}}},
		{"negative", []ledger.Entry{{Index: -1, Body: []byte("x")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Update(t.Context(), func(tx ledger.Tx) error {
				return tx.Append(t.Context(), ledger.Append{Entries: tc.entries})
			})
			if err == nil {
				t.Fatalf("Append(%v) at size 3 = nil, want error", tc.entries)
			}
			if n := storeSize(t, s); n != 3 {
				t.Errorf("Size() after refused Append = %d, want 3", n)
			}
		})
	}
	es, hs = entries(3, 2, 2)
	appendRows(t, s, ledger.Append{Entries: es, Hashes: hs})
	want := []string{"0:1:event 0", "1:1:event 1", "2:1:event 2", "3:2:event 3", "4:2:event 4"}
	if diff := cmp.Diff(want, bodies(t, s)); diff != "" {
		t.Errorf("Entries (-want +got):\n%s", diff)
	}
	// A stored hash is never overwritten by Append.
	err := s.Update(t.Context(), func(tx ledger.Tx) error {
		return tx.Append(t.Context(), ledger.Append{Hashes: hs[:1]})
	})
	if err == nil {
		t.Error("Append of an existing stored hash = nil, want error")
	}
	// Entries' range and early stop.
	var got []int64
	stop := errors.New("stop")
	err = s.Entries(t.Context(), 1, 4, func(e ledger.Entry) error {
		got = append(got, e.Index)
		if e.Index == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || !cmp.Equal(got, []int64{1, 2}) {
		t.Errorf("Entries(1, 4) stopping at 2 = %v, %v; want [1 2], stop", got, err)
	}
}

func TestReadHashes(t *testing.T) {
	s, _ := open(t)
	es, hs := entries(0, 8, 1)
	appendRows(t, s, ledger.Append{Entries: es, Hashes: hs})
	ids := []int64{hs[5].Index, hs[0].Index, hs[5].Index, hs[2].Index}
	got, err := s.ReadHashes(t.Context(), ids)
	want := []tlog.Hash{hs[5].Hash, hs[0].Hash, hs[5].Hash, hs[2].Hash}
	if err != nil || !cmp.Equal(got, want) {
		t.Errorf("ReadHashes(%v) = %v, %v; want %v", ids, got, err, want)
	}
	for _, ids := range [][]int64{{int64(len(hs))}, {0, 1 << 40}, {-1}} {
		if got, err := s.ReadHashes(t.Context(), ids); !errors.Is(err, ledger.ErrNotFound) || got != nil {
			t.Errorf("ReadHashes(%v) = %v, %v; want nil, ErrNotFound", ids, got, err)
		}
	}
	// Inside a transaction too, including rows written by it.
	es, more := entries(8, 1, 2)
	err = s.Update(t.Context(), func(tx ledger.Tx) error {
		if err := tx.Append(t.Context(), ledger.Append{Entries: es, Hashes: more}); err != nil {
			return err
		}
		got, err := tx.ReadHashes(t.Context(), []int64{more[0].Index})
		if err != nil || got[0] != more[0].Hash {
			t.Errorf("tx.ReadHashes of its own row = %v, %v", got, err)
		}
		_, err = tx.ReadHashes(t.Context(), []int64{1 << 40})
		if !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("tx.ReadHashes(missing) = %v, want ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCheckpoints(t *testing.T) {
	s, _ := open(t)
	if _, err := s.Latest(t.Context()); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Latest() of empty store: %v, want ErrNotFound", err)
	}
	r1, r3 := sha256.Sum256([]byte("1")), sha256.Sum256([]byte("3"))
	put := func(c ledger.Checkpoint) error {
		return s.Update(t.Context(), func(tx ledger.Tx) error { return tx.PutCheckpoint(t.Context(), c) })
	}
	c1 := ledger.Checkpoint{Size: 1, Root: r1, Note: []byte("note 1"), Time: at(1)}
	c3 := ledger.Checkpoint{Size: 3, Root: r3, Note: []byte("note 3"), Time: at(3)}
	for _, c := range []ledger.Checkpoint{c3, c1} {
		if err := put(c); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.Latest(t.Context()); err != nil || !cmp.Equal(got, c3) {
		t.Errorf("Latest() = %+v, %v; want %+v", got, err, c3)
	}
	if got, err := s.Checkpoint(t.Context(), 1); err != nil || !cmp.Equal(got, c1) {
		t.Errorf("Checkpoint(1) = %+v, %v; want %+v", got, err, c1)
	}
	if _, err := s.Checkpoint(t.Context(), 2); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Checkpoint(2): %v, want ErrNotFound", err)
	}
	// Same root: replaced (cosignatures added).
	cosigned := c3
	cosigned.Note = []byte("note 3 + witness")
	if err := put(cosigned); err != nil {
		t.Errorf("PutCheckpoint(same size, same root) = %v", err)
	}
	// Another root: refused, the stored one stays.
	forged := c3
	forged.Root, forged.Note = r1, []byte("forged")
	if err := put(forged); err == nil {
		t.Error("PutCheckpoint(same size, other root) = nil, want error")
	}
	if got, _ := s.Checkpoint(t.Context(), 3); !cmp.Equal(got, cosigned) {
		t.Errorf("Checkpoint(3) = %+v, want %+v", got, cosigned)
	}
	err := s.Update(t.Context(), func(tx ledger.Tx) error {
		got, err := tx.Latest(t.Context())
		if err != nil || got.Size != 3 {
			t.Errorf("tx.Latest() = %+v, %v", got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestHosts(t *testing.T) {
	s, _ := open(t)
	put := func(h ledger.Host) error {
		return s.Update(t.Context(), func(tx ledger.Tx) error { return tx.PutHost(t.Context(), h) })
	}
	b := ledger.Host{Name: "b", Key: "b+1234+AAAA", Added: at(1)}
	a := ledger.Host{Name: "a", Key: "a+5678+BBBB", Added: at(2)}
	for _, h := range []ledger.Host{b, a} {
		if err := put(h); err != nil {
			t.Fatal(err)
		}
	}
	again := b
	again.Added = at(9)
	if err := put(again); err != nil {
		t.Errorf("PutHost(same key again) = %v, want nil", err)
	}
	other := b
	other.Key = "b+9999+CCCC"
	if err := put(other); err == nil {
		t.Error("PutHost(same name, other key) = nil, want error")
	}
	if got, err := s.Host(t.Context(), "b"); err != nil || !cmp.Equal(got, b) {
		t.Errorf("Host(b) = %+v, %v; want %+v (key and time never replaced)", got, err, b)
	}
	if _, err := s.Host(t.Context(), "c"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Host(c): %v, want ErrNotFound", err)
	}
	if got, err := s.Hosts(t.Context()); err != nil || !cmp.Equal(got, []ledger.Host{a, b}) {
		t.Errorf("Hosts() = %+v, %v; want [a b]", got, err)
	}
}

func TestLeases(t *testing.T) {
	s, _ := open(t)
	ip := netip.MustParseAddr("192.0.2.10")
	ip6 := netip.MustParseAddr("2001:db8::10")
	lease := func(vm string, from, start int64) ledger.Lease {
		return ledger.Lease{IP: ip, MAC: "52:54:00:00:00:" + vm, VM: vm, Host: "h1", From: at(int(from)), Start: start, End: -1}
	}
	end := func(vm string, to, idx int64) ledger.LeaseEnd {
		return ledger.LeaseEnd{IP: ip, MAC: "52:54:00:00:00:" + vm, VM: vm, Host: "h1", To: at(int(to)), Index: idx}
	}
	// vm a holds ip 0–10, b 20–30 (started and ended in one Append), c from 40.
	appendRows(t, s, ledger.Append{Leases: []ledger.Lease{lease("a", 0, 1), {IP: ip6, MAC: "m6", VM: "a", Host: "h1", From: at(0), Start: 1, End: -1}}})
	appendRows(t, s, ledger.Append{
		LeaseEnds: []ledger.LeaseEnd{end("a", 10, 2)},
		Leases:    []ledger.Lease{lease("b", 20, 3)},
	})
	appendRows(t, s, ledger.Append{LeaseEnds: []ledger.LeaseEnd{end("b", 30, 4)}})
	// No open lease of a any more, and none ever of z: nothing changes.
	appendRows(t, s, ledger.Append{LeaseEnds: []ledger.LeaseEnd{end("a", 35, 5), end("z", 35, 5)}})
	appendRows(t, s, ledger.Append{Leases: []ledger.Lease{lease("c", 40, 6)}})

	la, lb, lc := lease("a", 0, 1), lease("b", 20, 3), lease("c", 40, 6)
	la.To, la.End = at(10), 2
	lb.To, lb.End = at(30), 4
	for _, tc := range []struct {
		name  string
		at    time.Time
		limit int
		want  []ledger.Lease
	}{
		{"before any", at(-1), 5, nil},
		{"at first start", at(0), 5, []ledger.Lease{la}},
		{"between", at(15), 5, []ledger.Lease{la}},
		{"latest first", at(50), 5, []ledger.Lease{lc, lb, la}},
		{"limit 1", at(50), 1, []ledger.Lease{lc}},
		{"limit 2 at 25", at(25), 2, []ledger.Lease{lb, la}},
		{"limit 0", at(50), 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.LeasesAt(t.Context(), ip, tc.at, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("LeasesAt(%v, %v, %d) (-want +got):\n%s", ip, tc.at, tc.limit, diff)
			}
		})
	}
	got, err := s.LeasesAt(t.Context(), ip6, at(50), 5)
	if err != nil || len(got) != 1 || got[0].IP != ip6 || !got[0].To.IsZero() || got[0].End != -1 {
		t.Errorf("LeasesAt(%v) = %+v, %v; want one open lease (the IPv4 end must not close it)", ip6, got, err)
	}
}

func TestRuns(t *testing.T) {
	s, _ := open(t)
	run := func(vm, host, owner, image string, from int, start int64) ledger.Run {
		return ledger.Run{VM: vm, Name: "n-" + vm, Host: host, Owner: owner, Image: image, List: "list", Endorser: "CN=e",
			From: at(from), Start: start, End: -1}
	}
	r1 := run("vm1", "h1", "alice", "img1", 0, 1)
	r2 := run("vm2", "h1", "bob", "img2", 5, 2)
	r3 := run("vm1", "h2", "alice", "img1", 20, 4) // vm1 migrated to h2
	r3.Endorser = "CN=other"
	appendRows(t, s, ledger.Append{Runs: []ledger.Run{r1, r2}})
	appendRows(t, s, ledger.Append{
		RunEnds: []ledger.RunEnd{{VM: "vm1", Host: "h1", To: at(20), Index: 3}},
		Runs:    []ledger.Run{r3},
	})
	// Ending vm1 on h1 again, or a VM never started, changes nothing.
	appendRows(t, s, ledger.Append{RunEnds: []ledger.RunEnd{{VM: "vm1", Host: "h1", To: at(99), Index: 9}, {VM: "nope", Host: "h1", To: at(99), Index: 9}}})
	r1.To, r1.End = at(20), 3

	for _, tc := range []struct {
		name string
		f    ledger.RunFilter
		want []ledger.Run
	}{
		{"all", ledger.RunFilter{}, []ledger.Run{r1, r2, r3}},
		{"image", ledger.RunFilter{Image: "img1"}, []ledger.Run{r1, r3}},
		{"owner", ledger.RunFilter{Owner: "bob"}, []ledger.Run{r2}},
		{"host", ledger.RunFilter{Host: "h2"}, []ledger.Run{r3}},
		{"vm", ledger.RunFilter{VM: "vm1"}, []ledger.Run{r1, r3}},
		{"endorser", ledger.RunFilter{Endorser: "CN=other"}, []ledger.Run{r3}},
		{"two fields", ledger.RunFilter{VM: "vm1", Host: "h1"}, []ledger.Run{r1}},
		{"no match", ledger.RunFilter{Image: "img1", Owner: "bob"}, nil},
		{"from: ended runs before excluded", ledger.RunFilter{From: at(20)}, []ledger.Run{r2, r3}},
		{"from just before end", ledger.RunFilter{From: at(19)}, []ledger.Run{r1, r2, r3}},
		{"to: later starts excluded", ledger.RunFilter{To: at(5)}, []ledger.Run{r1}},
		{"window", ledger.RunFilter{From: at(10), To: at(15)}, []ledger.Run{r1, r2}},
		{"running at the end of time", ledger.RunFilter{From: at(10000)}, []ledger.Run{r2, r3}},
		{"limit", ledger.RunFilter{Limit: 2}, []ledger.Run{r1, r2}},
		{"instant at a start", ledger.RunFilter{From: at(20), To: at(20).Add(time.Nanosecond)}, []ledger.Run{r2, r3}},
		{"instant before a start", ledger.RunFilter{From: at(20).Add(-time.Nanosecond), To: at(20)}, []ledger.Run{r1, r2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Runs(t.Context(), tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Runs(%+v) (-want +got):\n%s", tc.f, diff)
			}
		})
	}
}

func TestTimeline(t *testing.T) {
	s, _ := open(t)
	appendRows(t, s, ledger.Append{VMEvents: []ledger.VMEvent{{VM: "a", Index: 7}, {VM: "b", Index: 3}, {VM: "a", Index: 2}}})
	appendRows(t, s, ledger.Append{VMEvents: []ledger.VMEvent{{VM: "a", Index: 9}}})
	if got, err := s.Timeline(t.Context(), "a"); err != nil || !cmp.Equal(got, []int64{2, 7, 9}) {
		t.Errorf("Timeline(a) = %v, %v; want [2 7 9]", got, err)
	}
	if got, err := s.Timeline(t.Context(), "none"); err != nil || len(got) != 0 {
		t.Errorf("Timeline(none) = %v, %v; want empty", got, err)
	}
}

func TestUpdateRollback(t *testing.T) {
	s, _ := open(t)
	es, hs := entries(0, 2, 1)
	fail := errors.New("fn failed")
	for _, tc := range []struct {
		name string
		run  func() error
		want error
	}{
		{"fn error", func() error {
			return s.Update(t.Context(), func(tx ledger.Tx) error {
				if err := tx.Append(t.Context(), ledger.Append{Entries: es, Hashes: hs}); err != nil {
					return err
				}
				return fail
			})
		}, fail},
		{"ctx cancelled after writes", func() error {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			return s.Update(ctx, func(tx ledger.Tx) error {
				if err := tx.Append(ctx, ledger.Append{Entries: es, Hashes: hs}); err != nil {
					return err
				}
				cancel()
				return nil
			})
		}, context.Canceled},
		{"ctx cancelled before", func() error {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			return s.Update(ctx, func(tx ledger.Tx) error { return tx.Append(ctx, ledger.Append{Entries: es, Hashes: hs}) })
		}, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.run(); !errors.Is(err, tc.want) {
				t.Errorf("Update = %v, want %v", err, tc.want)
			}
			if n := storeSize(t, s); n != 0 {
				t.Errorf("Size() after failed Update = %d, want 0", n)
			}
			if got, err := s.ReadHashes(t.Context(), []int64{0}); !errors.Is(err, ledger.ErrNotFound) {
				t.Errorf("ReadHashes([0]) after failed Update = %v, %v; want ErrNotFound", got, err)
			}
		})
	}
	// The store still works.
	appendRows(t, s, ledger.Append{Entries: es, Hashes: hs})
	if n := storeSize(t, s); n != 2 {
		t.Errorf("Size() = %d, want 2", n)
	}
}

// TestConcurrentUpdates appends from two Stores (as two processes would)
// at the size each reads in its transaction: without the advisory lock,
// both read the same size and one fails on the primary key.
func TestConcurrentUpdates(t *testing.T) {
	s1, dsn := open(t)
	s2, err := Open(t.Context(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	const per = 40
	var wg sync.WaitGroup
	errs := make(chan error, 2*per)
	for w, s := range []*Store{s1, s2} {
		wg.Go(func() {
			for range per {
				errs <- s.Update(t.Context(), func(tx ledger.Tx) error {
					n, err := tx.Size(t.Context())
					if err != nil {
						return err
					}
					time.Sleep(time.Millisecond) // widen the race window
					return tx.Append(t.Context(), ledger.Append{Entries: []ledger.Entry{{Index: n, Batch: int64(w), Body: []byte("x")}}})
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Update: %v", err)
		}
	}
	if n := storeSize(t, s1); n != 2*per {
		t.Errorf("Size() = %d, want %d", n, 2*per)
	}
}

func TestSchemaVersion(t *testing.T) {
	for _, tc := range []struct {
		name, stmt string
	}{
		{"newer", "INSERT INTO schema_migrations (version, name, applied) VALUES (99, 'future', now())"},
		{"renamed", "UPDATE schema_migrations SET name = 'other' WHERE version = 1"},
		{"gap", "UPDATE schema_migrations SET version = 2 WHERE version = 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, dsn := open(t)
			if err := exec(t, dsn, tc.stmt); err != nil {
				t.Fatal(err)
			}
			s.Close()
			s2, err := Open(t.Context(), dsn, nil)
			var sve *SchemaVersionError
			if !errors.As(err, &sve) || s2 != nil {
				t.Fatalf("Open after %s = %v, %v; want nil, *SchemaVersionError", tc.stmt, s2, err)
			}
		})
	}
	// Reopening an up-to-date database applies nothing and works.
	s, dsn := open(t)
	s.Close()
	s2, err := Open(t.Context(), dsn, nil)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	s2.Close()
}

func exec(t *testing.T, dsn, stmt string) error {
	t.Helper()
	c, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		return err
	}
	defer c.Close(t.Context())
	_, err = c.Exec(t.Context(), stmt)
	return err
}

func TestTamper(t *testing.T) {
	setup := func(t *testing.T) *Store {
		s, _ := open(t)
		es, hs := entries(0, 2, 1)
		appendRows(t, s, ledger.Append{Entries: es, Hashes: hs})
		es, hs = entries(2, 2, 2)
		appendRows(t, s, ledger.Append{Entries: es, Hashes: hs})
		return s
	}
	h := sha256.Sum256([]byte("forged"))
	for _, tc := range []struct {
		name   string
		tamper func(context.Context, *Store) error
		want   []string
	}{
		{"set body", func(ctx context.Context, s *Store) error { return s.TamperSetBody(ctx, 1, []byte("evil")) },
			[]string{"0:1:event 0", "1:1:evil", "2:2:event 2", "3:2:event 3"}},
		{"delete", func(ctx context.Context, s *Store) error { return s.TamperDelete(ctx, 2) },
			[]string{"0:1:event 0", "1:1:event 1", "3:2:event 3"}},
		{"insert", func(ctx context.Context, s *Store) error { return s.TamperInsert(ctx, 2, []byte("evil")) },
			[]string{"0:1:event 0", "1:1:event 1", "2:2:evil", "3:2:event 2", "4:2:event 3"}},
		{"insert first", func(ctx context.Context, s *Store) error { return s.TamperInsert(ctx, 0, []byte("evil")) },
			[]string{"0:1:evil", "1:1:event 0", "2:1:event 1", "3:2:event 2", "4:2:event 3"}},
		{"swap", func(ctx context.Context, s *Store) error { return s.TamperSwap(ctx, 0, 3) },
			[]string{"0:1:event 3", "1:1:event 1", "2:2:event 2", "3:2:event 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := setup(t)
			if err := tc.tamper(t.Context(), s); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, bodies(t, s)); diff != "" {
				t.Errorf("entries after tampering (-want +got):\n%s", diff)
			}
		})
	}
	s := setup(t)
	if err := s.TamperSetHash(t.Context(), 3, h); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ReadHashes(t.Context(), []int64{3}); err != nil || got[0] != h {
		t.Errorf("ReadHashes([3]) after TamperSetHash = %v, %v; want %v", got, err, h)
	}
	for name, err := range map[string]error{
		"set body":  s.TamperSetBody(t.Context(), 9, nil),
		"delete":    s.TamperDelete(t.Context(), 9),
		"insert":    s.TamperInsert(t.Context(), 9, nil),
		"swap":      s.TamperSwap(t.Context(), 0, 9),
		"set hash":  s.TamperSetHash(t.Context(), 1<<40, h),
		"swap both": s.TamperSwap(t.Context(), 8, 9),
	} {
		if !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("tamper %s of a missing row: %v, want ErrNotFound", name, err)
		}
	}
	if diff := cmp.Diff([]string{"0:1:event 0", "1:1:event 1", "2:2:event 2", "3:2:event 3"}, bodies(t, s)); diff != "" {
		t.Errorf("failed tampering changed entries (-want +got):\n%s", diff)
	}
}

func TestParseMigrationName(t *testing.T) {
	for _, tc := range []struct {
		file    string
		version int
		name    string
		ok      bool
	}{
		{"0001_initial.sql", 1, "initial", true},
		{"0012_add_runs2.sql", 12, "add_runs2", true},
		{"0000_zero.sql", 0, "", false},
		{"001_short.sql", 0, "", false},
		{"00001_long.sql", 0, "", false},
		{"0001_.sql", 0, "", false},
		{"0001initial.sql", 0, "", false},
		{"0001_initial.SQL", 0, "", false},
		{"0001_initial", 0, "", false},
		{"0001_Upper.sql", 0, "", false},
		{"0001_a-b.sql", 0, "", false},
		{"+001_sign.sql", 0, "", false},
		{"0x01_hex.sql", 0, "", false},
		{"0001_a.sql.sql", 0, "", false},
		{"0001_é.sql", 0, "", false},
		{"README", 0, "", false},
	} {
		v, name, err := parseMigrationName(tc.file)
		if (err == nil) != tc.ok || v != tc.version || name != tc.name {
			t.Errorf("parseMigrationName(%q) = %d, %q, %v; want %d, %q, ok %v", tc.file, v, name, err, tc.version, tc.name, tc.ok)
		}
	}
}

func FuzzParseMigrationName(f *testing.F) {
	for _, s := range []string{"0001_initial.sql", "9999_z.sql", "0000_a.sql", "01_a.sql", "0001_.sql", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, file string) {
		v, name, err := parseMigrationName(file)
		if err != nil {
			if v != 0 || name != "" {
				t.Fatalf("parseMigrationName(%q) = %d, %q with error %v", file, v, name, err)
			}
			return
		}
		if want := fmt.Sprintf("%04d_%s.sql", v, name); want != file || v < 1 || v > 9999 {
			t.Fatalf("parseMigrationName(%q) = %d, %q: not canonical (%q)", file, v, name, want)
		}
	})
}

// BenchmarkAppend appends 10k entries of 200 bytes with their stored
// hashes per Update, as an ingest does.
func BenchmarkAppend(b *testing.B) {
	s, _ := open(b)
	const batch = 10_000
	body := make([]byte, 200)
	var n int64
	var events int64
	start := time.Now()
	for b.Loop() {
		a := ledger.Append{Entries: make([]ledger.Entry, batch)}
		for i := range a.Entries {
			a.Entries[i] = ledger.Entry{Index: n + int64(i), Batch: n, Body: body}
		}
		for id := tlog.StoredHashCount(n); id < tlog.StoredHashCount(n+batch); id++ {
			a.Hashes = append(a.Hashes, ledger.Hash{Index: id, Hash: tlog.Hash{byte(id), byte(id >> 8)}})
		}
		a.Batches = []ledger.Batch{{ID: n, Host: "h", First: n, Count: batch, Sig: []byte("sig")}}
		if err := s.Update(b.Context(), func(tx ledger.Tx) error {
			if err := tx.Append(b.Context(), a); err != nil {
				return err
			}
			return tx.PutCheckpoint(b.Context(), ledger.Checkpoint{Size: n + batch, Note: []byte("note"), Time: time.Now()})
		}); err != nil {
			b.Fatal(err)
		}
		n += batch
		events += batch
	}
	b.ReportMetric(float64(events)/time.Since(start).Seconds(), "events/s")
}
