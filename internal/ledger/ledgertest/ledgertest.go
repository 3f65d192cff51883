// Package ledgertest is the conformance suite every ledger.Store passes
// (SQLite and PostgreSQL), driven through ledger.Log: ingest and proofs
// against an independent computation of the tree, forged batches refused
// with nothing written, tampering with each kind of row detected by
// ledger.Log.Verify and by proofs against an earlier checkpoint, the
// lease/run/timeline indexes behind who-had, and transactions that roll
// back; and CrashTest, which kills an ingesting process with SIGKILL
// during sustained writes and checks that every acknowledged event is
// there, tree and checkpoint agree, and ingest continues. Test-only.
package ledgertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/vmtrust/vmtrust/internal/ledger"
)

// Tamperer changes a store's rows directly, bypassing every check.
type Tamperer interface {
	TamperSetBody(ctx context.Context, idx int64, body []byte) error
	TamperDelete(ctx context.Context, idx int64) error
	TamperInsert(ctx context.Context, idx int64, body []byte) error
	TamperSwap(ctx context.Context, i, j int64) error
	TamperSetTile(ctx context.Context, k ledger.TileKey, data []byte) error
	TamperSetCheckpointRoot(ctx context.Context, size int64, root tlog.Hash) error
	TamperSetRunOwner(ctx context.Context, vm, owner string) error
	// The index rows, by the entry that began the lease or run.
	TamperDeleteLeaseEnd(ctx context.Context, start int64) error
	TamperSetLeaseVM(ctx context.Context, start int64, vm string) error
	TamperAddTimeline(ctx context.Context, vm string, idx int64) error
	TamperReopenRun(ctx context.Context, start int64) error
	TamperDeleteRun(ctx context.Context, start int64) error
	// How far the indexes say they reached.
	TamperSetIndexed(ctx context.Context, n int64) error
}

// Opener returns a new, empty store and its tamperer; the test closes it.
type Opener func(t *testing.T) (ledger.Store, Tamperer)

// T0 is the suite's epoch.
var T0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// World is a log on a fresh store with enrolled hosts h1 and h2.
type World struct {
	Log    *ledger.Log
	Store  ledger.Store
	Tamper Tamperer
	Hosts  map[string]note.Signer
	Bodies [][]byte // every entry ingested, in order
	LogKey string   // the log's note signer key
}

// NewWorld opens a store and a log with hosts h1 and h2 enrolled.
func NewWorld(t testing.TB, st ledger.Store, tam Tamperer) *World {
	t.Helper()
	skey, _, err := note.GenerateKey(rand.Reader, "vmtrust.test/ledger")
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.New(st, skey, ledger.Options{Now: func() time.Time { return T0 }})
	if err != nil {
		t.Fatal(err)
	}
	w := &World{Log: l, Store: st, Tamper: tam, Hosts: map[string]note.Signer{}, LogKey: skey}
	for _, h := range []string{"h1", "h2"} {
		s, v, err := note.GenerateKey(rand.Reader, h)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Enroll(context.Background(), v); err != nil {
			t.Fatal(err)
		}
		if w.Hosts[h], err = note.NewSigner(s); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// Ingest signs events as their host and ingests them in one batch.
func (w *World) Ingest(t testing.TB, events ...ledger.Event) ledger.Checkpoint {
	t.Helper()
	b, err := ledger.Sign(w.Hosts[events[0].Host], events...)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := w.Log.Ingest(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	w.Bodies = append(w.Bodies, b.Events...)
	return cp
}

// CatchUp brings the query indexes up to the latest checkpoint (Ingest
// leaves them behind; queries of the Log catch up themselves, a Store's
// do not).
func (w *World) CatchUp(t testing.TB) {
	t.Helper()
	if _, err := w.Log.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Ev is an event of type typ by host at T0+minutes.
func Ev(t testing.TB, typ ledger.Type, host, vm string, minutes int, data any) ledger.Event {
	t.Helper()
	e, err := ledger.NewEvent(typ, host, vm, T0.Add(time.Duration(minutes)*time.Minute), data)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// Filler returns n operator events by host, ~200 bytes each.
func Filler(t testing.TB, host string, from, n int) []ledger.Event {
	out := make([]ledger.Event, n)
	for i := range out {
		out[i] = Ev(t, ledger.OperatorAction, host, fmt.Sprintf("vm-%d", (from+i)%7), from+i,
			map[string]string{"action": "net status", "note": strings.Repeat("x", 60)})
	}
	return out
}

// TestStore runs the suite.
func TestStore(t *testing.T, open Opener) {
	newWorld := func(t *testing.T) *World {
		st, tam := open(t)
		return NewWorld(t, st, tam)
	}
	t.Run("IngestAndProofs", func(t *testing.T) { testIngestAndProofs(t, newWorld(t)) })
	t.Run("Forged", func(t *testing.T) { testForged(t, newWorld(t)) })
	t.Run("Tamper", func(t *testing.T) { testTamper(t, newWorld) })
	t.Run("WhoHad", func(t *testing.T) { testWhoHad(t, newWorld(t)) })
	t.Run("Holder", func(t *testing.T) { testHolder(t, newWorld(t)) })
	t.Run("RewrittenHistory", func(t *testing.T) { testRewrittenHistory(t, newWorld(t)) })
	t.Run("ChangedRun", func(t *testing.T) { testChangedRun(t, newWorld(t)) })
	t.Run("Runs", func(t *testing.T) { testRuns(t, newWorld(t)) })
	t.Run("IndexFollows", func(t *testing.T) { testIndexFollows(t, newWorld(t)) })
	t.Run("IndexState", func(t *testing.T) { testIndexState(t, newWorld(t)) })
	t.Run("LyingStore", func(t *testing.T) { testLyingStore(t, newWorld(t)) })
	t.Run("IndexChunks", func(t *testing.T) { testIndexChunks(t, newWorld) })
	t.Run("TamperIndex", func(t *testing.T) { testTamperIndex(t, newWorld) })
	t.Run("Rollback", func(t *testing.T) { testRollback(t, newWorld(t)) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, newWorld(t)) })
	t.Run("Hosts", func(t *testing.T) { testHosts(t, newWorld(t)) })
}

// StoredHashes is tlog's own computation of the stored hashes of a tree
// of bodies, in storage order (what a schema-1 store kept, one row each).
func StoredHashes(t testing.TB, bodies [][]byte) []tlog.Hash {
	t.Helper()
	var hs []tlog.Hash
	r := hashList(&hs)
	for i, b := range bodies {
		s, err := tlog.StoredHashes(int64(i), b, r)
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, s...)
	}
	return hs
}

// hashList reads stored hashes from *hs by storage index.
func hashList(hs *[]tlog.Hash) tlog.HashReader {
	return tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(ix))
		for i, x := range ix {
			if x < 0 || x >= int64(len(*hs)) {
				return nil, fmt.Errorf("no hash %d", x)
			}
			out[i] = (*hs)[x]
		}
		return out, nil
	})
}

