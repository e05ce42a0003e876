package contender

import (
	"context"

	"github.com/tiercache/tiercache/bench/workload"
)

// GetMany is tiercache's batch read: one L2 MGET, one batch loader call for
// the misses.
func (t *tierCache) GetMany(ctx context.Context, ids []string) (map[string]workload.Record, error) {
	return t.c.GetMany(ctx, ids, t.cfg.Origin.LoadMany)
}
