package tiercache_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cachetest"
	"github.com/tiercache/tiercache/redisstore"
)

// The outage bounds of issue 13, as assertions: with Redis killed (SIGKILL)
// or frozen (SIGSTOP) under 64 goroutines reading ids not in L1, at most 8
// requests take over 100 ms in the next 2 s, and the first sequential Get
// after the fault takes at most 250 ms; with a go-redis client on default
// options (no ContextTimeoutEnabled) and with ContextTimeoutEnabled. Before
// (the issue): about 65 requests paid 190–450 ms after a kill, and the first
// Get 800–850 ms.
//
// The bounds are timing: under -race (5 to 10 times slower) the test checks
// only that every Get is answered right and the breaker opens, and prints
// the numbers; make outage runs it without -race, with the bounds
// are asserted. They hold on an idle machine; this 2-core VM shared with
// other work (load average 16 to 25 while it was written) pushed the p99 of
// healthy calls to 30–50 ms, and so the deadlines to the ceiling.
const (
	outageWorkers  = 64
	outageFor      = 2 * time.Second
	outageSlow     = 100 * time.Millisecond
	outageMaxSlow  = 8
	outageFirstMax = 250 * time.Millisecond
)

func TestOutageCostsMilliseconds(t *testing.T) {
	for _, fault := range []string{"kill", "stop"} {
		for _, cte := range []bool{false, true} {
			name := fmt.Sprintf("%s/ContextTimeoutEnabled=%v", fault, cte)
			t.Run(name, func(t *testing.T) { testOutage(t, fault, cte) })
		}
	}
}

// outageCache is a cache on a private Redis, with the options a user would
// start from, and its server.
func outageCache(t *testing.T, cte bool) (*tiercache.Cache[user], *redisstore.Store, *cachetest.Server) {
	own := cachetest.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: own.Addr(), ContextTimeoutEnabled: cte})
	t.Cleanup(func() { rdb.Close() })
	store := redisstore.New(rdb, nil)
	c, err := tiercache.New(&tiercache.Options[user]{
		Keyspace: tiercache.Keyspace{Name: "outage"},
		Store:    store,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, store, own
}

// fresh hands out ids never read before.
type fresh struct{ n atomic.Int64 }

func (f *fresh) id() string { return strconv.FormatInt(f.n.Add(1), 10) }

// outageLoad runs workers goroutines reading fresh ids for d, and returns
// every request's latency.
func outageLoad(t *testing.T, c *tiercache.Cache[user], ids *fresh, workers int, d time.Duration) []time.Duration {
	t.Helper()
	var calls atomic.Int64
	fn := deterministicLoad(&calls)
	var mu sync.Mutex
	var all []time.Duration
	var wg sync.WaitGroup
	start := make(chan struct{})
	var bad atomic.Int64
	for range workers {
		wg.Go(func() {
			<-start
			var mine []time.Duration
			for end := time.Now().Add(d); time.Now().Before(end); {
				id := ids.id()
				t0 := time.Now()
				u, err := c.Get(context.Background(), id, fn)
				mine = append(mine, time.Since(t0))
				if err != nil || u != valueOf(id) {
					bad.Add(1)
				}
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	if n := bad.Load(); n > 0 {
		t.Errorf("%d Gets returned an error or a wrong value", n)
	}
	return all
}

// warm runs the load with Redis up long enough for the store's latency
// estimate (a window of 1 s) and the breaker's window to fill.
func warm(t *testing.T, c *tiercache.Cache[user], ids *fresh) {
	t.Helper()
	if err := c.Ready(t.Context()); err != nil {
		t.Fatal(err)
	}
	outageLoad(t, c, ids, outageWorkers, 1500*time.Millisecond)
	if got := c.Stats().Breaker; got != "closed" {
		// Under -race on a loaded machine healthy calls can miss even
		// the 200 ms ceiling at a high rate; then the rest measures an
		// outage that started early.
		if !raceDetector {
			t.Fatalf("breaker %s with Redis up, want closed", got)
		}
		t.Logf("breaker %s with Redis up (under -race)", got)
	}
}

func over(lat []time.Duration, d time.Duration) int {
	n := 0
	for _, l := range lat {
		if l > d {
			n++
		}
	}
	return n
}

func testOutage(t *testing.T, fault string, cte bool) {
	c, store, own := outageCache(t, cte)
	var ids fresh
	breakIt := func() {
		t.Helper()
		var err error
		if fault == "kill" {
			err = own.Kill()
		} else {
			err = own.Pause()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	mend := func() {
		t.Helper()
		var err error
		if fault == "kill" {
			err = own.Restart()
		} else {
			err = own.Resume()
		}
		if err != nil {
			t.Fatal(err)
		}
		// Back to normal: the breaker's background probe closes it within
		// its cooldown, the subscription comes back.
		deadline := time.Now().Add(10 * time.Second)
		for c.Stats().Breaker != "closed" {
			if time.Now().After(deadline) {
				t.Fatalf("breaker still %s 10 s after Redis came back", c.Stats().Breaker)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	t.Cleanup(func() { own.Resume() })

	// 64 goroutines, from the moment of the fault.
	warm(t, c, &ids)
	t.Logf("deadline of a read before the fault: %v", store.Deadline())
	breakIt()
	lat := outageLoad(t, c, &ids, outageWorkers, outageFor)
	slow := over(lat, outageSlow)
	t.Logf("%s, ContextTimeoutEnabled=%v: %d Gets by %d goroutines in %v after the fault: %d over %v; p50 %v, p99 %v, max %v; breaker %s",
		fault, cte, len(lat), outageWorkers, outageFor, slow, outageSlow, pctl(lat, 50), pctl(lat, 99), pctl(lat, 100), c.Stats().Breaker)
	if slow > outageMaxSlow && assertOutageBounds() {
		t.Errorf("%d requests took over %v in the %v after the fault, want at most %d", slow, outageSlow, outageFor, outageMaxSlow)
	}
	if got := c.Stats().Breaker; got == "closed" {
		t.Errorf("breaker closed %v into the outage, want open", outageFor)
	}

	// The first sequential Get after the fault.
	mend()
	warm(t, c, &ids)
	t.Logf("deadline of a read before the fault: %v", store.Deadline())
	breakIt()
	var calls atomic.Int64
	id := ids.id()
	t0 := time.Now()
	u, err := c.Get(context.Background(), id, deterministicLoad(&calls))
	first := time.Since(t0)
	t.Logf("%s, ContextTimeoutEnabled=%v: first sequential Get after the fault: %v", fault, cte, first)
	if err != nil || u != valueOf(id) {
		t.Fatalf("first Get after the fault = %+v, %v", u, err)
	}
	if first > outageFirstMax && assertOutageBounds() {
		t.Errorf("first Get after the fault took %v, want at most %v", first, outageFirstMax)
	}
}

// assertOutageBounds reports whether the outage test asserts its timing
// bounds: without -race and when asked (make outage sets
// TIERCACHE_OUTAGE_BOUNDS=1); otherwise it reports the numbers only, as
// timings on a machine shared with other work are not the code's.
func assertOutageBounds() bool {
	return !raceDetector && os.Getenv("TIERCACHE_OUTAGE_BOUNDS") != ""
}