// memTree is the independent computation: tlog's own stored hashes, in
// memory, from the bodies.
func memTree(t testing.TB, bodies [][]byte) (tlog.HashReader, func(n int64) tlog.Hash) {
	hs := StoredHashes(t, bodies)
	r := hashList(&hs)
	return r, func(n int64) tlog.Hash {
		h, err := tlog.TreeHash(n, r)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
}

func testIngestAndProofs(t *testing.T, w *World) {
	ctx := context.Background()
	var cps []ledger.Checkpoint
	from := 0
	for _, n := range []int{1, 7, 100, 3, 64} {
		cps = append(cps, w.Ingest(t, Filler(t, "h1", from, n)...))
		from += n
	}
	_, root := memTree(t, w.Bodies)
	for _, cp := range cps {
		if want := root(cp.Size); cp.Root != want {
			t.Fatalf("checkpoint %d: root %x, want tlog's %x", cp.Size, cp.Root[:4], want[:4])
		}
		size, r, _, err := ledger.ParseCheckpoint(cp.Note, w.Log.Origin(), note.VerifierList(mustVerifier(t, w.Log.VerifierKey())))
		if err != nil || size != cp.Size || r != cp.Root {
			t.Fatalf("checkpoint %d note: %d %x %v", cp.Size, size, r[:4], err)
		}
	}
	if n, err := w.Store.Size(ctx); err != nil || n != int64(from) {
		t.Fatalf("Size = %d, %v; want %d", n, err, from)
	}
	for _, cp := range cps {
		for i := int64(0); i < cp.Size; i++ {
			p, err := w.Log.Prove(ctx, i, cp.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckRecord(p, cp.Size, cp.Root, i, tlog.RecordHash(w.Bodies[i])); err != nil {
				t.Fatalf("inclusion of %d in %d: %v", i, cp.Size, err)
			}
			// ProveEntry: the same proof, with the entry, in one call.
			pr, err := w.Log.ProveEntry(ctx, i, cp.Size, cp.Root)
			if err != nil || pr.Entry.Index != i || !bytes.Equal(pr.Entry.Body, w.Bodies[i]) || !slices.Equal(pr.Proof, p) {
				t.Fatalf("ProveEntry(%d, %d) = entry %d, %d hashes, %v; want the entry and Prove's proof", i, cp.Size, pr.Entry.Index, len(pr.Proof), err)
			}
			wrong := cp.Root
			wrong[0] ^= 1
			if _, err := w.Log.ProveEntry(ctx, i, cp.Size, wrong); !errors.Is(err, ledger.ErrNotInTree) {
				t.Fatalf("ProveEntry(%d, %d) against a wrong root: %v, want ErrNotInTree", i, cp.Size, err)
			}
		}
		for _, old := range cps {
			if old.Size > cp.Size {
				continue
			}
			p, err := w.Log.ProveTree(ctx, old.Size, cp.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckTree(p, cp.Size, cp.Root, old.Size, old.Root); err != nil {
				t.Fatalf("consistency %d → %d: %v", old.Size, cp.Size, err)
			}
		}
	}
	rep, err := w.Log.Verify(ctx)
	if err != nil || !rep.OK() || rep.Size != int64(from) || rep.Root != root(int64(from)) {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
	e, err := w.Log.Entry(ctx, 42)
	if err != nil || string(e.Body) != string(w.Bodies[42]) {
		t.Fatalf("Entry(42) = %q, %v", e.Body, err)
	}
	ask := []int64{170, 0, 42, 170, 174}
	es, err := w.Store.ReadEntries(ctx, ask)
	if err != nil || len(es) != len(ask) {
		t.Fatalf("ReadEntries(%v) = %d entries, %v", ask, len(es), err)
	}
	for k, i := range ask {
		if es[k].Index != i || string(es[k].Body) != string(w.Bodies[i]) {
			t.Errorf("ReadEntries(%v)[%d] = entry %d, want %d", ask, k, es[k].Index, i)
		}
	}
	keys := []ledger.TileKey{{L: 0, N: 1}, {L: 1, N: 0}, {L: 9, N: 9}, {L: 0, N: 1}}
	pes, pts, err := w.Store.ReadProofData(ctx, ask, keys)
	ts, terr := w.Store.ReadTiles(ctx, keys)
	if err != nil || terr != nil || len(pes) != len(ask) || len(pts) != len(keys) {
		t.Fatalf("ReadProofData = %d entries, %d tiles, %v (ReadTiles: %v)", len(pes), len(pts), err, terr)
	}
	for k := range ask {
		if pes[k].Index != es[k].Index || string(pes[k].Body) != string(es[k].Body) {
			t.Errorf("ReadProofData entry %d differs from ReadEntries'", k)
		}
	}
	for k := range keys {
		if string(pts[k]) != string(ts[k]) || (keys[k].L == 9) != (pts[k] == nil) {
			t.Errorf("ReadProofData tile %v = %d bytes, ReadTiles %d", keys[k], len(pts[k]), len(ts[k]))
		}
	}
	if _, err := w.Store.ReadEntries(ctx, []int64{3, int64(from)}); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("ReadEntries of an index beyond the log: %v, want ErrNotFound", err)
	}
	if _, err := w.Log.Entry(ctx, -1); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Entry(-1): %v, want ErrNotFound", err)
	}
}

func mustVerifier(t testing.TB, vkey string) note.Verifier {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func testForged(t *testing.T, w *World) {
	ctx := context.Background()
	cp0 := w.Ingest(t, Filler(t, "h1", 0, 5)...)
	good, err := ledger.Sign(w.Hosts["h1"], Filler(t, "h1", 5, 3)...)
	if err != nil {
		t.Fatal(err)
	}
	stranger, _, _ := note.GenerateKey(rand.Reader, "h3")
	s3, _ := note.NewSigner(stranger)
	fromH3, err := ledger.Sign(s3, Filler(t, "h3", 5, 2)...)
	if err != nil {
		t.Fatal(err)
	}
	// h2's key signing a batch that claims to be h1's.
	h2AsH1, _ := ledger.Sign(w.Hosts["h2"], Filler(t, "h2", 5, 2)...)
	h2AsH1.Host = "h1"
	for i := range h2AsH1.Events {
		h2AsH1.Events[i] = []byte(strings.Replace(string(h2AsH1.Events[i]), `"host":"h2"`, `"host":"h1"`, 1))
	}
	mod := func(f func(b *ledger.SignedBatch)) ledger.SignedBatch {
		b := ledger.SignedBatch{Host: good.Host, Sig: append([]byte(nil), good.Sig...)}
		for _, e := range good.Events {
			b.Events = append(b.Events, append([]byte(nil), e...))
		}
		f(&b)
		return b
	}
	for _, tc := range []struct {
		name string
		b    ledger.SignedBatch
	}{
		{"unenrolled host", fromH3},
		{"another host's key", h2AsH1},
		{"event changed after signing", mod(func(b *ledger.SignedBatch) {
			b.Events[1] = []byte(strings.Replace(string(b.Events[1]), "net status", "net statuz", 1))
		})},
		{"event dropped", mod(func(b *ledger.SignedBatch) { b.Events = b.Events[:2] })},
		{"events reordered", mod(func(b *ledger.SignedBatch) { b.Events[0], b.Events[1] = b.Events[1], b.Events[0] })},
		{"signature flipped", mod(func(b *ledger.SignedBatch) { b.Sig[len(b.Sig)-1] ^= 1 })},
		{"no signature", mod(func(b *ledger.SignedBatch) { b.Sig = nil })},
		{"event of another host", mod(func(b *ledger.SignedBatch) {
			e := Ev(t, ledger.OperatorAction, "h2", "x", 1, nil)
			body, _ := e.Marshal()
			b.Events = [][]byte{body}
			root, _ := ledger.BatchRoot(b.Events)
			b.Sig, _ = w.Hosts["h1"].Sign(ledger.BatchMessage("h1", 1, root))
		})},
		{"non-canonical body, signed", mod(func(b *ledger.SignedBatch) {
			b.Events = [][]byte{[]byte(strings.Replace(string(b.Events[0]), `{"v":1,`, `{"v":1, `, 1))}
			root, _ := ledger.BatchRoot(b.Events)
			b.Sig, _ = w.Hosts["h1"].Sign(ledger.BatchMessage("h1", 1, root))
		})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := w.Log.Ingest(ctx, good, tc.b) // a good batch alongside is not kept either
			if !errors.Is(err, ledger.ErrForged) {
				t.Fatalf("Ingest = %v, want ErrForged", err)
			}
			if n, _ := w.Store.Size(ctx); n != cp0.Size {
				t.Fatalf("Size after a refused ingest = %d, want %d", n, cp0.Size)
			}
			if cp, _ := w.Store.Latest(ctx); cp.Size != cp0.Size || cp.Root != cp0.Root {
				t.Fatalf("latest checkpoint moved to %d", cp.Size)
			}
		})
	}
	if _, err := w.Log.Ingest(ctx, good); err != nil {
		t.Fatalf("the good batch alone: %v", err)
	}
	if rep, err := w.Log.Verify(ctx); err != nil || !rep.OK() {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
}

func testTamper(t *testing.T, newWorld func(*testing.T) *World) {
	ctx := context.Background()
	other := Ev(t, ledger.OperatorAction, "h1", "intruder", 999, map[string]string{"action": "nothing happened"})
	otherBody, _ := other.Marshal()
	for _, tc := range []struct {
		name string
		do   func(w *World) error
	}{
		{"edit", func(w *World) error { return w.Tamper.TamperSetBody(ctx, 5, otherBody) }},
		{"edit, tiles rewritten to match", func(w *World) error {
			// The intruder also recomputes every tile for the new
			// body: Verify sees the old checkpoints' roots (signed) differ.
			bodies := append([][]byte(nil), w.Bodies...)
			bodies[5] = otherBody
			r, _ := memTree(t, bodies)
			if err := w.Tamper.TamperSetBody(ctx, 5, otherBody); err != nil {
				return err
			}
			tiles, err := ledger.TilesFromHashes(int64(len(bodies)), r)
			if err != nil {
				return err
			}
			for _, tl := range tiles {
				if err := w.Tamper.TamperSetTile(ctx, tl.Key, tl.Data); err != nil {
					return err
				}
			}
			return nil
		}},
		{"delete", func(w *World) error { return w.Tamper.TamperDelete(ctx, 5) }},
		{"delete the last", func(w *World) error { return w.Tamper.TamperDelete(ctx, int64(len(w.Bodies)-1)) }},
		{"insert", func(w *World) error { return w.Tamper.TamperInsert(ctx, 5, otherBody) }},
		{"reorder", func(w *World) error { return w.Tamper.TamperSwap(ctx, 5, 6) }},
		{"tile row", func(w *World) error {
			// One hash of the first level-1 tile (tree level 4) changed.
			k := ledger.TileKey{L: 1, N: 0}
			d, err := w.Store.ReadTiles(ctx, []ledger.TileKey{k})
			if err != nil || d[0] == nil {
				return fmt.Errorf("tile %v: %v", k, err)
			}
			d[0][0] ^= 1
			return w.Tamper.TamperSetTile(ctx, k, d[0])
		}},
		{"tile row, level 0", func(w *World) error {
			k := ledger.TileKey{L: 0, N: 1}
			d, err := w.Store.ReadTiles(ctx, []ledger.TileKey{k})
			if err != nil || d[0] == nil {
				return fmt.Errorf("tile %v: %v", k, err)
			}
			d[0][len(d[0])-1] ^= 1
			return w.Tamper.TamperSetTile(ctx, k, d[0])
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			early := w.Ingest(t, Filler(t, "h1", 0, 20)...)
			w.Ingest(t, Filler(t, "h1", 20, 10)...)
			late := w.Ingest(t, Filler(t, "h2", 30, 10)...)
			if rep, err := w.Log.Verify(ctx); err != nil || !rep.OK() {
				t.Fatalf("Verify before tampering = %+v, %v", rep, err)
			}
			if err := tc.do(w); err != nil {
				t.Fatalf("tampering: %v", err)
			}
			rep, err := w.Log.Verify(ctx)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if rep.OK() {
				t.Fatalf("Verify after %s found nothing", tc.name)
			}
			t.Logf("Verify: %d problems, first: %s", len(rep.Problems), rep.Problems[0].What)
			// A checker who kept the early (and the late) checkpoint:
			// some entry's proof must now fail.
			for _, cp := range []ledger.Checkpoint{early, late} {
				if tc.name == "delete the last" && cp.Size == early.Size {
					continue // the early tree does not hold it
				}
				if proofsHold(ctx, w, cp) {
					t.Errorf("every entry of checkpoint %d still proves after %s", cp.Size, tc.name)
				}
			}
		})
	}
}

// proofsHold says whether every entry of cp's tree, read from the store,
// proves against cp (the checker's own copy) and the store's tree is
// consistent with cp.
func proofsHold(ctx context.Context, w *World, cp ledger.Checkpoint) bool {
	for i := int64(0); i < cp.Size; i++ {
		e, err := w.Log.Entry(ctx, i)
		if err != nil {
			return false
		}
		p, err := w.Log.Prove(ctx, i, cp.Size)
		if err != nil || tlog.CheckRecord(p, cp.Size, cp.Root, i, tlog.RecordHash(e.Body)) != nil {
			return false
		}
	}
	latest, err := w.Store.Latest(ctx)
	if err != nil {
		return false
	}
	size, err := w.Store.Size(ctx)
	if err != nil || size != latest.Size {
		return false
	}
	th, err := tlog.TreeHash(latest.Size, ledger.Hashes(ctx, w.Store))
	if err != nil || th != latest.Root {
		return false
	}
	p, err := w.Log.ProveTree(ctx, cp.Size, latest.Size)
	return err == nil && tlog.CheckTree(p, latest.Size, latest.Root, cp.Size, cp.Root) == nil
}

func lease(mac, ip string) ledger.LeaseData { return ledger.LeaseData{MAC: mac, IP: ip} }

func testWhoHad(t *testing.T, w *World) {
	ctx := context.Background()
	run := func(img string) ledger.RunData {
		return ledger.RunData{Name: "n", Owner: "alice", Image: img, List: "list-1", Endorser: "/CN=e", Class: 2}
	}
	// vm-a holds 10.0.0.5 from 10 to 30 on h1; vm-b gets the same address
	// from 40 on h1; vm-c holds 10.0.0.7 on h1 from 10, migrates to h2 at
	// 50 (lease ends on h1, starts on h2) and stops at 70.
	w.Ingest(t,
		Ev(t, ledger.VMStarted, "h1", "vm-a", 9, run("aaaa")),
		Ev(t, ledger.LeaseStart, "h1", "vm-a", 10, lease("52:54:00:00:00:0a", "10.0.0.5")),
		Ev(t, ledger.VMStarted, "h1", "vm-c", 9, run("cccc")),
		Ev(t, ledger.LeaseStart, "h1", "vm-c", 10, lease("52:54:00:00:00:0c", "10.0.0.7")),
		Ev(t, ledger.LeaseStart, "h1", "vm-c", 10, lease("52:54:00:00:00:0c", "fd00::7")),
	)
	w.Ingest(t, Filler(t, "h1", 100, 10)...)
	w.Ingest(t,
		Ev(t, ledger.LeaseEndType, "h1", "vm-a", 30, lease("52:54:00:00:00:0a", "10.0.0.5")),
		Ev(t, ledger.VMStopped, "h1", "vm-a", 31, nil),
		Ev(t, ledger.VMStarted, "h1", "vm-b", 39, run("bbbb")),
		Ev(t, ledger.LeaseStart, "h1", "vm-b", 40, lease("52:54:00:00:00:0b", "10.0.0.5")),
		Ev(t, ledger.LeaseEndType, "h1", "vm-c", 50, lease("52:54:00:00:00:0c", "10.0.0.7")),
	)
	w.Ingest(t,
		Ev(t, ledger.VMMigrated, "h2", "vm-c", 50, ledger.MigrateData{From: "h1", Run: run("cccc")}),
		Ev(t, ledger.LeaseStart, "h2", "vm-c", 50, lease("52:54:00:00:00:0c", "10.0.0.7")),
	)
	w.Ingest(t,
		Ev(t, ledger.LeaseEndType, "h2", "vm-c", 70, lease("52:54:00:00:00:0c", "10.0.0.7")),
		Ev(t, ledger.VMStopped, "h2", "vm-c", 70, nil),
	)
	// vm-d's whole life in one ingest: a lease of 10.0.0.9 from 80 to 85,
	// the same binding again from 86, the VM stopped at 90.
	w.Ingest(t,
		Ev(t, ledger.VMStarted, "h1", "vm-d", 80, run("dddd")),
		Ev(t, ledger.LeaseStart, "h1", "vm-d", 80, lease("52:54:00:00:00:0d", "10.0.0.9")),
		Ev(t, ledger.LeaseEndType, "h1", "vm-d", 85, lease("52:54:00:00:00:0d", "10.0.0.9")),
		Ev(t, ledger.LeaseStart, "h1", "vm-d", 86, lease("52:54:00:00:00:0d", "10.0.0.9")),
		Ev(t, ledger.LeaseEndType, "h1", "vm-d", 90, lease("52:54:00:00:00:0d", "10.0.0.9")),
		Ev(t, ledger.VMStopped, "h1", "vm-d", 90, nil),
	)
	at := func(m int) time.Time { return T0.Add(time.Duration(m) * time.Minute) }
	for _, tc := range []struct {
		ip        string
		min       int
		vm, host  string // "" : no lease
		image     string
		from, to  int // minutes; to -1: held
		proofsMin int
	}{
		{"10.0.0.5", 5, "", "", "", 0, 0, 0},
		{"10.0.0.5", 10, "vm-a", "h1", "aaaa", 10, 30, 3},
		{"10.0.0.5", 29, "vm-a", "h1", "aaaa", 10, 30, 3},
		{"10.0.0.5", 30, "", "", "", 0, 0, 0}, // ended at 30
		{"10.0.0.5", 35, "", "", "", 0, 0, 0},
		{"10.0.0.5", 40, "vm-b", "h1", "bbbb", 40, -1, 2},
		{"10.0.0.5", 1000, "vm-b", "h1", "bbbb", 40, -1, 2},
		{"10.0.0.7", 20, "vm-c", "h1", "cccc", 10, 50, 3},
		{"10.0.0.7", 50, "vm-c", "h2", "cccc", 50, 70, 3},
		{"10.0.0.7", 69, "vm-c", "h2", "cccc", 50, 70, 3},
		{"10.0.0.7", 70, "", "", "", 0, 0, 0},
		{"fd00::7", 60, "vm-c", "h1", "", 10, -1, 1}, // a lease never ended; vm-c's run on h1 ended at 50
		{"::ffff:10.0.0.5", 12, "vm-a", "h1", "aaaa", 10, 30, 3},
		{"10.0.0.9", 82, "vm-d", "h1", "dddd", 80, 85, 3},
		{"10.0.0.9", 86, "vm-d", "h1", "dddd", 86, 90, 3},
		{"10.0.0.9", 90, "", "", "", 0, 0, 0},
	} {
		t.Run(fmt.Sprintf("%s@%d", tc.ip, tc.min), func(t *testing.T) {
			ans, err := w.Log.WhoHad(ctx, netip.MustParseAddr(tc.ip), at(tc.min))
			if tc.vm == "" {
				if !errors.Is(err, ledger.ErrNoLease) {
					t.Fatalf("WhoHad = %+v, %v; want ErrNoLease", ans, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			l := ans.Lease
			if l.VM != tc.vm || l.Host != tc.host || !l.From.Equal(at(tc.from)) || (tc.to < 0) != l.To.IsZero() || tc.to >= 0 && !l.To.Equal(at(tc.to)) {
				t.Fatalf("lease = %+v, want %s on %s from %d to %d", l, tc.vm, tc.host, tc.from, tc.to)
			}
			if tc.image == "" {
				if ans.Run != nil {
					t.Fatalf("run = %+v, want none", ans.Run)
				}
			} else if ans.Run == nil || ans.Run.Image != tc.image || ans.Run.Host != tc.host || ans.Run.Owner != "alice" {
				t.Fatalf("run = %+v, want image %s on %s", ans.Run, tc.image, tc.host)
			}
			if len(ans.Proofs) < tc.proofsMin {
				t.Fatalf("%d proofs, want ≥ %d", len(ans.Proofs), tc.proofsMin)
			}
			for _, p := range ans.Proofs {
				if err := tlog.CheckRecord(p.Proof, ans.Checkpoint.Size, ans.Checkpoint.Root, p.Entry.Index, tlog.RecordHash(p.Entry.Body)); err != nil {
					t.Fatalf("proof of %d: %v", p.Entry.Index, err)
				}
			}
		})
	}
	tl, cp, err := w.Log.Timeline(ctx, "vm-c")
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, p := range tl {
		types = append(types, string(p.Event.Type)+"@"+p.Event.Host)
		if err := tlog.CheckRecord(p.Proof, cp.Size, cp.Root, p.Entry.Index, tlog.RecordHash(p.Entry.Body)); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := strings.Join(types, " "), "vm.started@h1 lease.start@h1 lease.start@h1 lease.end@h1 vm.migrated@h2 lease.start@h2 lease.end@h2 vm.stopped@h2"; got != want {
		t.Fatalf("timeline(vm-c) = %s\nwant %s", got, want)
	}
}

// testHolder checks Store.Holder directly: the checkpoint, the lease and
// the run it returns, and the nils.
func testHolder(t *testing.T, w *World) {
	ctx := context.Background()
	ip := netip.MustParseAddr("10.9.0.7")
	at := func(m int) time.Time { return T0.Add(time.Duration(m) * time.Minute) }
	if _, err := w.Store.Holder(ctx, ip, at(5)); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("Holder on an empty log: %v, want ErrNotFound", err)
	}
	run := ledger.RunData{Name: "n", Owner: "bob", Image: "cd34", List: "l", Endorser: "/CN=e"}
	w.Ingest(t, Ev(t, ledger.LeaseStart, "h1", "vm-x", 1, lease("52:54:00:00:00:07", ip.String()))) // no run yet
	w.Ingest(t,
		Ev(t, ledger.VMStarted, "h1", "vm-x", 2, run),
		Ev(t, ledger.LeaseEndType, "h1", "vm-x", 3, lease("52:54:00:00:00:07", ip.String())),
		Ev(t, ledger.LeaseStart, "h1", "vm-x", 4, lease("52:54:00:00:00:07", ip.String())),
		Ev(t, ledger.VMStopped, "h1", "vm-x", 6, nil))
	cp := w.Ingest(t, Filler(t, "h2", 100, 300)...) // level-2 tiles exist
	w.CatchUp(t)
	for _, tc := range []struct {
		name       string
		ip         netip.Addr
		at         time.Time
		leaseStart int64 // -1: no lease
		leaseEnd   int64
		runStart   int64 // -1: no run
	}{
		{"before any lease", ip, at(0), -1, 0, -1},
		{"first lease, no run yet", ip, at(1), 0, 2, -1},
		{"first lease, run started", ip, at(2), 0, 2, 1},
		{"second lease, running", ip, at(5), 3, -1, 1},
		{"second lease, run stopped", ip, at(7), 3, -1, -1},
		{"another address", netip.MustParseAddr("10.9.0.8"), at(5), -1, 0, -1},
	} {
		h, err := w.Store.Holder(ctx, tc.ip, tc.at)
		if err != nil {
			t.Fatalf("%s: Holder: %v", tc.name, err)
		}
		if h.Checkpoint.Size != cp.Size || h.Checkpoint.Root != cp.Root || string(h.Checkpoint.Note) != string(cp.Note) {
			t.Errorf("%s: checkpoint %d, want the latest, %d", tc.name, h.Checkpoint.Size, cp.Size)
		}
		switch {
		case tc.leaseStart < 0 && h.Lease != nil:
			t.Errorf("%s: lease %+v, want none", tc.name, *h.Lease)
		case tc.leaseStart >= 0 && (h.Lease == nil || h.Lease.Start != tc.leaseStart || h.Lease.End != tc.leaseEnd || h.Lease.VM != "vm-x" || h.Lease.MAC != "52:54:00:00:00:07" || h.Lease.IP != ip):
			t.Errorf("%s: lease %+v, want start %d end %d", tc.name, h.Lease, tc.leaseStart, tc.leaseEnd)
		}
		switch {
		case tc.runStart < 0 && h.Run != nil:
			t.Errorf("%s: run %+v, want none", tc.name, *h.Run)
		case tc.runStart >= 0 && (h.Run == nil || h.Run.Start != tc.runStart || h.Run.Owner != "bob" || h.Run.Image != "cd34" || h.Run.End != 4 || !h.Run.To.Equal(at(6))):
			t.Errorf("%s: run %+v, want the run started at %d", tc.name, h.Run, tc.runStart)
		}
		// What the proofs need may come along: each entry returned is
		// the stored one, each level-0 tile holds its leaf hash.
		var used []int64
		for _, x := range []int64{tc.leaseStart, tc.leaseEnd, tc.runStart} {
			if x >= 0 && (x != tc.leaseEnd || tc.leaseStart >= 0) {
				used = append(used, x)
			}
		}
		if len(h.Data.Entries) != len(used) {
			t.Errorf("%s: Data has %d entries, want those of %v", tc.name, len(h.Data.Entries), used)
		}
		for _, x := range used {
			for _, k := range []ledger.TileKey{{L: 0, N: x >> ledger.TileHeight}, {L: 1, N: x >> (2 * ledger.TileHeight)}, {L: 2, N: x >> (3 * ledger.TileHeight)}} {
				stored, err := w.Store.ReadTiles(ctx, []ledger.TileKey{k})
				if err == nil && stored[0] != nil && !slices.ContainsFunc(h.Data.Tiles, func(td ledger.TileData) bool { return td.Key == k }) {
					t.Errorf("%s: Data lacks %v, which is stored, of entry %d", tc.name, k, x)
				}
			}
		}
		for _, e := range h.Data.Entries {
			if !slices.Contains(used, e.Index) || string(e.Body) != string(w.Bodies[e.Index]) {
				t.Errorf("%s: Data has entry %d %q, want one of %v as stored", tc.name, e.Index, e.Body, used)
			}
		}
		for _, td := range h.Data.Tiles {
			if td.Key.L >= 1 && td.Key.L <= 2 && slices.ContainsFunc(used, func(x int64) bool { return td.Key.N == x>>((td.Key.L+1)*ledger.TileHeight) }) {
				continue // its hashes are checked by who-had's proofs
			}
			i := slices.IndexFunc(used, func(x int64) bool { return td.Key == ledger.TileKey{L: 0, N: x >> ledger.TileHeight} })
			if i < 0 {
				t.Errorf("%s: Data has %v, want the level-0, 1 or 2 tile of one of %v", tc.name, td.Key, used)
				continue
			}
			x := used[i]
			off := int(x%(1<<ledger.TileHeight)) * tlog.HashSize
			if len(td.Data) < off+tlog.HashSize || tlog.Hash(td.Data[off:off+tlog.HashSize]) != tlog.RecordHash(w.Bodies[x]) {
				t.Errorf("%s: %v does not hold entry %d's record hash", tc.name, td.Key, x)
			}
		}
	}

	// A lease whose end is 300 entries after its start: their level-0
	// and level-1 tiles differ, their level-2 tile is the same. Each tile
	// comes once, as stored.
	ip2 := netip.MustParseAddr("10.9.0.9")
	start := w.Ingest(t, Ev(t, ledger.LeaseStart, "h1", "vm-y", 500, lease("52:54:00:00:00:09", ip2.String()))).Size - 1
	w.Ingest(t, Filler(t, "h2", 501, 300)...)
	end := w.Ingest(t, Ev(t, ledger.LeaseEndType, "h1", "vm-y", 900, lease("52:54:00:00:00:09", ip2.String()))).Size - 1
	w.CatchUp(t)
	h, err := w.Store.Holder(ctx, ip2, at(600))
	if err != nil || h.Lease == nil || h.Lease.Start != start || h.Lease.End != end {
		t.Fatalf("Holder of %v: %+v, %v; want the lease of entries %d to %d", ip2, h.Lease, err, start, end)
	}
	want := map[ledger.TileKey]bool{}
	for _, x := range []int64{start, end} {
		for L := range 3 {
			want[ledger.TileKey{L: L, N: x >> ((L + 1) * ledger.TileHeight)}] = true
		}
	}
	if len(want) != 5 {
		t.Fatalf("entries %d and %d share %d tiles; the case wants 1", start, end, 6-len(want))
	}
	got := map[ledger.TileKey]bool{}
	for _, td := range h.Data.Tiles {
		if got[td.Key] {
			t.Errorf("Holder of %v: %v twice", ip2, td.Key)
		}
		got[td.Key] = true
		stored, err := w.Store.ReadTiles(ctx, []ledger.TileKey{td.Key})
		if err != nil || !bytes.Equal(stored[0], td.Data) {
			t.Errorf("Holder of %v: %v is not the stored tile (%v)", ip2, td.Key, err)
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("Holder of %v: tiles %v, want %v", ip2, got, want)
	}
}

// testRewrittenHistory: an intruder edits an entry and rewrites the
// tiles and the latest checkpoint's root column to match (the signed note
// cannot be). The log must not sign a new checkpoint over that history,
// and who-had and timelines must refuse to prove against the row.
func testRewrittenHistory(t *testing.T, w *World) {
	ctx := context.Background()
	ip := netip.MustParseAddr("10.9.1.1")
	w.Ingest(t, Ev(t, ledger.VMStarted, "h1", "vm-r", 1, ledger.RunData{Owner: "alice"}),
		Ev(t, ledger.LeaseStart, "h1", "vm-r", 2, lease("52:54:00:00:01:01", ip.String())))
	cp := w.Ingest(t, Filler(t, "h1", 10, 20)...)
	other, _ := Ev(t, ledger.OperatorAction, "h1", "intruder", 999, map[string]string{"action": "nothing happened"}).Marshal()
	bodies := append([][]byte(nil), w.Bodies...)
	bodies[5] = other
	r, root := memTree(t, bodies)
	tiles, err := ledger.TilesFromHashes(int64(len(bodies)), r)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Tamper.TamperSetBody(ctx, 5, other); err != nil {
		t.Fatal(err)
	}
	for _, tl := range tiles {
		if err := w.Tamper.TamperSetTile(ctx, tl.Key, tl.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Tamper.TamperSetCheckpointRoot(ctx, cp.Size, root(cp.Size)); err != nil {
		t.Fatal(err)
	}
	b, err := ledger.Sign(w.Hosts["h1"], Filler(t, "h1", 40, 3)...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Log.Ingest(ctx, b); !errors.Is(err, ledger.ErrUnsigned) {
		t.Errorf("Ingest over a rewritten history: %v, want ErrUnsigned", err)
	}
	if n, err := w.Store.Size(ctx); err != nil || n != cp.Size {
		t.Errorf("Size after the refused ingest = %d, %v; want %d", n, err, cp.Size)
	}
	if _, err := w.Log.WhoHad(ctx, ip, T0.Add(3*time.Minute)); !errors.Is(err, ledger.ErrUnsigned) {
		t.Errorf("WhoHad against the rewritten checkpoint row: %v, want ErrUnsigned", err)
	}
	if _, _, err := w.Log.Timeline(ctx, "vm-r"); !errors.Is(err, ledger.ErrUnsigned) {
		t.Errorf("Timeline against the rewritten checkpoint row: %v, want ErrUnsigned", err)
	}
	if rep, err := w.Log.Verify(ctx); err != nil || rep.OK() {
		t.Errorf("Verify = %+v, %v; want problems", rep, err)
	}
}

// testChangedRun: a run row's owner changed in the database; who-had
// proves the run's start event and must notice it says another owner.
func testChangedRun(t *testing.T, w *World) {
	ctx := context.Background()
	ip := netip.MustParseAddr("10.9.2.1")
	w.Ingest(t, Ev(t, ledger.VMStarted, "h1", "vm-o", 1, ledger.RunData{Owner: "alice", Image: "ab"}),
		Ev(t, ledger.LeaseStart, "h1", "vm-o", 2, lease("52:54:00:00:02:01", ip.String())))
	at := T0.Add(3 * time.Minute)
	ans, err := w.Log.WhoHad(ctx, ip, at)
	if err != nil || ans.Run == nil || ans.Run.Owner != "alice" {
		t.Fatalf("WhoHad before = %+v, %v", ans, err)
	}
	if err := w.Tamper.TamperSetRunOwner(ctx, "vm-o", "mallory"); err != nil {
		t.Fatal(err)
	}
	if ans, err := w.Log.WhoHad(ctx, ip, at); !errors.Is(err, ledger.ErrIndexChanged) {
		t.Errorf("WhoHad after the run's owner was changed = %+v, %v; want ErrIndexChanged", ans, err)
	}
}

func testRuns(t *testing.T, w *World) {
	ctx := context.Background()
	mk := func(host, vm string, m int, img, owner, endorser string) ledger.Event {
		return Ev(t, ledger.VMStarted, host, vm, m, ledger.RunData{Image: img, Owner: owner, Endorser: endorser})
	}
	w.Ingest(t, mk("h1", "a", 10, "img1", "alice", "/CN=e1"), mk("h1", "b", 20, "img2", "bob", "/CN=e1"))
	w.Ingest(t, mk("h2", "c", 30, "img1", "bob", "/CN=e2"), Ev(t, ledger.VMStopped, "h2", "c", 35, nil))
	w.Ingest(t, Ev(t, ledger.VMStopped, "h1", "a", 40, nil))
	at := func(m int) time.Time { return T0.Add(time.Duration(m) * time.Minute) }
	for _, tc := range []struct {
		name string
		f    ledger.RunFilter
		want string
	}{
		{"all", ledger.RunFilter{}, "a b c"},
		{"image", ledger.RunFilter{Image: "img1"}, "a c"},
		{"endorser", ledger.RunFilter{Endorser: "/CN=e1"}, "a b"},
		{"owner", ledger.RunFilter{Owner: "bob"}, "b c"},
		{"host", ledger.RunFilter{Host: "h2"}, "c"},
		{"image in [36, 50)", ledger.RunFilter{Image: "img1", From: at(36), To: at(50)}, "a"},
		{"before 15", ledger.RunFilter{To: at(15)}, "a"},
		{"after 41", ledger.RunFilter{From: at(41)}, "b"},
		{"limit", ledger.RunFilter{Limit: 2}, "a b"},
	} {
		rs, err := w.Log.Runs(ctx, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rs {
			got = append(got, r.VM)
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("Runs(%s) = %v, want %s", tc.name, got, tc.want)
		}
	}
}

func testRollback(t *testing.T, w *World) {
	ctx := context.Background()
	cp := w.Ingest(t, Filler(t, "h1", 0, 3)...)
	boom := errors.New("boom")
	err := w.Store.Update(ctx, func(tx ledger.Tx) error {
		if err := tx.Append(ctx, ledger.Append{Entries: []ledger.Entry{{Index: 3, Batch: 3, Body: []byte("x")}}}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want boom", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	err = w.Store.Update(cctx, func(tx ledger.Tx) error {
		err := tx.Append(cctx, ledger.Append{Entries: []ledger.Entry{{Index: 3, Batch: 3, Body: []byte("x")}}})
		cancel()
		return err
	})
	if err == nil {
		t.Fatal("Update with its context cancelled inside committed")
	}
	err = w.Store.Update(ctx, func(tx ledger.Tx) error {
		return tx.Append(ctx, ledger.Append{Entries: []ledger.Entry{{Index: 7, Batch: 7, Body: []byte("x")}}})
	})
	if err == nil {
		t.Fatal("Append of entry 7 to a log of 3 succeeded")
	}
	if n, _ := w.Store.Size(ctx); n != cp.Size {
		t.Fatalf("Size = %d after rolled-back updates, want %d", n, cp.Size)
	}
	if rep, err := w.Log.Verify(ctx); err != nil || !rep.OK() {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
}

func testConcurrent(t *testing.T, w *World) {
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			host := []string{"h1", "h2"}[g%2]
			for i := range 5 {
				b, err := ledger.Sign(w.Hosts[host], Filler(t, host, g*100+i*10, 10)...)
				if err == nil {
					_, err = w.Log.Ingest(ctx, b)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	// Verify while the ingests run: each sees the log as of one moment
	// and finds nothing wrong in it.
	verified := make(chan error, 1)
	go func() {
		var first error
		for range 10 {
			rep, err := w.Log.Verify(ctx)
			if err == nil && !rep.OK() {
				err = fmt.Errorf("Verify during ingests: %d problems, first: %s", len(rep.Problems), rep.Problems[0].What)
			}
			if err != nil && first == nil {
				first = err
			}
		}
		verified <- first
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := <-verified; err != nil {
		t.Error(err)
	}
	rep, err := w.Log.Verify(ctx)
	if err != nil || !rep.OK() || rep.Size != 200 {
		t.Fatalf("Verify = %+v, %v; want 200 entries, no problem", rep, err)
	}
}

func testHosts(t *testing.T, w *World) {
	ctx := context.Background()
	_, v, _ := note.GenerateKey(rand.Reader, "h1")
	if err := w.Log.Enroll(ctx, v); err == nil {
		t.Fatal("enrolling another key for h1 succeeded")
	}
	h, err := w.Store.Host(ctx, "h1")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Log.Enroll(ctx, h.Key); err != nil {
		t.Fatalf("enrolling h1's own key again: %v", err)
	}
	if _, err := w.Store.Host(ctx, "nobody"); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("Host(nobody) = %v, want ErrNotFound", err)
	}
	hs, err := w.Store.Hosts(ctx)
	if err != nil || len(hs) != 2 {
		t.Fatalf("Hosts = %v, %v", hs, err)
	}
}

// testIndexFollows: the query indexes follow the log. Ingest leaves them
// behind; Holder answers at the indexed checkpoint; the Log's queries
// catch up first; CatchUp works in chunks ending at checkpoints (an
// ingest larger than a chunk is one); concurrent CatchUps index each
// entry once; AppendIndex refuses a range that does not continue the
// indexes.
func testIndexFollows(t *testing.T, w *World) {
	ctx := context.Background()
	ip := netip.MustParseAddr("10.0.0.9")
	indexed := func() int64 {
		t.Helper()
		n, err := w.Store.Indexed(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	w.Ingest(t, Ev(t, ledger.VMStarted, "h1", "vm-x", 1, ledger.RunData{Name: "x", Owner: "alice", Image: "aa"}),
		Ev(t, ledger.LeaseStart, "h1", "vm-x", 2, lease("52:54:00:00:00:09", ip.String())))
	if n := indexed(); n != 0 {
		t.Fatalf("Indexed after an ingest = %d, want 0 (the indexes follow)", n)
	}
	if _, err := w.Store.Holder(ctx, ip, T0.Add(5*time.Minute)); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("Holder before any indexing: %v, want ErrNotFound (no checkpoint indexed)", err)
	}
	first := w.Ingest(t, Filler(t, "h2", 10, 3)...)
	if n, err := w.Log.CatchUp(ctx); err != nil || n != first.Size {
		t.Fatalf("CatchUp = %d, %v; want %d", n, err, first.Size)
	}
	// The lease ends in an ingest the indexes have not reached: the store
	// still answers at the indexed checkpoint, the Log catches up.
	last := w.Ingest(t, Ev(t, ledger.LeaseEndType, "h1", "vm-x", 20, lease("52:54:00:00:00:09", ip.String())))
	h, err := w.Store.Holder(ctx, ip, T0.Add(30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if h.Checkpoint.Size != first.Size || h.Latest != last.Size || h.Lease == nil || h.Lease.End != -1 {
		t.Fatalf("Holder while behind = checkpoint %d latest %d lease %+v; want %d, %d, the lease still open", h.Checkpoint.Size, h.Latest, h.Lease, first.Size, last.Size)
	}
	if ans, err := w.Log.WhoHad(ctx, ip, T0.Add(30*time.Minute)); !errors.Is(err, ledger.ErrNoLease) {
		t.Fatalf("WhoHad after the end = %+v, %v; want ErrNoLease (caught up)", ans, err)
	}
	if n := indexed(); n != last.Size {
		t.Fatalf("Indexed after WhoHad = %d, want %d", n, last.Size)
	}
	ans, err := w.Log.WhoHad(ctx, ip, T0.Add(10*time.Minute))
	if err != nil || ans.Checkpoint.Size != last.Size || ans.Lease.End != last.Size-1 {
		t.Fatalf("WhoHad during the lease = %+v, %v", ans, err)
	}

	// Chunks of 13: ingests of 6 and 6 (one chunk), 16 (larger than a
	// chunk), 6 and 2;
	// four Logs on the store catch up at once.
	var logs []*ledger.Log
	for range 4 {
		l, err := ledger.New(w.Store, w.LogKey, ledger.Options{IndexChunk: 13})
		if err != nil {
			t.Fatal(err)
		}
		logs = append(logs, l)
	}
	var events []ledger.Event
	for i, n := range []int{3, 3, 8, 3, 1} {
		var b []ledger.Event
		for j := range n {
			m := 100 + 10*i + j
			b = append(b, Ev(t, ledger.VMStarted, "h1", fmt.Sprintf("vm-%d", m%3), m, ledger.RunData{Name: "r", Owner: fmt.Sprint(m)}),
				Ev(t, ledger.VMStopped, "h1", fmt.Sprintf("vm-%d", m%3), m, nil))
		}
		w.Ingest(t, b...)
		events = append(events, b...)
	}
	end, err := w.Store.Latest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, len(logs))
	for _, l := range logs {
		go func() {
			n, err := l.CatchUp(ctx)
			if err == nil && n != end.Size {
				err = fmt.Errorf("CatchUp = %d, want %d", n, end.Size)
			}
			errs <- err
		}()
	}
	for range logs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	rs, err := w.Log.Runs(ctx, ledger.RunFilter{Host: "h1", From: T0.Add(99 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	rs = slices.DeleteFunc(rs, func(r ledger.Run) bool { return r.VM == "vm-x" })
	if len(rs) != len(events)/2 {
		t.Errorf("%d runs after concurrent CatchUps, want %d (each entry indexed once)", len(rs), len(events)/2)
	}
	for _, vm := range []string{"vm-0", "vm-1", "vm-2"} {
		ps, _, err := w.Log.Timeline(ctx, vm)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[int64]bool{}
		for _, p := range ps {
			if seen[p.Entry.Index] {
				t.Errorf("timeline of %s: entry %d twice", vm, p.Entry.Index)
			}
			seen[p.Entry.Index] = true
		}
	}

	// Follow indexes what is ingested while it runs, and returns when its
	// context ends.
	fctx, stop := context.WithCancel(ctx)
	followed := make(chan error, 1)
	go func() { followed <- w.Log.Follow(fctx, time.Hour) }()
	waitIndexed := func(n int64) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); indexed() != n; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("Follow: indexed %d after 10 s, want %d", indexed(), n)
			}
		}
	}
	waitIndexed(w.Ingest(t, Filler(t, "h2", 300, 5)...).Size)
	// Follow is now waiting, its ticker an hour away: only the ingest's
	// notice can bring it to index this one.
	more := w.Ingest(t, Filler(t, "h2", 310, 5)...)
	waitIndexed(more.Size)
	stop()
	if err := <-followed; !errors.Is(err, context.Canceled) {
		t.Errorf("Follow after its context ended = %v, want context.Canceled", err)
	}
	end = more

	// AppendIndex refuses what does not continue the indexes, and writes
	// nothing.
	for _, tc := range []struct {
		name          string
		from, through int64
	}{
		{"from behind", end.Size - 1, end.Size},
		{"beyond the log", end.Size, end.Size + 1},
		{"empty range", end.Size, end.Size},
	} {
		err := w.Store.UpdateIndex(ctx, func(tx ledger.IndexTx) error {
			return tx.AppendIndex(ctx, ledger.Append{Runs: []ledger.Run{{VM: "ghost", Host: "h1", From: T0, Start: 0, End: -1}}}, tc.from, tc.through)
		})
		if err == nil {
			t.Errorf("AppendIndex %s: accepted", tc.name)
		}
	}
	err = w.Store.UpdateIndex(ctx, func(tx ledger.IndexTx) error {
		return tx.AppendIndex(ctx, ledger.Append{Entries: []ledger.Entry{{Index: end.Size, Body: []byte("x")}}}, end.Size, end.Size+1)
	})
	if err == nil {
		t.Error("AppendIndex with an entry: accepted")
	}
	if rs, err := w.Store.Runs(ctx, ledger.RunFilter{VM: "ghost"}); err != nil || len(rs) != 0 {
		t.Errorf("runs of ghost after refused AppendIndexes = %v, %v", rs, err)
	}
	if n := indexed(); n != end.Size {
		t.Errorf("Indexed after refused AppendIndexes = %d, want %d", n, end.Size)
	}
}

// testIndexState: index_state.indexed changed in the database. Verify
// reports a value that is not a checkpoint's size and rows beyond the
// indexes; Holder reads no row beyond them; who-had, catching up over
// entries already indexed, fails rather than answer.
func testIndexState(t *testing.T, w *World) {
	ctx := context.Background()
	ip := netip.MustParseAddr("10.0.0.11")
	w.Ingest(t, Filler(t, "h1", 0, 4)...)
	w.Ingest(t, Ev(t, ledger.VMStarted, "h1", "vm-s", 10, ledger.RunData{Name: "s", Owner: "alice", Image: "aa"}),
		Ev(t, ledger.LeaseStart, "h1", "vm-s", 11, lease("52:54:00:00:00:11", ip.String())))
	first := w.Ingest(t, Filler(t, "h2", 20, 3)...)
	w.Ingest(t, Ev(t, ledger.LeaseEndType, "h1", "vm-s", 25, lease("52:54:00:00:00:11", ip.String())),
		Ev(t, ledger.VMStopped, "h1", "vm-s", 26, nil))
	last := w.Ingest(t, Filler(t, "h2", 30, 3)...)
	w.CatchUp(t)
	if rep, err := w.Log.Verify(ctx); err != nil || !rep.OK() {
		t.Fatalf("Verify before tampering = %+v, %v", rep, err)
	}
	problems := func(rep *ledger.Report) string {
		var out []string
		for _, p := range rep.Problems {
			out = append(out, p.What)
		}
		return strings.Join(out, "\n")
	}
	for _, tc := range []struct {
		name    string
		indexed int64
		want    string
	}{
		{"not a checkpoint", last.Size - 1, "not the size of a checkpoint"},
		{"an earlier checkpoint", first.Size, "which the indexes have not reached"},
	} {
		if err := w.Tamper.TamperSetIndexed(ctx, tc.indexed); err != nil {
			t.Fatal(err)
		}
		rep, err := w.Log.Verify(ctx)
		if err != nil || !strings.Contains(problems(rep), tc.want) {
			t.Errorf("%s: Verify = %q, %v; want a problem %q", tc.name, problems(rep), err, tc.want)
		}
	}
	// Indexed at the first checkpoint: the lease and the run began
	// before it, their ends come after it; Holder sees them open.
	h, err := w.Store.Holder(ctx, ip, T0.Add(28*time.Minute))
	if err != nil || h.Checkpoint.Size != first.Size || h.Lease == nil || h.Lease.End != -1 || !h.Lease.To.IsZero() || h.Run == nil || h.Run.End != -1 || !h.Run.To.IsZero() {
		t.Errorf("Holder with indexed lowered = checkpoint %d lease %+v run %+v, %v; want %d, the lease and the run open (no end beyond it)", h.Checkpoint.Size, h.Lease, h.Run, err, first.Size)
	}
	if ans, err := w.Log.WhoHad(ctx, ip, T0.Add(28*time.Minute)); err == nil {
		t.Errorf("WhoHad with indexed lowered = %+v; want an error (its catch-up meets rows already there)", ans)
	}
	if err := w.Tamper.TamperSetIndexed(ctx, last.Size); err != nil {
		t.Fatal(err)
	}
	if rep, err := w.Log.Verify(ctx); err != nil || !rep.OK() {
		t.Errorf("Verify after restoring = %q, %v", problems(rep), err)
	}
	if ans, err := w.Log.WhoHad(ctx, ip, T0.Add(20*time.Minute)); err != nil || ans.Lease.VM != "vm-s" || ans.Lease.End < 0 {
		t.Errorf("WhoHad after restoring = %+v, %v", ans, err)
	}
}

// lying is a Store that changes what Holder and ReadProofData return.
type lying struct {
	ledger.Store
	mu       sync.Mutex
	holder   func(*ledger.Holding)
	readData func(es []ledger.Entry, ts [][]byte)
}

func (s *lying) Holder(ctx context.Context, ip netip.Addr, at time.Time) (ledger.Holding, error) {
	h, err := s.Store.Holder(ctx, ip, at)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil && s.holder != nil {
		s.holder(&h)
	}
	return h, err
}

func (s *lying) ReadProofData(ctx context.Context, ix []int64, keys []ledger.TileKey) ([]ledger.Entry, [][]byte, error) {
	es, ts, err := s.Store.ReadProofData(ctx, ix, keys)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil && s.readData != nil {
		s.readData(es, ts)
	}
	return es, ts, err
}

func (s *lying) set(holder func(*ledger.Holding), readData func([]ledger.Entry, [][]byte)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.holder, s.readData = holder, readData
}

// testLyingStore: a store that returns other bytes for what who-had's
// proofs need — another valid entry at the asked index, a changed
// level-0 tile with the answer, a changed upper tile — gets an error,
// never a wrong answer, and a tile that failed is not kept: once the
// store tells the truth, who-had answers again. An upper tile changed in
// the database after the Log cached it does not hide it from Verify.
func testLyingStore(t *testing.T, w *World) {
	ctx := context.Background()
	ip := netip.MustParseAddr("10.0.0.12")
	w.Ingest(t, Filler(t, "h1", 0, 300)...) // upper tiles exist
	w.Ingest(t, Ev(t, ledger.VMStarted, "h1", "vm-l", 400, ledger.RunData{Name: "l", Owner: "alice", Image: "aa"}),
		Ev(t, ledger.LeaseStart, "h1", "vm-l", 401, lease("52:54:00:00:00:12", ip.String())))
	w.Ingest(t, Filler(t, "h2", 500, 40)...)
	st := &lying{Store: w.Store}
	var l *ledger.Log
	newLog := func() {
		var err error
		if l, err = ledger.New(st, w.LogKey, ledger.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	at := T0.Add(450 * time.Minute)
	ask := func() (*ledger.Answer, error) { return l.WhoHad(ctx, ip, at) }
	flip := func(b []byte) []byte { c := bytes.Clone(b); c[len(c)-1] ^= 1; return c }
	for _, tc := range []struct {
		name     string
		holder   func(*ledger.Holding)
		readData func([]ledger.Entry, [][]byte)
	}{
		{"another entry's body", func(h *ledger.Holding) {
			for i := range h.Data.Entries {
				h.Data.Entries[i].Body = w.Bodies[3]
			}
		}, func(es []ledger.Entry, _ [][]byte) {
			for i := range es {
				es[i].Body = w.Bodies[3]
			}
		}},
		{"the tiles in Holder's answer", func(h *ledger.Holding) {
			for i := range h.Data.Tiles {
				h.Data.Tiles[i].Data = flip(h.Data.Tiles[i].Data)
			}
		}, func(_ []ledger.Entry, ts [][]byte) {
			for i := range ts {
				ts[i] = flip(ts[i])
			}
		}},
		{"every tile read", nil, func(_ []ledger.Entry, ts [][]byte) {
			for i := range ts {
				ts[i] = flip(ts[i])
			}
		}},
	} {
		// A Log of its own: one that proved answers before holds the
		// upper tree's hashes, and reads no upper tile again.
		newLog()
		st.set(tc.holder, tc.readData)
		if ans, err := ask(); err == nil {
			t.Errorf("%s: WhoHad = %+v; want an error", tc.name, ans)
		}
		st.set(nil, nil)
		if ans, err := ask(); err != nil || ans.Lease.VM != "vm-l" {
			t.Errorf("%s: WhoHad once the store tells the truth = %+v, %v", tc.name, ans, err)
		}
	}
	// A Log whose cache is warm (l has answered): a changed level-0 tile
	// (never cached) fails the proof with cached hashes and without them.
	st.set(func(h *ledger.Holding) {
		for i := range h.Data.Tiles {
			if h.Data.Tiles[i].Key.L == 0 {
				h.Data.Tiles[i].Data = flip(h.Data.Tiles[i].Data)
			}
		}
	}, nil)
	if ans, err := ask(); err == nil {
		t.Errorf("warm cache, changed level-0 tile: WhoHad = %+v; want an error", ans)
	}
	st.set(nil, nil)
	if ans, err := ask(); err != nil || ans.Lease.VM != "vm-l" {
		t.Errorf("warm cache, once the store tells the truth: WhoHad = %+v, %v", ans, err)
	}
	// An upper tile changed after it was cached: the cached copy still
	// proves what the log signed; Verify and uncached proofs see the change.
	k := ledger.TileKey{L: 2, N: 0} // level 8 of entries 0..255: the lease's proof uses it (it comes with Holder's answer too, but the cache is read first)
	d, err := w.Store.ReadTiles(ctx, []ledger.TileKey{k})
	if err != nil || d[0] == nil {
		t.Fatalf("tile %v: %v", k, err)
	}
	if err := w.Tamper.TamperSetTile(ctx, k, flip(d[0])); err != nil {
		t.Fatal(err)
	}
	if ans, err := ask(); err != nil || ans.Lease.VM != "vm-l" {
		t.Errorf("WhoHad with a cached tile changed in the store = %+v, %v", ans, err)
	}
	if rep, err := l.Verify(ctx); err != nil || rep.OK() {
		t.Errorf("Verify with tile %v changed = %+v, %v; want a problem", k, rep, err)
	}
	fresh, err := ledger.New(w.Store, w.LogKey, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ans, err := fresh.WhoHad(ctx, ip, at); err == nil {
		t.Errorf("WhoHad of a Log without the cached tile, %v changed = %+v; want an error", k, ans)
	}
}
