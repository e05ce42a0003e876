package suite

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tiercache/tiercache/bench/contender"
	"github.com/tiercache/tiercache/bench/workload"
)

// hotTTL is the TTL of the stale variant: the shortest go-redis/cache
// accepts (it replaces shorter ones by an hour).
const hotTTL = time.Second

func (e *env) runHot(ctx context.Context, name string, stale bool) (map[string]float64, error) {
	if err := e.fresh(); err != nil {
		return nil, err
	}
	origin := workload.NewOrigin(e.opt.HotDelay)
	cfg := contender.Config{Origin: origin}
	if stale {
		cfg.TTL, cfg.StaleTTL, cfg.LocalTTL = hotTTL, time.Minute, hotTTL
	}
	insts := make([]contender.Cache, e.opt.HotInstances)
	for i := range insts {
		c, err := e.open(ctx, name, cfg)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		insts[i] = c
	}
	const id = "4242"
	if stale {
		// Every instance reads the key once (the first loads it, the
		// others find it in Redis once the background writes of some
		// contenders are done), then it ages past its TTL (+10% jitter).
		if _, err := insts[0].Get(ctx, id); err != nil {
			return nil, err
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return nil, err
		}
		for _, c := range insts[1:] {
			if _, err := c.Get(ctx, id); err != nil {
				return nil, err
			}
		}
		if err := sleepCtx(ctx, hotTTL*3/2); err != nil {
			return nil, err
		}
	}
	o0 := origin.Calls()
	lat := make([]time.Duration, e.opt.HotCallers)
	var errs atomic.Int64
	var ready, done sync.WaitGroup
	barrier := make(chan struct{})
	for i := range lat {
		c := insts[i%len(insts)]
		ready.Add(1)
		done.Go(func() {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			ready.Done()
			<-barrier
			t0 := time.Now()
			if _, err := c.Get(rctx, id); err != nil {
				errs.Add(1)
			}
			lat[i] = time.Since(t0)
		})
	}
	ready.Wait()
	close(barrier)
	done.Wait()
	// Let background refreshes (stale-while-revalidate) start and finish:
	// they are origin calls too.
	if err := sleepCtx(ctx, 2*e.opt.HotDelay+200*time.Millisecond); err != nil {
		return nil, err
	}
	slices.Sort(lat)
	return map[string]float64{
		"origin": float64(origin.Calls() - o0),
		"p50":    us(quantile(lat, 0.5)),
		"p99":    us(quantile(lat, 0.99)),
		"max":    us(lat[len(lat)-1]),
		"errors": float64(errs.Load()),
	}, nil
}

// quantile returns the q-quantile of sorted durations.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(q*float64(len(sorted)-1))]
}
