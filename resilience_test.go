package tiercache_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cachetest"
	"github.com/tiercache/tiercache/driver"
	"github.com/tiercache/tiercache/redisstore"
)

// countingStore is a redisstore.Store that counts the calls that reach it,
// so a test can tell a skipped call (breaker open) from one that waited for
// a dead Redis.
type countingStore struct {
	*redisstore.Store
	calls atomic.Int64
}

func (s *countingStore) Get(ctx context.Context, keys []string) ([][]byte, error) {
	s.calls.Add(1)
	return s.Store.Get(ctx, keys)
}

func (s *countingStore) Lock(ctx context.Context, locks []driver.LockRequest, ttl time.Duration) ([]driver.LockResult, error) {
	s.calls.Add(1)
	return s.Store.Lock(ctx, locks, ttl)
}

// pctl returns the p-th percentile of d (sorted in place).
func pctl(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(len(d)-1, len(d)*p/100)]
}

// valueOf is the origin's deterministic value for an id.
func valueOf(id string) user { return user{ID: id, Name: "user " + id} }

func deterministicLoad(calls *atomic.Int64) tiercache.LoaderFunc[user] {
	return func(ctx context.Context, id string) (user, error) {
		calls.Add(1)
		return valueOf(id), nil
	}
}

// load runs Gets of random ids from workers goroutines for d, and returns
// the latencies and the number of wrong answers and errors.
func load(t *testing.T, c *tiercache.Cache[user], ids int, workers int, n int, fn tiercache.LoaderFunc[user]) (lat []time.Duration, wrong, failed int) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			var mine []time.Duration
			var bad, errs int
			for range n / workers {
				id := strconv.Itoa(rng.IntN(ids))
				t0 := time.Now()
				u, err := c.Get(t.Context(), id, fn)
				mine = append(mine, time.Since(t0))
				switch {
				case err != nil:
					errs++
				case u != valueOf(id):
					bad++
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			wrong += bad
			failed += errs
			mu.Unlock()
		})
	}
	wg.Wait()
	return lat, wrong, failed
}

// TestRedisKilledUnderLoad: SIGKILL Redis while requests run. Every Get still
// returns the right value (L1 or loader), nothing leaks, and once the
// breaker is open requests stop calling Redis: of 400 Gets afterwards, at
// most the breaker's probes reach the store.
func TestRedisKilledUnderLoad(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	own := cachetest.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: own.Addr(), ContextTimeoutEnabled: true})
	store := &countingStore{Store: redisstore.New(rdb, nil)}
	c, err := tiercache.New(&tiercache.Options[user]{
		Keyspace: tiercache.Keyspace{Name: "killed"}, Store: store,
		L2: tiercache.L2[user]{Breaker: tiercache.Breaker{Cooldown: time.Second}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	fn := deterministicLoad(&calls)
	const ids = 200

	up, wrong, failed := load(t, c, ids, 8, 4000, fn)
	if wrong+failed != 0 {
		t.Fatalf("with Redis up: %d wrong, %d failed", wrong, failed)
	}
	if err := own.Kill(); err != nil {
		t.Fatal(err)
	}
	// Half of these ids were never loaded: they need Redis (which fails)
	// and the loader, whatever the cache knows yet of the kill.
	down, wrong, failed := load(t, c, 2*ids, 8, 4000, fn)
	if wrong+failed != 0 {
		t.Fatalf("after the kill: %d wrong answers, %d errors; want none", wrong, failed)
	}
	if got := c.Stats().Breaker; got != "open" {
		t.Fatalf("breaker %q after Redis died, want open", got)
	}
	before := store.calls.Load()
	var after []time.Duration
	for i := range 400 {
		t0 := time.Now()
		id := strconv.Itoa(2*ids + i) // not in L1: each needs the loader
		if u, err := c.Get(t.Context(), id, fn); err != nil || u != valueOf(id) {
			t.Fatalf("Get(%s) = %+v, %v", id, u, err)
		}
		after = append(after, time.Since(t0))
	}
	reached := store.calls.Load() - before
	// One probe per cooldown may go through; the 400 Gets take far less than
	// a second, so at most one or two calls may reach the dead Redis.
	if reached > 2 {
		t.Fatalf("%d of 400 Gets called the dead Redis while the breaker was open", reached)
	}
	t.Logf("Redis up: %d Gets, p50 %v p99 %v; killed: %d Gets, p50 %v p99 %v; breaker open: 400 cold Gets, p99 %v, %d reached Redis",
		len(up), pctl(up, 50), pctl(up, 99), len(down), pctl(down, 50), pctl(down, 99), pctl(after, 99), reached)
	c.Close()
	rdb.Close()
}

// TestRedisPausedThenBack: with Redis stopped (SIGSTOP), calls are bounded by
// the store's deadline, then the breaker opens and requests stop waiting;
// after SIGCONT the cache uses Redis again within the breaker's cooldown.
func TestRedisPausedThenBack(t *testing.T) {
	own := cachetest.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: own.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	const deadline = 100 * time.Millisecond
	store := &countingStore{Store: redisstore.New(rdb, &redisstore.Options{Timeout: deadline})}
	c := newCache(t, "", tiercache.Options[user]{
		Keyspace: tiercache.Keyspace{Name: "paused"}, Store: store,
		L2: tiercache.L2[user]{Breaker: tiercache.Breaker{Failures: 3, Cooldown: 300 * time.Millisecond}},
	})
	var calls atomic.Int64
	fn := deterministicLoad(&calls)
	if _, err := c.Get(t.Context(), "warm", fn); err != nil {
		t.Fatal(err)
	}
	if err := own.Pause(); err != nil {
		t.Fatal(err)
	}
	defer own.Resume()

	var paused []time.Duration
	for i := range 50 {
		id := "p" + strconv.Itoa(i)
		t0 := time.Now()
		if u, err := c.Get(t.Context(), id, fn); err != nil || u != valueOf(id) {
			t.Fatalf("Get(%s) while paused = %+v, %v", id, u, err)
		}
		paused = append(paused, time.Since(t0))
	}
	if got := c.Stats().Breaker; got != "open" {
		t.Fatalf("breaker %q while Redis is paused, want open", got)
	}
	// Only the calls before the breaker opened waited for the deadline.
	slow := 0
	for _, d := range paused {
		if d >= deadline {
			slow++
		}
	}
	if slow > 3 {
		t.Errorf("%d of 50 Gets waited for the store's deadline; the breaker should open after 3", slow)
	}
	t.Logf("paused: 50 Gets, %d waited for the %v deadline, p50 %v, p99 %v, max %v", slow, deadline, pctl(paused, 50), pctl(paused, 99), paused[len(paused)-1])

	if err := own.Resume(); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	waitUntil(t, func() bool {
		c.Get(t.Context(), "r"+strconv.Itoa(int(calls.Load())), fn)
		return c.Stats().Breaker == "closed"
	}, "the breaker to close after Redis came back")
	t.Logf("Redis used again %v after SIGCONT (cooldown 300ms)", time.Since(resumed).Round(time.Millisecond))
	// And it really is used: a value another process writes is read.
	other := newCache(t, own.Addr(), tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: "paused"}})
	if err := other.Set(t.Context(), "fresh", user{ID: "fresh", Name: "from redis"}); err != nil {
		t.Fatal(err)
	}
	if u, err := c.Get(t.Context(), "fresh", fn); err != nil || u.Name != "from redis" {
		t.Fatalf("Get after recovery = %+v, %v; want the value from Redis", u, err)
	}
}

