// Package contender adapts each cache-aside library of the comparison to one
// small interface, Cache, so that every scenario drives them the same way:
// same Redis, same Origin, same TTLs, same local-tier size.
//
// Each adapter follows its library's documented setup (README or examples in
// the module), uses its default codec, and adds nothing the library does not
// do itself: no extra single-flight, no extra local tier.
package contender

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/bench/workload"
)

// Cache is one instance of a contender: a cache-aside reader of Records,
// loading misses from the Origin of its Config. Implementations are safe
// for concurrent use.
type Cache interface {
	// Get returns the record of id, from the cache or, on a miss, from the
	// origin (and then caches it).
	Get(ctx context.Context, id string) (workload.Record, error)
	// Close releases the instance's clients and goroutines.
	Close() error
}

// MultiGetter is implemented by contenders that can read many ids at once.
type MultiGetter interface {
	// GetMany returns the records of ids, loading the misses from the
	// origin, in as few round trips and loader calls as the library can.
	GetMany(ctx context.Context, ids []string) (map[string]workload.Record, error)
}

// Config is what every contender instance of a scenario shares.
type Config struct {
	// Addr is the Redis address, "127.0.0.1:PORT".
	Addr string
	// Origin is what the loader reads.
	Origin *workload.Origin
	// TTL is how long a value is fresh: its Redis TTL, and its soft expiry
	// for contenders that serve stale values (tiercache, sturdyc).
	TTL time.Duration
	// StaleTTL, if positive, is how long past TTL a contender with a
	// stale-while-revalidate notion may serve the old value while it
	// refreshes. Contenders without one ignore it.
	StaleTTL time.Duration
	// LocalSize is the number of entries of the in-process tier, for
	// contenders that have one.
	LocalSize int
	// LocalTTL is the lifetime of an in-process copy, for contenders whose
	// local tier has a TTL of its own (go-redis/cache's TinyLFU). Default one
	// minute (the go-redis/cache README's setting). tiercache ignores it: its
	// L1TTL is an invalidation backstop, and values expire on both tiers by
	// TTL and StaleTTL.
	LocalTTL time.Duration
	// Hook, if set, is added to every go-redis client the instance creates,
	// to count round trips.
	Hook redis.Hook
}

func (c *Config) localTTL() time.Duration {
	if c.LocalTTL > 0 {
		return c.LocalTTL
	}
	return time.Minute
}

func (c *Config) validate() error {
	if c.Addr == "" || c.Origin == nil || c.TTL <= 0 || c.LocalSize <= 0 {
		return errors.New("contender: Config needs Addr, Origin, TTL and LocalSize")
	}
	return nil
}

// Contender names a library and how to create one instance of it.
type Contender struct {
	// Name is the contender's name in reports.
	Name string
	// Setup says how it is configured, for the report.
	Setup string
	// Baseline marks the naive go-redis loop that ratios are relative to.
	Baseline bool
	// Variant marks a diagnostic variant of tiercache (another codec), not
	// a library of its own: it is left out of the verdict.
	Variant bool
	// Only, if not empty, lists the only scenarios the contender runs.
	Only []string
	// New creates one instance.
	New func(ctx context.Context, cfg Config) (Cache, error) `json:"-"`
}

// Baseline is the name of the contender ratios are relative to.
const Baseline = "naive-goredis"

// TiercacheGoJSON is the name of the tiercache variant with the
// goccy/go-json codec.
const TiercacheGoJSON = "tiercache+go-json"

// All returns every contender, tiercache first.
func All() []Contender {
	return []Contender{
		{Name: "tiercache", Setup: "L1 otter W-TinyLFU (L1Size) + redisstore; JSON codec; defaults otherwise (rebuild lock, pub/sub invalidation, breaker)", New: newTiercache},
		{Name: TiercacheGoJSON, Setup: "tiercache as above with Options.L2.Codec = goccy/go-json (same JSON on the wire, codec ID 64): what a faster default codec would change", Variant: true, Only: []string{"warm", "cold"}, New: newTiercacheGoJSON},
		{Name: "go-redis/cache", Setup: "cache.New{Redis, LocalCache: NewTinyLFU(LocalSize, LocalTTL)}, Once; msgpack+s2 (its default)", New: newGoRedisCache},
		{Name: "eko/gocache", Setup: "marshaler(msgpack) over loadable over chain(ristretto v0.1.1 {NumCounters 10×, MaxCost LocalSize, cost 1}, redis store)", New: newGocache},
		{Name: "sturdyc", Setup: "sturdyc.New(LocalSize, 10 shards, TTL, 10%), WithDistributedStorage on go-redis; GetOrFetch; JSON (its format)", New: newSturdyc},
		{Name: "rueidis", Setup: "DoCache(GET, TTL) (server-assisted client-side caching, ≈LocalSize entries of budget), SET PX on miss; encoding/json", New: newRueidis},
		{Name: Baseline, Setup: "go-redis GET, on redis.Nil load + SET EX; encoding/json; no local tier", Baseline: true, New: newNaive},
	}
}

// ByName returns the contender called name.
func ByName(name string) (Contender, error) {
	for _, c := range All() {
		if c.Name == name {
			return c, nil
		}
	}
	return Contender{}, fmt.Errorf("contender: no contender %q", name)
}

// newGoRedis returns the go-redis client every go-redis based contender
// uses: default pool, deadlines from the caller's context.
func newGoRedis(cfg *Config) *redis.Client {
	rdb := redis.NewClient(&redis.Options{
		Addr:                  cfg.Addr,
		ContextTimeoutEnabled: true,
	})
	if cfg.Hook != nil {
		rdb.AddHook(cfg.Hook)
	}
	return rdb
}
