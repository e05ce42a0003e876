package tiercache_test

// Adversarial tests of the lifecycle: Close racing the other methods.

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cachetest"
	"github.com/tiercache/tiercache/redisstore"
)

// TestBumpVersionAfterClose: "After Close the cache's methods return
// ErrClosed" (Cache.Close). BumpVersion on a closed cache must not go on to
// move the whole fleet's keyspace to a new generation.
func TestBumpVersionAfterClose(t *testing.T) {
	o := tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: keyspaceName(t)}}
	a := newCache(t, srv(t).Addr(), o)
	b := newCache(t, srv(t).Addr(), o)
	before := b.Keyspace().Version
	a.Close()

	bumped, err := a.BumpVersion(t.Context())
	if !errors.Is(err, tiercache.ErrClosed) {
		t.Errorf("BumpVersion after Close: err = %v, want ErrClosed (it returned %+v)", err, bumped)
	}
	// Whatever it returned, the stored generation must not have moved.
	v, derr := srv(t).Do("GET", "tiercache:version:"+o.Keyspace.Name)
	if derr != nil {
		t.Fatal(derr)
	}
	if v != "0" {
		// The closed cache moved the fleet: show that the live process follows.
		waitUntil(t, func() bool { return b.Keyspace().Version != before }, "B to follow the closed cache's bump")
		t.Errorf("a closed cache's BumpVersion stored generation %v and moved another process from %q to %q", v, before, b.Keyspace().Version)
	}
}

// TestReadyDuringClose: Close stops every goroutine of the cache and no call
// is left unfinished. A readiness check
// (Cache.Ready) waiting for a shared tier that is not there yet must end
// when the cache is closed: its waiter is a call like any other. Otherwise a
// service that shuts down while Redis is unreachable leaks the goroutine
// (and hangs for good with context.Background()).
func TestReadyDuringClose(t *testing.T) {
	// A port nothing listens on: the shared tier never answers.
	o := tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: keyspaceName(t)}}
	o.Store = redisstore.New(newRedis(t, deadAddr(t)), nil)
	c, err := tiercache.New(&o)
	if err != nil {
		t.Fatal(err)
	}

	// Bounded only so that the test itself ends; a real readiness probe
	// often uses context.Background().
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	ready := make(chan error, 1)
	go func() { ready <- c.Ready(ctx) }()
	// Whether Ready starts waiting before Close or after it, it must end.

	start := time.Now()
	c.Close()
	closed := time.Since(start)
	select {
	case err := <-ready:
		t.Logf("Ready returned %v %v after Close returned", err, time.Since(start)-closed)
	case <-time.After(3 * time.Second):
		err := <-ready // the test's own deadline ends it
		t.Errorf("Ready still blocked 3s after Close returned (Close took %v); it returned only at its context's deadline, %v after Close, with %v",
			closed, time.Since(start), err)
	}
	// After Close, Ready must not report a closed cache ready either.
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Second)
	defer cancel2()
	start = time.Now()
	err = c.Ready(ctx2)
	if !errors.Is(err, tiercache.ErrClosed) {
		t.Errorf("Ready on a closed cache: %v after %v, want ErrClosed at once", err, time.Since(start).Round(time.Millisecond))
	}
}

// TestLeaderHonoursDeadline: Get returns "(zero, ctx's error)" when ctx
// ends while it waits, and "the first request that needs Redis waits for
// the generation (bounded by its context)". The leader of a miss must honour
// its own deadline in its first read of the shared tier (and its wait for
// the generation): with Redis stalled a Get with a 20 ms deadline returned
// only after the store's Timeout, 200 ms (found by the adversarial review).
func TestLeaderHonoursDeadline(t *testing.T) {
	t.Run("Settled", func(t *testing.T) { advLeaderDeadline(t, true) })
	t.Run("NotReady", func(t *testing.T) { advLeaderDeadline(t, false) })
}

func advLeaderDeadline(t *testing.T, settled bool) {
	s := cachetest.StartRedis(t)
	o := tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: keyspaceName(t)}}
	o.Store = redisstore.New(newRedis(t, s.Addr()), nil)
	c, err := tiercache.New(&o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if settled {
		waitSettled(t, c)
	}
	db := newOrigin("a", "b", "c")
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	defer s.Resume()
	var worst time.Duration
	var lastErr error
	for _, id := range []string{"a", "b", "c"} {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		start := time.Now()
		_, err := c.Get(ctx, id, db.load)
		took := time.Since(start)
		cancel()
		if took > worst {
			worst, lastErr = took, err
		}
	}
	if worst > 120*time.Millisecond {
		t.Errorf("Get with a 20ms deadline returned after %v (err %v): the leader ignored its context", worst.Round(time.Millisecond), lastErr)
	}
}
