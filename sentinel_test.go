package tiercache_test

import (
	"math/rand/v2"
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

// TestSentinelFailover runs four caches ("processes"), each with a Sentinel
// client of its own, under load through a manual failover of a Redis
// Sentinel setup: every Get returns its id's value and none fails, and
// afterwards the caches share values through the new master.
//
// A failover can lose what the old master had not yet passed on to the
// replica when it was promoted, and what clients still wrote to the old
// master until they learnt of the switch (it stays a master for some
// seconds, and its data is replaced by the new master's when it becomes a
// replica). For a cache that is:
//   - a rebuild lock: the new master never saw it, so a second process may
//     take it and rebuild the key once more. The origin stays protected by
//     each process's single-flight and, fleet-wide, by the lock's short TTL
//     anyway.
//   - a fill or a Set not yet replicated: the key is missing on the new
//     master, and the next Get is a miss that reloads it from the origin.
//
// Both are safe because the cache's values are copies of the origin's:
// losing one costs a reload, never a wrong value. The stale-set guard still
// holds: a Fill is conditional on its lock, so when the lock is lost the old
// holder's Fill fails rather than writing a value loaded before an update.
func TestSentinelFailover(t *testing.T) {
	sn := cachetest.StartSentinel(t)
	name := keyspaceName(t)
	caches := make([]*tiercache.Cache[user], 4)
	for i := range caches {
		rdb := redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: sn.MasterName(), SentinelAddrs: sn.SentinelAddrs(), ContextTimeoutEnabled: true,
		})
		t.Cleanup(func() { rdb.Close() })
		caches[i] = newCache(t, "", tiercache.Options[user]{
			Keyspace: tiercache.Keyspace{Name: name},
			Store:    redisstore.New(rdb, nil),
			TTL:      time.Hour,
			L1:       tiercache.L1[user]{Size: 20}, // small, so most requests go to Redis
		})
	}
	var calls atomic.Int64
	fn := deterministicLoad(&calls)

	const before, during, after = 0, 1, 2
	var phase atomic.Int32 // of the load: before, during or after Failover
	var total, wrong, failed atomic.Int64
	var mu sync.Mutex
	var lat [3][]time.Duration // per phase
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range caches {
		for w := range 3 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(i), uint64(w)))
				var mine [3][]time.Duration
				defer func() {
					mu.Lock()
					for p := range mine {
						lat[p] = append(lat[p], mine[p]...)
					}
					mu.Unlock()
				}()
				for {
					select {
					case <-stop:
						return
					default:
					}
					id := "hot"
					if rng.IntN(2) == 0 {
						id = strconv.Itoa(rng.IntN(200))
					}
					p := phase.Load()
					t0 := time.Now()
					u, err := c.Get(t.Context(), id, fn)
					mine[p] = append(mine[p], time.Since(t0))
					total.Add(1)
					switch {
					case err != nil:
						if failed.Add(1) <= 3 {
							t.Errorf("Get(%s): %v; want no error, Redis failures are misses", id, err)
						}
					case u != valueOf(id):
						if wrong.Add(1) <= 3 {
							t.Errorf("Get(%s) = %+v, want %+v", id, u, valueOf(id))
						}
					}
				}
			})
		}
	}
	l2Hits := func() (n uint64) {
		for _, c := range caches {
			n += c.Stats().L2Hits
		}
		return n
	}

	waitUntil(t, func() bool { return total.Load() > 2000 }, "load to build up")
	from := sn.Master()
	callsBefore := calls.Load()
	phase.Store(during)
	start := time.Now()
	err := sn.Failover()
	took := time.Since(start)
	phase.Store(after)
	callsDuring := calls.Load() - callsBefore
	hitsAfter, n := l2Hits(), total.Load()
	if err == nil {
		// The first calls to the new master make their connections (a
		// Sentinel lookup, a dial) within deadlines set by the old one's
		// latency; some fail, and a breaker may open until its background
		// probe (Cooldown) finds the new master: the caches must come back
		// to Redis, not necessarily at once.
		waitUntil(t, func() bool { return total.Load() > n+2000 && l2Hits() > hitsAfter }, "load to go on after the failover, reading Redis again")
	}
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	to := sn.Master()
	if to == from {
		t.Fatalf("Master() is still %s after Failover", from)
	}

	var s [4]struct{ lockWaits, timeouts, fillsLost, l2Errors uint64 }
	for i, c := range caches {
		st := c.Stats()
		s[i].lockWaits, s[i].timeouts, s[i].fillsLost, s[i].l2Errors = st.LockWaits, st.LockWaitTimeouts, st.FillsLost, st.L2Errors
	}
	t.Logf("failover %s -> %s took %v under load: %d Gets, %d wrong, %d errors; origin calls %d (%d during the failover); Gets before/during/after %d/%d/%d, p99 %v/%v/%v, max %v/%v/%v; per cache {LockWaits LockWaitTimeouts FillsLost L2Errors} %v",
		from, to, took.Round(time.Millisecond), total.Load(), wrong.Load(), failed.Load(), calls.Load(), callsDuring,
		len(lat[before]), len(lat[during]), len(lat[after]),
		pctl(lat[before], 99), pctl(lat[during], 99), pctl(lat[after], 99),
		pctl(lat[before], 100), pctl(lat[during], 100), pctl(lat[after], 100), s)
	if wrong.Load() != 0 || failed.Load() != 0 {
		t.Fatalf("%d wrong values and %d errors through the failover, want none", wrong.Load(), failed.Load())
	}
	if got := l2Hits(); got <= hitsAfter {
		t.Errorf("L2Hits did not grow after the failover (%d then %d): the caches stopped using Redis", hitsAfter, got)
	}

	// And they share values through the new master: one process's Set is
	// what another reads, from L2 rather than the origin.
	a, b := caches[0], caches[1]
	for _, c := range []*tiercache.Cache[user]{a, b} {
		if err := c.Ready(t.Context()); err != nil {
			t.Fatalf("Ready after the failover: %v", err)
		}
	}
	v := user{ID: "fresh", Name: "set after the failover"}
	if err := a.Set(t.Context(), "fresh", v); err != nil {
		t.Fatalf("Set after the failover: %v", err)
	}
	if got, err := sn.Node(to).Do("EXISTS", a.Key("fresh")); err != nil || got != int64(1) {
		t.Errorf("EXISTS %s on the new master %s = %#v, %v; want 1", a.Key("fresh"), to, got, err)
	}
	hits := b.Stats().L2Hits
	if u, err := b.Get(t.Context(), "fresh", fn); err != nil || u != v {
		t.Fatalf("another cache's Get after the Set = %+v, %v; want %+v from Redis", u, err, v)
	}
	if got := b.Stats().L2Hits; got != hits+1 {
		t.Errorf("L2Hits of the reading cache went from %d to %d, want one more", hits, got)
	}
}
