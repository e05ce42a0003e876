package tiercache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tiercache/tiercache/internal/flight"
	"github.com/tiercache/tiercache/stats"
)

// The miss of a cache without a shared tier. There is nothing to read, lock
// or fill, so a miss is a load, and it pays only for that: one object for
// the call (its context, its handoff and the load's bookkeeping live in
// it), the entry, and L1's insertion. The loader runs, as with a shared
// tier, on a goroutine of the cache's with a context detached from the
// callers' cancellation and bounded by LoadTimeout, so that one that hangs
// or calls runtime.Goexit holds no caller; but the goroutine comes from a
// pool (inPool) instead of being started for each load, the context makes
// its timer only if the loader asks for Done (flight.Bound), and the
// leader waits with a channel and a timer it takes from a pool
// (leaderWaits).

// inCall is the call of an in-process load.
type inCall[V any] = flight.Call[fetched[V]]

// leaderWait is what a leader waits with: reused, so that a miss allocates
// neither.
type leaderWait struct {
	ready chan struct{}
	timer *time.Timer
}

// abandonAfter is how long past a load's deadline its callers keep waiting
// for a loader that ignores its context.
const abandonAfter = 20 * time.Millisecond

// missInProcess resolves a miss of id for a cache without a shared tier;
// prev is the L1 entry, if any, for stale-if-error.
func (c *Cache[V]) missInProcess(ctx context.Context, id string, load LoaderFunc[V], prev *entry[V]) (*entry[V], result, error) {
	if ctx.Err() != nil { // the caller gave up already: its context's error
		return c.answerError(nil, result{stats.Error, stats.None}, context.Cause(ctx))
	}
	call, leader := c.loads.Claim(id, time.Now().Add(c.cfg.LoadTimeout))
	if call == nil {
		return c.answerError(nil, result{stats.Error, stats.None}, ErrClosed)
	}
	var f fetched[V]
	var err error
	if leader {
		f, err = c.leadInProcess(ctx, id, load, call)
	} else if f, err = c.share(ctx, id, call); err == errOverdue {
		return c.missInProcess(ctx, id, load, prev) // once: the stale call is forgotten
	}
	if err != nil {
		return c.degrade(ctx, id, prev, err)
	}
	return c.settle(f, !leader)
}

// errOverdue is share's answer for a call already past its deadline when
// the caller joined it: the caller starts another load.
var errOverdue = errors.New("tiercache: load overdue")

// leadInProcess starts the load of call on a pooled goroutine and waits for
// it within ctx and at most until abandonAfter past the load's deadline.
func (c *Cache[V]) leadInProcess(ctx context.Context, id string, load LoaderFunc[V], call *inCall[V]) (fetched[V], error) {
	if c.inAbandoned.Load() >= maxAbandoned {
		err := c.refused(id, flight.ErrTooManyAbandoned)
		c.loads.Finish(id, call, fetched[V]{}, err)
		return fetched[V]{}, err
	}
	w := c.leaderWaits.Get().(*leaderWait)
	call.Ready = w.ready
	call.Fn = load
	call.Ctx.Init(c.loads.Stop(), ctx, call.Deadline)
	if !c.inPool.Submit(call) {
		c.leaderWaits.Put(w)
		c.loads.Finish(id, call, fetched[V]{}, ErrClosed)
		return fetched[V]{}, ErrClosed
	}
	w.timer.Reset(time.Until(call.Deadline.Add(abandonAfter)))
	defer func() {
		w.timer.Stop()
		c.leaderWaits.Put(w)
	}()
	select {
	case <-w.ready:
		return call.Result()
	case <-ctx.Done():
		if !call.Leave(false) {
			return call.Result()
		}
		c.inAbandoned.Add(1) // still running, and nobody waits for it
		return fetched[V]{}, context.Cause(ctx)
	case <-w.timer.C:
		if !call.Leave(true) {
			return call.Result()
		}
		c.inAbandoned.Add(1)
		c.record(stats.LoadAbandoned)
		c.loads.Forget(id)
		return fetched[V]{}, c.abandoned(id, flight.ErrAbandoned)
	}
}

