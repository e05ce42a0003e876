package tiercache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"time"

	"github.com/tiercache/tiercache/internal/flight"
	"github.com/tiercache/tiercache/stats"
)

// lead is the shared part of a miss, run once per id at a time in this
// process (see Cache.loads) with a context detached from the callers'. It
// reads the shared tier, and if that has nothing usable, rebuilds.
//
// The interleavings it is built for, with processes A and B:
//
//  1. A and B miss at once. Both TryLock; A wins and loads, B finds the lock
//     held and nothing stale, so it waits for A's fill message (or LockWait),
//     then reads the shared tier: one origin call in the fleet.
//  2. A's fill raced B's GET: TryLock returns the current value in the same
//     round trip, so B sees A's fill instead of loading again.
//  3. A's loader read an old row, then C updated the row and called Delete:
//     Delete removed A's lock, so A's conditional Fill stores nothing, and
//     the invalidation epoch stops A from keeping the value in its L1.
//  4. A died holding the lock: B waits at most LockWait, reads nothing,
//     takes the lock (expired by then, LockWait defaulting to LockTTL) and
//     loads itself.
//
// The leader reads the shared tier on its own goroutine (most misses in L1
// are hits there, and a goroutine with its stack costs about as much as the
// decoding); only a rebuild goes to a goroutine of its own, detached, so
// that callers can stop waiting at their deadlines. The read is bounded by
// the store's timeout and done with a context detached from the leader's, as
// its result is shared: a leader that gives up during it returns when it
// ends.
func (c *Cache[V]) lead(ctx context.Context, id string, call *flight.Call[fetched[V]], load LoaderFunc[V], prev *entry[V]) {
	// The epoch before the key: a version switch (which swaps the keyspace,
	// then bumps the epochs) cannot then let a value read under the old key
	// into L1.
	ep := c.epochOf(id)
	key := c.Key(id)
	if c.store != nil {
		rctx, cancel := c.loads.Context(ctx)
		f, ok, err := c.readL2(rctx, id, key, load, prev, ep)
		cancel()
		if ok || err != nil {
			c.loads.Finish(id, call, f, err)
			return
		}
	}
	c.loads.Lead(ctx, id, call, func(ctx context.Context) (fetched[V], error) {
		return c.rebuild(ctx, id, key, load, ep, prev)
	})
}

// readL2 is the first step of a miss: the shared tier's entry if it has a
// usable one (ok), or this process's own if the tier failed. A panic (in a
// Store or Codec of the user's) is the call's error, not the process's end.
func (c *Cache[V]) readL2(ctx context.Context, id, key string, load LoaderFunc[V], prev *entry[V], ep epoch) (f fetched[V], ok bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, ok, err = fetched[V]{}, false, &flight.PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	e, tierOK := c.l2Get(ctx, key, true)
	if !tierOK && prev != nil && prev.state(c.now()) != expired {
		// The shared tier failed: this process's copy is the best answer.
		return c.served(ctx, id, load, prev, stats.L1), true, nil
	}
	if e != nil && e.state(c.now()) != expired {
		c.keep(id, e, ep)
		return c.served(ctx, id, load, e, stats.L2), true, nil
	}
	return fetched[V]{}, false, nil
}

// served answers with an entry found in a tier; a stale one starts a refresh.
func (c *Cache[V]) served(ctx context.Context, id string, load LoaderFunc[V], e *entry[V], tier stats.Tier) fetched[V] {
	now := c.now()
	r := result{stats.Hit, tier}
	switch {
	case e.negative:
		r.outcome = stats.Negative
	case e.state(now) == stale:
		r.outcome = stats.Stale
		c.refresh(ctx, id, load, e, now, stats.Refresh)
	}
	return fetched[V]{e: e, r: r}
}

// A process waiting for another's rebuild re-reads the shared tier at
// these intervals, doubling, besides being woken by the fill's message.
const (
	minPoll = 10 * time.Millisecond
	maxPoll = 250 * time.Millisecond
)

