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
//
// A hit takes one lock and allocates nothing; a miss takes the lock twice,
// before and after calling the function, and once the cache is full it
// reuses the entry it evicts, so it allocates nothing either unless other
// Gets join it.
package memo

import (
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
	cache        lru[K, V] // guarded by mu; cached entries and calls of fn in flight
	hits, misses uint64    // guarded by mu
}

// flight is what the Gets that join a call of fn wait for. The call's
// leader makes none: the first Get that joins makes it (or Clear, to mark the
// call stale), so a miss that no one shares allocates nothing for its
// waiters. stale is guarded by Memo.mu; the other fields but wg are written
// before wg.Done and read after wg.Wait.
type flight[V any] struct {
	wg       sync.WaitGroup
	stale    bool // Clear ran during the call: its result is not cached
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
	m := &Memo[K, V]{fn: fn}
	m.cache.init(maxSize)
	return m
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
	n, ok := m.cache.lookup(k)
	if ok && n.next != nil {
		m.hits++
		m.cache.touch(n)
		v := n.val
		m.mu.Unlock()
		return v
	}
	m.misses++ // counted on joining, before waiting, so Stats shows the waiters
	if ok {
		f := n.flight()
		m.mu.Unlock()
		f.wg.Wait()
		switch {
		case f.goexit:
			panic(errGoexit)
		case f.panicked:
			panic(f.panicVal)
		}
		return f.val
	}
	n = m.cache.reserve(k)
	m.mu.Unlock()
	return m.run(n)
}

// run calls fn for the pending node n on behalf of every Get that joins it,
// then publishes the outcome. It tells a normal return, a panic and
// runtime.Goexit apart as golang.org/x/sync/singleflight does: normalReturn
// is set only if fn returns, recovered only if fn panicked, so neither is set
// when fn calls runtime.Goexit (recover returns nil then, and the inner
// function never returns).
//
// Unlike singleflight, run re-panics inside the deferred call that recovered,
// while fn's frames are still on the stack, so the crash trace of the
// goroutine that ran fn shows where fn panicked; the outer deferred call then
// publishes the panic to the waiters as the stack unwinds. A normal return
// is published after both deferred calls, which then do nothing.
func (m *Memo[K, V]) run(n *node[K, V]) V {
	k := n.key
	var (
		v                       V
		normalReturn, recovered bool
		panicVal                any
	)
	defer func() {
		if !normalReturn {
			m.fail(n, recovered, panicVal)
		}
	}()
	func() {
		defer func() {
			if normalReturn {
				return
			}
			if panicVal = recover(); panicVal != nil {
				recovered = true
				panic(panicVal) // the same value as every waiter gets
			}
		}()
		v = m.fn(k)
		normalReturn = true
	}()
	if !normalReturn {
		// The inner function returned though fn did not, so recover stopped
		// a panic whose value is nil (panic(nil) with GODEBUG=panicnil=1).
		recovered = true
		panic(panicVal)
	}
	m.mu.Lock()
	f := n.wait
	// Caching the value and ending the call under one lock means a later
	// Get finds one or the other, never neither. A call that straddled a
	// Clear is not cached.
	if f == nil || !f.stale {
		m.cache.commit(n, v)
	} else {
		m.cache.drop(n)
	}
	m.mu.Unlock()
	if f != nil {
		f.val = v
		f.wg.Done()
	}
	return v
}

// fail ends the call of the pending node n, which panicked (recovered) with
// panicVal or called runtime.Goexit (not recovered): nothing is cached, and
// the Gets that joined panic.
func (m *Memo[K, V]) fail(n *node[K, V], recovered bool, panicVal any) {
	m.mu.Lock()
	f := n.wait
	m.cache.drop(n)
	m.mu.Unlock()
	if f != nil {
		f.panicked, f.panicVal, f.goexit = recovered, panicVal, !recovered
		f.wg.Done()
	}
}

// Stats returns the current counters and size.
func (m *Memo[K, V]) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Stats{Hits: m.hits, Misses: m.misses, MaxSize: m.cache.maxSize, Size: m.cache.len}
}

// Clear drops every cached entry and resets Hits and Misses to 0, as
// cache_clear() does. Calls of fn in flight are not interrupted: their callers
// still get their result, and Gets of their keys still join them, but the
// result is not cached.
func (m *Memo[K, V]) Clear() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cache.clear()
	m.hits, m.misses = 0, 0
}
