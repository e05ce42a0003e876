package contender

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/viccon/sturdyc"

	"github.com/tiercache/tiercache/bench/workload"
)

// sturdyCache is github.com/viccon/sturdyc with a distributed storage on
// Redis (its WithDistributedStorage option; the README leaves the storage to
// the user, so it is implemented here on go-redis with the same TTL).
type sturdyCache struct {
	c      *sturdyc.Client[workload.Record]
	keyFn  sturdyc.KeyFn
	rdb    *redis.Client
	origin *workload.Origin
}

const (
	sturdycPrefix = "sturdyc:user:"
	// sturdycShards and sturdycEvictPercent follow the README's basic
	// example (10 shards, evict 10% of a full shard).
	sturdycShards       = 10
	sturdycEvictPercent = 10
)

func newSturdyc(_ context.Context, cfg Config) (Cache, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	rdb := newGoRedis(&cfg)
	st := &redisStorage{rdb: rdb, ttl: cfg.TTL + cfg.StaleTTL}
	opts := []sturdyc.Option{
		// sturdyc's continuous eviction goroutine cannot be stopped, and a
		// benchmark creates many instances; without it a full shard still
		// evicts. Its doc advises this setting for speed.
		sturdyc.WithNoContinuousEvictions(),
		sturdyc.WithLog(quietLog{}),
	}
	ttl := cfg.TTL
	if cfg.StaleTTL > 0 {
		// sturdyc's notion of a soft expiry: early refreshes in memory and
		// in the distributed storage after TTL, values kept TTL+StaleTTL.
		ttl = cfg.TTL + cfg.StaleTTL
		opts = append(opts,
			sturdyc.WithEarlyRefreshes(cfg.TTL, cfg.TTL, ttl, time.Second),
			sturdyc.WithDistributedStorageEarlyRefreshes(st, cfg.TTL))
	} else {
		opts = append(opts, sturdyc.WithDistributedStorage(st))
	}
	c := sturdyc.New[workload.Record](cfg.LocalSize, sturdycShards, ttl, sturdycEvictPercent, opts...)
	return &sturdyCache{c: c, keyFn: c.BatchKeyFn("sturdyc:users"), rdb: rdb, origin: cfg.Origin}, nil
}

func (s *sturdyCache) Get(ctx context.Context, id string) (workload.Record, error) {
	return s.c.GetOrFetch(ctx, sturdycPrefix+id, func(ctx context.Context) (workload.Record, error) {
		return s.origin.Load(ctx, id)
	})
}

// GetMany is sturdyc's GetOrFetchBatch with its documented BatchKeyFn: one
// MGET on the distributed storage, one batch fetch for the misses.
func (s *sturdyCache) GetMany(ctx context.Context, ids []string) (map[string]workload.Record, error) {
	return s.c.GetOrFetchBatch(ctx, ids, s.keyFn, s.origin.LoadMany)
}

func (s *sturdyCache) Close() error { return s.rdb.Close() }

// quietLog drops sturdyc's logs: the Redis-down scenario would flood them.
type quietLog struct{}

func (quietLog) Warn(string, ...any)  {}
func (quietLog) Error(string, ...any) {}

// redisStorage is sturdyc's DistributedStorageWithDeletions on go-redis.
// The interface has no errors: a failed call is a miss, as sturdyc expects.
type redisStorage struct {
	rdb *redis.Client
	ttl time.Duration
}

var _ sturdyc.DistributedStorageWithDeletions = (*redisStorage)(nil)

func (r *redisStorage) Get(ctx context.Context, key string) ([]byte, bool) {
	b, err := r.rdb.Get(ctx, key).Bytes()
	if err != nil {
		return nil, false
	}
	return b, true
}

func (r *redisStorage) Set(ctx context.Context, key string, value []byte) {
	_ = r.rdb.Set(ctx, key, value, r.ttl).Err()
}

func (r *redisStorage) GetBatch(ctx context.Context, keys []string) map[string][]byte {
	out := make(map[string][]byte, len(keys))
	vals, err := r.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return out
	}
	for i, v := range vals {
		if s, ok := v.(string); ok {
			out[keys[i]] = []byte(s)
		}
	}
	return out
}

func (r *redisStorage) SetBatch(ctx context.Context, records map[string][]byte) {
	_, _ = r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k, v := range records {
			p.Set(ctx, k, v, r.ttl)
		}
		return nil
	})
}

func (r *redisStorage) Delete(ctx context.Context, key string) {
	_ = r.rdb.Del(ctx, key).Err()
}

func (r *redisStorage) DeleteBatch(ctx context.Context, keys []string) {
	if len(keys) > 0 {
		_ = r.rdb.Del(ctx, keys...).Err()
	}
}
