// Package memo memoizes pure functions: it is the functools.lru_cache of Go.
//
// A Memo wraps a function func(K) V and remembers its results, keeping at
// most a given number of them and evicting the least recently used one
// first. Stats reports hits, misses, the bound and the current size, as
// cache_info() does in Python, and Clear empties the cache, as cache_clear()
// does.
//
// Keys are typed: with K = any, the keys 1 and 1.0 are different because
// their dynamic types differ, as with lru_cache(typed=True).
//
// Concurrent Gets of a key that is not cached run the function once and share
// its result; a panic in the function reaches every caller that shared the
// call, and nothing is cached.
package memo

import (
	"container/list"
	"errors"
	"sync"
)

// errGoexit is the panic value of waiters whose shared call ended in
// runtime.Goexit: they have no value to return and must not hang.
var errGoexit = errors.New("memo: fn called runtime.Goexit")

// Stats is a snapshot of a Memo's counters, the cache_info() of Python.
//
// Every Get that returns or panics counts exactly once, as a hit or as a miss.
type Stats struct {
	Hits, Misses  uint64 // Gets that found the value cached, and Gets that did not
	MaxSize, Size int    // the bound given to New, and the number of cached entries
}

// Memo is a memoized pure function with an LRU-bounded cache.
//
// A Memo is safe for concurrent use by multiple goroutines. The zero Memo is
// not usable; create one with New.
//
// A Get of a key that is not cached counts as a miss, also when it shares a
// call already in flight for that key rather than calling fn itself: it did
// not find the value cached. This is how the rest of tiercache counts shared
// loads.
//
// Memo calls fn without holding its lock, so fn may call Get on the same Memo
// for other keys (a recursive function such as Fibonacci works). A call of
// Get for the key fn is computing, from inside fn, deadlocks, like unbounded
// recursion; Memo does not detect it.
type Memo[K comparable, V any] struct {
	fn func(K) V

	mu           sync.Mutex
	cache        lru[K, V]      // guarded by mu
	calls        map[K]*call[V] // guarded by mu; calls of fn in flight
	gen          uint64         // guarded by mu; incremented by Clear
	hits, misses uint64         // guarded by mu
}

// call is one run of fn for one key, shared by every Get that joins it.
// Its fields other than wg and gen are written before wg.Done and read after
// wg.Wait.
type call[V any] struct {
	wg       sync.WaitGroup
	gen      uint64 // Memo.gen when the call started; the result is cached only if unchanged
	val      V
	panicked bool // fn panicked with panicVal
	panicVal any
	goexit   bool // fn called runtime.Goexit
}

// New returns a Memo of fn that caches up to maxSize results.
//
// New mirrors lru_cache's maxsize: a positive maxSize bounds the cache and
// evicts the least recently used entry; a maxSize of 0 caches nothing, so
// every Get calls fn and is a miss, even concurrent Gets of one key; a
// negative maxSize means unbounded, like maxsize=None, and Stats reports it
// unchanged as MaxSize.
//
// New panics if fn is nil, as sync.OnceFunc does: that is a programming error.
func New[K comparable, V any](fn func(K) V, maxSize int) *Memo[K, V] {
	if fn == nil {
		panic("memo: New called with nil fn")
	}
	return &Memo[K, V]{
		fn:    fn,
		cache: lru[K, V]{maxSize: maxSize, ll: list.New(), items: make(map[K]*list.Element)},
		calls: make(map[K]*call[V]),
	}
}

// Get returns fn(k), from the cache when it holds k, else by calling fn.
//
// Get calls fn at most once at a time per key: concurrent Gets of a key that
// is not cached wait for one call and share its result. If fn panics, nothing
// is cached and every Get that shared the call panics with the same value; a
// later Get calls fn again. If fn calls runtime.Goexit, the goroutine that ran
// it exits and the others that shared the call panic.
func (m *Memo[K, V]) Get(k K) V {
	m.mu.Lock()
	if m.cache.maxSize == 0 {
		m.misses++
		m.mu.Unlock()
		return m.fn(k)
	}
	if v, ok := m.cache.get(k); ok {
		m.hits++
		m.mu.Unlock()
		return v
	}
	m.misses++ // counted on joining, before waiting, so Stats shows the waiters
	if c, ok := m.calls[k]; ok {
		m.mu.Unlock()
		c.wg.Wait()
		switch {
		case c.goexit:
			panic(errGoexit)
		case c.panicked:
			panic(c.panicVal)
		}
		return c.val
	}
	c := &call[V]{gen: m.gen}
	c.wg.Add(1)
	m.calls[k] = c
	m.mu.Unlock()
	return m.run(k, c)
}

