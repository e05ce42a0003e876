package suite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tiercache/tiercache/bench/contender"
	"github.com/tiercache/tiercache/bench/workload"
)

func (e *env) runGetMany(ctx context.Context, name string, round int) (map[string]float64, error) {
	if err := e.fresh(); err != nil {
		return nil, err
	}
	var rt atomic.Int64
	origin := workload.NewOrigin(e.opt.LoaderDelay)
	c, err := e.open(ctx, name, contender.Config{Origin: origin, Hook: countHook{&rt}})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	m, ok := c.(contender.MultiGetter)
	if !ok {
		return nil, &errUnsupported{"the library has no batch read"}
	}
	n := e.opt.ManyIDs
	if err := prefillMany(ctx, m, e.keys, n); err != nil {
		return nil, fmt.Errorf("prefill: %w", err)
	}
	if err := sleepCtx(ctx, 200*time.Millisecond); err != nil { // background writes
		return nil, err
	}
	rng := rand.New(rand.NewPCG(uint64(round), 5))
	measure := func(calls int, ids func(call int) []string) (p50, p99, rtPer, cmdsPer, originPer float64, err error) {
		lat := make([]time.Duration, calls)
		rt0, o0 := rt.Load(), origin.Calls()
		c0, err := e.commands()
		if err != nil {
			return
		}
		for i := range calls {
			batch := ids(i)
			t0 := time.Now()
			got, err := m.GetMany(ctx, batch)
			lat[i] = time.Since(t0)
			if err != nil {
				return 0, 0, 0, 0, 0, err
			}
			if len(got) != len(batch) {
				return 0, 0, 0, 0, 0, fmt.Errorf("GetMany returned %d of %d ids", len(got), len(batch))
			}
		}
		c1, err := e.commands()
		if err != nil {
			return
		}
		slices.Sort(lat)
		rtPer = float64(rt.Load()-rt0) / float64(calls)
		return us(quantile(lat, 0.5)), us(quantile(lat, 0.99)), rtPer,
			float64(c1-c0) / float64(calls), float64(origin.Calls()-o0) / float64(calls), nil
	}
	warm := func(int) []string {
		idx := rng.Perm(len(e.keys))[:n]
		ids := make([]string, n)
		for j, k := range idx {
			ids[j] = e.keys[k]
		}
		return ids
	}
	base := 1_000_000 + round*100_000
	cold := func(call int) []string {
		ids := make([]string, n)
		for j := range ids {
			ids[j] = strconv.Itoa(base + call*n + j)
		}
		return ids
	}
	wp50, wp99, wrt, wcmds, _, err := measure(e.opt.ManyWarmCalls, warm)
	if err != nil {
		return nil, fmt.Errorf("warm: %w", err)
	}
	cp50, _, crt, ccmds, corigin, err := measure(e.opt.ManyColdCalls, cold)
	if err != nil {
		return nil, fmt.Errorf("cold: %w", err)
	}
	out := map[string]float64{
		"warm_p50": wp50, "warm_p99": wp99, "warm_cmds": wcmds,
		"cold_p50": cp50, "cold_cmds": ccmds, "cold_origin": corigin,
	}
	// rueidis does not go through go-redis: no hook saw its round trips.
	if wrt > 0 || crt > 0 {
		out["warm_rt"], out["cold_rt"] = wrt, crt
	}
	return out, nil
}

// prefillMany reads every key once through m, in batches of n, 16 batches
// at a time.
func prefillMany(ctx context.Context, m contender.MultiGetter, keys []string, n int) error {
	const workers = 16
	var next atomic.Int64
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(int64(n)) - int64(n))
				if i >= len(keys) {
					return
				}
				if _, err := m.GetMany(ctx, keys[i:min(i+n, len(keys))]); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}
