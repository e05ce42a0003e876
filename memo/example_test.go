package memo_test

import (
	"fmt"

	"github.com/tiercache/tiercache/memo"
)

// A recursive function memoized: fn may call Get for other keys.
func Example() {
	var fib *memo.Memo[int, uint64]
	fib = memo.New(func(n int) uint64 {
		if n < 2 {
			return uint64(n)
		}
		return fib.Get(n-1) + fib.Get(n-2)
	}, -1) // negative: unbounded, like lru_cache(maxsize=None)

	fmt.Println(fib.Get(80))
	fmt.Printf("%+v\n", fib.Stats())
	// Output:
	// 23416728348467685
	// {Hits:78 Misses:81 MaxSize:-1 Size:81}
}

// With a bound of 2, a hit makes an entry most recently used, so the third
// key evicts b, not a.
func Example_eviction() {
	m := memo.New(func(k string) string {
		fmt.Println("computing", k)
		return k + k
	}, 2)
	m.Get("a")
	m.Get("b")
	m.Get("a") // hit: a is now most recently used
	m.Get("c") // evicts b
	m.Get("a") // hit
	m.Get("b") // computed again
	fmt.Printf("%+v\n", m.Stats())

	m.Clear()
	fmt.Printf("%+v\n", m.Stats())
	// Output:
	// computing a
	// computing b
	// computing c
	// computing b
	// {Hits:2 Misses:4 MaxSize:2 Size:2}
	// {Hits:0 Misses:0 MaxSize:2 Size:0}
}
