package tiercache_test

// Tests from the second adversarial review (each failed on the code it reviewed): forged messages.

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercache/tiercache"
)

// TestForgedWriteCostsReloadsOnly: a forged "w" naming the generation the
// fleet just left is carried over by every process that switched within
// L1TTL (a message is not authenticated: it cannot be told from a lagging
// process's write). The second adversarial review found that it deletes
// the named entries in Redis; docs/architecture.md says so ("a forged
// message can make processes drop copies, or delete entries, which costs
// reloads from the origin"). What must hold: no process moves to another
// keyspace, none serves another id's value, and the cost is one reload of
// the named id per process.
func TestForgedWriteCostsReloadsOnly(t *testing.T) {
	name := keyspaceName(t)
	o := tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: name}, TTL: time.Hour, L1: tiercache.L1[user]{TTL: time.Hour}}
	a := newCache(t, srv(t).Addr(), o)
	b := newCache(t, srv(t).Addr(), o)
	ctx := t.Context()
	prev := a.Keyspace().Version
	if _, err := a.BumpVersion(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return b.Keyspace().Version == a.Keyspace().Version }, "B to switch")
	current := a.Keyspace().Version
	var loads atomic.Int64
	load := func(ctx context.Context, id string) (user, error) { loads.Add(1); return user{ID: id}, nil }
	for _, c := range []*tiercache.Cache[user]{a, b} {
		if _, err := c.Get(ctx, "victim", load); err != nil {
			t.Fatal(err)
		}
	}
	before := loads.Load()
	// Anyone who may publish on the channel (it needs no key access).
	if _, err := srv(t).Do("PUBLISH", "tiercache:"+name, "w forger "+prev+" victim"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return a.Stats().WritesRepaired+b.Stats().WritesRepaired >= 2 }, "the message to be handled")
	for round := range 3 {
		for _, c := range []*tiercache.Cache[user]{a, b} {
			u, err := c.Get(ctx, "victim", load)
			if err != nil || u.ID != "victim" || c.Keyspace().Version != current {
				t.Fatalf("round %d: %+v, %v on %q after a forged write; want the victim's value on %q", round, u, err, c.Keyspace().Version, current)
			}
		}
	}
	if extra := loads.Load() - before; extra > 2 {
		t.Fatalf("a forged write cost %d reloads, want at most one per process", extra)
	}
}