// TestOriginFailing: with the origin failing every call, a value within
// MaxStale is served with ErrStale, then the Fallback with ErrFallback;
// loads are retried with backoff whose gaps grow; and a caller's deadline
// bounds its wait. Time is synctest's.
func TestOriginFailing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		down := errors.New("db down")
		var mu sync.Mutex
		var attempts []time.Time
		failing := func(ctx context.Context, id string) (user, error) {
			mu.Lock()
			attempts = append(attempts, time.Now())
			mu.Unlock()
			return user{}, down
		}
		o := tiercache.Options[user]{
			Keyspace: tiercache.Keyspace{Name: "failing"},
			TTL:      time.Minute, StaleTTL: time.Minute, Degrade: tiercache.Degrade[user]{MaxStale: 10 * time.Minute, Fallback: func(id string, cause error) user { return user{ID: id, Name: "degraded"} }}, Jitter: -1,
		}
		tiercache.SetClock(&o, time.Now)
		c, err := tiercache.New(&o)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx := context.Background()
		if _, err := c.Get(ctx, "1", deterministicLoad(new(atomic.Int64))); err != nil {
			t.Fatal(err)
		}

		time.Sleep(3 * time.Minute) // past the hard expiry (2 min), within MaxStale
		u, err := c.Get(ctx, "1", failing)
		if !errors.Is(err, tiercache.ErrStale) || !errors.Is(err, down) || u != valueOf("1") {
			t.Fatalf("within MaxStale: Get = %+v, %v; want the stale value with ErrStale wrapping the cause", u, err)
		}
		if len(attempts) != 3 {
			t.Fatalf("%d attempts, want 3", len(attempts))
		}

		time.Sleep(10 * time.Minute) // past MaxStale
		u, err = c.Get(ctx, "1", failing)
		if !errors.Is(err, tiercache.ErrFallback) || !errors.Is(err, down) || u.Name != "degraded" {
			t.Fatalf("past MaxStale: Get = %+v, %v; want the fallback with ErrFallback", u, err)
		}
		s := c.Stats()
		if s.StaleIfError != 1 || s.Fallbacks != 1 || s.LoadErrors != 6 {
			t.Fatalf("StaleIfError %d, Fallbacks %d, LoadErrors %d; want 1, 1, 6", s.StaleIfError, s.Fallbacks, s.LoadErrors)
		}

		// Backoff: gap n is uniform in [0, min(800ms, 100ms·2^(n-1))], so
		// each is within its cap and on average the second is twice the
		// first.
		var sum1, sum2 time.Duration
		const loads = 200
		for i := range loads {
			mu.Lock()
			attempts = attempts[:0]
			mu.Unlock()
			c.Get(ctx, "x"+strconv.Itoa(i), failing)
			g1, g2 := attempts[1].Sub(attempts[0]), attempts[2].Sub(attempts[1])
			if g1 > 100*time.Millisecond || g2 > 200*time.Millisecond {
				t.Fatalf("gaps %v, %v exceed their caps 100ms, 200ms", g1, g2)
			}
			sum1 += g1
			sum2 += g2
		}
		if sum2 <= sum1 {
			t.Fatalf("mean gaps %v then %v: backoff does not grow", sum1/loads, sum2/loads)
		}
		t.Logf("mean backoff gaps over %d loads: %v then %v", loads, sum1/loads, sum2/loads)

		// A caller's deadline bounds its wait even when the origin hangs.
		hang := func(ctx context.Context, id string) (user, error) {
			<-ctx.Done()
			return user{}, ctx.Err()
		}
		dctx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err = c.Get(dctx, "hang", hang)
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 150*time.Millisecond {
			t.Fatalf("Get with a 150ms deadline returned %v after %v", err, time.Since(start))
		}
	})
}

