// Package inproc compares in-process caches on a get/set mix: otter v2,
// golang-lru v2, ristretto v2, tiercache without a shared tier (its L1 is
// otter), tiercache's memo and sturdyc in memory. It measures throughput,
// hit ratio and memory per entry, from the cachebench command and as Go
// benchmarks. BenchmarkMemoize also measures memo against golang-lru on
// memo's own workload, a memoized pure function.
package inproc

import (
	"context"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/maypok86/otter/v2"
	"github.com/viccon/sturdyc"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/memo"
)

// Map is one in-process cache of uint64 values under string keys.
type Map interface {
	// Read looks key up and, on a miss, inserts a value, as cache-aside
	// with a free loader does. It reports whether it was a hit.
	Read(key string) bool
	// Write stores v under key.
	Write(key string, v uint64)
	// Len returns the number of entries held; filled are the keys written
	// so far, for caches that can only count by probing.
	Len(filled []string) int
	// Close releases the cache's goroutines.
	Close()
}

// hitCounter is implemented by Maps that count their own hits and misses
// (tiercache, whose Read cannot tell a shared load from a hit).
type hitCounter interface {
	Hits() (hits, misses uint64)
}

// Impl names a cache and how to create one of a given capacity.
type Impl struct {
	Name string
	New  func(capacity int) (Map, error)
}

// ttl is the entries' lifetime where a cache needs one: longer than any run.
const ttl = 5 * time.Minute

// Impls returns every in-process contender, tiercache first.
func Impls() []Impl {
	return []Impl{
		{"tiercache-nostore", newTiercache},
		{"memo", newMemo},
		{"otter/v2", newOtter},
		{"otter/v2-sync", newOtterSync},
		{"golang-lru/v2", newLRU},
		{"ristretto/v2", newRistretto},
		{"sturdyc", newSturdyc},
	}
}

type tierMap struct {
	c    *tiercache.Cache[uint64]
	load tiercache.LoaderFunc[uint64]
}

func newTiercache(capacity int) (Map, error) {
	c, err := tiercache.New(&tiercache.Options[uint64]{
		Keyspace: tiercache.Keyspace{Name: "bench"},
		TTL:      ttl,
		L1:       tiercache.L1[uint64]{Size: capacity},
	})
	if err != nil {
		return nil, err
	}
	return &tierMap{c: c, load: func(context.Context, string) (uint64, error) { return 1, nil }}, nil
}

func (m *tierMap) Read(key string) bool {
	_, _ = m.c.Get(context.Background(), key, m.load)
	return true // counted by Hits
}

func (m *tierMap) Write(key string, v uint64) { _ = m.c.Set(context.Background(), key, v) }
func (m *tierMap) Len([]string) int           { s := m.c.Stats(); return s.L1Size }
func (m *tierMap) Close()                     { _ = m.c.Close() }

func (m *tierMap) Hits() (hits, misses uint64) {
	s := m.c.Stats()
	return s.L1Hits, s.Misses
}

// memoMap runs the mix through a memo.Memo of a free function, the
// cache-aside of a memoizer: a Read is a Get, which on a miss calls the
// function and caches its result.
//
// memo has no Set: the value of a pure function's key cannot be replaced.
// A Write is therefore a Get of its key, which does to the cache what
// golang-lru's Add does (insert as most recently used, evicting the least
// recently used, or refresh an entry already there) but keeps the value the
// function gives. memo's Stats count those Gets too, so the memo row's hit
// ratio is that of all its Gets, reads and writes: writes take their keys
// from the same Zipf traces as reads, so it estimates the reads' hit ratio
// (TestMemoHitRatio checks it against golang-lru's, the same exact LRU).
type memoMap struct{ m *memo.Memo[string, uint64] }

func newMemo(capacity int) (Map, error) {
	return memoMap{memo.New(func(string) uint64 { return 1 }, capacity)}, nil
}

func (m memoMap) Read(key string) bool {
	m.m.Get(key)
	return true // counted by Hits
}

func (m memoMap) Write(key string, _ uint64) { m.m.Get(key) }
func (m memoMap) Len([]string) int           { return m.m.Stats().Size }
func (m memoMap) Close()                     {}

