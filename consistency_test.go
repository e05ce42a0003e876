package tiercache_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cachetest"
	"github.com/tiercache/tiercache/driver"
	"github.com/tiercache/tiercache/redisstore"
)

// TestDeleteReachesOtherProcesses: B holds keys in L1 for an hour; A
// deletes each (after updating the origin) and B serves the new value well
// within a second. It reports the invalidation latency over 1000 keys.
func TestDeleteReachesOtherProcesses(t *testing.T) {
	o := tiercache.Options[user]{TTL: time.Hour, L1: tiercache.L1[user]{TTL: time.Hour}}
	caches := fleet(t, 2, o)
	a, b := caches[0], caches[1]
	const keys = 1000
	db := newOrigin()
	for i := range keys {
		db.rows[strconv.Itoa(i)] = user{ID: strconv.Itoa(i)}
	}
	ctx := t.Context()
	for i := range keys {
		if _, err := b.Get(ctx, strconv.Itoa(i), db.load); err != nil {
			t.Fatal(err)
		}
	}
	lat := make([]time.Duration, 0, keys)
	for i := range keys {
		id := strconv.Itoa(i)
		db.update(id)
		start := time.Now()
		if err := a.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
		for {
			u, err := b.Get(ctx, id, db.load)
			if err != nil {
				t.Fatal(err)
			}
			if u.Version == 1 {
				break
			}
			if time.Since(start) > time.Second {
				t.Fatalf("B still serves version %d of %s a second after A's Delete", u.Version, id)
			}
		}
		lat = append(lat, time.Since(start))
	}
	// At least: with tracking, the invalidation of A's DEL can also reach B
	// after B refilled the key, and drop that copy once more (dropping is
	// always safe: see internal/fleet/own.go).
	if s := b.Stats(); s.Invalidations < keys {
		t.Errorf("B dropped %d L1 entries on invalidations, want at least %d", s.Invalidations, keys)
	}
	t.Logf("invalidation latency over %d keys (Delete returned → B serves the new value): p50 %v, p99 %v, max %v",
		keys, pctl(lat, 50), pctl(lat, 99), lat[len(lat)-1])
}

// TestStaleSetRace is the race memcache's leases solve: A's loader reads the
// row (version 0); B updates the row and deletes the key; then A's loader
// returns version 0. A must not store it: afterwards no process serves
// version 0. (Removing the lock deletion from redisstore's Delete makes this
// test fail: A's fill then stores version 0 in Redis after B's Delete.)
func TestStaleSetRace(t *testing.T) {
	caches := fleet(t, 2, tiercache.Options[user]{TTL: time.Hour, L1: tiercache.L1[user]{TTL: time.Hour}})
	a, b := caches[0], caches[1]
	db := newOrigin("k")
	ctx := t.Context()

	readOld := make(chan struct{})
	release := make(chan struct{})
	slowLoad := func(ctx context.Context, id string) (user, error) {
		u, err := db.load(ctx, id) // reads version 0
		close(readOld)
		<-release
		return u, err
	}
	first := make(chan user, 1)
	go func() {
		u, err := a.Get(ctx, "k", slowLoad)
		if err != nil {
			t.Error(err)
		}
		first <- u
	}()
	<-readOld
	db.update("k") // version 1
	if err := b.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	close(release)
	if u := <-first; u.Version != 0 {
		t.Fatalf("the caller that started before the update got version %d, want 0 (it read before)", u.Version)
	}
	// Every later read, in every process, a new one included, sees version 1.
	c := newCache(t, srv(t).Addr(), tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: keyspaceName(t)}})
	for round := range 3 {
		for name, p := range map[string]*tiercache.Cache[user]{"A": a, "B": b, "C": c} {
			u, err := p.Get(ctx, "k", db.load)
			if err != nil || u.Version != 1 {
				t.Fatalf("round %d: %s served %+v, %v; want version 1", round, name, u, err)
			}
		}
	}
	if s := a.Stats(); s.FillsLost != 1 {
		t.Fatalf("A's FillsLost = %d, want 1 (its fill refused)", s.FillsLost)
	}
}

// splitStore is a redisstore.Store whose subscription goes through another
// store (a faulty proxy), while its data calls go straight to Redis.
type splitStore struct {
	*redisstore.Store
	sub *redisstore.Store
}

func (s splitStore) Subscribe(ctx context.Context, channel string, h driver.Handler) error {
	return s.sub.Subscribe(ctx, channel, h)
}

// TestSubscriptionLoss: B's subscription silently stops delivering (its
// connection stalls) while A deletes a key B holds in L1. B notices within
// HealthInterval + Timeout, stops trusting L1, and serves the new value.
func TestSubscriptionLoss(t *testing.T) {
	proxy := cachetest.StartProxy(t, srv(t).Addr(), 2)
	const health, timeout = 300 * time.Millisecond, 100 * time.Millisecond
	newStore := func(addr string) *redisstore.Store {
		return redisstore.New(newRedis(t, addr), &redisstore.Options{HealthInterval: health, Timeout: timeout})
	}
	name := keyspaceName(t)
	o := tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: name}, TTL: time.Hour, L1: tiercache.L1[user]{TTL: time.Hour}}
	a := newCache(t, srv(t).Addr(), o)
	o.Store = splitStore{Store: newStore(srv(t).Addr()), sub: newStore(proxy.Addr())}
	b := newCache(t, "", o)
	waitSettled(t, b) // B's L1 answers first: the stall must be noticed
	db := newOrigin("k")
	ctx := t.Context()
	if _, err := b.Get(ctx, "k", db.load); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "k", db.load); err != nil || b.Stats().L1Hits != 1 {
		t.Fatalf("B's second Get: %v, L1 hits %d; want an L1 hit before the stall", err, b.Stats().L1Hits)
	}
	proxy.SetFaults(cachetest.Faults{Stall: true})
	db.update("k")
	start := time.Now()
	if err := a.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool {
		u, err := b.Get(ctx, "k", db.load)
		return err == nil && u.Version == 1
	}, "B to serve the new value")
	took := time.Since(start)
	t.Logf("B served the new value %v after the Delete it never heard of (bound HealthInterval+Timeout = %v)", took.Round(time.Millisecond), health+timeout)
	if took > 3*(health+timeout) {
		t.Fatalf("B served its stale L1 copy for %v, beyond the bound %v", took, health+timeout)
	}
	// When the subscription is back, B trusts L1 again (after flushing it).
	proxy.SetFaults(cachetest.Faults{})
	waitUntil(t, func() bool {
		before := b.Stats().L1Hits
		b.Get(ctx, "k", db.load)
		return b.Stats().L1Hits == before+1
	}, "B to answer from L1 again")
}

