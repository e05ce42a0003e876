package tiercache_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cachetest"
	"github.com/tiercache/tiercache/redisstore"
)

// TestBulkhead: with the shared tier down (its server killed), 32 callers
// of distinct ids not in L1 run at most MaxLoads loads at once; the others
// wait in line and are all answered.
func TestBulkhead(t *testing.T) {
	own := cachetest.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: own.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	const maxLoads = 4
	c, err := tiercache.New(&tiercache.Options[user]{
		Keyspace: tiercache.Keyspace{Name: "bulkhead"}, Store: redisstore.New(rdb, nil), Rebuild: tiercache.Rebuild{MaxLoads: maxLoads},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := own.Kill(); err != nil {
		t.Fatal(err)
	}
	var running, peak atomic.Int64
	entered := make(chan struct{}, 64)
	release := make(chan struct{})
	load := func(ctx context.Context, id string) (user, error) {
		n := running.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		entered <- struct{}{}
		<-release
		running.Add(-1)
		return valueOf(id), nil
	}
	const callers = 32
	var wg sync.WaitGroup
	var wrong atomic.Int64
	for i := range callers {
		wg.Go(func() {
			id := "id" + strconv.Itoa(i)
			if u, err := c.Get(context.Background(), id, load); err != nil || u != valueOf(id) {
				t.Logf("Get(%s) = %+v, %v", id, u, err)
				wrong.Add(1)
			}
		})
	}
	// The first maxLoads loads start; the rest wait for a place.
	for range maxLoads {
		<-entered
	}
	select {
	case <-entered:
		t.Fatalf("a load past MaxLoads (%d) started", maxLoads)
	default:
	}
	close(release)
	wg.Wait()
	if got := peak.Load(); got > maxLoads {
		t.Fatalf("%d loads ran at once, want at most %d", got, maxLoads)
	}
	if n := wrong.Load(); n > 0 {
		t.Fatalf("%d of %d callers got an error or a wrong value, want none (they wait in line)", n, callers)
	}
}
