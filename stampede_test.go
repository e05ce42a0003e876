package tiercache_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/driver"
	"github.com/tiercache/tiercache/redisstore"
)

// fleet returns n caches ("processes") on srv sharing one keyspace, each
// with its own go-redis client and L1.
func fleet(t *testing.T, n int, o tiercache.Options[user]) []*tiercache.Cache[user] {
	t.Helper()
	if o.Keyspace.Name == "" {
		o.Keyspace.Name = keyspaceName(t)
	}
	caches := make([]*tiercache.Cache[user], n)
	for i := range caches {
		caches[i] = newCache(t, srv(t).Addr(), o)
	}
	return caches
}

// TestColdStampedeAcrossFleet: 1000 concurrent Gets of one cold key over 4
// processes run the loader once; every caller gets the value.
func TestColdStampedeAcrossFleet(t *testing.T) {
	coldStampede(t, fleet(t, 4, tiercache.Options[user]{}), 1000)
}

// coldStampede sends callers concurrent Gets of one cold key, spread over
// caches (processes), and checks that the loader runs once and every caller
// gets the value. The loader is held until every caller is waiting (a
// barrier on the caches' own state), so all of them overlap the load.
func coldStampede(t *testing.T, caches []*tiercache.Cache[user], callers int) {
	t.Helper()
	processes := len(caches)
	db := newOrigin("hot")
	db.delay = make(chan struct{})
	db.started = make(chan string, callers)

	start := make(chan struct{})
	var wg sync.WaitGroup
	results := make(chan error, callers)
	for i := range callers {
		c := caches[i%processes]
		wg.Go(func() {
			<-start
			u, err := c.Get(t.Context(), "hot", db.load)
			if err == nil && u.Name != "user hot" {
				err = fmt.Errorf("got %+v", u)
			}
			results <- err
		})
	}
	close(start)
	<-db.started // one process took the lock and is loading
	waitUntil(t, func() bool {
		joined, waiting := 0, 0
		for _, c := range caches {
			joined += tiercache.Joined(c, "hot")
			waiting += int(c.Stats().LockWaits)
		}
		// In each process one caller leads and the rest join it; the
		// processes that lost the lock race wait for the fill.
		return joined == callers-processes && waiting == processes-1
	}, "every caller to wait for the one load")
	close(db.delay)
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil {
			t.Fatalf("a caller failed: %v", err)
		}
	}
	if got := db.calls.Load(); got != 1 {
		t.Fatalf("origin called %d times for %d callers over %d processes, want 1", got, callers, processes)
	}
	var acquired, contended uint64
	for _, c := range caches {
		s := c.Stats()
		acquired += s.LockAcquired
		contended += s.LockContended
	}
	// One lock for the load, found held by every other process. A waiter
	// that polls before the fill finds it held again, and one that polls
	// between the fill and its message may take the freed lock, find the
	// value with it and release it at once: round trips, never origin calls.
	if acquired < 1 || contended < uint64(processes-1) {
		t.Fatalf("locks acquired %d, contended %d; want at least 1 and %d", acquired, contended, processes-1)
	}
}

// TestStaleServedWhileOneRefreshRuns: 1000 callers over 4 processes on a key
// past its soft expiry all get the stale value at once while the one refresh
// in the fleet is still loading; afterwards every process serves the new
// value.
func TestStaleServedWhileOneRefreshRuns(t *testing.T) {
	const processes, callers = 4, 1000
	clk := newClock()
	o := tiercache.Options[user]{TTL: time.Minute, StaleTTL: 10 * time.Minute, Jitter: -1, Rebuild: tiercache.Rebuild{EarlyRefreshBeta: -1}}
	tiercache.SetClock(&o, clk.Now)
	caches := fleet(t, processes, o)
	db := newOrigin("hot")
	for _, c := range caches { // every process has the value in L1
		if _, err := c.Get(t.Context(), "hot", db.load); err != nil {
			t.Fatal(err)
		}
	}
	db.update("hot")
	clk.Advance(2 * time.Minute) // past TTL, within TTL+StaleTTL
	db.delay = make(chan struct{})
	db.started = make(chan string, callers)

	start := make(chan struct{})
	var wg sync.WaitGroup
	latencies := make([]time.Duration, callers)
	for i := range callers {
		c := caches[i%processes]
		wg.Go(func() {
			<-start
			t0 := time.Now()
			u, err := c.Get(t.Context(), "hot", db.load)
			latencies[i] = time.Since(t0)
			if err != nil || u.Version != 0 {
				t.Errorf("caller %d got %+v, %v; want the stale version 0", i, u, err)
			}
		})
	}
	close(start)
	wg.Wait() // every caller answered while the refresh's load is still blocked
	slices.Sort(latencies)
	p99 := latencies[callers*99/100]
	t.Logf("stale answers: p50 %v, p99 %v, max %v (the refresh's load was still blocked)", latencies[callers/2], p99, latencies[callers-1])

	<-db.started
	close(db.delay)
	for i, c := range caches {
		waitUntil(t, func() bool {
			u, err := c.Get(t.Context(), "hot", db.load)
			return err == nil && u.Version == 1
		}, fmt.Sprintf("process %d to serve the refreshed value", i))
	}
	refreshLoads := db.calls.Load() - 1 // the first Get loaded once for the fleet
	if refreshLoads != 1 {
		t.Fatalf("origin called %d times by the refresh, want 1 across the fleet", refreshLoads)
	}
	var stale uint64
	for _, c := range caches {
		stale += c.Stats().StaleHits
	}
	if stale < callers {
		t.Fatalf("stale hits %d, want at least %d", stale, callers)
	}
}