// abandoned is the error of a load of id abandoned at LoadTimeout; cause
// wraps flight.ErrAbandoned.
func (c *Cache[V]) abandoned(id string, cause error) error {
	return fmt.Errorf("tiercache: load of %s abandoned after LoadTimeout (%v): the loader ignores its context: %w", c.space().Key(id), c.cfg.LoadTimeout, cause)
}

// refused is the error of a load of id not started because too many loads
// that ignore their context still run; cause wraps
// flight.ErrTooManyAbandoned.
func (c *Cache[V]) refused(id string, cause error) error {
	return fmt.Errorf("tiercache: load of %s refused: %d loads that ignored their context are still running: %w", c.space().Key(id), maxAbandoned, cause)
}

// share waits for the result of call, a load of id led by another caller,
// within ctx and at most until abandonAfter past the load's deadline: then
// the load is abandoned (its loader ignores its context), and the next
// caller starts another.
func (c *Cache[V]) share(ctx context.Context, id string, call *inCall[V]) (fetched[V], error) {
	select {
	case <-call.Done():
		return call.Wait(ctx)
	default:
	}
	if call.Deadline.IsZero() { // a GetMany's call: bounded by its own rounds
		return call.Wait(ctx)
	}
	left := time.Until(call.Deadline.Add(abandonAfter))
	if left <= 0 {
		// Overdue before we joined (its leader left, its loader ignores
		// its context): do not sacrifice this caller, load again.
		c.loads.Forget(id)
		return fetched[V]{}, errOverdue
	}
	t := time.NewTimer(left)
	defer t.Stop()
	select {
	case <-call.Done():
		return call.Wait(ctx)
	case <-ctx.Done():
		return fetched[V]{}, context.Cause(ctx)
	case <-t.C:
		c.loads.Forget(id)
		return fetched[V]{}, c.abandoned(id, flight.ErrAbandoned)
	}
}

// runInProcess is the work of an in-process load, on a goroutine of inPool:
// it calls the loader, keeps the result in L1, finishes the call and tells
// its leader, whatever the loader does.
func (c *Cache[V]) runInProcess(call *inCall[V]) {
	id, load := call.Key, call.Fn.(LoaderFunc[V])
	var f fetched[V]
	var err error
	finished := false
	defer func() {
		if !finished { // runtime.Goexit in the loader: this goroutine ends
			c.finishInProcess(call, fetched[V]{}, flight.ErrGoexit)
		}
	}()
	defer call.Ctx.Release()
	ep := c.epochOf(id)
	var v V
	start := time.Now()
	err = ErrNilLoader
	if load != nil {
		flight.Protect(func() {
			err = c.withRetries(&call.Ctx, id, func(ctx context.Context) error {
				var lerr error
				v, lerr = load(ctx, id)
				return lerr
			})
		}, func(perr error) { err = perr })
	}
	took := time.Since(start)
	switch notFound := errors.Is(err, ErrNotFound); {
	case call.Abandoned():
		// Its callers stopped waiting and the next one loads again: drop
		// the result; callers still joined get the abandonment.
		f, err = fetched[V]{}, c.abandoned(id, flight.ErrAbandoned)
	case err == nil || notFound:
		e := c.newEntry(v, notFound, c.now(), took)
		c.putIf(id, e, &ep)
		f, err = fetched[V]{e: e, r: result{stats.Miss, stats.Origin}}, nil
	case !c.closed.Load(): // a load cancelled by Close is no degradation
		c.warn(&call.Ctx, "tiercache: load failed", c.space().Key(id), err)
	}
	finished = true
	c.finishInProcess(call, f, err)
}

// finishInProcess finishes call with f and err, and tells its leader.
func (c *Cache[V]) finishInProcess(call *inCall[V], f fetched[V], err error) {
	c.loads.Finish(call.Key, call, f, err)
	if !call.Deliver() { // its leader left: it counted the load in inAbandoned
		c.inAbandoned.Add(-1)
	}
}

// newLeaderWait is the New of Cache.leaderWaits.
func newLeaderWait() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &leaderWait{ready: make(chan struct{}, 1), timer: t}
}
