package workload

import (
	"math/bits"
	"time"
)

// subBits is the precision of Histogram: 2^subBits buckets per power of two,
// so a recorded value is known within about 3%.
const subBits = 5

const buckets = (64 - subBits + 1) << subBits

// Histogram is a log-linear histogram of durations, cheap enough to record
// every request of a throughput run (a few nanoseconds, no allocation).
// It is not safe for concurrent use: give each caller its own and Merge
// them. The zero value is empty and ready to use.
type Histogram struct {
	counts [buckets]uint64
	n      uint64
	max    uint64
}

func bucketOf(v uint64) int {
	if v < 1<<subBits {
		return int(v)
	}
	e := bits.Len64(v) - 1
	m := (v >> (e - subBits)) & (1<<subBits - 1)
	return (e-subBits+1)<<subBits | int(m)
}

// bucketMid returns the middle of bucket i's range.
func bucketMid(i int) uint64 {
	if i < 1<<subBits {
		return uint64(i)
	}
	e := i>>subBits + subBits - 1
	m := uint64(i & (1<<subBits - 1))
	lo := uint64(1)<<e | m<<(e-subBits)
	return lo + uint64(1)<<(e-subBits)/2
}

// Record adds one duration.
func (h *Histogram) Record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[bucketOf(v)]++
	h.n++
	h.max = max(h.max, v)
}

// Merge adds every duration of o.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// Count returns the number of durations recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Quantile returns the q-quantile (0 < q <= 1) of the recorded durations,
// or 0 if there are none.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if q >= 1 {
		return time.Duration(h.max)
	}
	rank := uint64(q*float64(h.n-1)) + 1
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(bucketMid(i), h.max))
		}
	}
	return time.Duration(h.max)
}
