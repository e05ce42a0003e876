package tiercache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tiercache/tiercache/internal/flight"
	"github.com/tiercache/tiercache/stats"
)

// BatchLoaderFunc loads many values from the origin in one call. Ids it
// leaves out of its map do not exist: they are cached as "not found". Like
// LoaderFunc, its context is detached from any one caller's cancellation.
type BatchLoaderFunc[V any] func(ctx context.Context, ids []string) (map[string]V, error)

// GetMany is Get for many ids: it answers what it can from L1, reads the
// rest from the shared tier in one round trip (one MGET; on a cluster, one
// pipelined batch per node), takes the rebuild locks of what is still
// missing in one more round trip, and calls load once for all the ids whose
// lock it took. Concurrent Gets and GetManys of the same ids share loads, and
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

// waiting is an id of a GetMany answered by a shared call.
type waiting[V any] struct {
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
	var waits []waiting[V]
	var lead []led[V]
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
					c.refresh(ctx, id, single(load), e, now, stats.Refresh)
				case now >= e.early && e.refreshEarly(now, c.cfg.earlyBeta):
					c.refresh(ctx, id, single(load), e, now, stats.EarlyRefresh)
				}
				_, r, _ := c.answer(e, stats.L1, st == stale)
				rs = append(rs, r)
				if !e.negative {
					out[id] = e.value
				}
				continue
			}
		}
		if load == nil {
			return out, rs, ErrNilLoader
		}
		var prev *entry[V]
		if ok && now < e.keep {
			prev = e
		}
		call, leader := c.loads.Join(id)
		if call == nil {
			return out, rs, ErrClosed
		}
		waits = append(waits, waiting[V]{id, call, prev, !leader})
		if leader {
			ep := c.epochOf(id) // before the key: see Cache.lead
			lead = append(lead, led[V]{id: id, key: c.Key(id), call: call, prev: prev, ep: ep})
		}
	}
	if len(lead) > 0 && !c.loads.Go(ctx, func(ctx context.Context) { c.fetchMany(ctx, lead, load) }) {
		for _, l := range lead {
			c.loads.Finish(l.id, l.call, fetched[V]{}, ErrClosed)
		}
	}

	var failures []error
	for _, w := range waits {
		f, err := w.call.Wait(ctx)
		if err != nil {
			e, r, derr := c.degrade(ctx, w.id, w.prev, err)
			rs = append(rs, r)
			if e != nil && !e.negative {
				out[w.id] = e.value
			}
			failures = append(failures, fmt.Errorf("%s: %w", w.id, derr))
			continue
		}
		if w.shared && f.r.tier == stats.Origin {
			c.record(stats.SharedLoad)
		}
		c.counter.RecordRequest(f.r.outcome, f.r.tier, 0)
		rs = append(rs, f.r)
		if !f.e.negative {
			out[w.id] = f.e.value
		}
	}
	if len(failures) > 0 {
		return out, rs, fmt.Errorf("tiercache: %d of %d ids failed: %w", len(failures), len(seen), errors.Join(failures...))
	}
	return out, rs, nil
}

// single adapts a batch loader to one id, for refreshes and waits.
func single[V any](load BatchLoaderFunc[V]) LoaderFunc[V] {
	if load == nil {
		return nil
	}
	return func(ctx context.Context, id string) (V, error) {
		m, err := load(ctx, []string{id})
		if err != nil {
			var zero V
			return zero, err
		}
		v, ok := m[id]
		if !ok {
			return v, ErrNotFound
		}
		return v, nil
	}
}

// led is an id whose shared call a GetMany leads, and how far it got.
type led[V any] struct {
	id, key string
	call    *flight.Call[fetched[V]]
	prev    *entry[V]
	ep      epoch
	step    ledStep
	token   string // when step is locked: the lock token (possibly held)
}

type ledStep uint8

const (
	open      ledStep = iota // nothing found yet
	locked                   // to load under token
	contended                // another process is rebuilding it
	finished
)