// TestDeadLockHolder: a process that took the rebuild lock and died leaves it
// to expire; another process waits at most LockWait, then rebuilds. Nobody
// hangs.
func TestDeadLockHolder(t *testing.T) {
	c := newCache(t, srv(t).Addr(), tiercache.Options[user]{Rebuild: tiercache.Rebuild{LockTTL: 300 * time.Millisecond}})
	key := c.Key("1")
	// The dead process's lock.
	if _, err := srv(t).Do("SET", redisstore.LockKey(key), driver.NewToken(), "PX", "300"); err != nil {
		t.Fatal(err)
	}
	db := newOrigin("1")
	u, err := c.Get(t.Context(), "1", db.load)
	if err != nil || u.Name != "user 1" {
		t.Fatalf("Get = %+v, %v", u, err)
	}
	// It found the lock held, waited, and took it once it expired (at the
	// end of its wait, LockWait defaulting to LockTTL).
	s := c.Stats()
	if s.LockContended < 1 || s.LockWaits != 1 || s.LockAcquired != 1 || db.calls.Load() != 1 {
		t.Fatalf("contended %d, waits %d, acquired %d, loads %d; want ≥1, 1, 1, 1",
			s.LockContended, s.LockWaits, s.LockAcquired, db.calls.Load())
	}
}

