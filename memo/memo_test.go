package memo_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tiercache/tiercache/memo"
)

// waitMisses is a barrier: it returns once m has counted want misses, that is
// once want callers have found their key uncached and joined (or started) a
// call. Memo counts a miss before the caller waits, so this needs no sleep.
func waitMisses[K comparable, V any](m *memo.Memo[K, V], want uint64) {
	for m.Stats().Misses < want {
		runtime.Gosched()
	}
}

// recoverGet calls m.Get(k) and returns what it panicked with, if it did.
func recoverGet[K comparable, V any](m *memo.Memo[K, V], k K) (v V, panicked bool, r any) {
	defer func() {
		if panicked {
			r = recover()
		}
	}()
	panicked = true
	v = m.Get(k)
	return v, false, nil
}

func TestNewNilFnPanics(t *testing.T) {
	defer func() {
		if r := recover(); r == nil {
			t.Errorf("New(nil, 1) did not panic")
		}
	}()
	memo.New[int, int](nil, 1)
}

func TestStats(t *testing.T) {
	type step struct {
		key                string
		hits, misses, size int
	}
	tests := []struct {
		name    string
		maxSize int
		steps   []step
	}{
		{
			name:    "bounded LRU",
			maxSize: 2,
			steps: []step{
				{"a", 0, 1, 1},
				{"b", 0, 2, 2},
				{"a", 1, 2, 2}, // a becomes most recently used
				{"c", 1, 3, 2}, // evicts b, the least recently used
				{"a", 2, 3, 2}, // still cached: eviction is LRU, not FIFO
				{"b", 2, 4, 2}, // evicted above; now evicts c
				{"a", 3, 4, 2},
				{"c", 3, 5, 2},
			},
		},
		{
			name:    "zero caches nothing",
			maxSize: 0,
			steps: []step{
				{"a", 0, 1, 0},
				{"a", 0, 2, 0},
				{"b", 0, 3, 0},
				{"a", 0, 4, 0},
			},
		},
		{
			name:    "negative is unbounded",
			maxSize: -1,
			steps: []step{
				{"a", 0, 1, 1},
				{"b", 0, 2, 2},
				{"c", 0, 3, 3},
				{"a", 1, 3, 3},
				{"b", 2, 3, 3},
				{"c", 3, 3, 3},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			m := memo.New(func(k string) string { calls++; return k + "!" }, tt.maxSize)
			for i, s := range tt.steps {
				if got, want := m.Get(s.key), s.key+"!"; got != want {
					t.Fatalf("step %d: Get(%q) = %q, want %q", i, s.key, got, want)
				}
				got := m.Stats()
				want := memo.Stats{Hits: uint64(s.hits), Misses: uint64(s.misses), MaxSize: tt.maxSize, Size: s.size}
				if got != want {
					t.Fatalf("step %d: after Get(%q): got %+v, want %+v", i, s.key, got, want)
				}
				if calls != s.misses {
					t.Fatalf("step %d: got %d calls of fn, want %d (one per miss)", i, calls, s.misses)
				}
			}
		})
	}
}

