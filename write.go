package tiercache

import (
	"context"
	"fmt"
	"time"

	"github.com/tiercache/tiercache/internal/fleet"
)

// Set stores v as the value of id in the cache, on both tiers: in the
// shared tier at once, cancelling any rebuild of id in progress (so that a
// load that read the origin before the write cannot store its older value
// after it), and in every process's L1 by dropping their copies (this
// process's once the shared tier holds v, the others' through a message in
// the same step). It does not write the origin: update the origin first,
// then Set (or Delete).
//
// Once Set returns nil, this process serves v (or a later value), and every
// other process does within the invalidation bound (docs/architecture.md).
// If the shared tier fails, Set returns an error wrapping ErrUnavailable:
// the change may not have reached the shared tier or the other processes.
// This process still never serves the old value: it loads id from the
// origin until a background retry has deleted id's key in the shared tier.
func (c *Cache[V]) Set(ctx context.Context, id string, v V) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if err := checkID(id); err != nil {
		return err
	}
	e := c.newEntry(v, false, c.now(), 0)
	if c.tier == nil {
		c.invalidate(id) // loads in flight must not keep their older value
		c.l1.Set(id, e)
		return nil
	}
	// Only the shared tier is written: this process's L1 is dropped after
	// it, and refilled from it. Writing L1 here too would let two
	// concurrent Sets leave L1 and the shared tier disagreeing (the later
	// SET's L1 write first), where the shared tier has an order.
	defer c.invalidate(id)
	space, ok := c.tier.Ready(ctx)
	if !ok {
		return c.unwritten(ctx, "set", c.space().Key(id), []string{id}, fleet.ErrNoGeneration)
	}
	key := space.Key(id)
	b, err := c.encode(key, e)
	if err != nil {
		return fmt.Errorf("tiercache: encoding %s: %w", key, err)
	}
	if err := c.tier.Set(ctx, space, id, b, time.Duration(e.hard-c.now())); err != nil {
		return writeError("set", key, err)
	}
	return nil
}

// Delete removes ids from both tiers (see Set): from the shared tier, with
// their rebuilds cancelled, and from every process's L1. Deleting an id that
// is not cached is not an error. It has Set's guarantees and error rule.
func (c *Cache[V]) Delete(ctx context.Context, ids ...string) error {
	if c.closed.Load() {
		return ErrClosed
	}
	for _, id := range ids {
		if err := checkID(id); err != nil {
			return err
		}
	}
	if c.tier == nil || len(ids) == 0 {
		for _, id := range ids {
			c.invalidate(id)
		}
		return nil
	}
	defer func() {
		for _, id := range ids {
			c.invalidate(id)
		}
	}()
	space, ok := c.tier.Ready(ctx)
	if !ok {
		return c.unwritten(ctx, "delete", c.space().Key(ids[0]), ids, fleet.ErrNoGeneration)
	}
	if err := c.tier.Delete(ctx, space, ids); err != nil {
		return writeError("delete", space.Key(ids[0]), err)
	}
	return nil
}

// unwritten is a write that could not be attempted: its ids are left for
// the background repair, as a failed one's are.
func (c *Cache[V]) unwritten(ctx context.Context, op, key string, ids []string, err error) error {
	c.tier.MarkPending(ids)
	return writeError(op, key, err)
}

func writeError(op, key string, err error) error {
	return fmt.Errorf("tiercache: %s %s: %w: the change may not have reached the shared tier and the other processes (retried in the background; this process loads it from the origin meanwhile): %w", op, key, ErrUnavailable, err)
}