// TestCancelledHolderReleasesAtOnce: when the lock holder's load ends in an
// error (here: its process closes), it releases the lock and says so, and the
// waiting process loads at once instead of waiting for the lock to expire.
func TestCancelledHolderReleasesAtOnce(t *testing.T) {
	o := tiercache.Options[user]{Rebuild: tiercache.Rebuild{LockTTL: time.Minute}, Retry: tiercache.Retry{Attempts: 1}}
	caches := fleet(t, 2, o)
	a, b := caches[0], caches[1]
	db := newOrigin("1")
	db.delay = make(chan struct{})
	db.started = make(chan string, 2)
	aDone := make(chan error, 1)
	go func() { _, err := a.Get(t.Context(), "1", db.load); aDone <- err }()
	<-db.started // a holds the lock and loads
	bDone := make(chan user, 1)
	go func() {
		u, err := b.Get(t.Context(), "1", func(ctx context.Context, id string) (user, error) {
			return user{ID: id, Name: "loaded by b"}, nil
		})
		if err != nil {
			t.Errorf("b: %v", err)
		}
		bDone <- u
	}()
	waitUntil(t, func() bool { return b.Stats().LockWaits == 1 }, "b to wait for a's rebuild")
	a.Close() // a's process goes away: its load is cancelled
	if err := <-aDone; err == nil {
		t.Fatal("a's Get succeeded though its cache closed mid-load")
	}
	select {
	case u := <-bDone:
		if u.Name != "loaded by b" {
			t.Fatalf("b got %+v", u)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("b still waiting 10 s after a released the lock (LockTTL is a minute)")
	}
}

// TestEarlyRefreshBeatsExpiry: under a steady read load, XFetch refreshes a
// hot key before its soft expiry, so no request ever sees it stale; with
// early refresh off, the same load does see it stale. Time is synctest's.
//
// XFetch is probabilistic: a read d before the expiry starts the refresh
// with probability exp(-d/(β·Δ)), and the refresh takes Δ, so a request sees
// the key stale only if no read started it before d = Δ. With reads every
// 100 ms, Δ = 500 ms and β = 4, that chance is the product of
// (1 - exp(-d/2s)) over d = 0.6 s … 10 s: 2.5e-9 per expiry, 1.5e-8 for the
// six expiries of this test. (With β = 1 it is 0.16 per expiry: β = 1 makes
// the expected start Δ before the expiry, not the whole refresh.)
func TestEarlyRefreshBeatsExpiry(t *testing.T) {
	run := func(t *testing.T, disable bool) (stale, early uint64) {
		synctest.Test(t, func(t *testing.T) {
			o := tiercache.Options[user]{
				Keyspace: tiercache.Keyspace{Name: "xfetch"},
				TTL:      10 * time.Second, StaleTTL: time.Minute, Jitter: -1,
				// β·Δ = 2 s: the refresh starts early enough to end before the
				// expiry but for a chance of about 1e-8 (see the test's doc).
				Rebuild: tiercache.Rebuild{EarlyRefreshBeta: 4}}
			if disable {
				o.Rebuild.EarlyRefreshBeta = -1
			}
			tiercache.SetClock(&o, time.Now)
			c, err := tiercache.New(&o)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var version atomic.Int64
			load := func(ctx context.Context, id string) (user, error) {
				time.Sleep(500 * time.Millisecond) // Δ: the rebuild takes 500 ms
				return user{ID: id, Version: int(version.Add(1))}, nil
			}
			for range 600 { // 60 s of reads, one every 100 ms: 6 TTLs
				if _, err := c.Get(context.Background(), "hot", load); err != nil {
					t.Fatal(err)
				}
				time.Sleep(100 * time.Millisecond)
				synctest.Wait() // let a refresh started by this read finish its step
			}
			s := c.Stats()
			stale, early = s.StaleHits, s.EarlyRefreshes
		})
		return stale, early
	}
	stale, early := run(t, false)
	if stale != 0 || early < 5 {
		t.Fatalf("with XFetch: %d stale answers, %d early refreshes; want 0 stale and at least 5 early refreshes", stale, early)
	}
	stale, early = run(t, true)
	if stale == 0 || early != 0 {
		t.Fatalf("without XFetch: %d stale answers, %d early refreshes; want some stale and none early", stale, early)
	}
}

// TestLoadAfterWaitCanFail: with FailOnLockWait a process whose wait for
// another's rebuild times out fails instead of loading.
func TestLoadAfterWaitCanFail(t *testing.T) {
	c := newCache(t, srv(t).Addr(), tiercache.Options[user]{Rebuild: tiercache.Rebuild{LockTTL: 200 * time.Millisecond, FailOnLockWait: true}})
	if _, err := srv(t).Do("SET", redisstore.LockKey(c.Key("1")), driver.NewToken(), "PX", "60000"); err != nil {
		t.Fatal(err)
	}
	db := newOrigin("1")
	if _, err := c.Get(t.Context(), "1", db.load); !errors.Is(err, tiercache.ErrLockWait) {
		t.Fatalf("Get = %v, want ErrLockWait", err)
	}
	if db.calls.Load() != 0 {
		t.Fatal("loader called despite FailOnLockWait")
	}
}

// tracedStore is what a user's tracing wrapper looks like: it embeds the
// store and overrides one method. It must keep every capability of the
// store it wraps.
type tracedStore struct {
	driver.Store
	gets atomic.Int64
}

func (s *tracedStore) Get(ctx context.Context, keys []string) ([][]byte, error) {
	s.gets.Add(1)
	return s.Store.Get(ctx, keys)
}

// TestWrappedStoreKeepsCapabilities: a cold stampede over processes whose
// stores are wrapped still makes one origin call in the fleet (the lock and
// the fill messages work through the wrapper), and New says what the store
// can do. With the first landing's optional interfaces, such a wrapper
// silently lost the fleet-wide lock and invalidation.
func TestWrappedStoreKeepsCapabilities(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var caches []*tiercache.Cache[user]
	var wrappers []*tracedStore
	for range 3 {
		s := &tracedStore{Store: redisstore.New(newRedis(t, srv(t).Addr()), nil)}
		c := newCache(t, "", tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: keyspaceName(t)}, Store: s, Logger: logger})
		waitSettled(t, c)
		caches, wrappers = append(caches, c), append(wrappers, s)
	}
	coldStampede(t, caches, 90)
	for i, s := range wrappers {
		if s.gets.Load() == 0 {
			t.Errorf("process %d's wrapper saw no Get", i)
		}
	}
	if !strings.Contains(logs.String(), `"shared_tier":"rebuild locks, invalidation messages, runtime versions"`) {
		t.Errorf("New did not log the capabilities it found:\n%s", logs.String())
	}

	// A wrapper that means to hide capabilities says so, and New tells.
	logs.Reset()
	newCache(t, "", tiercache.Options[user]{Store: plainStore{redisstore.New(newRedis(t, srv(t).Addr()), nil)}, Logger: logger})
	if !strings.Contains(logs.String(), `"without":"rebuild locks, invalidation messages, runtime versions"`) {
		t.Errorf("New did not log the capabilities it lacks:\n%s", logs.String())
	}
}
