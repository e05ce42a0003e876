package contender

import (
	"context"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/bench/workload"
	"github.com/tiercache/tiercache/codec"
	"github.com/tiercache/tiercache/codec/gojson"
	"github.com/tiercache/tiercache/redisstore"
)

// tierCache is tiercache: otter L1 in front of redisstore.
type tierCache struct {
	c    *tiercache.Cache[workload.Record]
	rdb  *redis.Client
	load tiercache.LoaderFunc[workload.Record]
	cfg  Config
}

func newTiercache(ctx context.Context, cfg Config) (Cache, error) {
	return openTiercache(ctx, cfg, nil)
}

// newTiercacheGoJSON is tiercache with the codec/gojson codec: the same
// JSON bytes as the default codec, produced and parsed faster.
func newTiercacheGoJSON(ctx context.Context, cfg Config) (Cache, error) {
	return openTiercache(ctx, cfg, gojson.New[workload.Record]())
}

// openTiercache opens tiercache with codec, or its default codec if nil.
func openTiercache(_ context.Context, cfg Config, codec codec.Codec[workload.Record]) (Cache, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	rdb := newGoRedis(&cfg)
	c, err := tiercache.New(&tiercache.Options[workload.Record]{
		Keyspace: tiercache.Keyspace{Name: "user", Version: "v1"},
		Store:    redisstore.New(rdb, nil),
		TTL:      cfg.TTL,
		StaleTTL: cfg.StaleTTL,
		L1:       tiercache.L1[workload.Record]{Size: cfg.LocalSize},
		L2:       tiercache.L2[workload.Record]{Codec: codec},
		// L1TTL is left at its default: in tiercache it bounds how long L1
		// is trusted without asking L2 (an invalidation backstop), not a
		// value's lifetime, which TTL and StaleTTL set on both tiers.
	})
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	return &tierCache{c: c, rdb: rdb, load: cfg.Origin.Load, cfg: cfg}, nil
}

func (t *tierCache) Get(ctx context.Context, id string) (workload.Record, error) {
	return t.c.Get(ctx, id, t.load)
}

func (t *tierCache) Close() error {
	err := t.c.Close()
	if cerr := t.rdb.Close(); err == nil {
		err = cerr
	}
	return err
}

// Cache returns the tiercache.Cache, for scenarios that read its Stats.
func (t *tierCache) Cache() *tiercache.Cache[workload.Record] { return t.c }
