package contender

import (
	"context"
	"encoding/json"
	"math"
	"runtime"
	"unsafe"

	"github.com/redis/rueidis"

	"github.com/tiercache/tiercache/bench/workload"
)

// rueidisCache is github.com/redis/rueidis with server-assisted client-side
// caching: DoCache(GET, TTL) answers from process memory until Redis
// invalidates the key or the TTL passes; a miss loads and SETs with the
// same TTL. rueidis has no loader API of its own (rueidisaside, a separate
// module, adds one), so concurrent misses each call the origin.
type rueidisCache struct {
	c      rueidis.Client
	origin *workload.Origin
	cfg    Config
}

const rueidisPrefix = "rueidis:user:"

// rueidisEntryOverhead approximates what rueidis adds to each cached
// response on top of the value and twice the key and command (its LRU
// counts entryBaseSize + 2·(len(key)+len(cmd)) + the message): list
// element, entry and key structs, ×1.5.
const rueidisEntryOverhead = 300

// rueidisMultiplex is rueidis's own default for a single client: log2 of
// GOMAXPROCS, at most 2; each of the 2^multiplex connections has its own
// client-side cache.
func rueidisMultiplex() int {
	m := int(math.Log2(float64(runtime.GOMAXPROCS(0))))
	return min(max(m, 0), 2)
}

// rueidisCacheBytes sizes the client-side cache of each connection so that
// all of them hold about cfg.LocalSize records: rueidis bounds it in bytes,
// the others in entries.
func rueidisCacheBytes(cfg *Config) int {
	b, _ := json.Marshal(workload.NewRecord("1000"))
	perEntry := len(b) + 2*(len(rueidisPrefix)+5+len("GET")) +
		rueidisEntryOverhead + int(unsafe.Sizeof(rueidis.RedisMessage{}))
	conns := 1 << rueidisMultiplex()
	return cfg.LocalSize * perEntry / conns
}

func newRueidis(_ context.Context, cfg Config) (Cache, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress:       []string{cfg.Addr},
		CacheSizeEachConn: rueidisCacheBytes(&cfg),
		PipelineMultiplex: rueidisMultiplex(),
	})
	if err != nil {
		return nil, err
	}
	return &rueidisCache{c: c, origin: cfg.Origin, cfg: cfg}, nil
}

func (r *rueidisCache) Get(ctx context.Context, id string) (workload.Record, error) {
	key := rueidisPrefix + id
	var rec workload.Record
	resp := r.c.DoCache(ctx, r.c.B().Get().Key(key).Cache(), r.cfg.TTL)
	err := resp.DecodeJSON(&rec)
	if err == nil || !rueidis.IsRedisNil(err) {
		return rec, err
	}
	rec, err = r.origin.Load(ctx, id)
	if err != nil {
		return rec, err
	}
	return rec, r.set(ctx, key, rec)
}

func (r *rueidisCache) set(ctx context.Context, key string, rec workload.Record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return r.c.Do(ctx, r.c.B().Set().Key(key).Value(rueidis.BinaryString(b)).Px(r.cfg.TTL).Build()).Error()
}

// GetMany reads every id with one DoMultiCache, loads the misses with one
// batch call and writes them with one pipelined DoMulti.
func (r *rueidisCache) GetMany(ctx context.Context, ids []string) (map[string]workload.Record, error) {
	cmds := make([]rueidis.CacheableTTL, len(ids))
	for i, id := range ids {
		cmds[i] = rueidis.CT(r.c.B().Get().Key(rueidisPrefix+id).Cache(), r.cfg.TTL)
	}
	out := make(map[string]workload.Record, len(ids))
	var misses []string
	for i, resp := range r.c.DoMultiCache(ctx, cmds...) {
		var rec workload.Record
		err := resp.DecodeJSON(&rec)
		switch {
		case err == nil:
			out[ids[i]] = rec
		case rueidis.IsRedisNil(err):
			misses = append(misses, ids[i])
		default:
			return nil, err
		}
	}
	if len(misses) == 0 {
		return out, nil
	}
	loaded, err := r.origin.LoadMany(ctx, misses)
	if err != nil {
		return nil, err
	}
	sets := make(rueidis.Commands, 0, len(loaded))
	for id, rec := range loaded {
		b, err := json.Marshal(rec)
		if err != nil {
			return nil, err
		}
		sets = append(sets, r.c.B().Set().Key(rueidisPrefix+id).Value(rueidis.BinaryString(b)).Px(r.cfg.TTL).Build())
		out[id] = rec
	}
	for _, resp := range r.c.DoMulti(ctx, sets...) {
		if err := resp.Error(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (r *rueidisCache) Close() error {
	r.c.Close()
	return nil
}
