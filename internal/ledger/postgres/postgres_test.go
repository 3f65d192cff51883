package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
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

// entries returns n entries from index first, in batch, with the tiles
// an ingest of them writes (tlog.NewTiles: the new full tiles and the
// partial ones on the new right edge), of random-looking hashes.
func entries(first, n, batch int64) ([]ledger.Entry, []ledger.TileData) {
	var es []ledger.Entry
	for i := first; i < first+n; i++ {
		es = append(es, ledger.Entry{Index: i, Batch: batch, Body: fmt.Appendf(nil, "event %d", i)})
	}
	return es, tiles(first, first+n)
}

// tiles returns the tiles tlog.NewTiles names for growing a tree from old
// to n entries, each hash of a tile sha256 of its tile and position.
func tiles(old, n int64) []ledger.TileData {
	var ts []ledger.TileData
	for _, t := range tlog.NewTiles(ledger.TileHeight, old, n) {
		var d []byte
		for i := range t.W {
			h := sha256.Sum256(fmt.Appendf(nil, "%d/%d/%d", t.L, t.N, i))
			d = append(d, h[:]...)
		}
		ts = append(ts, ledger.TileData{Key: ledger.TileKey{L: t.L, N: t.N}, Data: d})
	}
	return ts
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
	es, ts := entries(0, 3, 1)
	appendRows(t, s, ledger.Append{Entries: es, Tiles: ts})
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
	es, ts = entries(3, 2, 2)
	appendRows(t, s, ledger.Append{Entries: es, Tiles: ts})
	want := []string{"0:1:event 0", "1:1:event 1", "2:1:event 2", "3:2:event 3", "4:2:event 4"}
	if diff := cmp.Diff(want, bodies(t, s)); diff != "" {
		t.Errorf("Entries (-want +got):\n%s", diff)
	}
	// Entries' range and early stop.
	var got []int64
	stop := errors.New("stop")
	err := s.Entries(t.Context(), 1, 4, func(e ledger.Entry) error {
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

func mustReadTiles(t *testing.T, r ledger.TileReader, keys ...ledger.TileKey) [][]byte {
	t.Helper()
	got, err := r.ReadTiles(t.Context(), keys)
	if err != nil {
		t.Fatalf("ReadTiles(%v): %v", keys, err)
	}
	if len(got) != len(keys) {
		t.Fatalf("ReadTiles(%v) returned %d tiles", keys, len(got))
	}
	return got
}

func TestReadTiles(t *testing.T) {
	s, _ := open(t)
	k00, k01, k10 := ledger.TileKey{L: 0, N: 0}, ledger.TileKey{L: 0, N: 1}, ledger.TileKey{L: 1, N: 0}
	// 20 entries: tile 0/0 full, 0/1 partial (4 hashes), 1/0 partial (1).
	es, ts := entries(0, 20, 1)
	byKey := map[ledger.TileKey][]byte{}
	for _, tl := range ts {
		byKey[tl.Key] = tl.Data
	}
	if len(ts) != 3 || len(byKey[k00]) != 16*32 || len(byKey[k01]) != 4*32 || len(byKey[k10]) != 32 {
		t.Fatalf("test setup: tiles %v", ts)
	}
	appendRows(t, s, ledger.Append{Entries: es, Tiles: ts})
	missing := []ledger.TileKey{{L: 0, N: 2}, {L: 2, N: 0}, {L: -1, N: 0}, {L: 0, N: -1}, {L: 1 << 40, N: 0}}
	for _, tc := range []struct {
		name string
		keys []ledger.TileKey
		want [][]byte
	}{
		{"in order, repeated", []ledger.TileKey{k10, k00, k10, k01}, [][]byte{byKey[k10], byKey[k00], byKey[k10], byKey[k01]}},
		{"missing are nil", append([]ledger.TileKey{k01}, missing...), [][]byte{byKey[k01], nil, nil, nil, nil, nil}},
		{"only missing", missing[:1], [][]byte{nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, mustReadTiles(t, s, tc.keys...)); diff != "" {
				t.Errorf("ReadTiles(%v) (-want +got):\n%s", tc.keys, diff)
			}
		})
	}
	if got, err := s.ReadTiles(t.Context(), nil); err != nil || len(got) != 0 {
		t.Errorf("ReadTiles(nil) = %v, %v; want empty", got, err)
	}
	// Growing to 40 entries replaces the partial tiles by wider ones (0/1
	// full, 1/0 with 2 hashes) and adds 0/2; 0/0 stays as it was.
	es, more := entries(20, 20, 2)
	err := s.Update(t.Context(), func(tx ledger.Tx) error {
		if err := tx.Append(t.Context(), ledger.Append{Entries: es, Tiles: more}); err != nil {
			return err
		}
		// Inside the transaction, its own writes are seen.
		if got := mustReadTiles(t, tx, k01); len(got[0]) != 16*32 {
			t.Errorf("tx.ReadTiles(%v) holds %d bytes, want the replaced tile's %d", k01, len(got[0]), 16*32)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range more {
		byKey[tl.Key] = tl.Data
	}
	k02 := ledger.TileKey{L: 0, N: 2}
	got := mustReadTiles(t, s, k00, k01, k10, k02)
	for i, want := range []struct {
		k     ledger.TileKey
		width int
	}{{k00, 16}, {k01, 16}, {k10, 2}, {k02, 8}} {
		if !bytes.Equal(got[i], byKey[want.k]) || len(got[i]) != want.width*32 {
			t.Errorf("ReadTiles(%v) after growing = %d bytes, want %d hashes, the latest written", want.k, len(got[i]), want.width)
		}
	}
	if tx := countRows(t, s, "tiles"); tx != 4 {
		t.Errorf("%d tile rows, want 4 (replaced, not added)", tx)
	}
	// Two tiles of one key in one Append are an error, and leave nothing.
	err = s.Update(t.Context(), func(tx ledger.Tx) error {
		return tx.Append(t.Context(), ledger.Append{Tiles: []ledger.TileData{{Key: k02, Data: make([]byte, 32)}, {Key: k02, Data: make([]byte, 64)}}})
	})
	if err == nil {
		t.Error("Append of two tiles with one key = nil, want error")
	}
	if got := mustReadTiles(t, s, k02); !bytes.Equal(got[0], byKey[k02]) {
		t.Errorf("tile %v changed by a failed Append", k02)
	}
}

// countRows returns the rows of table.
func countRows(t *testing.T, s *Store, table string) int64 {
	t.Helper()
	var n int64
	err := s.with(t.Context(), func(c *pgx.Conn) error {
		return c.QueryRow(t.Context(), "SELECT COUNT(*) FROM "+pgx.Identifier{table}.Sanitize()).Scan(&n)
	})
	if err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
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
	appendRows(t, s, ledger.Append{Leases: []ledger.Lease{lease("a", 0, 1), {IP: ip6, MAC: "m6", VM: "a", Host: "h1", From: at(0), Start: 0, End: -1}}})
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

// TestLeaseEndBeforeNewLease: an Append that begins a new lease of X at
// index 12 and ends X's older lease at index 11 closes only the older one.
func TestLeaseEndBeforeNewLease(t *testing.T) {
	s, _ := open(t)
	ip := netip.MustParseAddr("192.0.2.20")
	x := func(from int, start int64) ledger.Lease {
		return ledger.Lease{IP: ip, MAC: "52:54:00:00:00:01", VM: "x", Host: "h1", From: at(from), Start: start, End: -1}
	}
	old, renewed := x(0, 3), x(12, 12)
	appendRows(t, s, ledger.Append{Leases: []ledger.Lease{old}})
	appendRows(t, s, ledger.Append{
		Leases:    []ledger.Lease{renewed},
		LeaseEnds: []ledger.LeaseEnd{{IP: ip, MAC: old.MAC, VM: "x", Host: "h1", To: at(11), Index: 11}},
	})
	old.To, old.End = at(11), 11
	got, err := s.LeasesAt(t.Context(), ip, at(60), 10)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]ledger.Lease{renewed, old}, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("LeasesAt after renewal (-want +got):\n%s", diff)
	}
	// A later end closes the renewed lease; the old one keeps its end.
	appendRows(t, s, ledger.Append{LeaseEnds: []ledger.LeaseEnd{{IP: ip, MAC: old.MAC, VM: "x", Host: "h1", To: at(20), Index: 20}}})
	renewed.To, renewed.End = at(20), 20
	got, err = s.LeasesAt(t.Context(), ip, at(60), 10)
	if err != nil || !cmp.Equal([]ledger.Lease{renewed, old}, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })) {
		t.Errorf("LeasesAt after the second end = %+v, %v; want %+v", got, err, []ledger.Lease{renewed, old})
	}
}

// TestLeaseClosedInAppend: a lease that arrives closed gets its end row;
// same start time: the later start index first.
func TestLeaseClosedInAppend(t *testing.T) {
	s, _ := open(t)
	ip := netip.MustParseAddr("192.0.2.30")
	a := ledger.Lease{IP: ip, MAC: "m", VM: "a", Host: "h1", From: at(5), To: at(6), Start: 1, End: 2}
	b := ledger.Lease{IP: ip, MAC: "m", VM: "b", Host: "h1", From: at(5), Start: 3, End: -1}
	appendRows(t, s, ledger.Append{Leases: []ledger.Lease{a, b}})
	got, err := s.LeasesAt(t.Context(), ip, at(5), 10)
	if err != nil || !cmp.Equal([]ledger.Lease{b, a}, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })) {
		t.Errorf("LeasesAt = %+v, %v; want %+v", got, err, []ledger.Lease{b, a})
	}
	if n := countRows(t, s, "lease_ends"); n != 1 {
		t.Errorf("%d lease_ends rows, want 1", n)
	}
}