func TestUnboundedKeepsEverything(t *testing.T) {
	const n = 10_000
	m := memo.New(func(k int) int { return -k }, -1)
	for i := range n {
		m.Get(i)
	}
	for i := range n {
		if got, want := m.Get(i), -i; got != want {
			t.Fatalf("Get(%d) = %d, want %d", i, got, want)
		}
	}
	if got, want := m.Stats(), (memo.Stats{Hits: n, Misses: n, MaxSize: -1, Size: n}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestClear(t *testing.T) {
	calls := 0
	m := memo.New(func(k int) int { calls++; return k * k }, 4)
	m.Get(1)
	m.Get(2)
	m.Get(1)
	m.Clear()
	if got, want := m.Stats(), (memo.Stats{MaxSize: 4}); got != want {
		t.Fatalf("after Clear: got %+v, want %+v", got, want)
	}
	if got, want := m.Get(1), 1; got != want {
		t.Fatalf("Get(1) = %d, want %d", got, want)
	}
	if got, want := calls, 3; got != want {
		t.Errorf("got %d calls of fn, want %d: Clear must drop the entry for 1", got, want)
	}
	if got, want := m.Stats(), (memo.Stats{Misses: 1, MaxSize: 4, Size: 1}); got != want {
		t.Errorf("after Clear and Get: got %+v, want %+v", got, want)
	}
}

func TestClearDuringCallDoesNotCacheIt(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	m := memo.New(func(k int) int {
		if calls.Add(1) == 1 {
			close(entered)
			<-release
		}
		return k + 1
	}, 4)
	done := make(chan int)
	go func() { done <- m.Get(1) }()
	<-entered
	m.Clear()
	close(release)
	if got, want := <-done, 2; got != want {
		t.Fatalf("Get(1) = %d, want %d", got, want)
	}
	if got, want := m.Stats().Size, 0; got != want {
		t.Fatalf("after a call that straddled Clear: got Size %d, want %d", got, want)
	}
	m.Get(1)
	if got, want := calls.Load(), int32(2); got != want {
		t.Errorf("got %d calls of fn, want %d", got, want)
	}
}

// TestClearKeepsCallsInFlight checks that Clear drops the cached entries
// but not a call of fn in flight: a Get of its key after Clear joins it
// rather than calling fn again, and its result is not cached.
func TestClearKeepsCallsInFlight(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var calls, nines atomic.Int32
	m := memo.New(func(k int) int {
		calls.Add(1)
		if k == 9 && nines.Add(1) == 1 {
			close(entered)
			<-release
		}
		return k * 2
	}, 4)
	m.Get(1)
	m.Get(2)
	first := make(chan int)
	go func() { first <- m.Get(9) }()
	<-entered
	m.Clear()
	second := make(chan int)
	go func() { second <- m.Get(9) }()
	waitMisses(m, 1) // the second Get has joined the call
	close(release)
	if got, want := <-first, 18; got != want {
		t.Errorf("first Get(9) = %d, want %d", got, want)
	}
	if got, want := <-second, 18; got != want {
		t.Errorf("second Get(9) = %d, want %d", got, want)
	}
	if got, want := m.Stats(), (memo.Stats{Misses: 1, MaxSize: 4}); got != want {
		t.Errorf("after the call: got %+v, want %+v (cached entries dropped, the call's result not cached)", got, want)
	}
	if got, want := calls.Load(), int32(3); got != want {
		t.Errorf("got %d calls of fn, want %d: the Get after Clear must join the call", got, want)
	}
	m.Get(1)
	m.Get(9)
	if got, want := calls.Load(), int32(5); got != want {
		t.Errorf("got %d calls of fn, want %d: Clear must drop 1, and 9 must not be cached", got, want)
	}
}

// TestMatchesReferenceLRU replays random Gets through a Memo and through a
// plain exact LRU (a slice, most recent first) and checks that every Get
// hits or misses as the reference does, with the right value.
func TestMatchesReferenceLRU(t *testing.T) {
	for _, maxSize := range []int{1, 2, 7, 64} {
		t.Run(fmt.Sprint("maxSize=", maxSize), func(t *testing.T) {
			called := false
			m := memo.New(func(k int) int { called = true; return k*k + 1 }, maxSize)
			var ref []int
			r := rand.New(rand.NewPCG(uint64(maxSize), 1))
			var hits, misses uint64
			for i := range 20_000 {
				k := r.IntN(3 * maxSize)
				j := slices.Index(ref, k)
				wantHit := j >= 0
				if wantHit {
					ref = slices.Delete(ref, j, j+1)
					hits++
				} else {
					misses++
				}
				ref = slices.Insert(ref, 0, k)
				if len(ref) > maxSize {
					ref = ref[:maxSize]
				}
				if i%1000 == 999 {
					m.Clear()
					ref, hits, misses = ref[:0], 0, 0
					continue
				}
				called = false
				if got, want := m.Get(k), k*k+1; got != want {
					t.Fatalf("step %d: Get(%d) = %d, want %d", i, k, got, want)
				}
				if called == wantHit {
					t.Fatalf("step %d: Get(%d) called fn: %v, want %v (reference LRU %v)", i, k, called, !wantHit, ref)
				}
				if got, want := m.Stats(), (memo.Stats{Hits: hits, Misses: misses, MaxSize: maxSize, Size: len(ref)}); got != want {
					t.Fatalf("step %d: got %+v, want %+v", i, got, want)
				}
			}
		})
	}
}

// TestFullCacheMissAllocatesNothing checks that a miss of a full cache
// reuses the node it evicts and allocates nothing, as a hit does.
func TestFullCacheMissAllocatesNothing(t *testing.T) {
	const maxSize = 100
	m := memo.New(func(k int) int { return k }, maxSize)
	k := 0
	for range 3 * maxSize {
		m.Get(k)
		k++
	}
	before := m.Stats()
	allocs := testing.AllocsPerRun(1000, func() {
		m.Get(k) // never seen: a miss that evicts
		k++
	})
	if got, want := m.Stats().Misses-before.Misses, uint64(1001); got != want {
		t.Fatalf("got %d misses, want %d (every Get a miss)", got, want)
	}
	if allocs != 0 {
		t.Errorf("got %v allocations per miss of a full cache, want 0", allocs)
	}
}

func TestSingleFlight(t *testing.T) {
	const n = 64
	entered, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	m := memo.New(func(k string) string {
		if calls.Add(1) == 1 {
			close(entered)
		}
		<-release
		return "v:" + k
	}, 8)

	got := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { got[i] = m.Get("k") })
	}
	<-entered
	waitMisses(m, n) // every caller has joined before fn may return
	close(release)
	wg.Wait()

	if c := calls.Load(); c != 1 {
		t.Errorf("got %d calls of fn, want 1", c)
	}
	for i, v := range got {
		if v != "v:k" {
			t.Errorf("caller %d: got %q, want %q", i, v, "v:k")
		}
	}
	if got, want := m.Stats(), (memo.Stats{Misses: n, MaxSize: 8, Size: 1}); got != want {
		t.Errorf("got %+v, want %+v (waiters count as misses)", got, want)
	}
}

