package memo

// lru is the unsynchronised core of Memo: an exact LRU cache whose index
// also holds the keys being computed, so that a miss costs one lookup and
// one insertion into a single map, as in Python's lru_cache.
//
// A node is in one of two states:
//   - pending: fn is running for its key. The node is in items but not in
//     the list (next is nil); Gets of its key join the call.
//   - cached: the node is in items and in the list, most recently used
//     right after root.
//
// The list is circular around root, so a cached node's next is never nil.
// A maxSize of 0 or less means unbounded here; Memo itself never commits
// when maxSize is 0.
//
// The node evicted last is kept in spare, its key and value zeroed, and
// reused by the next miss: a full cache makes no allocation per miss.
type lru[K comparable, V any] struct {
	maxSize int
	len     int // cached nodes, the list's length
	items   map[K]*node[K, V]
	root    node[K, V] // sentinel: root.next is the most recently used
	spare   *node[K, V]
}

// node is one key of the cache, pending or cached. Waiters of a pending
// node hold its flight, never the node, so a node may be reused as soon as
// it leaves items. A node is kept small (48 bytes with a string key and a
// word-sized value): what only a call in flight needs is in its flight.
type node[K comparable, V any] struct {
	key        K
	val        V           // cached: the value; pending: unset
	prev, next *node[K, V] // cached: neighbours in the list; pending: nil
	wait       *flight[V]  // pending: nil until a Get joins or Clear runs
}

func (c *lru[K, V]) init(maxSize int) {
	c.maxSize = maxSize
	c.items = make(map[K]*node[K, V])
	c.root.next, c.root.prev = &c.root, &c.root
}

// lookup returns the node for k, pending or cached.
func (c *lru[K, V]) lookup(k K) (*node[K, V], bool) {
	n, ok := c.items[k]
	return n, ok
}

// touch marks the cached node n most recently used.
func (c *lru[K, V]) touch(n *node[K, V]) {
	if c.root.next == n {
		return
	}
	c.unlink(n)
	c.pushFront(n)
}

// reserve adds a pending node for k, which must not be in items.
func (c *lru[K, V]) reserve(k K) *node[K, V] {
	n := c.spare
	if n != nil {
		c.spare = nil
	} else {
		n = new(node[K, V])
	}
	n.key = k
	c.items[k] = n
	return n
}

// commit caches the pending node n with v as most recently used, evicting
// the least recently used node when the cache is over its bound.
func (c *lru[K, V]) commit(n *node[K, V], v V) {
	n.val, n.wait = v, nil
	c.pushFront(n)
	c.len++
	if c.maxSize > 0 && c.len > c.maxSize {
		old := c.root.prev
		c.unlink(old)
		c.len--
		delete(c.items, old.key)
		*old = node[K, V]{} // let the key and value be collected
		c.spare = old
	}
}

// drop removes the pending node n: its call ended without a value to cache.
func (c *lru[K, V]) drop(n *node[K, V]) {
	delete(c.items, n.key)
}

// clear drops every cached node and keeps the pending ones, marked stale:
// their result must not be cached.
func (c *lru[K, V]) clear() {
	if len(c.items) == c.len {
		clear(c.items)
	} else {
		for k, n := range c.items {
			if n.next != nil {
				delete(c.items, k)
				continue
			}
			n.flight().stale = true
		}
	}
	c.root.next, c.root.prev = &c.root, &c.root
	c.len = 0
}

// flight returns the flight of the pending node n, made on first use.
func (n *node[K, V]) flight() *flight[V] {
	if n.wait == nil {
		n.wait = new(flight[V])
		n.wait.wg.Add(1)
	}
	return n.wait
}

func (c *lru[K, V]) pushFront(n *node[K, V]) {
	n.prev, n.next = &c.root, c.root.next
	c.root.next.prev = n
	c.root.next = n
}

func (c *lru[K, V]) unlink(n *node[K, V]) {
	n.prev.next = n.next
	n.next.prev = n.prev
	n.prev, n.next = nil, nil
}
