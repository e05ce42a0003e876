package tiercache

import (
	"context"
	"errors"
	"fmt"
)

// Bumped is what BumpVersion did.
type Bumped struct {
	// Keyspace is the keyspace in effect after the bump, e.g. version
	// "v1+1764201234567890".
	Keyspace Keyspace
	// Heard is how many other processes' subscriptions received the bump's
	// message (on Redis Cluster, only those connected to the node that took
	// it).
	Heard int64
	// Switched is how many other processes said they moved to the new
	// version before BumpVersion returned (it waits up to 2 s for as many as
	// heard it).
	Switched int
}

// BumpVersion abandons every cached value of the keyspace at once, without
// a redeploy or a scan: it stores a new runtime generation of the keyspace
// in the shared tier (a generation never used before, even if the shared
// tier lost the old one), switches this process to keys of the new version
// ("v1+1764201234567890:user:42") and tells the others, which read the
// generation from the shared tier and switch too; a process that misses the
// message reads it within the invalidation bound. Old entries are no longer
// read and expire by their TTL.
//
// The generation is kept per Prefix and Name, apart from the code's
// Version, so that bumping and changing Version in code both isolate old
// entries, and a later code Version keeps the generation ("v2+…").
//
// Without a store that keeps runtime generations (or without a store) it
// returns an error wrapping errors.ErrUnsupported.
func (c *Cache[V]) BumpVersion(ctx context.Context) (Bumped, error) {
	if c.closed.Load() {
		return Bumped{Keyspace: c.Keyspace()}, ErrClosed
	}
	if c.tier == nil || !c.tier.Capabilities().Generations {
		return Bumped{Keyspace: c.Keyspace()}, fmt.Errorf("tiercache: bump version: the store cannot hold runtime versions: %w", errors.ErrUnsupported)
	}
	b, err := c.tier.Bump(ctx)
	return Bumped{Keyspace: c.Keyspace(), Heard: b.Heard, Switched: b.Switched}, err
}
