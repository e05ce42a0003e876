package tiercache_test

// Tests from the second adversarial review (each failed on the code it reviewed): a rolling deploy of a new code Version.

import (
	"testing"
	"time"

	"github.com/tiercache/tiercache"
)

// TestRollingDeployDelete: contract 2, "Once Set or Delete returns nil,
// every other process serves the change (or a later one) within B". During
// a rolling deploy of a new value format (Keyspace.Version v1 -> v2, same
// Name: the processes share the channel, and internal/fleet handles "another
// code Version (a rolling deploy): copies dropped"), an old process
// updates the origin and calls Delete. A new process drops its L1 copy on
// the message, then reads its own v2 key in Redis, which still holds the
// value the Delete replaced: it serves it until the entry's TTL.
func TestRollingDeployDelete(t *testing.T) {
	name := keyspaceName(t)
	o := tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: name, Version: "v1"}, TTL: time.Hour, L1: tiercache.L1[user]{TTL: time.Hour}}
	old := newCache(t, srv(t).Addr(), o)
	o.Keyspace.Version = "v2"
	neu := newCache(t, srv(t).Addr(), o)
	ctx := t.Context()
	db := newOrigin("x")
	for _, c := range []*tiercache.Cache[user]{old, neu} {
		if u, err := c.Get(ctx, "x", db.load); err != nil || u.Version != 0 {
			t.Fatalf("Get = %+v, %v", u, err)
		}
	}
	// The new process answers x from its L1 copy.
	waitUntil(t, func() bool {
		before := neu.Stats().L1Hits
		neu.Get(ctx, "x", db.load)
		return neu.Stats().L1Hits > before
	}, "the new process to hold x in L1")
	db.update("x")
	if err := old.Delete(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	// It hears the Delete: its L1 copy is dropped, and it reads Redis again.
	var u user
	var err error
	waitUntil(t, func() bool {
		before := neu.Stats().L1Hits
		u, err = neu.Get(ctx, "x", db.load)
		return neu.Stats().L1Hits == before
	}, "the new process to drop its copy on the Delete's message")
	// Well past B (1.2 s by default)? It is not a matter of time: nothing
	// else will reach the v2 entry before its TTL.
	if err != nil || u.Version != 1 {
		t.Errorf("after an old (v1) process's Delete(x) returned nil and a new (v2) process heard it, the new process serves version %d, %v (from %s); the origin holds 1",
			u.Version, err, neu.Key("x"))
	}
}
