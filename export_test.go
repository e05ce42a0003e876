package tiercache

import (
	"context"
	"time"
)

// SetClock makes the cache built from o read time from now instead of its
// coarse clock, so tests can move time without sleeping.
func SetClock[V any](o *Options[V], now func() time.Time) { o.now = now }

// Joined returns how many callers joined the load of id in flight after the
// one that started it: a barrier for tests of shared loads.
func Joined[V any](c *Cache[V], id string) int { return c.loads.Joined(id) }

// WaitIdle waits until no goroutine of the cache's is working (a miss
// answers its callers before its fill is done), or ctx ends.
func WaitIdle[V any](ctx context.Context, c *Cache[V]) error { return c.loads.WaitIdle(ctx) }

// FlushL1 drops every L1 entry of c, as a lost subscription does.
func FlushL1[V any](c *Cache[V]) { c.flushL1() }
