package demo

import (
	"math/bits"
	"time"
)

// histogram counts durations in log-linear buckets, as HdrHistogram does:
// values below 2^subBits nanoseconds exactly, larger ones with subBits bits of
// precision (at most 1/32 = 3% error). It holds 2 KiB of counters whatever
// the number of values, so that a run of millions of requests keeps no
// samples. Its zero value is empty and ready; it is not safe for concurrent
// use: each worker keeps its own and they are merged at the end.
type histogram struct {
	counts [64 << subBits]uint64
	n      uint64
}

const subBits = 5

func bucketOf(v uint64) int {
	if v < 1<<subBits {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1
	return (shift+1)<<subBits + int(v>>shift) - 1<<subBits
}

// lowest returns the smallest value of bucket i.
func lowest(i int) uint64 {
	if i < 1<<subBits {
		return uint64(i)
	}
	shift := i>>subBits - 1
	return uint64(i&(1<<subBits-1)+1<<subBits) << shift
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))]++
	h.n++
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// quantile returns the value below which a share q of the values fall: the
// middle of the bucket holding it. It is 0 for an empty histogram.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n-1)) + 1
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := lowest(i), lowest(i+1)
			return time.Duration(lo + (hi-lo)/2)
		}
	}
	return time.Duration(lowest(len(h.counts) - 1))
}
