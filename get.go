package tiercache

import (
	"context"
	"errors"
	"fmt"

	"github.com/tiercache/tiercache/internal/flight"
	"github.com/tiercache/tiercache/stats"
)

// result describes how a request was answered, for stats and logs.
type result struct {
	outcome stats.Outcome
	tier    stats.Tier
}

// Get returns the value of id: from L1 if it holds a fresh copy, else from
// the shared tier, else from load, which the cache calls at most once at a
// time per id in this process and, with a store that takes rebuild locks,
// in the whole fleet. The read path is described in the package
// documentation.
//
// What a caller sees:
//   - a fresh value: (v, nil);
//   - a value past its soft expiry but within StaleTTL: (v, nil) at once, and
//     one background refresh starts;
//   - a cached or freshly loaded "not found": (zero, ErrNotFound);
//   - a failed load: (v, err) with errors.Is(err, ErrStale) if a value within
//     Degrade.MaxStale past its hard expiry was left, else (Fallback(id, cause),
//     err) with errors.Is(err, ErrFallback) if Degrade.Fallback is set, else
//     (zero, err). In the first two cases err also wraps the cause, and
//     Degraded(err) is true;
//   - ctx ending while it waits: (zero, ctx's error); the load goes on for
//     the other callers sharing it.
//
// Shared-tier failures are never returned: they count as misses, and a
// circuit breaker stops the cache from calling a tier that keeps failing.
func (c *Cache[V]) Get(ctx context.Context, id string, load LoaderFunc[V]) (V, error) {
	var e *entry[V]
	var err error
	if c.observing(ctx) {
		e, err = c.getObserved(ctx, id, load)
	} else {
		e, _, err = c.get(ctx, id, load)
	}
	if e == nil {
		var zero V
		return zero, err
	}
	// Internally answers are entries: V, which may be large, is copied once,
	// here, rather than at every level of the read path.
	return e.value, err
}

// get answers a request with an entry (nil with an error, and a negative
// entry with ErrNotFound) and how it was answered.
func (c *Cache[V]) get(ctx context.Context, id string, load LoaderFunc[V]) (*entry[V], result, error) {
	now := c.now()
	e, ok := c.l1.GetIfPresent(id)
	if ok && now < e.l1Until && (c.l1First.Load() || c.l2Down()) {
		switch e.state(now) {
		case fresh:
			if now >= c.earlyFrom(e) && e.refreshEarly(now, c.cfg.earlyBeta) {
				c.refresh(ctx, id, origin[V]{one: load}, e, now, stats.EarlyRefresh)
			}
			return c.answer(e, stats.L1, false)
		case stale:
			c.refresh(ctx, id, origin[V]{one: load}, e, now, stats.Refresh)
			return c.answer(e, stats.L1, true)
		}
	}
	if !ok || now >= c.retainUntil(e) {
		e = nil // useless even for stale-if-error
	}
	return c.miss(ctx, id, load, e)
}

// answer returns e as a hit from tier (a stale one if isStale), and counts
// it.
func (c *Cache[V]) answer(e *entry[V], tier stats.Tier, isStale bool) (*entry[V], result, error) {
	r := result{stats.Hit, tier}
	switch {
	case e.negative:
		r.outcome = stats.Negative
	case isStale:
		r.outcome = stats.Stale
	}
	c.counter.RecordRequest(r.outcome, r.tier, 0)
	if e.negative {
		return e, r, ErrNotFound
	}
	return e, r, nil
}

// fetched is the result of the shared part of a miss: the entry and how it
// was found, which every caller sharing it reports.
type fetched[V any] struct {
	e *entry[V]
	r result
}

// miss handles a request L1 could not answer; prev is the L1 entry, if any,
// usable for stale-if-error or while the shared tier fails.
func (c *Cache[V]) miss(ctx context.Context, id string, load LoaderFunc[V], prev *entry[V]) (*entry[V], result, error) {
	if c.closed.Load() {
		return c.answerError(nil, result{stats.Error, stats.None}, ErrClosed)
	}
	if err := checkID(id); err != nil {
		return c.answerError(nil, result{stats.Error, stats.None}, err)
	}
	if c.tier == nil {
		return c.missInProcess(ctx, id, load, prev)
	}
	call, leader := c.loads.Join(id)
	if call == nil {
		return c.answerError(nil, result{stats.Error, stats.None}, ErrClosed)
	}
	if leader {
		c.runResolution(ctx, single(c, origin[V]{one: load}, pend[V]{id: id, call: call, prev: prev}))
	}
	f, err := call.Wait(ctx)
	if err != nil {
		return c.degrade(ctx, id, prev, err)
	}
	return c.settle(f, !leader)
}

// settle counts a request answered by a shared call.
func (c *Cache[V]) settle(f fetched[V], shared bool) (*entry[V], result, error) {
	if shared && f.r.tier == stats.Origin {
		c.record(stats.SharedLoad)
	}
	c.counter.RecordRequest(f.r.outcome, f.r.tier, 0)
	if f.e.negative {
		return f.e, f.r, ErrNotFound
	}
	return f.e, f.r, nil
}

// answerError counts a request answered with err (and e, if not nil).
func (c *Cache[V]) answerError(e *entry[V], r result, err error) (*entry[V], result, error) {
	c.counter.RecordRequest(r.outcome, r.tier, 0)
	return e, r, err
}

// degrade answers a request whose load failed with cause: stale-if-error,
// then Fallback, then the error.
func (c *Cache[V]) degrade(ctx context.Context, id string, prev *entry[V], cause error) (*entry[V], result, error) {
	if ctxErr := ctx.Err(); ctxErr != nil && errorsIsContext(cause) {
		// The caller gave up; its own deadline is its answer.
		return c.answerError(nil, result{stats.Error, stats.None}, cause)
	}
	if c.closed.Load() || errors.Is(cause, flight.ErrClosed) {
		return c.answerError(nil, result{stats.Error, stats.None}, ErrClosed) // no degradation: the cache is gone
	}
	if prev != nil && !prev.negative && c.now() < c.retainUntil(prev) {
		return c.answerError(prev, result{stats.StaleIfError, stats.L1}, &degradedError{kind: ErrStale, cause: cause})
	}
	if c.cfg.Fallback != nil {
		e := &entry[V]{value: c.cfg.Fallback(id, cause)}
		return c.answerError(e, result{stats.Fallback, stats.None}, &degradedError{kind: ErrFallback, cause: cause})
	}
	return c.answerError(nil, result{stats.Error, stats.None}, cause)
}

// degradedError wraps both a degradation marker and its cause.
type degradedError struct {
	kind  error // ErrStale or ErrFallback
	cause error
}

func (e *degradedError) Error() string { return fmt.Sprintf("%v: %v", e.kind, e.cause) }

func (e *degradedError) Unwrap() []error { return []error{e.kind, e.cause} }

// l2Down reports whether the shared tier's breaker is open, in which case L1
// answers even while it may have missed invalidations: it is all there is.
func (c *Cache[V]) l2Down() bool {
	return c.tier != nil && c.tier.Down() && !c.closed.Load()
}
