package tiercache_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cachetest"
	"github.com/tiercache/tiercache/driver"
	"github.com/tiercache/tiercache/redisstore"
)

// freezingStore freezes its Redis (SIGSTOP) just before the first lock
// attempt; once armed, its fills and unlocks wait for release (they would
// wait on the frozen Redis anyway), so that a caller waiting for them
// cannot return.
type freezingStore struct {
	*redisstore.Store
	own     *cachetest.Server
	froze   atomic.Bool
	armed   atomic.Bool
	release chan struct{}
}

func (s *freezingStore) Lock(ctx context.Context, locks []driver.LockRequest, ttl time.Duration) ([]driver.LockResult, error) {
	if s.armed.Load() && !s.froze.Swap(true) {
		if err := s.own.Pause(); err != nil {
			return nil, err
		}
	}
	return s.Store.Lock(ctx, locks, ttl)
}

func (s *freezingStore) Fill(ctx context.Context, ops []driver.FillOp) ([]bool, error) {
	if s.armed.Load() {
		<-s.release
	}
	return s.Store.Fill(ctx, ops)
}

func (s *freezingStore) Unlock(ctx context.Context, locks []driver.LockRequest) error {
	if s.armed.Load() {
		<-s.release
	}
	return s.Store.Unlock(ctx, locks)
}

// TestRequestWaitsOnRedisOnce: Redis freezes between a Get's read and its
// lock attempt. The lock attempt times out, and the rest of that request
// (the fill, which would release a lock the lost reply may have taken, and
// any unlock) does not wait on Redis again: the Get answers from the
// loader, and its fill runs after it, in the background. Before, the fill
// and the unlock each waited their own deadline.
func TestRequestWaitsOnRedisOnce(t *testing.T) {
	own := cachetest.StartRedis(t)
	t.Cleanup(func() { own.Resume() })
	rdb := redis.NewClient(&redis.Options{Addr: own.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	store := &freezingStore{Store: redisstore.New(rdb, nil), own: own, release: make(chan struct{})}
	c, err := tiercache.New(&tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: "once"}, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	defer close(store.release)
	if err := c.Ready(t.Context()); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	store.armed.Store(true)
	type answer struct {
		u   user
		err error
	}
	got := make(chan answer, 1)
	go func() {
		u, err := c.Get(context.Background(), "42", deterministicLoad(&calls))
		got <- answer{u, err}
	}()
	select {
	case a := <-got:
		if a.err != nil || a.u != valueOf("42") {
			t.Fatalf("Get = %+v, %v; want the loader's value", a.u, a.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the Get waits for a fill or unlock after its lock attempt failed")
	}
	if !store.froze.Load() {
		t.Fatal("the Get never tried the lock: the test did not freeze Redis where it means to")
	}
}
