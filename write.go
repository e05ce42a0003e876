package tiercache

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Set stores v as the value of id in both tiers (write-through) and tells
// the other processes to drop their L1 copies. It also cancels any rebuild
// of id in progress, so that a load that read the origin before the write
// cannot store its older value after it.
//
// If the shared tier fails, Set returns the error (wrapping ErrUnavailable
// when the circuit breaker is open) and leaves id out of this process's L1,
// so that no process serves a value the shared tier does not hold.
func (c *Cache[V]) Set(ctx context.Context, id string, v V) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if err := checkID(id); err != nil {
		return err
	}
	e := c.newEntry(v, false, c.now(), 0)
	c.invalidate(id) // loads in flight must not keep their older value
	if c.store == nil {
		c.l1.Set(id, e)
		return nil
	}
	key := c.Key(id)
	b, err := c.encode(key, e)
	if err != nil {
		return fmt.Errorf("tiercache: encoding %s: %w", key, err)
	}
	ttl := time.Duration(e.hard - c.now())
	if err := c.l2(ctx, func(ctx context.Context) error { return c.store.Set(ctx, key, b, ttl) }); err != nil {
		return c.writeError("set", key, err)
	}
	c.l1.Set(id, e)
	c.publish(ctx, opChanged, key)
	return nil
}

// Delete removes ids from both tiers, tells the other processes to drop
// their L1 copies, and cancels any rebuild of them in progress (see Set).
// Deleting an id that is not cached is not an error.
func (c *Cache[V]) Delete(ctx context.Context, ids ...string) error {
	if c.closed.Load() {
		return ErrClosed
	}
	for _, id := range ids {
		if err := checkID(id); err != nil {
			return err
		}
	}
	keys := make([]string, len(ids))
	ks := c.ks.Load()
	for i, id := range ids {
		c.invalidate(id)
		keys[i] = ks.key(id)
	}
	if c.store == nil || len(keys) == 0 {
		return nil
	}
	if err := c.l2(ctx, func(ctx context.Context) error { return c.store.Delete(ctx, keys...) }); err != nil {
		return c.writeError("delete", keys[0], err)
	}
	c.publish(ctx, opChanged, keys...)
	return nil
}

func (c *Cache[V]) writeError(op, key string, err error) error {
	if errors.Is(err, errBreakerOpen) {
		return fmt.Errorf("tiercache: %s %s: %w", op, key, ErrUnavailable)
	}
	return fmt.Errorf("tiercache: %s %s: %w", op, key, err)
}
