package ext4

import (
	"container/list"
	"sync"
)

// cacheBytes is the budget of the metadata block cache.
const cacheBytes = 4 << 20

// blockCache is a fixed-size LRU of metadata blocks (group descriptors,
// inode tables, extent and indirect blocks). Cached slices are shared and
// must not be modified.
type blockCache struct {
	mu    sync.Mutex
	max   int
	lru   *list.List // of *cached, most recent first
	items map[uint64]*list.Element
}

type cached struct {
	blk  uint64
	data []byte
}

func newBlockCache(blockSize uint64) *blockCache {
	return &blockCache{
		max:   max(16, cacheBytes/int(blockSize)),
		lru:   list.New(),
		items: make(map[uint64]*list.Element),
	}
}

func (c *blockCache) get(blk uint64) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[blk]
	if !ok {
		return nil, false
	}
	c.lru.MoveToFront(e)
	return e.Value.(*cached).data, true
}

func (c *blockCache) put(blk uint64, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[blk]; ok {
		return
	}
	c.items[blk] = c.lru.PushFront(&cached{blk: blk, data: data})
	for c.lru.Len() > c.max {
		old := c.lru.Remove(c.lru.Back()).(*cached)
		delete(c.items, old.blk)
	}
}
