package contender

import (
	"context"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/tiercache/tiercache/bench/workload"
	"github.com/tiercache/tiercache/cachetest"
)

// TestContenders checks every adapter against a private redis-server: Get
// returns the origin's record, caches it (a second Get does not call the
// origin), and shares it through Redis (a second instance, with an empty
// local tier, does not call the origin either). A broken adapter must not
// produce fast but wrong numbers.
func TestContenders(t *testing.T) {
	srv := cachetest.StartRedis(t)
	for _, c := range All() {
		t.Run(c.Name, func(t *testing.T) {
			if err := srv.FlushAll(); err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			origin := workload.NewOrigin(0)
			cfg := Config{Addr: srv.Addr(), Origin: origin, TTL: time.Minute, LocalSize: 100}
			a := newInstance(t, c, cfg)
			check := func(what string, inst Cache) {
				t.Helper()
				got, err := inst.Get(ctx, "42")
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if want := workload.NewRecord("42"); !reflect.DeepEqual(got, want) {
					t.Fatalf("%s = %+v, want %+v", what, got, want)
				}
			}
			check("first Get", a)
			if n := origin.Calls(); n != 1 {
				t.Fatalf("origin calls after the first Get = %d, want 1", n)
			}
			// Some contenders fill Redis, or learn of their own fill
			// (rueidis's invalidation push), asynchronously.
			waitForKeys(t, srv, 1)
			time.Sleep(50 * time.Millisecond)
			check("second Get", a)
			check("third Get", a)
			if n := origin.Calls(); n != 1 {
				t.Fatalf("origin calls after three Gets = %d, want 1", n)
			}

			b := newInstance(t, c, cfg)
			check("second instance's Get", b)
			if n := origin.Calls(); n != 1 {
				t.Errorf("origin calls after a second instance's Get = %d, want 1 (served from Redis)", n)
			}

			m, ok := a.(MultiGetter)
			if !ok {
				return
			}
			ids := make([]string, 10)
			for i := range ids {
				ids[i] = strconv.Itoa(100 + i)
			}
			for i := range 2 {
				if i == 1 {
					time.Sleep(50 * time.Millisecond)
				}
				res, err := m.GetMany(ctx, ids)
				if err != nil {
					t.Fatalf("GetMany #%d: %v", i+1, err)
				}
				for _, id := range ids {
					if want := workload.NewRecord(id); !reflect.DeepEqual(res[id], want) {
						t.Fatalf("GetMany #%d [%s] = %+v, want %+v", i+1, id, res[id], want)
					}
				}
			}
			if got, want := origin.IDs(), int64(1+len(ids)); got != want {
				t.Errorf("ids loaded after two GetMany = %d, want %d", got, want)
			}
		})
	}
}

func newInstance(t *testing.T, c Contender, cfg Config) Cache {
	t.Helper()
	inst, err := c.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = inst.Close() })
	return inst
}

// waitForKeys waits until Redis holds at least n keys besides locks: some
// contenders write to Redis in the background.
func waitForKeys(t *testing.T, srv *cachetest.Server, n int64) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		v, err := srv.Do("DBSIZE")
		if err != nil {
			t.Fatal(err)
		}
		if v.(int64) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Redis holds %d keys after 2s, want %d", v, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
