package inproc

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tiercache/tiercache/bench/workload"
)

// KeySpace is the number of distinct keys of the mix: ten times the largest
// cache, so that sizes matter.
const KeySpace = 100_000

// WritePercent is the share of writes in the mix (90/10 read/write).
const WritePercent = 10

// Traces are the per-goroutine Zipf key sequences of a mix, generated once
// and shared by every contender so that all see the same requests.
type Traces struct {
	keys   []string
	traces [][]int32
}

// NewTraces generates one trace of length keys per goroutine over KeySpace
// keys.
func NewTraces(goroutines, length int) *Traces {
	t := &Traces{keys: workload.Keys(KeySpace), traces: make([][]int32, goroutines)}
	perm := workload.Scramble(KeySpace, 7)
	for g := range t.traces {
		tr := workload.Trace(KeySpace, length, uint64(g)+1)
		for i, k := range tr {
			tr[i] = perm[k]
		}
		t.traces[g] = tr
	}
	return t
}

// Goroutines returns the number of traces, and so of concurrent callers.
func (t *Traces) Goroutines() int { return len(t.traces) }

// MixResult is one run of the mix.
type MixResult struct {
	OpsPerSec float64
	HitRatio  float64
}

// RunMix fills a fresh cache of capacity with one pass of warm-up, then runs
// the 90/10 mix from every trace concurrently for d and reports throughput
// and the hit ratio of the reads.
func RunMix(impl Impl, capacity int, t *Traces, d time.Duration) (MixResult, error) {
	m, err := impl.New(capacity)
	if err != nil {
		return MixResult{}, err
	}
	defer m.Close()
	// Warm-up, untimed: enough requests to fill the cache and let its
	// admission policy learn the frequencies.
	run(m, t, 0, func(int) bool { return false }, min(len(t.traces[0]), 20*capacity))
	var h0, m0 uint64
	hc, counts := m.(hitCounter)
	if counts {
		h0, m0 = hc.Hits()
	}
	var stop atomic.Bool
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	defer timer.Stop()
	start := time.Now()
	hits, reads, ops := run(m, t, len(t.traces[0])/2, func(int) bool { return stop.Load() }, -1)
	elapsed := time.Since(start)
	if counts {
		h1, m1 := hc.Hits()
		hits, reads = h1-h0, (h1-h0)+(m1-m0)
	}
	r := MixResult{OpsPerSec: float64(ops) / elapsed.Seconds()}
	if reads > 0 {
		r.HitRatio = float64(hits) / float64(reads)
	}
	return r, nil
}

// run drives m from every trace, each goroutine starting at offset and
// wrapping around, until done (checked every 256 ops) or limit ops per
// goroutine (if limit >= 0). It returns the reads that hit, the reads and
// all operations.
func run(m Map, t *Traces, offset int, done func(int) bool, limit int) (hits, reads, ops uint64) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	for g, tr := range t.traces {
		wg.Go(func() {
			var h, r, n uint64
			i := offset % len(tr)
			for {
				if n&255 == 0 && (done(g) || (limit >= 0 && n >= uint64(limit))) {
					break
				}
				k := t.keys[tr[i]]
				if i%100 < WritePercent {
					m.Write(k, uint64(i))
				} else {
					r++
					if m.Read(k) {
						h++
					}
				}
				n++
				if i++; i == len(tr) {
					i = 0
				}
			}
			mu.Lock()
			hits, reads, ops = hits+h, reads+r, ops+n
			mu.Unlock()
		})
	}
	wg.Wait()
	return hits, reads, ops
}

// BytesPerEntry creates a cache of capacity, fills it with capacity small
// entries (keys built beforehand, uint64 values) and returns the growth of
// the live heap divided by the entries held, the cache's fixed overhead
// included.
func BytesPerEntry(impl Impl, capacity int) (float64, error) {
	keys := workload.Keys(capacity)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	m, err := impl.New(capacity)
	if err != nil {
		return 0, err
	}
	defer m.Close()
	for i, k := range keys {
		m.Write(k, uint64(i))
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	n := m.Len(keys)
	if n <= 0 {
		return 0, nil
	}
	return (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / float64(n), nil
}
