package tiercache_test

// Tests from the second adversarial review (each failed on the code it reviewed): concurrent bumps from several processes, with
// writes. (Held up.)

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tiercache/tiercache"
)

// TestConcurrentBumps: three processes bump at once, repeatedly, while
// each writes (origin update, then Set) and reads its own id. Read-your-
// writes holds throughout, and the fleet converges on the stored generation.
func TestConcurrentBumps(t *testing.T) {
	caches := fleet(t, 3, tiercache.Options[user]{})
	ctx := t.Context()
	var origin [3]atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []string
	for p, c := range caches {
		id := "own-" + strconv.Itoa(p)
		load := func(context.Context, string) (user, error) { return user{ID: id, Version: int(origin[p].Load())}, nil }
		wg.Go(func() {
			for i := range 4 {
				if _, err := c.BumpVersion(ctx); err != nil {
					t.Error(err)
				}
				v := origin[p].Add(1)
				if err := c.Set(ctx, id, user{ID: id, Version: int(v)}); err != nil {
					t.Error(err)
				}
				for range 20 {
					if u, err := c.Get(ctx, id, load); err != nil || int64(u.Version) < v {
						mu.Lock()
						bad = append(bad, "process "+strconv.Itoa(p)+" round "+strconv.Itoa(i)+": "+strconv.Itoa(u.Version)+" < "+strconv.FormatInt(v, 10))
						mu.Unlock()
					}
				}
			}
		})
	}
	wg.Wait()
	if len(bad) > 0 {
		t.Errorf("%d read-your-writes violations across concurrent bumps, first: %s", len(bad), bad[0])
	}
	waitUntil(t, func() bool {
		v := caches[0].Keyspace().Version
		return caches[1].Keyspace().Version == v && caches[2].Keyspace().Version == v
	}, "the fleet to converge on one version")
}
