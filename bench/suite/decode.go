package suite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/bench/codecs"
	"github.com/tiercache/tiercache/bench/workload"
	"github.com/tiercache/tiercache/redisstore"
)

const (
	decodeGetRow  = "tiercache L2-hit Get"
	decodeRTTRow  = "loopback GET of the entry (go-redis)"
	decodeRowPref = "decode: "
	// decodeKeys and decodeOps size the measurement: enough distinct keys
	// that a 1-entry L1 never answers, enough operations for a stable mean.
	decodeKeys = 2_000
	decodeOps  = 4_000
)

func decodeRows() []string {
	rows := []string{decodeGetRow, decodeRTTRow}
	for _, c := range codecs.All() {
		rows = append(rows, decodeRowPref+c.Name)
	}
	return rows
}

// runDecode measures one row of the codec-share table; see the table's
// About.
func (e *env) runDecode(ctx context.Context, row string, round int) (map[string]float64, error) {
	rec := workload.NewRecord("4242")
	for _, c := range codecs.All() {
		if row != decodeRowPref+c.Name {
			continue
		}
		b, err := c.Encode(&rec)
		if err != nil {
			return nil, err
		}
		for range 200 { // warm-up
			var r workload.Record
			_ = c.Decode(b, &r)
		}
		t0 := time.Now()
		for range decodeOps {
			var r workload.Record
			if err := c.Decode(b, &r); err != nil {
				return nil, err
			}
		}
		return map[string]float64{"us": us(time.Since(t0)) / decodeOps}, nil
	}
	if row != decodeGetRow && row != decodeRTTRow {
		return nil, fmt.Errorf("no decode row %q", row)
	}

	if err := e.fresh(); err != nil {
		return nil, err
	}
	rdb := redis.NewClient(&redis.Options{Addr: e.srv.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	origin := workload.NewOrigin(0)
	c, err := tiercache.New(&tiercache.Options[workload.Record]{
		Keyspace: tiercache.Keyspace{Name: "user", Version: "v1"},
		Store:    redisstore.New(rdb, nil),
		TTL:      e.opt.TTL,
		L1:       tiercache.L1[workload.Record]{Size: 1},
	})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	keys := workload.Keys(decodeKeys)
	for _, k := range keys {
		if _, err := c.Get(ctx, k, origin.Load); err != nil {
			return nil, err
		}
	}
	rng := rand.New(rand.NewPCG(uint64(round), 9))
	order := make([]string, decodeOps)
	for i := range order {
		order[i] = keys[rng.IntN(len(keys))]
	}
	if row == decodeRTTRow {
		redisKeys := make([]string, len(order))
		for i, k := range order {
			redisKeys[i] = c.Key(k)
		}
		t0 := time.Now()
		for _, k := range redisKeys {
			if _, err := rdb.Get(ctx, k).Bytes(); err != nil {
				return nil, err
			}
		}
		return map[string]float64{"us": us(time.Since(t0)) / decodeOps}, nil
	}
	before := c.Stats()
	t0 := time.Now()
	for _, k := range order {
		if _, err := c.Get(ctx, k, origin.Load); err != nil {
			return nil, err
		}
	}
	took := time.Since(t0)
	after := c.Stats()
	if l2 := after.L2Hits - before.L2Hits; l2 < decodeOps*9/10 {
		return nil, fmt.Errorf("only %d of %d Gets were L2 hits", l2, decodeOps)
	}
	return map[string]float64{"us": us(took) / decodeOps}, nil
}
