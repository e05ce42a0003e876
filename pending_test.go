package tiercache_test

// Adversarial tests of the repair of failed writes (pending ids).

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/tiercache/tiercache"
)

// TestManyFailedWrites: contract 1, "This holds when the call
// fails too", and 2, a failed write "is retried in the background": after a
// Delete that failed for 65 537 ids (one outage's worth of writes), the
// process never serves the value its Delete replaced, neither before nor
// after the background repair. (The first version bounded the pending set
// at 65 536 ids and dropped the rest silently; past its bound now the
// keyspace moves to a new generation, see internal/fleet's
// TestPendingOverflowBumps.)
//
// The write fails cleanly with a cancelled context (go-redis sends nothing).
func TestManyFailedWrites(t *testing.T) {
	const id = "x"
	c := newCache(t, srv(t).Addr(), tiercache.Options[user]{TTL: time.Hour, L1: tiercache.L1[user]{TTL: time.Hour}})
	ctx := t.Context()
	if _, err := c.Get(ctx, id, func(context.Context, string) (user, error) { return user{ID: id, Name: "v0"}, nil }); err != nil {
		t.Fatal(err)
	}

	ids := make([]string, 0, 1<<16+1)
	for i := range 1 << 16 {
		ids = append(ids, "other-"+strconv.Itoa(i))
	}
	ids = append(ids, id)
	failed, cancel := context.WithCancel(ctx)
	cancel()
	err := c.Delete(failed, ids...)
	if !errors.Is(err, tiercache.ErrUnavailable) {
		t.Fatalf("Delete with a cancelled context: %v, want an error wrapping ErrUnavailable", err)
	}
	v1 := func(context.Context, string) (user, error) { return user{ID: id, Name: "v1"}, nil }
	if u, err := c.Get(ctx, id, v1); err != nil || u.Name != "v1" {
		t.Errorf("right after Delete(%d ids incl. %q) failed, the process serves %+v, %v: the value its Delete replaced", len(ids), id, u, err)
	}

	// Every pending id is repaired (deleted and announced) in the background.
	waitUntil(t, func() bool { return c.Stats().WritesRepaired >= 1<<16+1 }, "the background repair of the pending ids")
	// Redis holds nothing for x now, or what this process loaded since (v1),
	// never the replaced v0: a process started now reads it.
	other := newCache(t, srv(t).Addr(), tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: keyspaceName(t)}, TTL: time.Hour})
	if u, err := other.Get(ctx, id, v1); err != nil || u.Name != "v1" {
		t.Errorf("after the repair a new process serves %+v, %v: the value the Delete replaced", u, err)
	}
	if u, err := c.Get(ctx, id, v1); err != nil || u.Name != "v1" {
		t.Errorf("after the repair of %d writes, the process serves %+v, %v: the value its Delete replaced", c.Stats().WritesRepaired, u, err)
	}
}
