package contender

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/bench/workload"
)

// naive is what a Go team writes without a cache library: GET; on
// redis.Nil load and SET; encoding/json; no local tier, no single-flight.
// It is the baseline of every ratio.
type naive struct {
	rdb    *redis.Client
	origin *workload.Origin
	cfg    Config
}

const naivePrefix = "naive:user:"

func newNaive(_ context.Context, cfg Config) (Cache, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &naive{rdb: newGoRedis(&cfg), origin: cfg.Origin, cfg: cfg}, nil
}

func (n *naive) Get(ctx context.Context, id string) (workload.Record, error) {
	var rec workload.Record
	b, err := n.rdb.Get(ctx, naivePrefix+id).Bytes()
	if err == nil {
		err = json.Unmarshal(b, &rec)
		return rec, err
	}
	if !errors.Is(err, redis.Nil) {
		return rec, err
	}
	rec, err = n.origin.Load(ctx, id)
	if err != nil {
		return rec, err
	}
	b, err = json.Marshal(rec)
	if err != nil {
		return rec, err
	}
	return rec, n.rdb.Set(ctx, naivePrefix+id, b, n.cfg.TTL).Err()
}

// GetMany is one MGET, one batch load of the misses and one pipeline of
// SETs.
func (n *naive) GetMany(ctx context.Context, ids []string) (map[string]workload.Record, error) {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = naivePrefix + id
	}
	vals, err := n.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, err
	}
	out := make(map[string]workload.Record, len(ids))
	var misses []string
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			misses = append(misses, ids[i])
			continue
		}
		var rec workload.Record
		if err := json.Unmarshal([]byte(s), &rec); err != nil {
			return nil, err
		}
		out[ids[i]] = rec
	}
	if len(misses) == 0 {
		return out, nil
	}
	loaded, err := n.origin.LoadMany(ctx, misses)
	if err != nil {
		return nil, err
	}
	_, err = n.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for id, rec := range loaded {
			b, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			p.Set(ctx, naivePrefix+id, b, n.cfg.TTL)
			out[id] = rec
		}
		return nil
	})
	return out, err
}

func (n *naive) Close() error { return n.rdb.Close() }