func TestTimeline(t *testing.T) {
	s, _ := open(t)
	appendRows(t, s, ledger.Append{VMEvents: []ledger.VMEvent{{VM: "a", Index: 7}, {VM: "b", Index: 3}, {VM: "a", Index: 2}, {VM: "a", Index: 7}}})
	appendRows(t, s, ledger.Append{VMEvents: []ledger.VMEvent{{VM: "a", Index: 9}}})
	if got, err := s.Timeline(t.Context(), "a"); err != nil || !cmp.Equal(got, []int64{2, 7, 9}) {
		t.Errorf("Timeline(a) = %v, %v; want [2 7 9]", got, err)
	}
	if got, err := s.Timeline(t.Context(), "none"); err != nil || len(got) != 0 {
		t.Errorf("Timeline(none) = %v, %v; want empty", got, err)
	}
	if n := countRows(t, s, "vm_timeline"); n != 3 {
		t.Errorf("%d vm_timeline rows, want 3 (one per VM and Append)", n)
	}
}

// TestTimelineHostile: rows written directly that break the invariants
// are errors of Timeline, not skipped or merged.
func TestTimelineHostile(t *testing.T) {
	for _, tc := range []struct {
		name string
		rows string // VALUES of (vm, first_idx, idxs)
		ok   bool
	}{
		{"good", `('v', 1, '{1,4}'), ('v', 5, '{5}')`, true},
		{"empty", `('v', 1, '{}')`, false},
		{"descending", `('v', 1, '{1,4,3}')`, false},
		{"repeat", `('v', 1, '{1,1}')`, false},
		{"not at first_idx", `('v', 1, '{2,3}')`, false},
		{"overlap", `('v', 1, '{1,6}'), ('v', 5, '{5}')`, false},
		{"same as previous end", `('v', 1, '{1,5}'), ('v', 5, '{5}')`, false},
		{"null element", `('v', 1, '{1,NULL}')`, false},
		{"two dimensions", `('v', 1, '{{1,2},{3,4}}')`, false},
		{"negative", `('v', -2, '{-2,-1}')`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, dsn := open(t)
			if err := exec(t, dsn, "INSERT INTO vm_timeline (vm, first_idx, idxs) VALUES "+tc.rows); err != nil {
				t.Fatal(err)
			}
			got, err := s.Timeline(t.Context(), "v")
			if (err == nil) != tc.ok {
				t.Errorf("Timeline over %s = %v, %v; want ok %v", tc.rows, got, err, tc.ok)
			}
		})
	}
}

