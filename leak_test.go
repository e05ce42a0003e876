package tiercache_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/tiercache"
)

// advLiveGoroutines returns the stacks of goroutines running tiercache code
// other than the test's own.
func advLiveGoroutines() []string {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "github.com/tiercache/tiercache") && !strings.Contains(g, "testing.tRunner") && !strings.Contains(g, "_test.go") && !strings.Contains(g, "cachetest.") {
			out = append(out, g)
		}
	}
	return out
}

// TestCloseLeavesNoGoroutine: "Every goroutine the cache starts is owned by
// one group ... so Close waits for all of them" (Failures, Lifecycle).
func TestCloseLeavesNoGoroutine(t *testing.T) {
	clk := newClock()
	o := tiercache.Options[user]{TTL: time.Minute, StaleTTL: time.Hour, L1: tiercache.L1[user]{TTL: time.Hour}}
	tiercache.SetClock(&o, clk.Now)
	c := newCache(t, srv(t).Addr(), o)
	ctx := t.Context()
	db := newOrigin("a", "b", "c")
	for _, id := range []string{"a", "b", "c"} {
		c.Get(ctx, id, db.load)
	}
	c.GetMany(ctx, []string{"a", "b", "x"}, func(ctx context.Context, ids []string) (map[string]user, error) { return nil, nil })
	clk.Advance(2 * time.Minute)
	c.Get(ctx, "a", db.load) // a refresh
	c.Set(ctx, "b", user{ID: "b"})
	c.Delete(ctx, "c")
	c.BumpVersion(ctx)
	c.Close()
	deadline := time.Now().Add(2 * time.Second)
	var live []string
	for {
		live = advLiveGoroutines()
		if len(live) == 0 || time.Now().After(deadline) {
			break
		}
		runtime.Gosched()
	}
	if len(live) > 0 {
		t.Errorf("%d goroutines of tiercache still running after Close returned:\n%s", len(live), strings.Join(live, "\n\n"))
	}
}
