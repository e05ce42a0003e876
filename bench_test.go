package tiercache_test

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/driver"
	"github.com/tiercache/tiercache/redisstore"
)

const benchKeys = 1 << 10

var benchIDs = func() []string {
	ids := make([]string, benchKeys)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	return ids
}()

func benchLoad(_ context.Context, id string) (user, error) { return user{ID: id}, nil }

// BenchmarkL1Hit compares a tiercache L1 hit with a raw otter GetIfPresent
// on the same keys, in the same run: the cost tiercache adds on its hottest
// path (freshness check, stats). Parallel, then on one goroutine (the cost
// without cross-core contention).
func BenchmarkL1Hit(b *testing.B) {
	info := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	b.Run("otter.GetIfPresent", func(b *testing.B) { runHits(b, true, otterHit(b, nil)) })
	b.Run("otter.GetIfPresent/sync", func(b *testing.B) { runHits(b, true, otterHit(b, func(f func()) { f() })) })
	b.Run("otter.GetIfPresent/sync/value", func(b *testing.B) { runHits(b, true, otterValueHit(b)) })
	b.Run("tiercache.Get", func(b *testing.B) { runHits(b, true, warmL1(b, nil)) })
	b.Run("tiercache.Get/logger-info", func(b *testing.B) { runHits(b, true, warmL1(b, info)) })
}

// BenchmarkL1HitSerial is BenchmarkL1Hit on one goroutine.
func BenchmarkL1HitSerial(b *testing.B) {
	b.Run("otter.GetIfPresent", func(b *testing.B) { runHits(b, false, otterHit(b, nil)) })
	b.Run("otter.GetIfPresent/sync", func(b *testing.B) { runHits(b, false, otterHit(b, func(f func()) { f() })) })
	b.Run("otter.GetIfPresent/sync/value", func(b *testing.B) { runHits(b, false, otterValueHit(b)) })
	b.Run("tiercache.Get", func(b *testing.B) { runHits(b, false, warmL1(b, nil)) })
}

// otterValueHit is otterHit with maintenance on the caller (as tiercache
// runs otter) and the record stored by value, so that a hit copies it out
// as tiercache.Get does: the same work but tiercache's own.
func otterValueHit(b *testing.B) func(id string) bool {
	c := otter.Must(&otter.Options[string, user]{MaximumSize: 10_000, InitialCapacity: 10_000, Executor: func(f func()) { f() }})
	b.Cleanup(func() { c.StopAllGoroutines() })
	for _, id := range benchIDs {
		c.Set(id, user{ID: id})
	}
	return func(id string) bool { u, ok := c.GetIfPresent(id); return ok && u.ID != "" }
}

// otterHit returns a hit function on a raw otter cache holding benchIDs, as
// tiercache sizes its L1 by default, with executor (nil: otter's default, which runs
// maintenance on goroutines of its own).
func otterHit(b *testing.B, executor func(func())) func(id string) bool {
	c := otter.Must(&otter.Options[string, *user]{MaximumSize: 10_000, InitialCapacity: 10_000, Executor: executor})
	b.Cleanup(func() { c.StopAllGoroutines() })
	for _, id := range benchIDs {
		c.Set(id, &user{ID: id})
	}
	return func(id string) bool { u, ok := c.GetIfPresent(id); return ok && u.ID != "" }
}

// warmL1 returns a hit function on an in-process cache holding benchIDs.
func warmL1(b *testing.B, logger *slog.Logger) func(id string) bool {
	c, err := tiercache.New(&tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: "bench"}, Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	ctx := context.Background()
	for _, id := range benchIDs {
		c.Get(ctx, id, benchLoad)
	}
	return func(id string) bool { u, err := c.Get(ctx, id, benchLoad); return err == nil && u.ID != "" }
}

// runHits times hit over benchIDs, in parallel or on one goroutine; a miss
// fails the benchmark.
func runHits(b *testing.B, parallel bool, hit func(id string) bool) {
	b.ReportAllocs()
	b.ResetTimer()
	if !parallel {
		i := 0
		for b.Loop() {
			if !hit(benchIDs[i&(benchKeys-1)]) {
				b.Fatal("miss")
			}
			i++
		}
		return
	}
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if !hit(benchIDs[i&(benchKeys-1)]) {
				b.Fatal("miss")
			}
			i++
		}
	})
}

// redisCache returns a cache of keyspace name on srv, closed with the
// benchmark; l1TTL 1 ns keeps L1 from answering (the coarse clock aside).
func redisCache(b *testing.B, name string, l1TTL time.Duration) *tiercache.Cache[user] {
	rdb := redis.NewClient(&redis.Options{Addr: srv(b).Addr(), ContextTimeoutEnabled: true})
	c, err := tiercache.New(&tiercache.Options[user]{
		Keyspace: tiercache.Keyspace{Name: name}, Store: redisstore.New(rdb, nil), L1: tiercache.L1[user]{TTL: l1TTL},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close(); rdb.Close() })
	return c
}

// BenchmarkL2Hit is a Get answered by Redis (L1 never trusted: L1TTL 1 ns):
// one round trip and one decode.
func BenchmarkL2Hit(b *testing.B) {
	c := redisCache(b, "bench-l2", time.Nanosecond)
	ctx := context.Background()
	for _, id := range benchIDs {
		c.Get(ctx, id, benchLoad)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := c.Get(ctx, benchIDs[i&(benchKeys-1)], benchLoad); err != nil {
			b.Fatal(err)
		}
		i++
	}
	if s := c.Stats(); s.L2Hits < uint64(b.N) {
		b.Fatalf("%d L2 hits for %d Gets", s.L2Hits, b.N)
	}
}

