package qcow2

import (
	"container/list"
	"sync"
)

// Cache is a fixed-budget LRU of decoded L2 tables and decompressed
// clusters. One Cache may be shared by every image of a backing chain so
// that the chain as a whole stays within one budget. It is safe for
// concurrent use. Cached values are never modified after insertion.
type Cache struct {
	mu     sync.Mutex
	limit  int64
	used   int64
	lru    list.List // of *cacheEntry, most recent at the front
	items  map[cacheKey]*list.Element
	owners uint64
}

type cacheKind uint8

const (
	kindL2 cacheKind = iota + 1
	kindCluster
)

type cacheKey struct {
	owner uint64 // one per Image using the cache
	kind  cacheKind
	off   int64 // host offset of the table or compressed cluster
}

type cacheEntry struct {
	key  cacheKey
	l2   []uint64
	data []byte
	size int64
}

// NewCache returns a cache holding at most limit bytes of tables and
// clusters; a limit <= 0 caches nothing.
func NewCache(limit int64) *Cache {
	return &Cache{limit: limit, items: map[cacheKey]*list.Element{}}
}

func (c *Cache) newOwner() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.owners++
	return c.owners
}

func (c *Cache) get(k cacheKey) (*cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[k]
	if !ok {
		return nil, false
	}
	c.lru.MoveToFront(el)
	return el.Value.(*cacheEntry), true
}

// put inserts e, evicting the least recently used entries to stay within
// the limit. An entry larger than the whole budget is not kept.
func (c *Cache) put(e *cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.size > c.limit {
		return
	}
	if el, ok := c.items[e.key]; ok { // a concurrent reader got there first
		c.lru.MoveToFront(el)
		return
	}
	for c.used+e.size > c.limit {
		c.remove(c.lru.Back())
	}
	c.items[e.key] = c.lru.PushFront(e)
	c.used += e.size
}

func (c *Cache) remove(el *list.Element) {
	e := c.lru.Remove(el).(*cacheEntry)
	delete(c.items, e.key)
	c.used -= e.size
}

// drop removes every entry of one owner (an image being closed).
func (c *Cache) drop(owner uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for el := c.lru.Front(); el != nil; {
		next := el.Next()
		if el.Value.(*cacheEntry).key.owner == owner {
			c.remove(el)
		}
		el = next
	}
}
