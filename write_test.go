package tiercache_test

// Adversarial tests of the miss path's fills.

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/driver"
	"github.com/tiercache/tiercache/redisstore"
)

// advNoLocks is a wrapper of a Store that hides its rebuild locks, the way
// the store contract says a wrapper hides a capability ("one that means to
// hide a capability says so in Capabilities").
type advNoLocks struct{ driver.Store }

func (s advNoLocks) Capabilities() driver.Capabilities {
	c := s.Store.Capabilities()
	c.Locks = false
	return c
}

// TestNoLockFillAfterOwnSet: read-your-writes (contract 1): "Once Set or
// Delete returns in a process, that process never serves the value the call
// replaced: not from L1, not from Redis, not from a load that was in
// flight." On a store without rebuild locks, a load of this very process
// that read the origin before the write must not fill the shared tier after
// Set returned. (Found by the adversarial review: the first version of the
// new miss path consulted the invalidation epoch for L1 only, not before the
// plain fill.)
func TestNoLockFillAfterOwnSet(t *testing.T) {
	o := tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: keyspaceName(t)}, TTL: time.Hour, L1: tiercache.L1[user]{TTL: time.Hour}}
	o.Store = advNoLocks{redisstore.New(newRedis(t, srv(t).Addr()), nil)}
	c := newCache(t, "", o)
	waitSettled(t, c)
	ctx := t.Context()

	// The loader reads the row (version 0), then is slow to return it.
	read := make(chan struct{})
	release := make(chan struct{})
	slow := func(ctx context.Context, id string) (user, error) {
		u := user{ID: id, Name: "old", Version: 0}
		close(read)
		<-release
		return u, nil
	}
	got := make(chan user, 1)
	go func() {
		u, _ := c.Get(ctx, "k", slow)
		got <- u
	}()
	<-read

	// The row is updated, then the cache told: Set returns nil.
	if err := c.Set(ctx, "k", user{ID: "k", Name: "new", Version: 1}); err != nil {
		t.Fatal(err)
	}
	close(release)
	<-got // the concurrent Get may answer the old value: it started before Set

	u, err := c.Get(ctx, "k", func(context.Context, string) (user, error) {
		return user{ID: "k", Name: "new", Version: 1}, nil
	})
	if err != nil || u.Version != 1 {
		t.Errorf("after Set(k, v1) returned nil, the same process serves %+v, %v: the replaced value, filled into Redis by a load in flight", u, err)
	}
	fresh, err := reg1Fresh(t, srv(t).Addr(), o, "k")
	t.Logf("a process started now reads %+v, %v", fresh, err)
}

// TestRefusedSetDeletesReplacedValue: contract 1, "Once Set or Delete
// returns in a process, that process never serves the value the call
// replaced ... This holds when the call fails too." Set is called after the
// origin was updated. When the new value is too large to cache
// (ErrValueTooLarge) or cannot be encoded, Set deletes the key instead of
// returning before touching the shared tier, which left the old entry
// served until its TTL (found by the adversarial review).
func TestRefusedSetDeletesReplacedValue(t *testing.T) {
	c := newCache(t, srv(t).Addr(), tiercache.Options[user]{TTL: time.Hour, L1: tiercache.L1[user]{TTL: time.Hour}, L2: tiercache.L2[user]{MaxValueSize: 200}})
	ctx := t.Context()
	big := user{ID: "k", Name: strings.Repeat("n", 300), Version: 1}
	if _, err := c.Get(ctx, "k", func(context.Context, string) (user, error) { return user{ID: "k", Name: "old"}, nil }); err != nil {
		t.Fatal(err)
	}
	// The row grows past MaxValueSize; the cache is told.
	setErr := c.Set(ctx, "k", big)
	t.Logf("Set(k, 300-byte value): %v", setErr)
	u, err := c.Get(ctx, "k", func(context.Context, string) (user, error) { return big, nil })
	if err != nil || u.Version != 1 {
		t.Errorf("after Set(k, v1) returned (ErrValueTooLarge: %v), the process serves %+v, %v: the value the call replaced, still in Redis", errors.Is(setErr, tiercache.ErrValueTooLarge), u, err)
	}
}
