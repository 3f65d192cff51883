package ledger

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// memTree is a Merkle tree of event bodies with its tiles, served as a
// Store's ReadProofData would (the rest of Store is not used by prove).
type memTree struct {
	Store  // nil: prove calls ReadProofData only
	mu     sync.Mutex
	bodies [][]byte
	tiles  map[TileKey][]byte
	calls  int
	asked  []TileKey
	lie    map[TileKey][]byte // tiles served instead of the true ones
	fail   error              // returned by ReadProofData when set
}

func newMemTree(t *testing.T, n int) (*memTree, Checkpoint) {
	t.Helper()
	m := &memTree{tiles: map[TileKey][]byte{}}
	var hashes []tlog.Hash
	r := hashesOf(&hashes)
	for i := range n {
		b, err := mustEvent(t, OperatorAction, "", map[string]string{"command": fmt.Sprint("c", i)}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		hs, err := tlog.StoredHashes(int64(i), b, r)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, hs...)
		m.bodies = append(m.bodies, b)
	}
	for _, tl := range tlog.NewTiles(TileHeight, 0, int64(n)) {
		d, err := tlog.ReadTileData(tl, r)
		if err != nil {
			t.Fatal(err)
		}
		m.tiles[TileKey{tl.L, tl.N}] = d
	}
	root, err := tlog.TreeHash(int64(n), r)
	if err != nil {
		t.Fatal(err)
	}
	return m, Checkpoint{Size: int64(n), Root: root}
}

