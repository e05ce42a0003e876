package workload

import (
	"math/rand/v2"
	"strconv"
)

// ZipfS is the skew of every trace: math/rand/v2's Zipf needs s > 1, and
// 1.01 is the closest to the classic s = 1 of web caching studies.
const ZipfS = 1.01

// Keys returns n ids, "0" to n-1 as strings, built once so that the
// measured loops do not allocate them.
func Keys(n int) []string {
	k := make([]string, n)
	for i := range k {
		k[i] = strconv.Itoa(i)
	}
	return k
}

// Trace returns length indexes into a key space of n keys, Zipf-distributed
// with skew ZipfS (index 0 the most popular), from a generator seeded with
// seed: callers with different seeds see different, equally skewed
// sequences. Traces are generated before a timed phase so that sampling
// costs nothing during it.
func Trace(n, length int, seed uint64) []int32 {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	z := rand.NewZipf(r, ZipfS, 1, uint64(n-1))
	t := make([]int32, length)
	for i := range t {
		t[i] = int32(z.Uint64())
	}
	return t
}

// Scramble returns a permutation of 0..n-1 from seed, so that the popular
// indexes of a trace map to keys spread over the key space rather than to
// the smallest ids.
func Scramble(n int, seed uint64) []int32 {
	r := rand.New(rand.NewPCG(seed, 1))
	p := make([]int32, n)
	for i := range p {
		p[i] = int32(i)
	}
	r.Shuffle(n, func(i, j int) { p[i], p[j] = p[j], p[i] })
	return p
}