// fetchMany is fetch for the ids a GetMany leads, with one round trip per
// step: read the shared tier, take the locks, call the loader, fill. It
// finishes every call in lead, whatever happens.
func (c *Cache[V]) fetchMany(ctx context.Context, lead []led[V], load BatchLoaderFunc[V]) {
	finish := func(l *led[V], f fetched[V], err error) {
		if l.step != finished {
			l.step = finished
			c.loads.Finish(l.id, l.call, f, err)
		}
	}
	defer func() {
		r := recover()
		if r != nil {
			c.warn(ctx, "tiercache: GetMany panicked", lead[0].key, fmt.Errorf("%v", r))
		}
		for i := range lead { // no waiter is left hanging
			if lead[i].step != finished {
				finish(&lead[i], fetched[V]{}, fmt.Errorf("tiercache: batch load ended without a result: %v", r))
			}
		}
	}()
	one := single(load)
	l2ok := c.store != nil && c.readMany(ctx, lead, one, finish)
	if l2ok {
		c.lockMany(ctx, lead, one, finish)
	}
	c.loadMany(ctx, lead, load, l2ok, finish)

	// Ids another process is rebuilding: wait for each as Get does (and
	// load it alone after LockWait).
	var wg sync.WaitGroup
	for i := range lead {
		if l := &lead[i]; l.step == contended {
			wg.Go(func() {
				f, err := c.rebuild(ctx, l.id, l.key, one, l.ep, l.prev)
				finish(l, f, err) // each goroutine touches its own led only
			})
		}
	}
	wg.Wait()
}

// readMany reads the leds' keys from the shared tier in one round trip and
// finishes the leds it finds. It reports whether the tier answered.
func (c *Cache[V]) readMany(ctx context.Context, lead []led[V], one LoaderFunc[V], finish func(*led[V], fetched[V], error)) bool {
	keys := make([]string, len(lead))
	for i := range lead {
		keys[i] = lead[i].key
	}
	var bs [][]byte
	err := c.l2(ctx, func(ctx context.Context) (err error) {
		if c.multi != nil {
			bs, err = c.multi.GetMulti(ctx, keys)
			return err
		}
		bs = make([][]byte, len(keys))
		for i, k := range keys {
			if bs[i], err = c.store.Get(ctx, k); err != nil {
				return err
			}
		}
		return nil
	})
	now := c.now()
	for i := range lead {
		l := &lead[i]
		var e *entry[V]
		switch {
		case err != nil: // this process's copy is the best answer
			if l.prev != nil && l.prev.state(now) != expired {
				finish(l, c.served(ctx, l.id, one, l.prev, stats.L1), nil)
			}
			continue
		case bs[i] != nil:
			e = c.decode(ctx, l.key, bs[i], now, true)
		}
		if e != nil && e.state(now) != expired {
			c.keep(l.id, e, l.ep)
			finish(l, c.served(ctx, l.id, one, e, stats.L2), nil)
		}
	}
	return err == nil
}

