package tiercache_test

// Tests from the second adversarial review (each failed on the code it reviewed): Cache.Ready while the shared tier fails.

import (
	"context"
	"testing"
	"time"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cachetest"
	"github.com/tiercache/tiercache/redisstore"
)

// TestReadyDoesNotSpinWhileRedisDown: Cache.Ready "waits until the
// cache's shared tier has answered ... for readiness checks at startup".
// While Redis is down the breaker opens ("calls are skipped as misses for
// Breaker.Cooldown"), and the generation is read "every max(NotifyBound,
// 1 s)" or on a hint. A readiness probe waiting one second must not turn
// into a busy loop of generation reads: each failed read ends a round, Ready
// asks for another at once, and the open breaker answers it at once.
func TestReadyDoesNotSpinWhileRedisDown(t *testing.T) {
	t.Run("NeverUp", func(t *testing.T) {
		o := tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: keyspaceName(t)}}
		o.Store = redisstore.New(newRedis(t, deadAddr(t)), nil)
		c, err := tiercache.New(&o)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		advReadySpin(t, c)
	})
	t.Run("Killed", func(t *testing.T) {
		s := cachetest.StartRedis(t)
		c := newCache(t, s.Addr(), tiercache.Options[user]{})
		if err := s.Kill(); err != nil {
			t.Fatal(err)
		}
		// The subscription notices within B and makes the generation unknown.
		waitUntil(t, func() bool {
			ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
			defer cancel()
			return c.Ready(ctx) != nil
		}, "the cache to notice that Redis is gone")
		advReadySpin(t, c)
	})
}

func advReadySpin(t *testing.T, c *tiercache.Cache[user]) {
	t.Helper()
	// Let the breaker open, as it does after five failed calls.
	waitUntil(t, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
		defer cancel()
		c.Ready(ctx)
		return c.Stats().Breaker == "open"
	}, "the breaker to open")
	before := c.Stats().L2Errors
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	err := c.Ready(ctx)
	calls := c.Stats().L2Errors - before
	t.Logf("Ready for 1s with Redis down: %v; %d failed or skipped shared-tier calls meanwhile", err, calls)
	// Reading the generation every 50 ms would be 20; allow a lot more.
	if calls > 200 {
		t.Errorf("one Ready call of 1s with Redis down made %d shared-tier calls (failed or skipped by the breaker), want a handful: it spins", calls)
	}
}
