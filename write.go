package tiercache

import (
	"context"
	"fmt"
	"time"
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
	// Loads in flight must not keep, or fill, what they read before.
	c.invalidate(id)
	if c.tier == nil {
		c.put(id, e)
		return nil
	}
	// Only the shared tier is written: this process's L1 is dropped after
	// it too, and refilled from it. Writing L1 here would let two
	// concurrent Sets leave L1 and the shared tier disagreeing (the later
	// SET's L1 write first), where the shared tier has an order.
	defer c.invalidate(id)
	var encErr error
	err := c.tier.Set(ctx, id, func(key string) ([]byte, error) {
		b, err := c.encode(key, e)
		encErr = err
		return b, err
	}, time.Duration(e.hard-c.now()))
	switch {
	case encErr != nil && err != nil:
		return fmt.Errorf("tiercache: set %s: %w; and deleting the value it replaces failed: %w", c.Key(id), encErr, writeError("delete", c.Key(id), err))
	case encErr != nil:
		// Deleted instead: the value it replaces is not served either.
		return fmt.Errorf("tiercache: set %s: %w (the value it replaces was deleted)", c.Key(id), encErr)
	case err != nil:
		return writeError("set", c.Key(id), err)
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
	for _, id := range ids {
		c.invalidate(id)
	}
	if c.tier == nil || len(ids) == 0 {
		return nil
	}
	defer func() {
		for _, id := range ids {
			c.invalidate(id)
		}
	}()
	if err := c.tier.Delete(ctx, ids); err != nil {
		return writeError("delete", c.Key(ids[0]), err)
	}
	return nil
}

func writeError(op, key string, err error) error {
	return fmt.Errorf("tiercache: %s %s: %w: the change may not have reached the shared tier and the other processes (retried in the background; this process loads it from the origin meanwhile): %w", op, key, ErrUnavailable, err)
}
