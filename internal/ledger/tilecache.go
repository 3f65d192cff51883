package ledger

import "sync"

// maxCachedTiles bounds a Log's tile cache: 64Ki tiles of at most 512
// bytes, 32 MiB. At level 1 and above there is one tile per 256 entries,
// so the cache holds those of a log of 16M entries.
const maxCachedTiles = 1 << 16

// tileCache keeps tiles of level 1 and above that proofs have used: every
// proof in a tree of a given size needs the same few upper tiles, and a
// stored hash never changes once written (a partial tile only grows), so
// a cached tile serves any proof it is wide enough for. Only tiles that
// took part in a proof checked against a signed checkpoint are added; a
// proof that fails with cached tiles is tried again without them (and
// they are dropped), so a tile changed in the store before it was cached
// costs one retry, never a wrong answer.
type tileCache struct {
	mu sync.Mutex
	m  map[TileKey][]byte
}

func newTileCache() *tileCache { return &tileCache{m: map[TileKey][]byte{}} }

// get returns the cached data of k, nil when absent.
func (c *tileCache) get(k TileKey) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[k]
}

// put keeps data as k's, unless a wider copy is kept; when the cache is
// full, an arbitrary tile makes room.
func (c *tileCache) put(k TileKey, data []byte) {
	if k.L < 1 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[k]; ok {
		if len(old) < len(data) {
			c.m[k] = data
		}
		return
	}
	if len(c.m) >= maxCachedTiles {
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	c.m[k] = data
}

// drop forgets the tiles keys.
func (c *tileCache) drop(keys []TileKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		delete(c.m, k)
	}
}