// TestDegradationLoggedOnce: a failing load shared by many callers is
// logged once at Warn, not once per caller.
func TestDegradationLoggedOnce(t *testing.T) {
	var buf cachetest.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c := newCache(t, "", tiercache.Options[user]{Logger: logger, Retry: tiercache.Retry{Attempts: 1}})
	release := make(chan struct{})
	failing := func(ctx context.Context, id string) (user, error) {
		<-release
		return user{}, errors.New("db down")
	}
	const callers = 50
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			if _, err := c.Get(t.Context(), "1", failing); err == nil {
				t.Error("Get succeeded with a failing origin")
			}
		})
	}
	waitUntil(t, func() bool { return tiercache.Joined(c, "1") == callers-1 }, "callers to share the load")
	close(release)
	wg.Wait()
	var warns int
	for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["level"] == "WARN" && rec["msg"] == "tiercache: load failed" {
			warns++
			if rec["cache_key"] != c.Key("1") || rec["err"] != "db down" {
				t.Errorf("record %v lacks the key or the cause", rec)
			}
		}
	}
	if warns != 1 {
		t.Fatalf("%d Warn records for one failed load shared by %d callers, want 1", warns, callers)
	}
}

// TestFaultySoak runs requests through a proxy that injects latency, resets
// and truncated replies between the caches and Redis: every answer is the
// right value for its key (never another key's) and none is an error, since
// Redis failures are misses and the origin works.
func TestFaultySoak(t *testing.T) {
	own := cachetest.StartRedis(t)
	proxy := cachetest.StartProxy(t, own.Addr(), 1)
	name := keyspaceName(t)
	var caches []*tiercache.Cache[user]
	for range 3 {
		rdb := redis.NewClient(&redis.Options{Addr: proxy.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
		t.Cleanup(func() { rdb.Close() })
		caches = append(caches, newCache(t, "", tiercache.Options[user]{
			Keyspace: tiercache.Keyspace{Name: name},
			Store:    redisstore.New(rdb, &redisstore.Options{Timeout: 50 * time.Millisecond}),
			L1:       tiercache.L1[user]{Size: 50}, // small, so most requests go to Redis
			TTL:      time.Minute,
			// The loader is instant: a lock whose holder's reply was lost
			// should not hold others for the default 5 s.
			Rebuild: tiercache.Rebuild{LockTTL: 300 * time.Millisecond},
			L2:      tiercache.L2[user]{Breaker: tiercache.Breaker{Cooldown: 20 * time.Millisecond}},
		}))
	}
	proxy.SetFaults(cachetest.Faults{Latency: time.Millisecond, Reset: 0.02, Truncate: 0.02})
	var calls atomic.Int64
	fn := deterministicLoad(&calls)
	deadline := time.Now().Add(3 * time.Second)
	var total, wrong, failed atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	for i, c := range caches {
		for w := range 4 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(i), uint64(w)))
				for time.Now().Before(deadline) {
					id := strconv.Itoa(rng.IntN(500))
					t0 := time.Now()
					u, err := c.Get(t.Context(), id, fn)
					d := time.Since(t0)
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
					total.Add(1)
					switch {
					case err != nil:
						failed.Add(1)
						t.Errorf("Get(%s): %v", id, err)
					case u != valueOf(id):
						wrong.Add(1)
						t.Errorf("Get(%s) = %+v: another key's value", id, u)
					}
					if rng.IntN(50) == 0 { // some writes too
						c.Delete(t.Context(), id)
					}
				}
			})
		}
	}
	wg.Wait()
	t.Logf("soak: %d Gets, %d wrong, %d errors, p50 %v, p99 %v; proxy injected %d resets, %d truncations; origin calls %d",
		total.Load(), wrong.Load(), failed.Load(), pctl(lat, 50), pctl(lat, 99), proxy.Resets(), proxy.Truncations(), calls.Load())
	if proxy.Resets()+proxy.Truncations() == 0 {
		t.Fatal("the proxy injected no fault")
	}
}