func (m memoMap) Hits() (hits, misses uint64) {
	s := m.m.Stats()
	return s.Hits, s.Misses
}

type otterMap struct{ c *otter.Cache[string, uint64] }

func newOtter(capacity int) (Map, error) {
	c, err := otter.New(&otter.Options[string, uint64]{MaximumSize: capacity})
	if err != nil {
		return nil, err
	}
	return otterMap{c}, nil
}

// newOtterSync is otter as tiercache configures its L1 (and as otter's own
// simulator runs it): maintenance on the goroutine that triggers it.
func newOtterSync(capacity int) (Map, error) {
	c, err := otter.New(&otter.Options[string, uint64]{MaximumSize: capacity, InitialCapacity: capacity, Executor: func(f func()) { f() }})
	if err != nil {
		return nil, err
	}
	return otterMap{c}, nil
}

func (m otterMap) Read(key string) bool {
	if _, ok := m.c.GetIfPresent(key); ok {
		return true
	}
	m.c.Set(key, 1)
	return false
}

func (m otterMap) Write(key string, v uint64) { m.c.Set(key, v) }
func (m otterMap) Len([]string) int           { return m.c.EstimatedSize() }
func (m otterMap) Close()                     { m.c.StopAllGoroutines() }

type lruMap struct{ c *lru.Cache[string, uint64] }

func newLRU(capacity int) (Map, error) {
	c, err := lru.New[string, uint64](capacity)
	if err != nil {
		return nil, err
	}
	return lruMap{c}, nil
}

func (m lruMap) Read(key string) bool {
	if _, ok := m.c.Get(key); ok {
		return true
	}
	m.c.Add(key, 1)
	return false
}

func (m lruMap) Write(key string, v uint64) { m.c.Add(key, v) }
func (m lruMap) Len([]string) int           { return m.c.Len() }
func (m lruMap) Close()                     {}

type ristrettoMap struct {
	c *ristretto.Cache[string, uint64]
}

// newRistretto follows ristretto's README: NumCounters 10× the items,
// MaxCost in the unit of Set's cost (1 per entry, so internal costs are
// ignored), BufferItems 64.
func newRistretto(capacity int) (Map, error) {
	c, err := ristretto.NewCache(&ristretto.Config[string, uint64]{
		NumCounters:        int64(capacity) * 10,
		MaxCost:            int64(capacity),
		BufferItems:        64,
		IgnoreInternalCost: true,
	})
	if err != nil {
		return nil, err
	}
	return &ristrettoMap{c: c}, nil
}

func (m *ristrettoMap) Read(key string) bool {
	if _, ok := m.c.Get(key); ok {
		return true
	}
	m.c.Set(key, 1, 1)
	return false
}

func (m *ristrettoMap) Write(key string, v uint64) { m.c.Set(key, v, 1) }

// Len waits for buffered sets and probes the keys written: ristretto
// counts entries only with Metrics on, which slows it down.
func (m *ristrettoMap) Len(filled []string) int {
	m.c.Wait()
	n := 0
	for _, k := range filled {
		if _, ok := m.c.Get(k); ok {
			n++
		}
	}
	return n
}

func (m *ristrettoMap) Close() { m.c.Close() }

type sturdyMap struct{ c *sturdyc.Client[uint64] }

// newSturdyc follows sturdyc's basic example: 10 shards, evict 10% of a
// full shard; no continuous eviction goroutine (it cannot be stopped).
func newSturdyc(capacity int) (Map, error) {
	return sturdyMap{sturdyc.New[uint64](capacity, 10, ttl, 10, sturdyc.WithNoContinuousEvictions())}, nil
}

func (m sturdyMap) Read(key string) bool {
	if _, ok := m.c.Get(key); ok {
		return true
	}
	m.c.Set(key, 1)
	return false
}

func (m sturdyMap) Write(key string, v uint64) { m.c.Set(key, v) }
func (m sturdyMap) Len([]string) int           { return m.c.Size() }
func (m sturdyMap) Close()                     {}