func TestCheckTimelineRow(t *testing.T) {
	for _, tc := range []struct {
		name       string
		first      int64
		ix, before []int64
		ok         bool
	}{
		{"first row", 3, []int64{3, 5}, nil, true},
		{"after", 6, []int64{6}, []int64{3, 5}, true},
		{"empty", 3, nil, nil, false},
		{"wrong first", 3, []int64{4}, nil, false},
		{"repeat", 3, []int64{3, 3}, nil, false},
		{"descending", 3, []int64{3, 9, 4}, nil, false},
		{"overlap", 5, []int64{5}, []int64{3, 5}, false},
		{"before previous", 1, []int64{1}, []int64{3}, false},
		{"negative", -1, []int64{-1, 0}, nil, false},
		{"too long", 0, make([]int64, maxTimelineRow+1), nil, false},
	} {
		if err := checkTimelineRow(tc.first, tc.ix, tc.before); (err == nil) != tc.ok {
			t.Errorf("%s: checkTimelineRow(%d, %v…, %v) = %v, want ok %v", tc.name, tc.first, tc.ix[:min(len(tc.ix), 4)], tc.before, err, tc.ok)
		}
	}
}

func FuzzCheckTimelineRow(f *testing.F) {
	f.Add(int64(3), []byte{3, 5}, int64(-1))
	f.Add(int64(3), []byte{3, 3}, int64(-1))
	f.Add(int64(3), []byte{}, int64(-1))
	f.Add(int64(6), []byte{6}, int64(5))
	f.Add(int64(5), []byte{5}, int64(5))
	f.Fuzz(func(t *testing.T, first int64, raw []byte, last int64) {
		ix := make([]int64, len(raw))
		for i, b := range raw {
			ix[i] = int64(b)
		}
		var before []int64
		if last >= 0 {
			before = []int64{last}
		}
		err := checkTimelineRow(first, ix, before)
		if err != nil {
			return
		}
		// Accepted: the concatenation is strictly ascending from first.
		all := append(append([]int64(nil), before...), ix...)
		if len(ix) == 0 || ix[0] != first || first < 0 {
			t.Fatalf("accepted row %v at %d", ix, first)
		}
		for i := 1; i < len(all); i++ {
			if all[i] <= all[i-1] {
				t.Fatalf("accepted row %v after %v: not ascending", ix, before)
			}
		}
	})
}

