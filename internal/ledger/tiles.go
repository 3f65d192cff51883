package ledger

import (
	"context"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// TileHeight is the height of the tiles a Store keeps the Merkle tree in
// (tlog.Tile with H = TileHeight): the tile at level L, offset N holds up
// to 2^TileHeight consecutive hashes of tree level TileHeight·L, from hash
// N·2^TileHeight on; the levels in between are recomputed from them
// (tlog.HashFromTile). A proof at 10M entries reads about six small rows,
// and an ingest of k entries writes about k/15 of them.
const TileHeight = 4

const tileWidth = 1 << TileHeight

// TileKey names a tile: its level and its offset at that level.
type TileKey struct {
	L int
	N int64
}

func (k TileKey) String() string { return fmt.Sprintf("tile %d/%d", k.L, k.N) }

// TileData is a tile's hashes, concatenated: 1 to 2^TileHeight of them (a
// tile on the tree's right edge is partial, and replaced by a wider one as
// the tree grows).
type TileData struct {
	Key  TileKey
	Data []byte
}

// TileReader reads stored tiles: the data of each key, in order, nil for
// a tile the store does not hold.
type TileReader interface {
	ReadTiles(ctx context.Context, keys []TileKey) ([][]byte, error)
}

// Hashes returns a tlog.HashReader over r's tiles: the stored hash with
// each tlog storage index, read from (or recomputed within) its tile. A
// missing or too narrow tile is an error.
func Hashes(ctx context.Context, r TileReader) tlog.HashReader {
	return tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
		p := planTiles(ix)
		data, err := r.ReadTiles(ctx, p.keys)
		if err != nil {
			return nil, err
		}
		return p.hashes(data)
	})
}

// tilePlan is where the stored hashes ix are: tiles[i] holds ix[i], and
// keys lists the distinct tiles to read (pos: a key's place in keys).
type tilePlan struct {
	ix    []int64
	tiles []tlog.Tile
	keys  []TileKey
	pos   map[TileKey]int
}

func planTiles(ix []int64) tilePlan {
	p := tilePlan{ix: ix, tiles: make([]tlog.Tile, len(ix)), pos: map[TileKey]int{}}
	for i, x := range ix {
		t := tlog.TileForIndex(TileHeight, x)
		p.tiles[i] = t
		k := TileKey{t.L, t.N}
		if _, ok := p.pos[k]; !ok {
			p.pos[k] = len(p.keys)
			p.keys = append(p.keys, k)
		}
	}
	return p
}

// hashes returns the hashes from the data read for p.keys.
func (p tilePlan) hashes(data [][]byte) ([]tlog.Hash, error) {
	if len(data) != len(p.keys) {
		return nil, fmt.Errorf("ledger: store returned %d tiles for %d", len(data), len(p.keys))
	}
	out := make([]tlog.Hash, len(p.ix))
	for i, x := range p.ix {
		t := p.tiles[i]
		k := TileKey{t.L, t.N}
		d := data[p.pos[k]]
		if d == nil {
			return nil, fmt.Errorf("ledger: %v: %w", k, ErrNotFound)
		}
		if err := checkTileData(k, d); err != nil {
			return nil, err
		}
		h, err := tlog.HashFromTile(t, d, x)
		if err != nil {
			return nil, fmt.Errorf("ledger: %v holds %d hashes, hash %d needs %d: %w", k, len(d)/tlog.HashSize, x, t.W, ErrNotFound)
		}
		out[i] = h
	}
	return out, nil
}

// checkTileData refuses data that is not a whole number of hashes or
// holds more than 2^TileHeight of them. Data too short for the hash
// wanted (empty included) is left to the caller, which knows the width.
func checkTileData(k TileKey, d []byte) error {
	if len(d)%tlog.HashSize != 0 || len(d) > tileWidth*tlog.HashSize {
		return fmt.Errorf("ledger: %v: %d bytes is not a tile", k, len(d))
	}
	return nil
}

// TilesFromHashes returns the tiles of a tree of size n whose stored
// hashes r reads (tlog's layout, schema 1 of both stores): what a store
// upgrading to tiles writes.
func TilesFromHashes(n int64, r tlog.HashReader) ([]TileData, error) {
	var out []TileData
	for _, t := range tlog.NewTiles(TileHeight, 0, n) {
		d, err := tlog.ReadTileData(t, r)
		if err != nil {
			return nil, fmt.Errorf("ledger: %v: %w", TileKey{t.L, t.N}, err)
		}
		out = append(out, TileData{Key: TileKey{t.L, t.N}, Data: d})
	}
	return out, nil
}

// tileBuilder collects the hashes of new entries at the tile levels (tree
// levels 0, TileHeight, 2·TileHeight, …) as a frontier yields them, and
// returns each tile when it is complete and, at the end, the partial ones.
type tileBuilder struct {
	n    int64 // entries added
	bufs [64 / TileHeight][]byte
	// first[L] is the index, at tree level TileHeight·L, of bufs[L][0].
	first [64 / TileHeight]int64
}

// newTileBuilder starts after n entries whose partial tiles' hashes are
// read from r.
func newTileBuilder(n int64, r tlog.HashReader) (*tileBuilder, error) {
	b := &tileBuilder{n: n}
	for L := range b.bufs {
		level := L * TileHeight
		count := n >> level // hashes at this level
		start := count &^ (tileWidth - 1)
		b.first[L] = start
		if count == start {
			continue
		}
		ix := make([]int64, 0, count-start)
		for i := start; i < count; i++ {
			ix = append(ix, tlog.StoredHashIndex(level, i))
		}
		hs, err := r.ReadHashes(ix)
		if err != nil {
			return nil, err
		}
		for _, h := range hs {
			b.bufs[L] = append(b.bufs[L], h[:]...)
		}
	}
	return b, nil
}

// add takes the stored hashes of the next entry (frontier.add's result,
// by level) and calls full for every tile it completes.
func (b *tileBuilder) add(hs []tlog.Hash, full func(TileData) error) error {
	for L := 0; L*TileHeight < len(hs); L++ {
		h := hs[L*TileHeight]
		b.bufs[L] = append(b.bufs[L], h[:]...)
		if len(b.bufs[L]) == tileWidth*tlog.HashSize {
			d := b.bufs[L]
			b.bufs[L] = make([]byte, 0, tileWidth*tlog.HashSize)
			if err := full(TileData{Key: TileKey{L, b.first[L] / tileWidth}, Data: d}); err != nil {
				return err
			}
			b.first[L] += tileWidth
		}
	}
	b.n++
	return nil
}

// partial returns the tiles on the right edge that are not complete.
func (b *tileBuilder) partial() []TileData {
	var out []TileData
	for L, d := range b.bufs {
		if len(d) > 0 {
			out = append(out, TileData{Key: TileKey{L, b.first[L] / tileWidth}, Data: append([]byte(nil), d...)})
		}
	}
	return out
}
