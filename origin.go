package tiercache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/tiercache/tiercache/internal/flight"
	"github.com/tiercache/tiercache/stats"
)

// origin is what a miss loads with: a Get's loader or a GetMany's.
type origin[V any] struct {
	one  LoaderFunc[V]
	many BatchLoaderFunc[V]
}

func (o origin[V]) missing() bool { return o.one == nil && o.many == nil }

// call loads ids: vals[i] is the value of ids[i] when found[i].
func (o origin[V]) call(ctx context.Context, ids []string) (vals []V, found []bool, err error) {
	vals, found = make([]V, len(ids)), make([]bool, len(ids))
	if o.many == nil {
		for i, id := range ids {
			v, err := o.one(ctx, id)
			switch {
			case errors.Is(err, ErrNotFound):
			case err != nil:
				return nil, nil, err
			default:
				vals[i], found[i] = v, true
			}
		}
		return vals, found, nil
	}
	m, err := o.many(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	for i, id := range ids {
		vals[i], found[i] = m[id]
	}
	return vals, found, nil
}

// loadAll loads ids with retries, within LoadTimeout. Each attempt runs on
// a goroutine of its own (loaders): a panic or runtime.Goexit in the loader
// is the load's error, and a loader still running at LoadTimeout (it
// ignores its context) is abandoned, so that its callers get an error and
// later ones a new load, and counted.
func (c *Cache[V]) loadAll(ctx context.Context, ids []string, o origin[V]) (vals []V, found []bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.LoadTimeout)
	defer cancel()
	err = c.withRetries(ctx, ids[0], func(ctx context.Context) error {
		var res struct {
			vals  []V
			found []bool
		}
		err := c.loaders.Run(ctx, func(ctx context.Context) (err error) {
			res.vals, res.found, err = o.call(ctx, ids)
			return err
		}, func() { c.record(stats.LoadAbandoned) })
		switch {
		case errors.Is(err, flight.ErrAbandoned) && errors.Is(err, context.DeadlineExceeded):
			return c.abandoned(ids[0], err)
		case errors.Is(err, flight.ErrAbandoned):
			return fmt.Errorf("tiercache: load of %s abandoned: the loader ignores its context, which ended: %w", c.space().Key(ids[0]), err)
		case errors.Is(err, flight.ErrTooManyAbandoned):
			return c.refused(ids[0], err)
		case err == nil:
			vals, found = res.vals, res.found // fn returned: res is ours to read
		}
		return err
	})
	return vals, found, err
}

// withRetries calls attempt (a loader call, for the id named) and retries
// errors worth it with exponential backoff and full jitter, within ctx. It
// counts each call, and runs the Load hook around it.
func (c *Cache[V]) withRetries(ctx context.Context, id string, attempt func(context.Context) error) error {
	rc := c.cfg.Retry
	for n := 1; ; n++ {
		start := time.Now()
		var err error
		if hook := c.cfg.Hooks.Load; hook != nil {
			hctx, done := hook(ctx, c.space().Key(id), n)
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
	case errors.Is(err, ErrNotFound), errorsIsContext(err), errors.As(err, &pe), errors.Is(err, flight.ErrGoexit),
		errors.Is(err, flight.ErrTooManyAbandoned):
		return false
	case c.cfg.Retry.Retryable != nil:
		return c.cfg.Retry.Retryable(err)
	}
	return true
}

// refresh starts a background refresh of id, whose L1 entry e is stale or
// due for early refresh, unless one started within the hold-off (in this
// process, or seen held by another) or too many run already.
func (c *Cache[V]) refresh(ctx context.Context, id string, o origin[V], e *entry[V], now int64, ev stats.Event) {
	// The hold-off is LockTTL: a refresh, here or in another process whose
	// lock we found, fills (and says so) within it, or its lock expires.
	if o.missing() || !e.claimRefresh(now, c.cfg.LockTTL) {
		return
	}
	select {
	case c.refreshSem <- struct{}{}:
	default:
		c.record(stats.RefreshDropped)
		e.holdoff.Store(0)
		return
	}
	started := c.loads.Go(ctx, func(ctx context.Context) {
		defer func() { <-c.refreshSem }()
		c.record(ev)
		r := single(c, o, pend[V]{id: id, prev: e})
		r.refresh = true
		r.guard(func(ctx context.Context) {
			r.first(ctx)
			r.rest(ctx)
		})(ctx)
	})
	if !started {
		<-c.refreshSem
	}
}
