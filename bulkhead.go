package tiercache

import (
	"context"
	"errors"
	"runtime"

	"github.com/tiercache/tiercache/stats"
)

// The bulkhead: a bound on the loads a process runs at once (MaxLoads).
//
// While the shared tier is up it is rarely reached: one process in the
// fleet loads each missing key and the others wait for its fill. When the
// tier is down every process loads every id its L1 cannot answer, for
// itself, and the origin takes the whole fleet's misses at once; the
// bulkhead keeps that to MaxLoads loads per process. A load past the bound
// answers each of its ids this process holds a copy of with that copy at
// once (stale if it is past its soft expiry; with ErrStale if past its hard
// expiry but within MaxStale), and waits in line for the rest, within
// LoadTimeout; its callers wait within their own contexts as for any load. A
// background refresh past the bound does nothing: the stale value is served
// and a later read tries again.

// defaultMaxLoads returns the default of Options.Rebuild.MaxLoads: 8 per CPU
// (GOMAXPROCS), at least 16. Loads wait on the origin, not on the CPU; the
// bound is there to keep an outage of the shared tier from multiplying the
// origin's load, and 8 per CPU leaves a loaded process the concurrency it
// has when the tier is up (see docs/architecture.md for what was measured).
func defaultMaxLoads() int { return max(16, 8*runtime.GOMAXPROCS(0)) }

// errOriginBusy is the cause of an answer from a copy when the bulkhead is
// full, and the error of a load that waited LoadTimeout for a place.
var errOriginBusy = errors.New("tiercache: origin busy: MaxLoads loads already running")

// admit takes a place for the load of ps, and returns the ids still to load
// (none if there is nothing to load or no place). When the bulkhead is
// full it answers the ids it can from this process's copies, and waits in
// line for the rest. The locks of the ids it does not return are released
// (other processes must not wait for their expiry). The caller must call
// c.unadmit once the load returns if admit returned ids.
func (r *resolution[V]) admit(ctx context.Context, ps []*pend[V]) []*pend[V] {
	kept := r.queue(ctx, ps)
	if len(kept) < len(ps) {
		dropped := make([]*pend[V], 0, len(ps)-len(kept))
		j := 0 // kept is a subsequence of ps
		for _, p := range ps {
			if j < len(kept) && kept[j] == p {
				j++
				continue
			}
			dropped = append(dropped, p)
		}
		r.release(ctx, dropped)
	}
	return kept
}

// queue is admit without the releases.
func (r *resolution[V]) queue(ctx context.Context, ps []*pend[V]) []*pend[V] {
	c := r.c
	select {
	case c.loading <- struct{}{}:
		return ps
	default:
	}
	if r.refresh {
		return nil
	}
	now := c.now()
	rest := ps[:0:0]
	for _, p := range ps {
		switch {
		case p.done:
			// Answered already (a stale entry refreshed under its lock):
			// like a background refresh, it does not wait in line.
		case p.prev == nil || p.prev.negative:
			rest = append(rest, p)
		case c.usable(p.prev, now):
			r.finish(p, c.served(ctx, p, p.prev, stats.L1, r), nil)
		case now < c.retainUntil(p.prev):
			r.finish(p, fetched[V]{}, errOriginBusy) // stale-if-error
		default:
			rest = append(rest, p)
		}
	}
	if len(rest) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.LoadTimeout)
	defer cancel()
	select {
	case c.loading <- struct{}{}:
		return rest
	case <-ctx.Done():
	}
	err := errOriginBusy
	if c.closed.Load() {
		err = ErrClosed
	}
	for _, p := range rest {
		r.finish(p, fetched[V]{}, err)
	}
	return nil
}

// unadmit gives back the place admit took.
func (c *Cache[V]) unadmit() { <-c.loading }