func TestUpdateRollback(t *testing.T) {
	s, _ := open(t)
	es, ts := entries(0, 2, 1)
	fail := errors.New("fn failed")
	for _, tc := range []struct {
		name string
		run  func() error
		want error
	}{
		{"fn error", func() error {
			return s.Update(t.Context(), func(tx ledger.Tx) error {
				if err := tx.Append(t.Context(), ledger.Append{Entries: es, Tiles: ts}); err != nil {
					return err
				}
				return fail
			})
		}, fail},
		{"ctx cancelled after writes", func() error {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			return s.Update(ctx, func(tx ledger.Tx) error {
				if err := tx.Append(ctx, ledger.Append{Entries: es, Tiles: ts}); err != nil {
					return err
				}
				cancel()
				return nil
			})
		}, context.Canceled},
		{"ctx cancelled before", func() error {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			return s.Update(ctx, func(tx ledger.Tx) error { return tx.Append(ctx, ledger.Append{Entries: es, Tiles: ts}) })
		}, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.run(); !errors.Is(err, tc.want) {
				t.Errorf("Update = %v, want %v", err, tc.want)
			}
			if n := storeSize(t, s); n != 0 {
				t.Errorf("Size() after failed Update = %d, want 0", n)
			}
			if got := mustReadTiles(t, s, ledger.TileKey{L: 0, N: 0}); got[0] != nil {
				t.Errorf("tile 0/0 after failed Update = %x, want none", got[0])
			}
		})
	}
	// The store still works.
	appendRows(t, s, ledger.Append{Entries: es, Tiles: ts})
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
		{"gap", "DELETE FROM schema_migrations WHERE version = 1"},
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
		es, ts := entries(0, 2, 1)
		appendRows(t, s, ledger.Append{Entries: es, Tiles: ts})
		es, ts = entries(2, 2, 2)
		appendRows(t, s, ledger.Append{Entries: es, Tiles: ts})
		return s
	}
	forged := []byte("forged tile data")
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
	k00 := ledger.TileKey{L: 0, N: 0}
	if err := s.TamperSetTile(t.Context(), k00, forged); err != nil {
		t.Fatal(err)
	}
	if got := mustReadTiles(t, s, k00); !bytes.Equal(got[0], forged) {
		t.Errorf("ReadTiles(%v) after TamperSetTile = %x, want %x", k00, got[0], forged)
	}
	for name, err := range map[string]error{
		"set body":  s.TamperSetBody(t.Context(), 9, nil),
		"delete":    s.TamperDelete(t.Context(), 9),
		"insert":    s.TamperInsert(t.Context(), 9, nil),
		"swap":      s.TamperSwap(t.Context(), 0, 9),
		"set tile":  s.TamperSetTile(t.Context(), ledger.TileKey{L: 0, N: 1}, forged),
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

// BenchmarkAppend appends 10k entries of 200 bytes with their tiles
// (about 670) per Update, as an ingest does.
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
		a.Tiles = tiles(n, n+batch)
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

// openV1 returns a new database migrated to schema version 1 only.
func openV1(t *testing.T) string {
	t.Helper()
	dsn := server.NewDatabase(t)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := loadMigrations(migrationFS, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	s, err := openWith(t.Context(), cfg, slog.New(slog.DiscardHandler), ms[:1])
	if err != nil {
		t.Fatalf("open at version 1: %v", err)
	}
	s.Close()
	return dsn
}

// TestUpgradeFromV1 opens a schema-1 database holding a real ledger (its
// entries, batches, hosts and checkpoints, with the stored hashes of
// tlog.StoredHashes) and old-style leases and timeline rows: Open converts
// the hashes into the tiles an ingest would have written, drops them, and
// Verify, who-had, Timeline and further ingests work on the result.
func TestUpgradeFromV1(t *testing.T) {
	ctx := t.Context()
	src, _ := open(t)
	w := ledgertest.NewWorld(t, src, src)
	var cps []ledger.Checkpoint
	for i, n := range []int{15, 30, 7, 1, 300} {
		cps = append(cps, w.Ingest(t, ledgertest.Filler(t, "h1", i*1000, n)...))
	}
	size := cps[len(cps)-1].Size

	dsn := openV1(t)
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	hs := ledgertest.StoredHashes(t, w.Bodies)
	if err := src.Entries(ctx, 0, size, func(e ledger.Entry) error {
		_, err := c.Exec(ctx, "INSERT INTO entries (idx, batch, body) VALUES ($1, $2, $3)", e.Index, e.Batch, e.Body)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for id, h := range hs {
		if _, err := c.Exec(ctx, "INSERT INTO hashes (id, hash) VALUES ($1, $2)", id, h[:]); err != nil {
			t.Fatal(err)
		}
	}
	if err := src.Batches(ctx, func(b ledger.Batch) error {
		_, err := c.Exec(ctx, "INSERT INTO batches (id, host, first_idx, count, root, sig) VALUES ($1, $2, $3, $4, $5, $6)",
			b.ID, b.Host, b.First, b.Count, b.Root[:], b.Sig)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	hosts, err := src.Hosts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts {
		if _, err := c.Exec(ctx, "INSERT INTO hosts (name, key, added) VALUES ($1, $2, $3)", h.Name, h.Key, toNull(h.Added)); err != nil {
			t.Fatal(err)
		}
	}
	for _, cp := range cps {
		if _, err := c.Exec(ctx, "INSERT INTO checkpoints (size, root, note, time) VALUES ($1, $2, $3, $4)", cp.Size, cp.Root[:], cp.Note, toNull(cp.Time)); err != nil {
			t.Fatal(err)
		}
	}
	// Schema-1 leases (one ended, one held) and timeline rows.
	if _, err := c.Exec(ctx, `INSERT INTO leases (ip, mac, vm, host, from_ts, to_ts, start_idx, end_idx) VALUES
		('192.0.2.9', 'm', 'a', 'h1', $1, $2, 3, 8), ('192.0.2.9', 'm', 'b', 'h1', $3, NULL, 9, -1)`, at(1), at(5), at(6)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, `INSERT INTO vm_events (vm, idx) VALUES ('a', 8), ('a', 3), ('b', 9), ('a', 40)`); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, dsn, nil)
	if err != nil {
		t.Fatalf("Open of a version-1 database: %v", err)
	}
	defer s.Close()
	// Schema 3 drops the old index rows: the first query rebuilds them
	// from the entries.
	if n, err := s.Indexed(ctx); err != nil || n != 0 {
		t.Errorf("Indexed() after upgrade = %d, %v; want 0", n, err)
	}
	for _, table := range []string{"leases", "lease_ends", "runs", "vm_timeline"} {
		if n := countRows(t, s, table); n != 0 {
			t.Errorf("%d rows in %s after upgrade, want 0 (rebuilt by CatchUp)", n, table)
		}
	}
	var hashes bool
	if err := c.QueryRow(ctx, "SELECT to_regclass('hashes') IS NOT NULL").Scan(&hashes); err != nil || hashes {
		t.Errorf("hashes table after upgrade: exists %v, %v; want dropped", hashes, err)
	}
	// The tiles are the ones the ingests wrote.
	var keys []ledger.TileKey
	for _, tl := range tlog.NewTiles(ledger.TileHeight, 0, size) {
		keys = append(keys, ledger.TileKey{L: tl.L, N: tl.N})
	}
	want := mustReadTiles(t, src, keys...)
	if diff := cmp.Diff(want, mustReadTiles(t, s, keys...)); diff != "" {
		t.Errorf("tiles after upgrade (-ingested +converted):\n%s", diff)
	}
	if n := countRows(t, s, "tiles"); n != int64(len(keys)) {
		t.Errorf("%d tile rows, want %d", n, len(keys))
	}
	l, err := ledger.New(s, w.LogKey, ledger.Options{Now: func() time.Time { return ledgertest.T0 }})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := l.Verify(ctx)
	if err != nil || !rep.OK() || rep.Size != size {
		t.Fatalf("Verify after upgrade = %+v, %v; want clean at %d", rep, err, size)
	}
	// The indexes rebuilt from the entries: schema 1's invented rows are
	// gone, filler events are on their VMs' timelines, Verify is clean.
	if n, err := l.CatchUp(ctx); err != nil || n != size {
		t.Fatalf("CatchUp after upgrade = %d, %v; want %d", n, err, size)
	}
	if got, err := s.LeasesAt(ctx, netip.MustParseAddr("192.0.2.9"), at(9), 10); err != nil || len(got) != 0 {
		t.Errorf("LeasesAt after the rebuild = %+v, %v; want none", got, err)
	}
	if got, err := s.Timeline(ctx, "a"); err != nil || len(got) != 0 {
		t.Errorf("Timeline(a) after the rebuild = %v, %v; want none", got, err)
	}
	if got, err := s.Timeline(ctx, "vm-3"); err != nil || len(got) == 0 {
		t.Errorf("Timeline(vm-3) after the rebuild = %v, %v; want the filler's events", got, err)
	}
	if rep, err := l.Verify(ctx); err != nil || !rep.OK() {
		t.Fatalf("Verify after the rebuild = %+v, %v", rep, err)
	}
	// Ingest continues on the converted tree.
	w2 := &ledgertest.World{Log: l, Store: s, Tamper: s, Hosts: w.Hosts, Bodies: w.Bodies, LogKey: w.LogKey}
	w2.Ingest(t, ledgertest.Filler(t, "h1", 9000, 20)...)
	if rep, err := l.Verify(ctx); err != nil || !rep.OK() || rep.Size != size+20 {
		t.Errorf("Verify after a further ingest = %+v, %v; want clean at %d", rep, err, size+20)
	}
	// Reopening does nothing more.
	s2, err := Open(ctx, dsn, nil)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	s2.Close()
}

// TestUpgradeFromV1Empty: an empty schema-1 database upgrades to an empty
// store, and a version-1 database whose hashes do not cover its entries
// is refused and left at version 1.
func TestUpgradeFromV1Empty(t *testing.T) {
	ctx := t.Context()
	dsn := openV1(t)
	s, err := Open(ctx, dsn, nil)
	if err != nil {
		t.Fatalf("Open of an empty version-1 database: %v", err)
	}
	defer s.Close()
	if n := storeSize(t, s); n != 0 {
		t.Errorf("Size() = %d, want 0", n)
	}
	if n := countRows(t, s, "tiles"); n != 0 {
		t.Errorf("%d tiles, want 0", n)
	}
	var version int
	if err := s.with(ctx, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, "SELECT MAX(version) FROM schema_migrations").Scan(&version)
	}); err != nil || version != 3 {
		t.Errorf("schema version = %d, %v; want 3", version, err)
	}
	if n, err := s.Indexed(ctx); err != nil || n != 0 {
		t.Errorf("Indexed() = %d, %v; want 0", n, err)
	}

	dsn = openV1(t)
	if err := exec(t, dsn, "INSERT INTO entries (idx, batch, body) VALUES (0, 0, 'a'), (1, 0, 'b')"); err != nil {
		t.Fatal(err)
	}
	if err := exec(t, dsn, "INSERT INTO hashes (id, hash) VALUES (0, '\\x00')"); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(ctx, dsn, nil); err == nil {
		s.Close()
		t.Fatal("Open of a version-1 database with missing hashes = nil, want error")
	}
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var hashes, tiles bool
	if err := c.QueryRow(ctx, "SELECT to_regclass('hashes') IS NOT NULL, to_regclass('tiles') IS NOT NULL").Scan(&hashes, &tiles); err != nil || !hashes || tiles {
		t.Errorf("after a failed upgrade: hashes %v, tiles %v, %v; want the version-1 schema", hashes, tiles, err)
	}
}

// TestHolderPlan checks that Holder's statement makes no hash or merge
// join whatever the planner is inclined to: planned with its parameters'
// values (a session's first executions, and a vmtrust who-had's only one)
// and generic, each with nested loops allowed and disabled (what stale
// statistics can amount to: a custom plan once hash-joined whole tables,
// taking a second). No table is scanned whole but checkpoints (one row per
// ingest, which the planner scans when it believes it tiny) and
// index_state (one row), and each of the nine tiles is a probe of its own.
func TestHolderPlan(t *testing.T) {
	s, _ := open(t)
	for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
		for _, nestloop := range []string{"on", "off"} {
			t.Run(mode+",enable_nestloop="+nestloop, func(t *testing.T) {
				plan := explainHolder(t, s, "SET LOCAL plan_cache_mode = "+mode, "SET LOCAL enable_nestloop = "+nestloop)
				checkHolderPlan(t, plan)
			})
		}
	}
}

// explainHolder returns EXPLAIN (FORMAT JSON) of Holder's statement,
// prepared and executed under the settings sets (SET LOCAL, in a
// transaction rolled back).
func explainHolder(t *testing.T, s *Store, sets ...string) []byte {
	t.Helper()
	ctx := t.Context()
	var plan []byte
	simple := pgx.QueryExecModeSimpleProtocol
	err := s.with(ctx, func(c *pgx.Conn) error {
		tx, err := c.Begin(ctx)
		if err != nil {
			return err
		}
		defer func() {
			tx.Rollback(ctx)
			c.Exec(ctx, "DEALLOCATE holder_plan", simple)
		}()
		for _, set := range sets {
			if _, err := tx.Exec(ctx, set, simple); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, "PREPARE holder_plan(text, timestamptz) AS "+holderQuery, simple); err != nil {
			return err
		}
		return tx.QueryRow(ctx, "EXPLAIN (FORMAT JSON) EXECUTE holder_plan('10.0.0.1', '2026-03-01 10:05:00+00')", simple).Scan(&plan)
	})
	if err != nil {
		t.Fatalf("EXPLAIN Holder: %v", err)
	}
	return plan
}

// checkHolderPlan is TestHolderPlan's check of one plan.
func checkHolderPlan(t *testing.T, plan []byte) {
	t.Helper()
	var root []struct{ Plan planNode }
	if err := json.Unmarshal(plan, &root); err != nil || len(root) != 1 {
		t.Fatalf("EXPLAIN Holder: %v: %s", err, plan)
	}
	var scans int
	var bad []string
	var walk func(n planNode)
	walk = func(n planNode) {
		switch {
		case n.NodeType == "Hash Join" || n.NodeType == "Merge Join":
			bad = append(bad, n.NodeType)
		case n.NodeType == "Seq Scan" && n.Relation != "checkpoints" && n.Relation != "index_state":
			bad = append(bad, "Seq Scan on "+n.Relation)
		case strings.HasPrefix(n.NodeType, "Index") && n.Relation == "tiles":
			scans++
		}
		for _, p := range n.Plans {
			walk(p)
		}
	}
	walk(root[0].Plan)
	if scans != 9 {
		bad = append(bad, fmt.Sprintf("%d index scans of tiles, want 9 (3 levels × 3 entries)", scans))
	}
	if len(bad) > 0 {
		t.Errorf("Holder's plan: %s:\n%s", strings.Join(bad, "; "), plan)
	}
}

// planNode is the part of EXPLAIN (FORMAT JSON)'s plan TestHolderPlan reads.
type planNode struct {
	NodeType string     `json:"Node Type"`
	Relation string     `json:"Relation Name"`
	Plans    []planNode `json:"Plans"`
}