// TestRandomizedConvergence: goroutines over several processes read, update
// the origin and delete keys of a small set at random; once they stop, every
// process serves the latest version of every key.
func TestRandomizedConvergence(t *testing.T) {
	const processes, keys, workers = 3, 8, 12
	caches := fleet(t, processes, tiercache.Options[user]{TTL: time.Hour, L1: tiercache.L1[user]{TTL: time.Hour}, StaleTTL: time.Hour})
	db := newOrigin()
	for i := range keys {
		db.rows[strconv.Itoa(i)] = user{ID: strconv.Itoa(i)}
	}
	var wg sync.WaitGroup
	deadline := time.Now().Add(2 * time.Second)
	for w := range workers {
		c := caches[w%processes]
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 3))
			for time.Now().Before(deadline) {
				id := strconv.Itoa(rng.IntN(keys))
				switch r := rng.IntN(10); {
				case r < 7:
					if _, err := c.Get(t.Context(), id, db.load); err != nil {
						t.Error(err)
						return
					}
				default: // the cache-aside write: update the row, then delete the key
					db.update(id)
					if err := c.Delete(t.Context(), id); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	for i := range keys {
		id := strconv.Itoa(i)
		db.mu.Lock()
		latest := db.rows[id].Version
		db.mu.Unlock()
		for p, c := range caches {
			waitUntil(t, func() bool {
				u, err := c.Get(t.Context(), id, db.load)
				return err == nil && u.Version == latest
			}, fmt.Sprintf("process %d to serve version %d of %s", p, latest, id))
		}
	}
}

// TestBumpVersion: a runtime bump switches every process to new keys at
// once; old entries are no longer served, and a process started later uses
// the bumped version too.
func TestBumpVersion(t *testing.T) {
	caches := fleet(t, 2, tiercache.Options[user]{TTL: time.Hour, L1: tiercache.L1[user]{TTL: time.Hour}})
	a, b := caches[0], caches[1]
	ctx := t.Context()
	bad := func(ctx context.Context, id string) (user, error) { return user{ID: id, Name: "bad deploy"}, nil }
	good := func(ctx context.Context, id string) (user, error) { return user{ID: id, Name: "good"}, nil }
	for _, c := range caches {
		if u, _ := c.Get(ctx, "1", bad); u.Name != "bad deploy" {
			t.Fatal("setup: not cached")
		}
	}
	oldKey := a.Key("1")
	bumped, err := a.BumpVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v1 := bumped.Keyspace.Version
	if !strings.HasPrefix(v1, "v1+") || a.Keyspace().Version != v1 || a.Key("1") == oldKey {
		t.Fatalf("after the bump: version %q (A says %q), key %s", v1, a.Keyspace().Version, a.Key("1"))
	}
	if bumped.Heard != 1 || bumped.Switched != 1 {
		t.Errorf("bump heard by %d processes, %d switched; want B: 1 and 1", bumped.Heard, bumped.Switched)
	}
	if u, err := a.Get(ctx, "1", good); err != nil || u.Name != "good" {
		t.Fatalf("A after its bump served %+v, %v; want a fresh load", u, err)
	}
	// B said it switched, so it serves the new keyspace.
	if u, err := b.Get(ctx, "1", good); err != nil || u.Name != "good" || b.Keyspace().Version != v1 {
		t.Fatalf("B after the bump: %+v, %v on %q; want a fresh load on %q", u, err, b.Keyspace().Version, v1)
	}
	if got := b.Key("1"); got != v1+":"+keyspaceName(t)+":1" {
		t.Fatalf("B's key %s", got)
	}
	// The old entry is left to expire, not scanned for.
	if n, _ := srv(t).Do("EXISTS", oldKey); n != int64(1) {
		t.Fatalf("old key exists = %v, want it left to its TTL", n)
	}
	// A process started later picks the bumped version up at its first
	// request (New does no I/O).
	c := newCache(t, srv(t).Addr(), tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: keyspaceName(t)}})
	if _, err := c.Get(ctx, "1", good); err != nil {
		t.Fatal(err)
	}
	if got := c.Keyspace().Version; got != v1 {
		t.Fatalf("new process version %q, want %q", got, v1)
	}
	bumped, err = c.BumpVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v2 := bumped.Keyspace.Version
	if v2 <= v1 || bumped.Heard != 2 || bumped.Switched != 2 {
		t.Fatalf("second bump: %+v; want a later version than %q heard and done by A and B", bumped, v1)
	}
	for name, p := range map[string]*tiercache.Cache[user]{"A": a, "B": b} {
		if got := p.Keyspace().Version; got != v2 {
			t.Errorf("%s is on %q after saying it switched to %q", name, got, v2)
		}
	}
}
