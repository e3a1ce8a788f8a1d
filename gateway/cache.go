package gateway

import (
	"container/list"
	"sync"
)

// bodyCache keeps recently served /metadata bodies, keyed by their ETag.
// The ETag is computed from the index on every request (each instance's
// SOP Instance UID and plaintext digest, and the base URL), so an entry
// can never be stale: any stored, replaced or deleted instance changes
// the key. It is bounded in bytes and evicts the least recently used.
type bodyCache struct {
	mu       sync.Mutex
	max      int64 // total bytes
	maxEntry int64
	size     int64
	ll       *list.List // front: most recent
	m        map[string]*list.Element
}

type cacheEntry struct {
	key  string
	body []byte
}

func newBodyCache(max int64) *bodyCache {
	if max <= 0 {
		return nil
	}
	return &bodyCache{max: max, maxEntry: max / 4, ll: list.New(), m: map[string]*list.Element{}}
}

func (c *bodyCache) get(key string) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[key]
	if !ok {
		return nil, false
	}
	c.ll.MoveToFront(el)
	return el.Value.(*cacheEntry).body, true
}

func (c *bodyCache) put(key string, body []byte) {
	if c == nil || int64(len(body)) > c.maxEntry {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; ok {
		return
	}
	c.m[key] = c.ll.PushFront(&cacheEntry{key, body})
	c.size += int64(len(body))
	for c.size > c.max {
		el := c.ll.Back()
		e := el.Value.(*cacheEntry)
		c.ll.Remove(el)
		delete(c.m, e.key)
		c.size -= int64(len(e.body))
	}
}

// capture keeps a copy of what is written through it, up to max bytes;
// beyond that it gives up (over reports so).
type capture struct {
	buf  []byte
	max  int64
	over bool
}

func (c *capture) Write(p []byte) (int, error) {
	if !c.over {
		if int64(len(c.buf)+len(p)) > c.max {
			c.over, c.buf = true, nil
		} else {
			c.buf = append(c.buf, p...)
		}
	}
	return len(p), nil
}