func TestPanicReachesEverySharer(t *testing.T) {
	const n = 16
	boom := errors.New("boom")
	entered, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	m := memo.New(func(k int) int {
		if calls.Add(1) == 1 {
			close(entered)
			<-release
			panic(boom)
		}
		return k * 10
	}, 8)

	type result struct {
		panicked bool
		r        any
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, p, r := recoverGet(m, 7)
			results[i] = result{p, r}
		})
	}
	<-entered
	waitMisses(m, n)
	close(release)
	wg.Wait()

	for i, res := range results {
		if !res.panicked || res.r != boom {
			t.Errorf("caller %d: got panicked=%v with %v, want panic with %v", i, res.panicked, res.r, boom)
		}
	}
	if got, want := m.Stats().Size, 0; got != want {
		t.Errorf("after panic: got Size %d, want %d", got, want)
	}
	if got, want := m.Get(7), 70; got != want {
		t.Errorf("Get after panic = %d, want %d", got, want)
	}
	m.Get(7)
	if got, want := calls.Load(), int32(2); got != want {
		t.Errorf("got %d calls of fn, want %d (rerun after the panic, then cached)", got, want)
	}
	if got, want := m.Stats(), (memo.Stats{Hits: 1, Misses: n + 1, MaxSize: 8, Size: 1}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

//go:noinline
func panicInFn(int) int { panic("boom") }

// TestPanicTraceShowsFn checks that the goroutine that ran fn panics with
// fn's frames still on its stack, so a crash shows where fn panicked.
func TestPanicTraceShowsFn(t *testing.T) {
	m := memo.New(panicInFn, 8)
	var stack []byte
	func() {
		defer func() {
			recover()
			stack = debug.Stack() // deferred calls run on top of the panicking frames
		}()
		m.Get(1)
	}()
	if !bytes.Contains(stack, []byte("memo_test.panicInFn")) {
		t.Errorf("stack of the recovered panic does not show fn:\n%s", stack)
	}
}

// TestPanicNil checks that panic(nil) is a panic, not a Goexit: with the
// default GODEBUG the value is a *runtime.PanicNilError, with panicnil=1 it
// is nil.
func TestPanicNil(t *testing.T) {
	var calls atomic.Int32
	m := memo.New(func(k int) int {
		if calls.Add(1) == 1 {
			panic(nil)
		}
		return k
	}, 8)
	_, panicked, r := recoverGet(m, 1)
	err, _ := r.(error)
	var pne *runtime.PanicNilError
	if !panicked || (r != nil && !errors.As(err, &pne)) {
		t.Errorf("got panicked=%v with %v, want a nil panic", panicked, r)
	}
	if got, want := m.Get(1), 1; got != want {
		t.Errorf("Get after panic = %d, want %d", got, want)
	}
}

func TestGoexitDoesNotHangWaiters(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	m := memo.New(func(k int) int {
		if calls.Add(1) == 1 {
			close(entered)
			<-release
			runtime.Goexit()
		}
		return k
	}, 8)

	leaderReturned := make(chan bool)
	go func() {
		returned := false
		defer func() { leaderReturned <- returned }()
		m.Get(1)
		returned = true
	}()
	<-entered

	type result struct {
		panicked bool
		r        any
	}
	waiter := make(chan result)
	go func() {
		_, p, r := recoverGet(m, 1)
		waiter <- result{p, r}
	}()
	waitMisses(m, 2)
	close(release)

	if <-leaderReturned {
		t.Errorf("leader: Get returned, want its goroutine to exit")
	}
	res := <-waiter
	if want := "memo: fn called runtime.Goexit"; !res.panicked || fmt.Sprint(res.r) != want {
		t.Errorf("waiter: got panicked=%v with %v, want panic with %q", res.panicked, res.r, want)
	}
	if got, want := m.Get(1), 1; got != want {
		t.Errorf("Get after Goexit = %d, want %d", got, want)
	}
	if got, want := m.Stats().Size, 1; got != want {
		t.Errorf("got Size %d, want %d", got, want)
	}
}

func TestTypedKeys(t *testing.T) {
	m := memo.New(func(k any) string { return fmt.Sprintf("%T", k) }, -1)
	for _, tt := range []struct {
		key  any
		want string
	}{
		{1, "int"},
		{1.0, "float64"},
		{int64(1), "int64"},
		{"1", "string"},
	} {
		if got := m.Get(tt.key); got != tt.want {
			t.Errorf("Get(%#v) = %q, want %q", tt.key, got, tt.want)
		}
	}
	if got, want := m.Stats(), (memo.Stats{Misses: 4, MaxSize: -1, Size: 4}); got != want {
		t.Errorf("got %+v, want %+v: 1, 1.0, int64(1) and \"1\" are four keys", got, want)
	}
}

func TestRecursionOnOtherKeys(t *testing.T) {
	var calls int
	var fib *memo.Memo[int, uint64]
	fib = memo.New(func(n int) uint64 {
		calls++
		if n < 2 {
			return uint64(n)
		}
		return fib.Get(n-1) + fib.Get(n-2)
	}, -1)
	if got, want := fib.Get(90), uint64(2880067194370816120); got != want {
		t.Errorf("fib(90) = %d, want %d", got, want)
	}
	if got, want := calls, 91; got != want {
		t.Errorf("got %d calls of fn, want %d (once per n in 0..90)", got, want)
	}
}

func TestConcurrentMixed(t *testing.T) {
	const goroutines, perG, keys, maxSize = 16, 2000, 64, 8
	m := memo.New(func(k int) int { return k * 3 }, maxSize)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perG {
				k := (g*7 + i*13) % keys
				if got, want := m.Get(k), k*3; got != want {
					t.Errorf("Get(%d) = %d, want %d", k, got, want)
					return
				}
				if i%500 == 0 && g == 0 {
					m.Clear()
				}
			}
		})
	}
	wg.Wait()
	if got := m.Stats().Size; got > maxSize {
		t.Errorf("got Size %d, want at most %d", got, maxSize)
	}
}

func TestHitsPlusMissesCountsEveryGet(t *testing.T) {
	const goroutines, perG, keys, maxSize = 8, 1000, 32, 8
	m := memo.New(func(k int) int { return k }, maxSize)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perG {
				m.Get((g + i) % keys)
			}
		})
	}
	wg.Wait()
	s := m.Stats()
	if got, want := s.Hits+s.Misses, uint64(goroutines*perG); got != want {
		t.Errorf("got Hits+Misses %d, want %d", got, want)
	}
	if got, want := s.Size, maxSize; got != want {
		t.Errorf("got Size %d, want %d", got, want)
	}
}

func BenchmarkGetHit(b *testing.B) {
	const keys = 1024
	m := memo.New(func(k int) int { return k * 2 }, keys)
	for k := range keys {
		m.Get(k)
	}
	before := m.Stats()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.Get(i % keys)
		i++
	}
	after := m.Stats()
	hits, misses := after.Hits-before.Hits, after.Misses-before.Misses
	b.ReportMetric(float64(hits)/float64(hits+misses), "hit-ratio")
}
