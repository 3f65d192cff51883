package xfs

import "sync"

// blockCache keeps a fixed number of recently read metadata blocks, keyed
// by byte offset. Cached slices are shared and must not be modified.
type blockCache struct {
	mu    sync.Mutex
	tick  uint64
	slots []cacheSlot
}

type cacheSlot struct {
	pos  int64
	used uint64 // tick of the last use; 0 marks an empty slot
	data []byte
}

func newBlockCache(n int) *blockCache {
	return &blockCache{slots: make([]cacheSlot, n)}
}

// get returns the block at pos if cached with length n.
func (c *blockCache) get(pos int64, n int) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.slots {
		s := &c.slots[i]
		if s.used != 0 && s.pos == pos && len(s.data) == n {
			c.tick++
			s.used = c.tick
			return s.data
		}
	}
	return nil
}

// put stores a block, evicting the least recently used one.
func (c *blockCache) put(pos int64, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	victim := 0
	for i := range c.slots {
		if c.slots[i].used < c.slots[victim].used {
			victim = i
		}
	}
	c.tick++
	c.slots[victim] = cacheSlot{pos: pos, used: c.tick, data: data}
}

// block returns the filesystem block at byte offset pos, through the cache.
func (f *FS) block(pos int64) ([]byte, error) {
	n := int(f.sb.blocksize)
	if b := f.cache.get(pos, n); b != nil {
		return b, nil
	}
	b := make([]byte, n)
	if err := f.readAt(b, pos); err != nil {
		return nil, err
	}
	f.cache.put(pos, b)
	return b, nil
}
