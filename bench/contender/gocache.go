package contender

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/ristretto"
	"github.com/eko/gocache/lib/v4/cache"
	"github.com/eko/gocache/lib/v4/marshaler"
	"github.com/eko/gocache/lib/v4/store"
	redisstore "github.com/eko/gocache/store/redis/v4"
	ristrettostore "github.com/eko/gocache/store/ristretto/v4"
	"github.com/redis/go-redis/v9"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/tiercache/tiercache/bench/workload"
)

// goCache is github.com/eko/gocache as its README chains it: ristretto in
// front of Redis, a loadable cache for cache-aside and the marshaler
// (msgpack) for struct values. The chain holds the encoded bytes: Redis
// returns strings, which the chain copies into ristretto, so every hit is
// decoded by the marshaler.
type goCache struct {
	m        *marshaler.Marshaler
	loadable *cache.LoadableCache[any]
	ris      *closableRistretto
	rdb      *redis.Client
}

// closableRistretto lets the instance close its ristretto cache although
// eko's chain keeps a setter goroutine that cannot be stopped and may still
// write to it: ristretto v0.1.1 panics on a Set after Close. Get, the hot
// path, goes straight through (ristretto's Get is safe after Close).
type closableRistretto struct {
	*ristretto.Cache
	mu     sync.RWMutex
	closed bool
}

func (r *closableRistretto) SetWithTTL(key, value any, cost int64, ttl time.Duration) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return !r.closed && r.Cache.SetWithTTL(key, value, cost, ttl)
}

func (r *closableRistretto) Del(key any) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if !r.closed {
		r.Cache.Del(key)
	}
}

func (r *closableRistretto) Clear() {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if !r.closed {
		r.Cache.Clear()
	}
}

func (r *closableRistretto) Wait() {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if !r.closed {
		r.Cache.Wait()
	}
}

func (r *closableRistretto) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		r.Cache.Close()
	}
}

const goCachePrefix = "eko:user:"

func newGocache(_ context.Context, cfg Config) (Cache, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	// ristretto's README: NumCounters 10× the number of items, MaxCost in
	// the unit of each Set's cost (1 per entry here, so internal costs are
	// ignored and MaxCost is the entry count).
	rc, err := ristretto.NewCache(&ristretto.Config{
		NumCounters:        int64(cfg.LocalSize) * 10,
		MaxCost:            int64(cfg.LocalSize),
		BufferItems:        64,
		IgnoreInternalCost: true,
	})
	if err != nil {
		return nil, fmt.Errorf("ristretto: %w", err)
	}
	ris := &closableRistretto{Cache: rc}
	rdb := newGoRedis(&cfg)
	local := ristrettostore.NewRistretto(ris, store.WithCost(1))
	shared := redisstore.NewRedis(rdb, store.WithExpiration(cfg.TTL))
	chain := cache.NewChain[any](cache.New[any](local), cache.New[any](shared))
	origin, ttl := cfg.Origin, cfg.TTL
	loadable := cache.NewLoadable[any](func(ctx context.Context, key any) (any, []store.Option, error) {
		id := strings.TrimPrefix(key.(string), goCachePrefix)
		r, err := origin.Load(ctx, id)
		if err != nil {
			return nil, nil, err
		}
		b, err := msgpack.Marshal(r)
		if err != nil {
			return nil, nil, err
		}
		return b, []store.Option{store.WithExpiration(ttl)}, nil
	}, chain)
	return &goCache{m: marshaler.New(loadable), loadable: loadable, ris: ris, rdb: rdb}, nil
}

func (g *goCache) Get(ctx context.Context, id string) (workload.Record, error) {
	var r workload.Record
	_, err := g.m.Get(ctx, goCachePrefix+id, &r)
	return r, err
}

func (g *goCache) Close() error {
	// The chain's setter goroutine has no way to stop (ChainCache has no
	// Close); the loadable's has.
	err := g.loadable.Close()
	g.ris.Close()
	if cerr := g.rdb.Close(); err == nil {
		err = cerr
	}
	return err
}
