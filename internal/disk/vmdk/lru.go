package vmdk

import (
	"container/list"
	"sync"
)

const (
	kindGT uint8 = iota
	kindGrain
)

type cacheKey struct {
	kind  uint8
	index int64
}

type cacheEntry struct {
	key  cacheKey
	data []byte
}

// lru is a byte-bounded least-recently-used cache. Values are shared and
// must not be modified after put. A nil or zero-budget lru caches nothing.
type lru struct {
	mu     sync.Mutex
	budget int64
	used   int64
	order  *list.List // front = most recently used
	items  map[cacheKey]*list.Element
}

func newLRU(budget int64) *lru {
	return &lru{budget: max(budget, 0), order: list.New(), items: map[cacheKey]*list.Element{}}
}

func (c *lru) get(k cacheKey) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[k]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*cacheEntry).data, true
}

func (c *lru) put(k cacheKey, data []byte) {
	size := int64(len(data))
	c.mu.Lock()
	defer c.mu.Unlock()
	if size > c.budget {
		return
	}
	if el, ok := c.items[k]; ok { // a concurrent reader decoded it too
		c.order.MoveToFront(el)
		return
	}
	for c.used+size > c.budget {
		old := c.order.Back()
		e := old.Value.(*cacheEntry)
		c.order.Remove(old)
		delete(c.items, e.key)
		c.used -= int64(len(e.data))
	}
	c.items[k] = c.order.PushFront(&cacheEntry{key: k, data: data})
	c.used += size
}

func (c *lru) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.order.Init()
	clear(c.items)
	c.used = 0
}

// len reports the number of cached values and their total size.
func (c *lru) len() (int, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items), c.used
}
