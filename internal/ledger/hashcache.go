package ledger

import (
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// maxCachedHashes bounds a Log's hash cache: 256Ki hashes, about 20 MiB
// with the map's overhead. A log of 10M entries has about 80k stored
// hashes at tree level 2·TileHeight and above.
const maxCachedHashes = 1 << 18

// cachedLevel is the lowest tile level whose hashes are cached: there
// are 256 times as many hashes at the levels below, and who-had's
// statement returns the tiles of levels 0 to 2 it needs with the entries.
const cachedLevel = 2

// hashCache keeps stored hashes of the upper tree (tile level cachedLevel
// and above) and of the tree's right edge, from tiles read by proofs that
// were then checked against a signed checkpoint. Proofs in a tree of a
// given size need mostly the same few of them, and a stored hash is of a
// complete subtree: it never changes once written, so a cached hash
// serves any later proof. A cached hash is never trusted on its own: the
// proof it takes part in is checked, and one that does not check with
// cached hashes is made again without them (and they are dropped), so a
// wrong hash in the cache — a tile changed in the store before it was
// read, a tile's hash no proof had checked — costs one retry, never a
// wrong answer.
type hashCache struct {
	mu sync.Mutex
	m  map[int64]tlog.Hash
}

func newHashCache() *hashCache { return &hashCache{m: map[int64]tlog.Hash{}} }

// get returns the cached stored hash with storage index x.
func (c *hashCache) get(x int64) (tlog.Hash, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.m[x]
	return h, ok
}

// put keeps the hashes of hs, read by proofs in a tree of size, that are
// worth keeping: those at tile level cachedLevel and above, and those of
// the complete subtrees the tree's right edge is made of, which most
// proofs in the tree need. A hash already cached is replaced. When the
// cache is full, arbitrary hashes make room.
func (c *hashCache) put(hs map[int64]tlog.Hash, size int64) {
	type kept struct {
		x int64
		h tlog.Hash
	}
	var keep []kept
	for x, h := range hs {
		if level, n := tlog.SplitStoredHashIndex(x); level >= cachedLevel*TileHeight || rightEdge(level, n, size) {
			keep = append(keep, kept{x, h})
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keep {
		if _, ok := c.m[k.x]; !ok && len(c.m) >= maxCachedHashes {
			for old := range c.m {
				delete(c.m, old)
				break
			}
		}
		c.m[k.x] = k.h
	}
}

// rightEdge reports whether the hash of subtree n at level is one of
// those a tree of size is split into (its size's bits, from the top:
// 10 = [0, 8) + [8, 10)).
func rightEdge(level int, n, size int64) bool {
	return size>>level&1 == 1 && n == size>>level-1
}

// drop forgets the hashes xs.
func (c *hashCache) drop(xs []int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, x := range xs {
		delete(c.m, x)
	}
}
