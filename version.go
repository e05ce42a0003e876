package tiercache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Incrementer is implemented by stores with an atomic counter (Redis INCR).
// tiercache keeps the runtime generation of a keyspace's version in one;
// without it BumpVersion is not available.
type Incrementer interface {
	// Incr adds one to the integer stored under key (0 if none, no
	// expiry) and returns the result.
	Incr(ctx context.Context, key string) (int64, error)
}

// ErrNoVersionStore is returned by BumpVersion for a store that is not an
// Incrementer (or no store at all).
var ErrNoVersionStore = errors.New("tiercache: the store cannot hold runtime versions")

// VersionKey returns the key under which the shared tier holds the runtime
// generation of the keyspace called name: "{prefix}tiercache:version:{name}".
func VersionKey(prefix, name string) string { return prefix + "tiercache:version:" + name }

// effectiveVersion is the version in keys: the code's Version, followed by
// "+{generation}" once the keyspace has been bumped at runtime. '+' cannot
// appear in a Version, so a bumped version never collides with a code one.
func effectiveVersion(code string, gen int64) string {
	if gen <= 0 {
		return code
	}
	return code + "+" + strconv.FormatInt(gen, 10)
}

// BumpVersion abandons every cached value of a keyspace at once, without a
// redeploy or a scan: it increments the keyspace's runtime generation in the
// shared tier and tells every process using it (through the keyspace's
// channel), which switch to keys of the new version and flush their L1.
// Old entries are no longer read and expire by their TTL. It returns the new
// generation.
//
// The generation is kept per Prefix and Name, apart from Options.Version: a
// cache's keys use "{Version}+{generation}" (e.g. "v1+3:user:42") once the
// keyspace has been bumped, so bumping and changing Version in code both
// isolate old entries, and a later code Version keeps the generation.
//
// store must be an Incrementer (redisstore.Store is) and, for running
// processes to switch at once, a Broadcaster; processes that miss the
// message switch when their subscription is re-established or they start.
func BumpVersion(ctx context.Context, store Store, prefix, name string) (int64, error) {
	inc, ok := store.(Incrementer)
	if !ok {
		return 0, ErrNoVersionStore
	}
	if err := checkName(name); err != nil || name == "" {
		return 0, fmt.Errorf("%w: keyspace name %q", ErrInvalidOptions, name)
	}
	gen, err := inc.Incr(ctx, VersionKey(prefix, name))
	if err != nil {
		return 0, fmt.Errorf("tiercache: bump version of %s: %w", name, err)
	}
	if b, ok := store.(Broadcaster); ok {
		msg := string(opVersion) + " bump " + strconv.FormatInt(gen, 10)
		if err := b.Publish(ctx, channelOf(prefix, name), msg); err != nil {
			return gen, fmt.Errorf("tiercache: version bumped to %d, but the message to running processes failed (they switch when they resubscribe): %w", gen, err)
		}
	}
	return gen, nil
}

// BumpVersion is the package's BumpVersion for this cache's keyspace; this
// process switches at once, without waiting for the message.
func (c *Cache[V]) BumpVersion(ctx context.Context) (Keyspace, error) {
	if c.store == nil {
		return c.Keyspace(), ErrNoVersionStore
	}
	gen, err := BumpVersion(ctx, c.store, c.cfg.Prefix, c.cfg.Keyspace.Name)
	if gen > 0 {
		c.useGeneration(gen)
	}
	return c.Keyspace(), err
}

// loadGeneration reads the keyspace's runtime generation from the shared
// tier and switches to it. A failure leaves the version as it is.
func (c *Cache[V]) loadGeneration(ctx context.Context) {
	if _, ok := c.store.(Incrementer); !ok {
		return
	}
	var b []byte
	err := c.l2(ctx, func(ctx context.Context) (err error) {
		b, err = c.store.Get(ctx, VersionKey(c.cfg.Prefix, c.cfg.Keyspace.Name))
		return err
	})
	if err != nil || b == nil {
		return
	}
	gen, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		c.warn(ctx, "tiercache: unreadable runtime version ignored", VersionKey(c.cfg.Prefix, c.cfg.Keyspace.Name), err)
		return
	}
	c.useGeneration(gen)
}

// useGeneration switches to generation gen if it is newer than the one in
// use, and flushes L1 (and the L1 claims of loads in flight), so that once
// it returns (to any caller, the subscription's included: they take turns)
// no entry of the old version is left in L1. It flushes on both sides of
// the keyspace swap: before, so that readers that see the new keyspace find
// no old entry; after, for entries that loads which read the old keyspace
// kept in between (a load notes its epoch before it reads the keyspace, so
// the second flush makes it stale and keeps anything later out).
func (c *Cache[V]) useGeneration(gen int64) {
	c.genMu.Lock()
	defer c.genMu.Unlock()
	cur := c.ks.Load()
	if gen <= cur.gen {
		return
	}
	c.flushL1()
	c.ks.Store(c.newKeyspace(gen))
	c.flushL1()
}