// run calls fn for k on behalf of every Get sharing c, then publishes the
// outcome. It tells a normal return, a panic and runtime.Goexit apart as
// golang.org/x/sync/singleflight does: normalReturn is set only if fn
// returns, recovered only if fn panicked, so neither is set when fn calls
// runtime.Goexit (recover returns nil then, and the inner function never
// returns).
//
// Unlike singleflight, run re-panics inside the deferred call that recovered,
// while fn's frames are still on the stack, so the crash trace of the
// goroutine that ran fn shows where fn panicked; the outer deferred call then
// publishes the panic to the waiters as the stack unwinds.
func (m *Memo[K, V]) run(k K, c *call[V]) V {
	normalReturn, recovered := false, false
	defer func() {
		c.goexit = !normalReturn && !recovered
		c.panicked = recovered
		m.mu.Lock()
		if m.calls[k] == c {
			delete(m.calls, k)
		}
		// Adding the value and removing the call under one lock means a
		// later Get finds one or the other, never neither.
		if normalReturn && c.gen == m.gen {
			m.cache.add(k, c.val)
		}
		m.mu.Unlock()
		c.wg.Done()
	}()
	func() {
		defer func() {
			if normalReturn {
				return
			}
			if c.panicVal = recover(); c.panicVal != nil {
				recovered = true
				panic(c.panicVal) // the same value as every waiter gets
			}
		}()
		c.val = m.fn(k)
		normalReturn = true
	}()
	if !normalReturn {
		// The inner function returned though fn did not, so recover stopped
		// a panic whose value is nil (panic(nil) with GODEBUG=panicnil=1).
		recovered = true
		panic(c.panicVal)
	}
	return c.val
}

// Stats returns the current counters and size.
func (m *Memo[K, V]) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Stats{Hits: m.hits, Misses: m.misses, MaxSize: m.cache.maxSize, Size: m.cache.ll.Len()}
}

// Clear drops every cached entry and resets Hits and Misses to 0, as
// cache_clear() does. Calls of fn in flight are not interrupted: their callers
// still get their result, but it is not cached.
func (m *Memo[K, V]) Clear() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cache.clear()
	m.hits, m.misses = 0, 0
	m.gen++
}

// lru is the unsynchronised core of Memo: an exact LRU cache, most recently
// used entry at the front of ll. A maxSize of 0 or less means unbounded here;
// Memo itself never adds to it when maxSize is 0.
type lru[K comparable, V any] struct {
	maxSize int
	ll      *list.List // of *entry[K, V]
	items   map[K]*list.Element
}

type entry[K comparable, V any] struct {
	key K
	val V
}

// get returns the value for k and marks it most recently used.
func (c *lru[K, V]) get(k K) (v V, ok bool) {
	e, ok := c.items[k]
	if !ok {
		return v, false
	}
	c.ll.MoveToFront(e)
	return e.Value.(*entry[K, V]).val, true
}

// add stores v for k as most recently used, evicting the least recently used
// entry when the cache is over its bound.
func (c *lru[K, V]) add(k K, v V) {
	if e, ok := c.items[k]; ok {
		c.ll.MoveToFront(e)
		e.Value.(*entry[K, V]).val = v
		return
	}
	c.items[k] = c.ll.PushFront(&entry[K, V]{key: k, val: v})
	if c.maxSize > 0 && c.ll.Len() > c.maxSize {
		oldest := c.ll.Back()
		c.ll.Remove(oldest)
		delete(c.items, oldest.Value.(*entry[K, V]).key)
	}
}

// clear drops every entry.
func (c *lru[K, V]) clear() {
	c.ll.Init()
	clear(c.items)
}
