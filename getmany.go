package tiercache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tiercache/tiercache/internal/flight"
	"github.com/tiercache/tiercache/stats"
)

// BatchLoaderFunc loads many values from the origin in one call. Ids it
// leaves out of its map do not exist: they are cached as "not found". Like
// LoaderFunc, its context is detached from any one caller's cancellation.
type BatchLoaderFunc[V any] func(ctx context.Context, ids []string) (map[string]V, error)

// GetMany is Get for many ids: it answers what it can from L1 and resolves
// the rest together (see the package documentation): one read of the
// shared tier, one round of lock attempts for what is still missing, and
// one call of load for all the ids whose lock it took, each round split
// into calls of at most 512 keys so that none outlives the store's
// deadline. Concurrent Gets and GetManys of the same ids share loads, and
// ids another process is rebuilding are waited for, as with Get.
//
// The result holds the ids found; ids that do not exist are absent (and
// cached as "not found"). The error is nil unless something failed: then
// the result holds what could be answered, including stale values
// (errors.Is(err, ErrStale)) or fallback values (ErrFallback) for ids whose
// load failed, and the error wraps the causes. An invalid id fails the whole
// call before any work.
func (c *Cache[V]) GetMany(ctx context.Context, ids []string, load BatchLoaderFunc[V]) (map[string]V, error) {
	if !c.observing(ctx) {
		out, _, err := c.getMany(ctx, ids, load)
		return out, err
	}
	start := time.Now()
	out, rs, err := c.getMany(ctx, ids, load)
	c.observeMany(ctx, ids, rs, time.Since(start), err)
	return out, err
}

// joined is an id of a GetMany answered by a shared call.
type joined[V any] struct {
	id     string
	call   *flight.Call[fetched[V]]
	prev   *entry[V]
	shared bool // the call was started by another caller
}

func (c *Cache[V]) getMany(ctx context.Context, ids []string, load BatchLoaderFunc[V]) (map[string]V, []result, error) {
	if c.closed.Load() {
		return nil, nil, ErrClosed
	}
	for _, id := range ids {
		if err := checkID(id); err != nil {
			return nil, nil, err
		}
	}
	out := make(map[string]V, len(ids))
	rs := make([]result, 0, len(ids))
	o := origin[V]{many: load}
	type missed struct {
		id   string
		prev *entry[V]
	}
	var misses []missed
	seen := make(map[string]struct{}, len(ids))
	now := c.now()
	for _, id := range ids {
		if _, dup := seen[id]; dup {
			continue
		}
		seen[id] = struct{}{}
		e, ok := c.l1.GetIfPresent(id)
		if ok && now < e.l1Until && (c.l1First.Load() || c.l2Down()) {
			if st := e.state(now); st != expired {
				switch {
				case st == stale:
					c.refresh(ctx, id, o, e, now, stats.Refresh)
				case now >= c.earlyFrom(e) && e.refreshEarly(now, c.cfg.earlyBeta):
					c.refresh(ctx, id, o, e, now, stats.EarlyRefresh)
				}
				_, r, _ := c.answer(e, stats.L1, st == stale)
				rs = append(rs, r)
				if !e.negative {
					out[id] = e.value
				}
				continue
			}
		}
		if !ok || now >= c.retainUntil(e) {
			e = nil
		}
		misses = append(misses, missed{id, e})
	}
	if len(misses) == 0 {
		return out, rs, nil
	}
	waits := make([]joined[V], 0, len(misses))
	var led []*pend[V]
	for _, m := range misses {
		call, leader := c.loads.Join(m.id)
		if call == nil {
			// Closed meanwhile: the calls this GetMany leads must still be
			// answered, or callers that joined them would wait forever.
			for _, p := range led {
				c.loads.Finish(p.id, p.call, fetched[V]{}, ErrClosed)
			}
			return out, rs, ErrClosed
		}
		waits = append(waits, joined[V]{m.id, call, m.prev, !leader})
		if leader {
			led = append(led, &pend[V]{id: m.id, call: call, prev: m.prev})
		}
	}
	if len(led) > 0 {
		c.resolveLed(ctx, led, o)
	}

	var failures []error
	for _, w := range waits {
		f, err := c.share(ctx, w.id, w.call)
		if err == errOverdue {
			f, err = fetched[V]{}, c.abandoned(w.id, flight.ErrAbandoned)
		}
		var e *entry[V]
		var r result
		if err != nil {
			e, r, err = c.degrade(ctx, w.id, w.prev, err)
			failures = append(failures, fmt.Errorf("%s: %w", w.id, err))
		} else {
			e, r, _ = c.settle(f, w.shared)
		}
		rs = append(rs, r)
		if e != nil && !e.negative {
			out[w.id] = e.value
		}
	}
	if len(failures) > 0 {
		return out, rs, fmt.Errorf("tiercache: %d of %d ids failed: %w", len(failures), len(seen), errors.Join(failures...))
	}
	return out, rs, nil
}
