package subscriptions

import (
	"strconv"
	"sync"
)

// bodyCache keeps the JSON of the versions matched lately, so that the
// lanes of this replica post them without reading the store again: a
// change usually notifies several subscriptions, and the matcher has the
// version's JSON from the change message. Bounded by total bytes; the
// oldest entries go first.
type bodyCache struct {
	mu    sync.Mutex
	max   int
	size  int
	items map[string][]byte
	order []string // insertion order, oldest first
}

func newBodyCache(maxBytes int) *bodyCache {
	return &bodyCache{max: maxBytes, items: map[string][]byte{}}
}

func bodyKey(typ, id string, version int64) string {
	return typ + "/" + id + "/" + strconv.FormatInt(version, 10)
}

func (c *bodyCache) put(key string, body []byte) {
	if len(body) == 0 || len(body) > c.max/16 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[key]; ok {
		return
	}
	c.items[key] = body
	c.order = append(c.order, key)
	c.size += len(body)
	for c.size > c.max && len(c.order) > 0 {
		old := c.order[0]
		c.order = c.order[1:]
		c.size -= len(c.items[old])
		delete(c.items, old)
	}
	if cap(c.order) > 4*len(c.order)+1024 { // let go of the slice's dropped head
		c.order = append([]string(nil), c.order...)
	}
}

func (c *bodyCache) get(key string) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.items[key]
}