// rebuild loads id after a miss in both tiers, coordinating with the other
// processes through the store's rebuild lock when it has one.
func (c *Cache[V]) rebuild(ctx context.Context, id, key string, load LoaderFunc[V], ep epoch, prev *entry[V]) (fetched[V], error) {
	if c.locker == nil {
		return c.loadAndFill(ctx, id, key, "", load, ep, c.store != nil)
	}
	var deadline time.Time // of the wait for another process's rebuild
	poll := minPoll
	for attempt := 0; ; attempt++ {
		// Register before TryLock, so that a fill announced between the two
		// wakes us.
		wake := c.waiters.add(id)
		f, err, done := c.tryRebuild(ctx, id, key, load, ep, prev, attempt)
		if done {
			c.waiters.remove(id, wake)
			return f, err
		}
		// Another process holds the lock and nothing usable is stored.
		now := time.Now()
		if deadline.IsZero() {
			deadline = now.Add(c.cfg.LockWait)
			c.record(stats.LockWait)
		}
		if !now.Before(deadline) {
			c.waiters.remove(id, wake)
			c.record(stats.LockWaitTimeout)
			if c.cfg.FailOnLockWait {
				return fetched[V]{}, ErrLockWait
			}
			// Load for this process without filling the shared tier: the
			// lock is someone else's.
			return c.loadAndFill(ctx, id, key, "", load, ep, false)
		}
		// Poll with backoff even when messages wake us: pub/sub delivers at
		// most once, and a fill whose reply was lost announces nothing.
		wait := min(deadline.Sub(now), poll)
		poll = min(2*poll, maxPoll)
		t := time.NewTimer(wait)
		select {
		case <-wake:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		c.waiters.remove(id, wake)
		if err := ctx.Err(); err != nil {
			return fetched[V]{}, context.Cause(ctx)
		}
		// Woken by a fill, a release or a poll: read before trying the lock
		// again, so that a completed fill is not taken for a free lock.
		if e, _ := c.l2Get(ctx, key, false); e != nil && e.state(c.now()) != expired {
			c.keep(id, e, ep)
			f := c.served(ctx, id, load, e, stats.L2)
			f.r.outcome = stats.Miss // it was not cached when asked
			return f, nil
		}
	}
}

// tryRebuild is one round of rebuild: take the lock and load, or find a
// value to serve. done is false when another process holds the lock and
// nothing usable is stored.
func (c *Cache[V]) tryRebuild(ctx context.Context, id, key string, load LoaderFunc[V], ep epoch, prev *entry[V], attempt int) (f fetched[V], err error, done bool) {
	token := newToken()
	acquired, cur, lockErr := c.tryLock(ctx, key, token, attempt > 0)
	switch {
	case lockErr != nil:
		// The shared tier failed: answer for this process alone.
		if prev != nil && prev.state(c.now()) != expired {
			return c.served(ctx, id, load, prev, stats.L1), nil, true
		}
		if errors.Is(lockErr, errBreakerOpen) {
			f, err = c.loadAndFill(ctx, id, key, "", load, ep, false)
			return f, err, true
		}
		// The call went out: Redis may have taken the lock for us and the
		// reply been lost. Fill conditionally on the token: that stores and
		// releases a lock we hold, and does nothing otherwise, so other
		// processes do not wait for a lock nobody will release.
		f, err = c.loadAndFill(ctx, id, key, token, load, ep, true)
		return f, err, true
	case cur != nil && cur.state(c.now()) == fresh:
		// Someone filled the key since our read.
		if acquired {
			c.unlock(ctx, key, token)
		}
		c.keep(id, cur, ep)
		return c.served(ctx, id, load, cur, stats.L2), nil, true
	case acquired:
		f, err = c.loadAndFill(ctx, id, key, token, load, ep, true)
		return f, err, true
	case cur != nil && cur.state(c.now()) == stale:
		// Another process is refreshing it: serve it stale meanwhile.
		c.keep(id, cur, ep)
		return c.served(ctx, id, load, cur, stats.L2), nil, true
	}
	return fetched[V]{}, nil, false
}

// tryLock takes key's rebuild lock if it is free, and decodes what the key
// holds. err is the shared tier's failure, errBreakerOpen if it was not
// called.
func (c *Cache[V]) tryLock(ctx context.Context, key, token string, report bool) (acquired bool, cur *entry[V], err error) {
	var b []byte
	err = c.l2(ctx, func(ctx context.Context) (err error) {
		acquired, b, err = c.locker.TryLock(ctx, key, token, c.cfg.LockTTL)
		return err
	})
	if err != nil {
		return false, nil, err
	}
	if acquired {
		c.record(stats.LockAcquired)
	} else {
		c.record(stats.LockContended)
	}
	if b != nil {
		cur = c.decode(ctx, key, b, c.now(), report)
	}
	return acquired, cur, nil
}

func (c *Cache[V]) unlock(ctx context.Context, key, token string) {
	_ = c.l2(ctx, func(ctx context.Context) error { return c.locker.Unlock(ctx, key, token) })
}

// loadAndFill calls the loader and stores its result: in the shared tier if
// fill (conditionally on token when it is set), and in L1 unless the id was
// invalidated meanwhile or the conditional fill was refused.
func (c *Cache[V]) loadAndFill(ctx context.Context, id, key, token string, load LoaderFunc[V], ep epoch, fill bool) (fetched[V], error) {
	start := time.Now()
	v, err := c.callLoader(ctx, id, load)
	took := time.Since(start)
	negative := errors.Is(err, ErrNotFound)
	if err != nil && !negative {
		if token != "" {
			// Even when ctx has ended (the cache is closing): release the
			// lock and wake the processes waiting for this rebuild, so that
			// they load themselves rather than wait for the lock to expire.
			cleanup := context.WithoutCancel(ctx)
			c.unlock(cleanup, key, token)
			c.publish(cleanup, opReleased, key)
		}
		if !c.closed.Load() { // a load cancelled by Close is no degradation
			c.warn(ctx, "tiercache: load failed", key, err)
		}
		return fetched[V]{}, err
	}
	if negative {
		var zero V
		v = zero
	}
	e := c.newEntry(v, negative, c.now(), took)
	r := fetched[V]{e: e, r: result{stats.Miss, stats.Origin}}
	if fill {
		switch c.write(ctx, key, token, e, true) {
		case stored:
			if token == "" { // a conditional fill announced itself
				c.publish(ctx, opChanged, key)
			}
		case refused:
			// A Set or Delete since the lock was taken means the value may
			// predate it (or the lock was never ours). Serve it to the
			// callers that asked before, keep it nowhere.
			c.waiters.wake(id)
			return r, nil
		case tooLarge:
			// Served, cached nowhere; the lock is released for the others,
			// who will load it themselves.
			if token != "" {
				c.unlock(context.WithoutCancel(ctx), key, token)
				c.publish(ctx, opReleased, key)
			}
			return r, nil
		case failed:
			// The shared tier failed: this process keeps the value in L1.
			// A lock we may hold must not make the others wait for its
			// expiry: release it if the tier answers now.
			if token != "" {
				c.unlock(context.WithoutCancel(ctx), key, token)
			}
		}
	}
	c.keep(id, e, ep)
	c.waiters.wake(id)
	return r, nil
}

// callLoader calls load for id through withRetries.
func (c *Cache[V]) callLoader(ctx context.Context, id string, load LoaderFunc[V]) (v V, err error) {
	err = c.withRetries(ctx, c.Key(id), func(ctx context.Context) (err error) {
		v, err = callSafely(ctx, id, load)
		return err
	})
	return v, err
}

// withRetries calls attempt (a loader call, for the key named) and retries
// errors worth it with exponential backoff and full jitter, within
// LoadTimeout. It counts each call, and runs the Load hook around it.
func (c *Cache[V]) withRetries(ctx context.Context, key string, attempt func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.LoadTimeout)
	defer cancel()
	rc := c.cfg.Retry
	for n := 1; ; n++ {
		start := time.Now()
		var err error
		if hook := c.cfg.Hooks.Load; hook != nil {
			hctx, done := hook(ctx, key, n)
			err = attempt(hctx)
			done(err)
		} else {
			err = attempt(ctx)
		}
		failed := err != nil && !errors.Is(err, ErrNotFound)
		c.counter.RecordLoad(time.Since(start), failed)
		if c.recorder != nil {
			c.recorder.RecordLoad(time.Since(start), failed)
		}
		if !failed || n >= rc.Attempts || ctx.Err() != nil || !c.retryable(err) {
			return err
		}
		backoff := rc.Base
		for i := 1; i < n && backoff < rc.Max; i++ {
			backoff *= 2
		}
		wait := time.Duration(rand.Int64N(int64(min(backoff, rc.Max)) + 1))
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (retrying after: %w)", context.Cause(ctx), err)
		}
	}
}

