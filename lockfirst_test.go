package tiercache_test

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/driver"
	"github.com/tiercache/tiercache/redisstore"
)

// TestLockFirstWhenTheTierIsCold: while most reads of the shared tier find
// nothing, a miss takes the key's lock in its first round trip (which reads
// the key too) instead of reading first: two round trips per miss, not
// three. Once reads find keys again, misses read first: a key found costs
// no lock.
func TestLockFirstWhenTheTierIsCold(t *testing.T) {
	name := keyspaceName(t)
	rdb := newRedis(t, srv(t).Addr())
	hook := &roundTrips{}
	rdb.AddHook(hook)
	c := newCache(t, "", tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: name}, Store: redisstore.New(rdb, nil)})
	waitSettled(t, c)
	ids := make([]string, 40)
	for i := range ids {
		ids[i] = "c" + strconv.Itoa(i)
	}
	db := newOrigin(ids...)
	get := func(id string) [][]string {
		t.Helper()
		hook.take()
		if u, err := c.Get(t.Context(), id, db.load); err != nil || u.ID != id {
			t.Fatalf("Get(%s) = %+v, %v", id, u, err)
		}
		if err := tiercache.WaitIdle(t.Context(), c); err != nil {
			t.Fatal(err)
		}
		return hook.take()
	}
	// The first miss reads first: nothing is known of the tier yet. (Its
	// fill may also load the script: EVALSHA, NOSCRIPT, EVAL.)
	if got := get(ids[0]); len(got) < 3 || !equalTrips(got[:3], [][]string{{"GET"}, {"SET", "GET"}, {"EVALSHA"}}) {
		t.Fatalf("first miss: %v, want GET, SET GET, EVALSHA", summarize(got))
	}
	lockFirst := [][]string{{"SET", "GET"}, {"EVALSHA"}}
	if got := get(ids[1]); !equalTrips(got, lockFirst) {
		t.Fatalf("second miss of a cold tier: %v, want %v (lock first)", summarize(got), summarize(lockFirst))
	}
	for _, id := range ids[2:20] {
		if got := get(id); !equalTrips(got, lockFirst) {
			t.Fatalf("miss of %s, cold tier: %v, want %v", id, summarize(got), summarize(lockFirst))
		}
	}
	if n := db.calls.Load(); n != 20 {
		t.Fatalf("%d loader calls for 20 new ids", n)
	}

	// Another process now reads the ids the first one filled: its first
	// misses take locks and find values, which turns lock first off.
	rdb2 := newRedis(t, srv(t).Addr())
	hook2 := &roundTrips{}
	rdb2.AddHook(hook2)
	c2 := newCache(t, "", tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: name}, Store: redisstore.New(rdb2, nil)})
	waitSettled(t, c2)
	for _, id := range ids[:20] {
		hook2.take()
		if u, err := c2.Get(t.Context(), id, db.load); err != nil || u.ID != id {
			t.Fatalf("second process: Get(%s) = %+v, %v", id, u, err)
		}
		if err := tiercache.WaitIdle(t.Context(), c2); err != nil {
			t.Fatal(err)
		}
		if got := hook2.take(); !equalTrips(got, [][]string{{"GET"}}) {
			t.Fatalf("second process, L2 hit of %s: %v, want one GET", id, summarize(got))
		}
	}
	if n := db.calls.Load(); n != 20 {
		t.Fatalf("%d loader calls, want still 20 (the second process read them from Redis)", n)
	}
	// And the first process, after 20 misses that each found nothing, is
	// warmed by hits: reading c's own fills from Redis after an L1 flush.
	tiercache.FlushL1(c)
	for _, id := range ids[:12] {
		get(id)
	}
	if got := get(ids[12]); !equalTrips(got, [][]string{{"GET"}}) {
		t.Fatalf("after a dozen keys found: %v, want a read first (one GET)", summarize(got))
	}
}

func equalTrips(a, b [][]string) bool {
	return slices.EqualFunc(a, b, func(x, y []string) bool { return slices.Equal(x, y) })
}

// unlockCounter counts the Unlock calls a store gets, and their sizes.
type unlockCounter struct {
	driver.Store
	mu    sync.Mutex
	sizes []int
}

func (u *unlockCounter) Unlock(ctx context.Context, l []driver.LockRequest) error {
	u.mu.Lock()
	u.sizes = append(u.sizes, len(l))
	u.mu.Unlock()
	return u.Store.Unlock(ctx, l)
}

func (u *unlockCounter) take() []int {
	u.mu.Lock()
	defer u.mu.Unlock()
	s := u.sizes
	u.sizes = nil
	return s
}

