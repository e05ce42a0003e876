package contender

import (
	"context"

	"github.com/go-redis/cache/v9"
	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/bench/workload"
)

// goRedisCache is github.com/go-redis/cache/v9 as its README sets it up: a
// TinyLFU local cache in front of Redis, Once for cache-aside.
type goRedisCache struct {
	c      *cache.Cache
	rdb    *redis.Client
	origin *workload.Origin
	cfg    Config
}

const goRedisCachePrefix = "grc:user:"

func newGoRedisCache(_ context.Context, cfg Config) (Cache, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	rdb := newGoRedis(&cfg)
	c := cache.New(&cache.Options{
		Redis:      rdb,
		LocalCache: cache.NewTinyLFU(cfg.LocalSize, cfg.localTTL()),
	})
	return &goRedisCache{c: c, rdb: rdb, origin: cfg.Origin, cfg: cfg}, nil
}

func (g *goRedisCache) Get(ctx context.Context, id string) (workload.Record, error) {
	var r workload.Record
	err := g.c.Once(&cache.Item{
		Ctx:   ctx,
		Key:   goRedisCachePrefix + id,
		Value: &r,
		TTL:   g.cfg.TTL,
		Do: func(it *cache.Item) (any, error) {
			return g.origin.Load(it.Context(), id)
		},
	})
	return r, err
}

// GetMany is what go-redis/cache offers for many keys: one Once per id.
func (g *goRedisCache) GetMany(ctx context.Context, ids []string) (map[string]workload.Record, error) {
	out := make(map[string]workload.Record, len(ids))
	for _, id := range ids {
		r, err := g.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		out[id] = r
	}
	return out, nil
}

func (g *goRedisCache) Close() error { return g.rdb.Close() }