// BenchmarkMissLoad is a Get of an id in neither tier: GET, TryLock, the
// loader, the conditional fill and the fill's message.
func BenchmarkMissLoad(b *testing.B) {
	c := redisCache(b, "bench-miss-"+strconv.FormatInt(time.Now().UnixNano(), 36), 0)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := c.Get(ctx, strconv.Itoa(i), benchLoad); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkGetMany100 is a GetMany of 100 ids, all in Redis and none in L1
// (L1TTL 1 ns, and each id asked again only 50 calls later, after the
// coarse clock has moved).
func BenchmarkGetMany100(b *testing.B) {
	c := redisCache(b, "bench-many", time.Nanosecond)
	ctx := context.Background()
	const windows = 50
	ids := make([][]string, windows)
	for w := range ids {
		for i := range 100 {
			ids[w] = append(ids[w], strconv.Itoa(w*100+i))
		}
	}
	batch := func(ctx context.Context, ids []string) (map[string]user, error) {
		m := make(map[string]user, len(ids))
		for _, id := range ids {
			m[id] = user{ID: id}
		}
		return m, nil
	}
	for _, w := range ids {
		c.GetMany(ctx, w, batch)
	}
	time.Sleep(5 * time.Millisecond) // past the L1 trust of the fills
	before := c.Stats().L2Hits
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if m, err := c.GetMany(ctx, ids[i%windows], batch); err != nil || len(m) != 100 {
			b.Fatal(len(m), err)
		}
		i++
	}
	b.ReportMetric(float64(c.Stats().L2Hits-before)/float64(b.N), "l2-hits/op")
}

// plainStore is a redisstore.Store that reports no capabilities beyond
// Get, Set and Delete: no fleet-wide lock, no messages — each process
// protects the origin with its own single-flight only.
type plainStore struct{ driver.Store }

func (plainStore) Capabilities() driver.Capabilities { return driver.Capabilities{} }

// BenchmarkHotKeyExpiry counts origin calls when a hot key is missing (it
// just expired) and 1000 callers over 4 processes want it at once, the
// loader taking 20 ms: naive cache-aside (every caller loads), per-process
// single-flight (one load per process) and tiercache's fleet-wide lock.
// The metric that matters is origin-calls/op.
func BenchmarkHotKeyExpiry(b *testing.B) {
	const processes, callers = 4, 1000
	slowLoad := func(calls *atomic.Int64) tiercache.LoaderFunc[user] {
		return func(ctx context.Context, id string) (user, error) {
			calls.Add(1)
			time.Sleep(20 * time.Millisecond) // the origin's work
			return user{ID: id}, nil
		}
	}
	run := func(b *testing.B, get func(p int, id string, load tiercache.LoaderFunc[user])) {
		var calls atomic.Int64
		load := slowLoad(&calls)
		i := 0
		for b.Loop() {
			id := "hot-" + strconv.Itoa(i) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
			i++
			start := make(chan struct{})
			var wg sync.WaitGroup
			for c := range callers {
				wg.Go(func() {
					<-start
					get(c%processes, id, load)
				})
			}
			close(start)
			wg.Wait()
		}
		b.ReportMetric(float64(calls.Load())/float64(b.N), "origin-calls/op")
	}
	b.Run("naive", func(b *testing.B) {
		// GET, and on a miss every caller loads and SETs.
		rdb := redis.NewClient(&redis.Options{Addr: srv(b).Addr(), ContextTimeoutEnabled: true})
		defer rdb.Close()
		run(b, func(_ int, id string, load tiercache.LoaderFunc[user]) {
			ctx := context.Background()
			if err := rdb.Get(ctx, "naive:"+id).Err(); err == nil {
				return
			}
			u, _ := load(ctx, id)
			rdb.Set(ctx, "naive:"+id, u.ID, time.Minute)
		})
	})
	fleetOf := func(b *testing.B, locked bool) []*tiercache.Cache[user] {
		name := "bench-hot-" + strconv.FormatBool(locked) + strconv.FormatInt(time.Now().UnixNano(), 36)
		var cs []*tiercache.Cache[user]
		for range processes {
			rdb := redis.NewClient(&redis.Options{Addr: srv(b).Addr(), ContextTimeoutEnabled: true})
			var store driver.Store = redisstore.New(rdb, nil)
			if !locked {
				store = plainStore{store}
			}
			c, err := tiercache.New(&tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: name}, Store: store})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { c.Close(); rdb.Close() })
			cs = append(cs, c)
		}
		return cs
	}
	b.Run("per-process-singleflight", func(b *testing.B) {
		cs := fleetOf(b, false)
		run(b, func(p int, id string, load tiercache.LoaderFunc[user]) { cs[p].Get(context.Background(), id, load) })
	})
	b.Run("tiercache", func(b *testing.B) {
		cs := fleetOf(b, true)
		run(b, func(p int, id string, load tiercache.LoaderFunc[user]) { cs[p].Get(context.Background(), id, load) })
	})
}

// BenchmarkMissInProcess is a Get of an id L1 does not hold, with no shared
// tier and a loader that returns at once: what the miss path itself costs
// (single flight, the loader's context, the entry, L1's insertion).
func BenchmarkMissInProcess(b *testing.B) {
	c, err := tiercache.New(&tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: "bench-miss"}})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ids := make([]string, 1<<20) // built before the timer: the ids are the caller's
	for i := range ids {
		ids[i] = "m" + strconv.Itoa(i)
	}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := c.Get(ctx, ids[i&(len(ids)-1)], benchLoad); err != nil {
			b.Fatal(err)
		}
		i++
	}
	// Past 2^20 Gets ids come back, and W-TinyLFU keeps a few: misses/op
	// says how many Gets were misses.
	b.ReportMetric(float64(c.Stats().Misses)/float64(b.N), "misses/op")
}