// staleBatch fills n ids through one process (v0), then has a second one,
// on an unlockCounter, GetMany them once stale with a 200 ms loader that
// returns v1 and MaxLoads 16. lockFirst makes the second process's misses
// start with the lock first. It returns the second process's store and the
// ids' Redis keys.
func staleBatch(t *testing.T, n int, lockFirst bool) (*unlockCounter, *redis.Client, *tiercache.Cache[user], []string) {
	clk := newClock()
	o := tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: keyspaceName(t)}, TTL: time.Minute, StaleTTL: time.Hour, Jitter: -1,
		L1: tiercache.L1[user]{TTL: time.Hour}, Rebuild: tiercache.Rebuild{EarlyRefreshBeta: -1, MaxLoads: 16, LockTTL: 5 * time.Second}}
	tiercache.SetClock(&o, clk.Now)
	w := newCache(t, srv(t).Addr(), o)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "s" + strconv.Itoa(i)
	}
	version := func(name string) func(context.Context, []string) (map[string]user, error) {
		return func(_ context.Context, ids []string) (map[string]user, error) {
			if name == "v1" {
				time.Sleep(200 * time.Millisecond)
			}
			m := map[string]user{}
			for _, id := range ids {
				m[id] = user{ID: id, Name: name}
			}
			return m, nil
		}
	}
	if _, err := w.GetMany(t.Context(), ids, version("v0")); err != nil {
		t.Fatal(err)
	}
	if err := tiercache.WaitIdle(t.Context(), w); err != nil {
		t.Fatal(err)
	}
	rdb := newRedis(t, srv(t).Addr())
	st := &unlockCounter{Store: redisstore.New(rdb, nil)}
	o.Store = st
	c := newCache(t, "", o)
	waitSettled(t, c)
	if lockFirst {
		for i := range 3 { // misses of ids nobody has
			id := "absent" + strconv.Itoa(i)
			if _, err := c.Get(t.Context(), id, func(context.Context, string) (user, error) { return user{ID: id}, nil }); err != nil {
				t.Fatal(err)
			}
		}
		if err := tiercache.WaitIdle(t.Context(), c); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(2 * time.Minute) // past the soft expiry: stale
	st.take()
	got, err := c.GetMany(t.Context(), ids, version("v1"))
	if err != nil || len(got) != n {
		t.Fatalf("GetMany = %d values, %v", len(got), err)
	}
	for id, u := range got {
		if u.Name != "v0" {
			t.Fatalf("GetMany[%s] = %+v, want the stale v0 at once", id, u)
		}
	}
	return st, rdb, c, ids
}

// locked counts the ids whose rebuild lock is still in Redis.
func locked(t *testing.T, rdb *redis.Client, c *tiercache.Cache[user], ids []string) int {
	n := 0
	for _, id := range ids {
		if d := rdb.PTTL(t.Context(), redisstore.LockKey(c.Key(id))).Val(); d > 0 {
			n++
		}
	}
	return n
}

// TestLockFirstRefreshesStaleUnderItsLock: a lock-first attempt that takes
// the lock of a stale entry answers with it and refreshes it under that
// lock: no lock released before the answer, one loader call for the batch,
// every id refreshed and no lock left behind.
func TestLockFirstRefreshesStaleUnderItsLock(t *testing.T) {
	st, rdb, c, ids := staleBatch(t, 64, true)
	if sizes := st.take(); len(sizes) != 0 {
		t.Errorf("Unlock calls during the GetMany: %v, want none (the locks go to the refresh)", sizes)
	}
	if err := tiercache.WaitIdle(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if n := locked(t, rdb, c, ids); n != 0 {
		t.Errorf("%d of %d locks left after the refresh", n, len(ids))
	}
	fresh := newCache(t, srv(t).Addr(), tiercache.Options[user]{Keyspace: c.Keyspace()})
	for _, id := range ids {
		if u, err := fresh.Get(t.Context(), id, nil); err != nil || u.Name != "v1" {
			t.Fatalf("a third process reads %s = %+v, %v; want the refreshed v1", id, u, err)
		}
	}
}

// TestBulkheadReleasesDroppedLocks: refreshes past the bulkhead (MaxLoads
// 16 for 64 stale ids, each refreshed on its own) do nothing, but release
// the locks they took: other processes do not wait LockTTL for them.
func TestBulkheadReleasesDroppedLocks(t *testing.T) {
	_, rdb, c, ids := staleBatch(t, 64, false)
	if err := tiercache.WaitIdle(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if n := locked(t, rdb, c, ids); n != 0 {
		t.Errorf("%d of %d locks left after the refreshes (LockTTL 5s): the bulkhead dropped them without releasing", n, len(ids))
	}
	s := c.Stats()
	t.Logf("refreshes %d, dropped by the bulkhead: their locks released", s.Refreshes)
}