func (m *memTree) ReadProofData(_ context.Context, ix []int64, keys []TileKey) ([]Entry, [][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	m.asked = append(m.asked, keys...)
	if m.fail != nil {
		return nil, nil, m.fail
	}
	var es []Entry
	for _, i := range ix {
		es = append(es, Entry{Index: i, Body: m.bodies[i]})
	}
	ts := make([][]byte, len(keys))
	for k, key := range keys {
		ts[k] = m.tiles[key]
		if d, ok := m.lie[key]; ok {
			ts[k] = d
		}
	}
	return es, ts, nil
}

func TestRightEdge(t *testing.T) {
	// 10 = [0, 8) + [8, 10): subtree 0 at level 3, subtree 4 at level 1.
	for _, c := range []struct {
		level int
		n     int64
		want  bool
	}{{3, 0, true}, {1, 4, true}, {0, 9, false}, {1, 3, false}, {2, 2, false}, {3, 1, false}, {0, 8, false}} {
		if got := rightEdge(c.level, c.n, 10); got != c.want {
			t.Errorf("rightEdge(%d, %d, 10) = %v; want %v", c.level, c.n, got, c.want)
		}
	}
}

func (m *memTree) reset() (calls int, asked []TileKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	calls, asked = m.calls, m.asked
	m.calls, m.asked = 0, nil
	return calls, asked
}

// The hash cache: proofs read the upper tree from the store once, then
// from the cache; a poisoned cache costs a retry without it (the poisoned
// hashes dropped), never a wrong answer; and nothing a failed proof read
// is kept.
func TestProveHashCache(t *testing.T) {
	ctx := context.Background()
	m, cp := newMemTree(t, 1000)
	l := &Log{st: m, hashes: newHashCache()}
	check := func(what string, ps []Proven, err error, ix ...int64) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		for k, p := range ps {
			if p.Entry.Index != ix[k] || tlog.CheckRecord(p.Proof, cp.Size, cp.Root, ix[k], tlog.RecordHash(m.bodies[ix[k]])) != nil {
				t.Fatalf("%s: proof %d of entry %d does not check", what, k, ix[k])
			}
		}
	}

	ps, err := l.proveAll(ctx, []int64{3, 700, 999}, cp, nil)
	check("cold", ps, err, 3, 700, 999)
	if calls, asked := m.reset(); calls != 1 || len(asked) == 0 {
		t.Fatalf("cold: %d store calls for %v; want one", calls, asked)
	}
	if len(l.hashes.m) == 0 {
		t.Fatal("no upper hash cached after checked proofs")
	}
	for x := range l.hashes.m {
		if level, n := tlog.SplitStoredHashIndex(x); level < cachedLevel*TileHeight && !rightEdge(level, n, cp.Size) {
			t.Fatalf("hash %d (level %d, %d) cached: neither upper nor on the right edge", x, level, n)
		}
	}

	// Warm: the upper tiles are not read again.
	ps, err = l.proveAll(ctx, []int64{5}, cp, nil)
	check("warm", ps, err, 5)
	_, asked := m.reset()
	for _, k := range asked {
		if k.L >= cachedLevel {
			t.Errorf("warm: tile %v read; its hashes are cached", k)
		}
	}

	// With entries and level-0/1 tiles at hand (as Holder returns them)
	// and the upper hashes cached, no store call at all.
	have := &ProofData{Entries: []Entry{{Index: 6, Body: m.bodies[6]}}}
	for _, k := range []TileKey{{0, 0}, {1, 0}} {
		have.Tiles = append(have.Tiles, TileData{Key: k, Data: m.tiles[k]})
	}
	ps, err = l.proveAll(ctx, []int64{6}, cp, have)
	check("at hand", ps, err, 6)
	if calls, asked := m.reset(); calls != 0 {
		t.Errorf("at hand: %d store calls for %v; want none", calls, asked)
	}

	// Poison every cached hash: the proof fails with them, is made again
	// without them, and the cache ends up holding the true hashes.
	truth := map[int64]tlog.Hash{}
	for x, h := range l.hashes.m {
		truth[x] = h
		h[0] ^= 1
		l.hashes.m[x] = h
	}
	ps, err = l.proveAll(ctx, []int64{7}, cp, nil)
	check("poisoned cache", ps, err, 7)
	if calls, _ := m.reset(); calls != 2 {
		t.Errorf("poisoned cache: %d store calls; want two (one per attempt)", calls)
	}
	// Every entry proven with the poisoned cache: every cached hash was
	// used by some proof, and is true again.
	for i := range cp.Size {
		ps, err = l.proveAll(ctx, []int64{i}, cp, nil)
		check("poisoned cache", ps, err, i)
	}
	for x, h := range l.hashes.m {
		if want, ok := truth[x]; ok && h != want {
			t.Errorf("hash %d still poisoned after the proofs that use it", x)
		}
	}

	// A store that lies about an upper tile, with nothing cached: an
	// error, and nothing kept from the failed attempt.
	l.hashes = newHashCache()
	k := TileKey{L: 2, N: 0}
	bad := append([]byte(nil), m.tiles[k]...)
	bad[tlog.HashSize] ^= 1 // level 8, [256, 512): the sibling in entry 3's proof
	m.lie = map[TileKey][]byte{k: bad}
	if ps, err := l.proveAll(ctx, []int64{3}, cp, nil); err == nil {
		t.Fatalf("a lying store's tile %v: proof %+v accepted", k, ps)
	}
	if n := len(l.hashes.m); n != 0 {
		t.Errorf("%d hashes cached from a failed proof", n)
	}
	m.lie = nil
	ps, err = l.proveAll(ctx, []int64{3}, cp, nil)
	check("truth again", ps, err, 3)

	// A store that fails: its error, and the cache kept (only a proof
	// that does not check drops what it took from the cache).
	n := len(l.hashes.m)
	m.reset()
	m.fail = errors.New("disk on fire")
	if _, err := l.proveAll(ctx, []int64{600}, cp, nil); !errors.Is(err, m.fail) {
		t.Errorf("proof with a failing store: %v; want its error", err)
	}
	if calls, _ := m.reset(); calls != 1 || len(l.hashes.m) != n {
		t.Errorf("failing store: %d store calls (want 1), cache %d hashes (want %d)", calls, len(l.hashes.m), n)
	}
	m.fail = nil

	// A tile the store does not have: ErrNotFound.
	delete(m.tiles, TileKey{L: 0, N: 10})
	if _, err := l.proveAll(ctx, []int64{165}, cp, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("proof with a tile missing from the store: %v; want ErrNotFound", err)
	}
}