// lockMany takes the rebuild locks of the open leds (in one round trip with
// a BatchLocker) and moves each on: finished if another process filled it
// meanwhile, locked if its lock was taken, contended if another process is
// rebuilding it.
func (c *Cache[V]) lockMany(ctx context.Context, lead []led[V], one LoaderFunc[V], finish func(*led[V], fetched[V], error)) {
	var pending []*led[V]
	for i := range lead {
		if lead[i].step == open {
			pending = append(pending, &lead[i])
		}
	}
	if c.locker == nil || len(pending) == 0 {
		return
	}
	keys := make([]string, len(pending))
	tokens := make([]string, len(pending))
	for i, l := range pending {
		keys[i], tokens[i] = l.key, newToken()
	}
	acquired := make([]bool, len(pending))
	current := make([][]byte, len(pending))
	err := c.l2(ctx, func(ctx context.Context) (err error) {
		if bl, ok := c.store.(BatchLocker); ok {
			acquired, current, err = bl.TryLockMulti(ctx, keys, tokens, c.cfg.LockTTL)
			return err
		}
		for i := range keys {
			if acquired[i], current[i], err = c.locker.TryLock(ctx, keys[i], tokens[i], c.cfg.LockTTL); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if !errors.Is(err, errBreakerOpen) {
			// Some locks may have been taken and the reply lost: fill
			// conditionally, which stores and releases the ones we hold.
			for i, l := range pending {
				l.step, l.token = locked, tokens[i]
			}
		}
		return
	}
	now := c.now()
	for i, l := range pending {
		if acquired[i] {
			c.record(stats.LockAcquired)
		} else {
			c.record(stats.LockContended)
		}
		var cur *entry[V]
		if current[i] != nil {
			cur = c.decode(ctx, l.key, current[i], now, false)
		}
		switch {
		case cur != nil && cur.state(now) == fresh:
			if acquired[i] {
				c.unlock(ctx, l.key, tokens[i])
			}
			c.keep(l.id, cur, l.ep)
			finish(l, c.served(ctx, l.id, one, cur, stats.L2), nil)
		case acquired[i]:
			l.step, l.token = locked, tokens[i]
		case cur != nil && cur.state(now) == stale:
			// Another process is refreshing it: serve it stale meanwhile.
			c.keep(l.id, cur, l.ep)
			finish(l, c.served(ctx, l.id, one, cur, stats.L2), nil)
		default:
			l.step = contended
		}
	}
}

// loadMany calls the batch loader once for the leds still open or locked,
// stores the results in the shared tier (conditionally on the tokens, in one
// round trip with a BatchLocker), announces them in one message, keeps them
// in L1 and finishes the leds. With the shared tier failing (l2ok false),
// it loads without filling it.
func (c *Cache[V]) loadMany(ctx context.Context, lead []led[V], load BatchLoaderFunc[V], l2ok bool, finish func(*led[V], fetched[V], error)) {
	var todo []*led[V]
	var ids []string
	for i := range lead {
		if l := &lead[i]; l.step == open || l.step == locked {
			todo = append(todo, l)
			ids = append(ids, l.id)
		}
	}
	if len(todo) == 0 {
		return
	}
	start := time.Now()
	var m map[string]V
	err := c.withRetries(ctx, todo[0].key, func(ctx context.Context) (err error) {
		m, err = callBatchSafely(ctx, ids, load)
		return err
	})
	took := time.Since(start)
	if err != nil {
		cleanup := context.WithoutCancel(ctx)
		var released []string
		for _, l := range todo {
			if l.token != "" {
				c.unlock(cleanup, l.key, l.token)
				released = append(released, l.key)
			}
		}
		c.publish(cleanup, opReleased, released...)
		if !c.closed.Load() {
			c.warn(ctx, "tiercache: batch load failed", todo[0].key, err)
		}
		for _, l := range todo {
			finish(l, fetched[V]{}, err)
		}
		return
	}

	now := c.now()
	entries := make([]*entry[V], len(todo))
	for i, l := range todo {
		v, found := m[l.id]
		entries[i] = c.newEntry(v, !found, now, took)
	}
	results := c.writeMany(ctx, todo, entries, l2ok)
	var changed []string
	var released []string
	for i, l := range todo {
		switch results[i] {
		case stored:
			changed = append(changed, l.key)
		case failed, tooLarge:
			if l.token != "" {
				c.unlock(context.WithoutCancel(ctx), l.key, l.token)
				released = append(released, l.key)
			}
		}
	}
	c.publish(ctx, opChanged, changed...)
	c.publish(ctx, opReleased, released...)
	for i, l := range todo {
		if results[i] != refused && results[i] != tooLarge {
			c.keep(l.id, entries[i], l.ep)
		}
		c.waiters.wake(l.id)
		finish(l, fetched[V]{e: entries[i], r: result{stats.Miss, stats.Origin}}, nil)
	}
}

// writeMany stores the entries of the leds in the shared tier: conditional
// fills for locked leds (one round trip with a BatchLocker), plain sets for
// the others when the store has no locks, nothing when the tier failed.
func (c *Cache[V]) writeMany(ctx context.Context, todo []*led[V], entries []*entry[V], l2ok bool) []writeResult {
	results := make([]writeResult, len(todo))
	bl, batch := c.store.(BatchLocker)
	var ops []FillOp
	var opIdx []int
	for i, l := range todo {
		results[i] = failed
		switch {
		case l.token == "" && (!l2ok || c.locker != nil):
			// No lock of ours: the tier failed or the key's lock was not
			// taken (breaker open). Keep it for this process only.
		case l.token != "" && batch:
			b, err := c.encode(l.key, entries[i])
			if errors.Is(err, ErrValueTooLarge) {
				c.oversize(ctx, l.key, err)
				results[i] = tooLarge
				continue
			}
			if ttl := time.Duration(entries[i].hard - c.now()); err == nil && ttl >= time.Millisecond {
				ops = append(ops, FillOp{Key: l.key, Token: l.token, Value: b, TTL: ttl})
				opIdx = append(opIdx, i)
			}
		default:
			// GetMany announces its fills in one message of its own.
			results[i] = c.write(ctx, l.key, l.token, entries[i], false)
		}
	}
	if len(ops) == 0 {
		return results
	}
	var ok []bool
	err := c.l2(ctx, func(ctx context.Context) (err error) {
		ok, err = bl.FillMulti(ctx, ops)
		return err
	})
	for j, i := range opIdx {
		switch {
		case err != nil:
		case ok[j]:
			results[i] = stored
		default:
			c.record(stats.FillLost)
			results[i] = refused
		}
	}
	return results
}

// callBatchSafely calls load, turning a panic into an error.
func callBatchSafely[V any](ctx context.Context, ids []string, load BatchLoaderFunc[V]) (m map[string]V, err error) {
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, &flight.PanicError{Value: r}
		}
	}()
	return load(ctx, ids)
}
