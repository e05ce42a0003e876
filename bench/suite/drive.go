package suite

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tiercache/tiercache/bench/contender"
	"github.com/tiercache/tiercache/bench/workload"
)

// load is what one drive did.
type load struct {
	ops, errs uint64
	elapsed   time.Duration
	hist      workload.Histogram
	// Split at a moment (the Redis kill): requests started before and after.
	before, after         workload.Histogram
	opsAfter, errsAfter   uint64
	opsBefore, errsBefore uint64
}

// driveOpts tune a drive.
type driveOpts struct {
	d      time.Duration // how long
	offset int           // where in each trace the callers start
	// reqTimeout, if set, bounds each request.
	reqTimeout time.Duration
	// at, if set, is called once after atDelay; requests are then split
	// into before and after it.
	at      func()
	atDelay time.Duration
}

// drive runs one caller per trace against c for o.d, each reading the keys
// of its trace in order (wrapping), and records every request's latency.
func drive(ctx context.Context, c contender.Cache, keys []string, traces [][]int32, o driveOpts) *load {
	var stop atomic.Bool
	var split atomic.Int64 // unix ns of the at() call, 0 before
	var wg sync.WaitGroup
	parts := make([]load, len(traces))
	start := time.Now()
	timer := time.AfterFunc(o.d, func() { stop.Store(true) })
	defer timer.Stop()
	if o.at != nil {
		atTimer := time.AfterFunc(o.atDelay, func() {
			split.Store(time.Now().UnixNano())
			o.at()
		})
		defer atTimer.Stop()
	}
	for g, tr := range traces {
		wg.Go(func() {
			p := &parts[g]
			i := o.offset % len(tr)
			for !stop.Load() {
				rctx, cancel := ctx, context.CancelFunc(nil)
				if o.reqTimeout > 0 {
					rctx, cancel = context.WithTimeout(ctx, o.reqTimeout)
				}
				t0 := time.Now()
				_, err := c.Get(rctx, keys[tr[i]])
				lat := time.Since(t0)
				if cancel != nil {
					cancel()
				}
				p.hist.Record(lat)
				p.ops++
				failed := err != nil
				if failed {
					p.errs++
				}
				if o.at != nil {
					if s := split.Load(); s != 0 && t0.UnixNano() >= s {
						p.after.Record(lat)
						p.opsAfter++
						if failed {
							p.errsAfter++
						}
					} else {
						p.before.Record(lat)
						p.opsBefore++
						if failed {
							p.errsBefore++
						}
					}
				}
				if i++; i == len(tr) {
					i = 0
				}
			}
		})
	}
	wg.Wait()
	total := &load{elapsed: time.Since(start)}
	for i := range parts {
		p := &parts[i]
		total.ops += p.ops
		total.errs += p.errs
		total.opsAfter += p.opsAfter
		total.errsAfter += p.errsAfter
		total.opsBefore += p.opsBefore
		total.errsBefore += p.errsBefore
		total.hist.Merge(&p.hist)
		total.before.Merge(&p.before)
		total.after.Merge(&p.after)
	}
	return total
}

// prefill reads every key once through c with 64 concurrent callers, so
// that Redis holds all of them in c's own format.
func prefill(ctx context.Context, c contender.Cache, keys []string) error {
	const workers = 64
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(keys) {
					return
				}
				if _, err := c.Get(ctx, keys[i]); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}
