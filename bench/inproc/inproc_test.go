package inproc

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
)

func TestImpls(t *testing.T) {
	for _, impl := range Impls() {
		t.Run(impl.Name, func(t *testing.T) {
			m, err := impl.New(100)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if m.Read("a") {
				if _, ok := m.(hitCounter); !ok {
					t.Fatal("first Read of a key hit")
				}
			}
			m.Write("b", 2)
			if n := m.Len([]string{"a", "b"}); n < 1 || n > 2 {
				t.Errorf("Len after two inserts = %d, want 1 or 2", n)
			}
		})
	}
}

// TestMemoHitRatio checks how the memo row's hit ratio is measured. memo has
// no Set, so its Writes are Gets and its Stats count them with the reads
// (see memoMap). On one goroutine memo and golang-lru are the same exact LRU
// driven by the same trace, so their reads hit alike; memo's ratio over all
// its Gets must then be within half a point of golang-lru's over the reads.
func TestMemoHitRatio(t *testing.T) {
	tr := NewTraces(1, 1<<18)
	for _, capacity := range []int{1_000, 10_000} {
		var memoRatio, lruRatio float64
		for _, name := range []string{"memo", "golang-lru/v2"} {
			var impl Impl
			for _, im := range Impls() {
				if im.Name == name {
					impl = im
				}
			}
			m, err := impl.New(capacity)
			if err != nil {
				t.Fatal(err)
			}
			never := func(int) bool { return false }
			run(m, tr, 0, never, 20*capacity)
			var h0, m0 uint64
			if hc, ok := m.(hitCounter); ok {
				h0, m0 = hc.Hits()
			}
			hits, reads, ops := run(m, tr, len(tr.traces[0])/2, never, 100_000)
			if hc, ok := m.(hitCounter); ok {
				h1, m1 := hc.Hits()
				hits, reads = h1-h0, (h1-h0)+(m1-m0)
				if want := ops; reads != want {
					t.Fatalf("%s: memo counted %d Gets, want %d (a Get per read and per write)", name, reads, want)
				}
			}
			ratio := 100 * float64(hits) / float64(reads)
			if name == "memo" {
				memoRatio = ratio
			} else {
				lruRatio = ratio
			}
			m.Close()
		}
		if d := memoRatio - lruRatio; d < -0.5 || d > 0.5 {
			t.Errorf("size %d: memo hit ratio %.2f%%, golang-lru %.2f%%: want within 0.5 points", capacity, memoRatio, lruRatio)
		}
		t.Logf("size %d: memo %.2f%%, golang-lru %.2f%%", capacity, memoRatio, lruRatio)
	}
}

// BenchmarkMix runs the 90/10 read/write Zipf mix on 2 goroutines per core
// (b.SetParallelism(2)) at two cache sizes over a 100 000-key space, and
// reports the hit ratio of the reads next to ns/op. Compare runs with
// benchstat.
func BenchmarkMix(b *testing.B) {
	const traceLen = 1 << 20
	t := NewTraces(2*runtime.GOMAXPROCS(0), traceLen)
	for _, impl := range Impls() {
		for _, capacity := range []int{1_000, 10_000} {
			b.Run(fmt.Sprintf("cache=%s/size=%d", impl.Name, capacity), func(b *testing.B) {
				m, err := impl.New(capacity)
				if err != nil {
					b.Fatal(err)
				}
				defer m.Close()
				run(m, t, 0, func(int) bool { return false }, 20*capacity)
				var next atomic.Int64
				var hits, reads atomic.Uint64
				b.SetParallelism(2)
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					tr := t.traces[int(next.Add(1)-1)%len(t.traces)]
					var h, r uint64
					for i := 0; pb.Next(); i++ {
						j := i & (traceLen - 1)
						k := t.keys[tr[j]]
						if j%100 < WritePercent {
							m.Write(k, uint64(j))
							continue
						}
						r++
						if m.Read(k) {
							h++
						}
					}
					hits.Add(h)
					reads.Add(r)
				})
				b.StopTimer()
				h, r := hits.Load(), reads.Load()
				if hc, ok := m.(hitCounter); ok {
					hh, mm := hc.Hits()
					h, r = hh, hh+mm // includes the warm-up
				}
				if r > 0 {
					b.ReportMetric(100*float64(h)/float64(r), "hit%")
				}
			})
		}
	}
}

// BenchmarkBytesPerEntry reports the live heap per entry of a cache filled
// to its capacity with small entries.
func BenchmarkBytesPerEntry(b *testing.B) {
	for _, impl := range Impls() {
		for _, capacity := range []int{1_000, 10_000} {
			b.Run(fmt.Sprintf("cache=%s/size=%d", impl.Name, capacity), func(b *testing.B) {
				var bpe float64
				for b.Loop() {
					var err error
					if bpe, err = BytesPerEntry(impl, capacity); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(bpe, "B/entry")
			})
		}
	}
}