func (c *Cache[V]) retryable(err error) bool {
	var pe *flight.PanicError
	switch {
	case errors.Is(err, ErrNotFound), errorsIsContext(err), errors.As(err, &pe):
		return false
	case c.cfg.Retry.Retryable != nil:
		return c.cfg.Retry.Retryable(err)
	}
	return true
}

// callSafely calls load, turning a panic into an error so that one bad
// loader call fails its callers instead of the process.
func callSafely[V any](ctx context.Context, id string, load LoaderFunc[V]) (v V, err error) {
	defer func() {
		if r := recover(); r != nil {
			var zero V
			v, err = zero, &flight.PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return load(ctx, id)
}

// refresh starts a background refresh of id, whose L1 entry e is stale or
// due for early refresh, unless one started within the hold-off (in this
// process, or seen held by another) or too many run already.
func (c *Cache[V]) refresh(ctx context.Context, id string, load LoaderFunc[V], e *entry[V], now int64, ev stats.Event) {
	// The hold-off is LockTTL: a refresh, here or in another process whose
	// lock we found, fills (and says so) within it, or its lock expires.
	if load == nil || !e.claimRefresh(now, c.cfg.LockTTL) {
		return
	}
	select {
	case c.refreshSem <- struct{}{}:
	default:
		c.record(stats.RefreshDropped)
		e.holdoff.Store(0)
		return
	}
	if c.closed.Load() {
		<-c.refreshSem
		return
	}
	c.record(ev)
	rctx, cancel := c.loads.Context(ctx)
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		defer cancel()
		defer func() { <-c.refreshSem }()
		defer func() {
			if r := recover(); r != nil {
				c.warn(rctx, "tiercache: background refresh panicked", c.Key(id), fmt.Errorf("%v", r))
			}
		}()
		c.refreshNow(rctx, id, load)
	}()
}

// refreshNow rebuilds id in the background: only if it takes the fleet-wide
// lock (another process holding it is refreshing already), and only if the
// shared tier does not hold a fresher value than ours already.
func (c *Cache[V]) refreshNow(ctx context.Context, id string, load LoaderFunc[V]) {
	// The epoch before the key: a version switch (which swaps the keyspace,
	// then bumps the epochs) cannot then let a value read under the old key
	// into L1.
	ep := c.epochOf(id)
	key := c.Key(id)
	token := ""
	fill := c.store != nil
	if c.locker != nil {
		token = newToken()
		acquired, cur, err := c.tryLock(ctx, key, token, true)
		switch {
		case err != nil:
			token, fill = "", false // the tier failed: refresh this process alone
		case cur != nil && cur.state(c.now()) == fresh:
			if acquired {
				c.unlock(ctx, key, token)
			}
			c.keep(id, cur, ep)
			return
		case !acquired:
			return
		}
	}
	// Errors are logged by loadAndFill; the stale entry stays.
	_, _ = c.loadAndFill(ctx, id, key, token, load, ep, fill)
}
