package inproc

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/tiercache/tiercache/bench/workload"
	"github.com/tiercache/tiercache/memo"
)

// memoizer is a memoized pure function of an int, as memo.Memo is and as a
// Go programmer would build one on golang-lru.
type memoizer interface{ Get(k int) uint64 }

// lruMemo memoizes fn on golang-lru/v2 the way its README suggests for a
// cache in front of a computation: Get, and on a miss compute and Add. It
// has no single-flight: concurrent misses of one key each call fn.
type lruMemo struct {
	c  *lru.Cache[int, uint64]
	fn func(int) uint64
}

func (m lruMemo) Get(k int) uint64 {
	if v, ok := m.c.Get(k); ok {
		return v
	}
	v := m.fn(k)
	m.c.Add(k, v)
	return v
}

// memoizers returns the two contenders of BenchmarkMemoize, each memoizing
// fn with room for size results.
func memoizers() []struct {
	name string
	new  func(fn func(int) uint64, size int) (memoizer, error)
} {
	return []struct {
		name string
		new  func(fn func(int) uint64, size int) (memoizer, error)
	}{
		{"memo", func(fn func(int) uint64, size int) (memoizer, error) { return memo.New(fn, size), nil }},
		{"golang-lru", func(fn func(int) uint64, size int) (memoizer, error) {
			c, err := lru.New[int, uint64](size)
			return lruMemo{c, fn}, err
		}},
	}
}

// mix64 is the memoized function: pure and cheap (a few ns, SplitMix64's
// finalizer), so that the benchmark measures the memoizers, not the work.
func mix64(k int) uint64 {
	x := uint64(k)
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// memoKeys is the argument space of BenchmarkMemoize.
const memoKeys = 10_000

// BenchmarkMemoize is memo's own workload: a pure function memoized with a
// bound, called with Zipf-distributed arguments (s=1.01 over 10 000 ints,
// popular ones scattered), mostly hits. It runs memo and golang-lru/v2 (as
// lruMemo) side by side, on one goroutine (mode=seq) and under RunParallel
// with GOMAXPROCS goroutines (mode=par), at a bound of 1 000 results (about
// 70% hits) and 5 000 (about 90%). hit% is the share of Gets that did not
// call the function; fn calls are counted by the function, the same way for
// both; allocs/miss divides the heap allocations of the timed loop by those
// calls (allocs/op rounds them down to 0). Compare the two with benchstat
// -col /cache.
func BenchmarkMemoize(b *testing.B) {
	const traceLen = 1 << 20
	perm := workload.Scramble(memoKeys, 3)
	traces := make([][]int32, max(runtime.GOMAXPROCS(0), 1))
	for g := range traces {
		tr := workload.Trace(memoKeys, traceLen, uint64(g)+41)
		for i, k := range tr {
			tr[i] = perm[k]
		}
		traces[g] = tr
	}
	for _, size := range []int{1_000, 5_000} {
		for _, mode := range []string{"seq", "par"} {
			for _, im := range memoizers() {
				b.Run(fmt.Sprintf("size=%d/mode=%s/cache=%s", size, mode, im.name), func(b *testing.B) {
					var calls atomic.Uint64
					m, err := im.new(func(k int) uint64 { calls.Add(1); return mix64(k) }, size)
					if err != nil {
						b.Fatal(err)
					}
					// Warm-up, untimed: fill the bound.
					for _, k := range traces[0][:20*size] {
						if got, want := m.Get(int(k)), mix64(int(k)); got != want {
							b.Fatalf("Get(%d) = %d, want %d", k, got, want)
						}
					}
					calls.Store(0)
					var gets atomic.Uint64
					var ms0, ms1 runtime.MemStats
					runtime.ReadMemStats(&ms0)
					b.ReportAllocs()
					b.ResetTimer()
					if mode == "seq" {
						tr, i := traces[0], 0
						for b.Loop() {
							m.Get(int(tr[i&(traceLen-1)]))
							i++
						}
						gets.Store(uint64(i))
					} else {
						var next atomic.Int64
						b.RunParallel(func(pb *testing.PB) {
							tr := traces[int(next.Add(1)-1)%len(traces)]
							i := 0
							for ; pb.Next(); i++ {
								m.Get(int(tr[i&(traceLen-1)]))
							}
							gets.Add(uint64(i))
						})
					}
					b.StopTimer()
					runtime.ReadMemStats(&ms1)
					if n := gets.Load(); n > 0 {
						b.ReportMetric(100*(1-float64(calls.Load())/float64(n)), "hit%")
					}
					if c := calls.Load(); c > 0 {
						b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(c), "allocs/miss")
					}
				})
			}
		}
	}
}
