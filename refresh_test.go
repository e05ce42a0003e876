package tiercache_test

// Adversarial tests of stale-while-revalidate.

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/tiercache/tiercache"
)

// TestRefreshHoldOffKept: "Stale-while-revalidate: ... a background
// refresh starts, deduplicated per entry by a hold-off time set with a CAS;
// the refresh takes the fleet-wide lock, and a process that finds it held
// does nothing" (docs/architecture.md, the read path, 4; refresh's comment:
// "The hold-off is LockTTL: a refresh, here or in another process whose lock
// we found, fills within it"). A refresh that found the lock held put the
// stale entry it read with the lock attempt in L1, a new entry whose
// hold-off was zero, so the next read of it started another refresh, and
// another lock attempt in Redis: one per read while the other process
// rebuilt, instead of one per LockTTL (found by the adversarial review).
func TestRefreshHoldOffKept(t *testing.T) {
	clk := newClock()
	o := tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: keyspaceName(t)},
		TTL: time.Minute, StaleTTL: time.Hour, L1: tiercache.L1[user]{TTL: time.Hour}, Rebuild: tiercache.Rebuild{EarlyRefreshBeta: -1}, Jitter: -1}
	tiercache.SetClock(&o, clk.Now)
	a := newCache(t, srv(t).Addr(), o)
	b := newCache(t, srv(t).Addr(), o)
	ctx := t.Context()
	v0 := func(context.Context, string) (user, error) { return user{ID: "k", Name: "v0"}, nil }
	if _, err := a.Get(ctx, "k", v0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "k", v0); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute) // stale everywhere (soft expiry passed, hard one an hour away)

	// B refreshes k and holds its lock while its loader runs.
	started, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	slow := func(context.Context, string) (user, error) {
		close(started)
		<-release
		return user{ID: "k", Name: "v1"}, nil
	}
	if u, err := b.Get(ctx, "k", slow); err != nil || u.Name != "v0" {
		t.Fatalf("B: %+v, %v", u, err)
	}
	<-started

	// A reads k, stale, for a while (the fake clock does not move: the
	// hold-off, LockTTL = 5 s, never expires).
	never := func(context.Context, string) (user, error) { t.Error("A loaded: B holds the lock"); return user{}, nil }
	end := time.Now().Add(500 * time.Millisecond)
	reads := 0
	for time.Now().Before(end) {
		if u, err := a.Get(ctx, "k", never); err != nil || u.Name != "v0" {
			t.Fatalf("A: %+v, %v", u, err)
		}
		reads++
		runtime.Gosched()
	}
	waitUntil(t, func() bool { s := a.Stats(); return s.LockContended == s.Refreshes }, "A's refreshes to finish")
	s := a.Stats()
	if s.Refreshes > 1 {
		t.Errorf("%d stale reads of k in A started %d refreshes (%d lock attempts in Redis) while B held the lock; want 1 per LockTTL", reads, s.Refreshes, s.LockContended)
	}
}
