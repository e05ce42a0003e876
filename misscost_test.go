package tiercache_test

// The miss answers its callers as soon as the loader returns and fills the
// shared tier after (docs/architecture.md, the read path).

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/redisstore"
)

// fillGate is a go-redis hook that holds each conditional fill (the fill
// script of one id: EVALSHA or EVAL with 2 keys and 5 arguments) until
// release is closed, and says when one arrives.
type fillGate struct {
	arrived chan struct{}
	release chan struct{}
}

func newFillGate() *fillGate {
	return &fillGate{arrived: make(chan struct{}, 1), release: make(chan struct{})}
}

func (g *fillGate) DialHook(next redis.DialHook) redis.DialHook { return next }

func (g *fillGate) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		name := strings.ToLower(cmd.Name())
		if (name == "evalsha" || name == "eval") && len(cmd.Args()) == 10 {
			select {
			case g.arrived <- struct{}{}:
			default:
			}
			select {
			case <-g.release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return next(ctx, cmd)
	}
}

func (g *fillGate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// gatedCache is a cache on srv whose fills wait for gate.
func gatedCache(t *testing.T, gate *fillGate) *tiercache.Cache[user] {
	rdb := newRedis(t, srv(t).Addr())
	rdb.AddHook(gate)
	c := newCache(t, "", tiercache.Options[user]{
		Keyspace: tiercache.Keyspace{Name: keyspaceName(t)}, Store: redisstore.New(rdb, &redisstore.Options{Timeout: time.Minute}),
		TTL: time.Hour, L1: tiercache.L1[user]{TTL: time.Hour},
	})
	waitSettled(t, c)
	return c
}

// TestAnsweredBeforeFill: a Get that loads returns the loader's value while
// its fill is held; the fill then lands, and the value stays in L1.
func TestAnsweredBeforeFill(t *testing.T) {
	gate := newFillGate()
	c := gatedCache(t, gate)
	db := newOrigin("1")
	got := make(chan error, 1)
	go func() {
		u, err := c.Get(t.Context(), "1", db.load)
		if err == nil && u.ID != "1" {
			err = fmt.Errorf("Get returned %+v", u)
		}
		got <- err
	}()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("Get = %v", err)
		}
	case <-time.After(10 * time.Second):
		close(gate.release)
		t.Fatal("Get did not return while its fill was held: the caller waits for the fill")
	}
	if n, _ := srv(t).Do("EXISTS", c.Key("1")); n != int64(0) {
		t.Fatalf("EXISTS %s = %v before the fill was let through", c.Key("1"), n)
	}
	<-gate.arrived // the fill is on its way, held
	close(gate.release)
	if err := tiercache.WaitIdle(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if n, _ := srv(t).Do("EXISTS", c.Key("1")); n != int64(1) {
		t.Fatalf("EXISTS %s = %v after the fill", c.Key("1"), n)
	}
	before := c.Stats()
	if _, err := c.Get(t.Context(), "1", db.load); err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); s.L1Hits != before.L1Hits+1 || db.calls.Load() != 1 || s.FillsLost != 0 {
		t.Errorf("after the fill: L1 hits %d -> %d, loader calls %d, lost fills %d; want an L1 hit, 1 call, 0 lost",
			before.L1Hits, s.L1Hits, db.calls.Load(), s.FillsLost)
	}
}

// TestRefusedFillLeavesL1: a fill refused because the lock was lost (here
// deleted behind the cache's back, as a write of another process does,
// without its message) takes the value it kept in L1 when it answered back
// out of L1: that value may be older than the write.
func TestRefusedFillLeavesL1(t *testing.T) {
	gate := newFillGate()
	c := gatedCache(t, gate)
	db := newOrigin("1")
	if _, err := c.Get(t.Context(), "1", db.load); err != nil {
		t.Fatal(err)
	}
	<-gate.arrived
	if _, err := srv(t).Do("DEL", "{"+c.Key("1")+"}:lock"); err != nil {
		t.Fatal(err)
	}
	close(gate.release)
	if err := tiercache.WaitIdle(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(t.Context(), "1", db.load); err != nil {
		t.Fatal(err)
	}
	if err := tiercache.WaitIdle(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); s.FillsLost != 1 || db.calls.Load() != 2 {
		t.Errorf("lost fills %d, loader calls %d; want 1 and 2 (the refused value left L1 and was loaded again)", s.FillsLost, db.calls.Load())
	}
}
