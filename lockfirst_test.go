package tiercache_test

import (
	"slices"
	"strconv"
	"testing"

	"github.com/tiercache/tiercache"
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
	// The first miss reads first: nothing is known of the tier yet.
	readFirst := [][]string{{"GET"}, {"SET", "GET"}, {"EVALSHA"}}
	lockFirst := [][]string{{"SET", "GET"}, {"EVALSHA"}}
	if got := get(ids[0]); !equalTrips(got, readFirst) {
		t.Fatalf("first miss: %v, want %v", summarize(got), summarize(readFirst))
	}
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
