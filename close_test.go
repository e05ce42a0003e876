package tiercache_test

// Tests from the second adversarial review (each failed on the code it reviewed): Close at awkward moments leaves no goroutine.

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cachetest"
	"github.com/tiercache/tiercache/redisstore"
)

// TestCloseWhileRedisPausedLeavesNothing: "Close stops every goroutine
// the cache started", with Redis paused (every call waits for its
// deadline) while Gets with short deadlines have left their misses to
// detached goroutines, GetManys wait, a Set and a Delete failed (pending,
// under repair), BumpVersion waits, and stale reads started refreshes.
func TestCloseWhileRedisPausedLeavesNothing(t *testing.T) {
	s := cachetest.StartRedis(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr(), ContextTimeoutEnabled: true})
	clk := newClock()
	o := tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: keyspaceName(t)}, Store: redisstore.New(rdb, nil),
		TTL: time.Minute, StaleTTL: time.Hour, L1: tiercache.L1[user]{TTL: time.Hour}, Jitter: -1}
	tiercache.SetClock(&o, clk.Now)
	c, err := tiercache.New(&o)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := c.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	db := newOrigin("a", "b", "c")
	for _, id := range []string{"a", "b", "c"} {
		c.Get(ctx, id, db.load)
	}
	clk.Advance(2 * time.Minute) // stale: reads start refreshes
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
			defer cancel()
			c.Get(sctx, "cold"+strconv.Itoa(i), db.load)
		})
	}
	wg.Go(func() { c.GetMany(ctx, []string{"a", "m1", "m2"}, (&batchOrigin{origin: db}).load) })
	wg.Go(func() { c.Set(ctx, "b", user{ID: "b"}) })
	wg.Go(func() { c.Delete(ctx, "c", "d") })
	wg.Go(func() { c.BumpVersion(ctx) })
	for range 5 {
		c.Get(ctx, "a", db.load)
	}
	c.Close()
	wg.Wait()
	s.Resume()
	rdb.Close()
}
