package tiercache

import (
	"context"
	"errors"
	"time"

	"github.com/tiercache/tiercache/driver"
	"github.com/tiercache/tiercache/internal/fleet"
	"github.com/tiercache/tiercache/internal/flight"
	"github.com/tiercache/tiercache/internal/keys"
	"github.com/tiercache/tiercache/stats"
)

// The miss path: what happens to the ids L1 could not answer. Get leads one
// id, GetMany many, a background refresh one; all go through the same
// resolution, which works on a batch of ids in rounds: one read of the
// shared tier for all of them, one lock attempt for those still missing,
// one loader call for those to load, one fill, and, for ids another process
// is rebuilding, waits followed by another read and lock round. After each
// call decide says, per id, what to do next.
//
// The interleavings it is built for, with processes A and B:
//
//  1. A and B miss at once. Both take the lock; A wins and loads, B finds the
//     lock held and nothing stale, so it waits for A's fill message (or
//     LockWait), then reads the shared tier: one origin call in the fleet.
//  2. A's fill raced B's read: a lock attempt returns what the key holds in
//     the same step, so B sees A's fill instead of loading again.
//  3. A's loader read an old row, then C updated the row and called Delete:
//     Delete removed A's lock, so A's conditional fill stores nothing, and
//     the invalidation epoch keeps the value out of A's L1.
//  4. A died holding the lock: B waits at most LockWait, reads nothing, and
//     loads for itself.
//
// The first read runs on the leader's goroutine (most misses in L1 are hits
// in L2, and a goroutine costs about as much as decoding); the rest runs on
// a goroutine of the cache's, detached from the callers' cancellation (they
// can stop waiting at their deadlines), unless the leader's context can
// never end, when it runs on the leader's goroutine too. The loader always
// runs on a goroutine of its own (see loadAll), so that one that hangs or
// calls runtime.Goexit cannot take the miss with it.

// pend is an id whose miss is being resolved, and what is known of it.
type pend[V any] struct {
	id     string
	call   *flight.Call[fetched[V]] // nil for a background refresh
	prev   *entry[V]                // this process's copy, if any
	key    string
	ep     epoch
	token  string    // the lock token, once a lock attempt was made
	cur    *entry[V] // what the shared tier held at the last call
	local  bool      // load for this process alone
	waited bool      // it waited for another process's rebuild
	done   bool
}

// resolution is the miss of a batch of ids, and the ids at each step.
type resolution[V any] struct {
	c       *Cache[V]
	o       origin[V]
	refresh bool
	space   *keys.Space
	all     []*pend[V]
	read    []*pend[V] // to read from the shared tier
	lock    []*pend[V] // to take the lock of
	load    []*pend[V] // to load
	waiting []*pend[V] // waiting for another process's rebuild

	caller  context.Context // the leader's own context, for the first step
	started bool            // the keyspace is known and the ids routed
	wake    chan struct{}   // signalled by fills and releases of the ids

	// one holds the pend of a resolution of one id (a Get, a refresh), so
	// that the common case allocates one object, not three.
	one      pend[V]
	oneArr   [1]*pend[V]
	oneKey   [1]string
	deadline time.Time // of the waits
	final    bool      // past the deadline: the last read and lock round
	poll     time.Duration
	// failed is set once a call to the shared tier failed: the rest of the
	// resolution does not wait on the tier again (its fills and releases
	// run in the background, see later).
	failed bool
}

// A process waiting for another's rebuild re-reads the shared tier at
// these intervals, doubling, besides being woken by the fill's message.
const (
	minPoll = 10 * time.Millisecond
	maxPoll = 250 * time.Millisecond
)

// single returns a resolution of the one id p describes.
func single[V any](c *Cache[V], o origin[V], p pend[V]) *resolution[V] {
	r := &resolution[V]{c: c, o: o, one: p}
	r.oneArr[0] = &r.one
	r.all = r.oneArr[:]
	return r
}

// lead resolves ps, whose calls the caller leads; every call is finished
// whatever happens.
func (c *Cache[V]) lead(ctx context.Context, ps []*pend[V], o origin[V]) {
	c.leadWith(ctx, &resolution[V]{c: c, o: o, all: ps})
}

// leadWith is lead of the resolution r.
func (c *Cache[V]) leadWith(ctx context.Context, r *resolution[V]) {
	r.caller = ctx
	if !c.loads.Run(ctx, r.guard(r.first)) {
		r.finishAll(ErrClosed)
		return
	}
	if r.started && r.settled() {
		return
	}
	r.caller = nil // the rest is detached from the leader
	var ok bool
	if ctx.Done() == nil {
		ok = c.loads.Run(ctx, r.guard(r.rest))
	} else {
		ok = c.loads.Go(ctx, r.guard(r.rest))
	}
	if !ok {
		r.finishAll(ErrClosed)
	}
}

// guard runs a step of r with panics and Goexit turned into the error of
// every call r has not finished, and the waits r registered removed.
func (r *resolution[V]) guard(step func(context.Context)) func(context.Context) {
	return func(ctx context.Context) {
		flight.Protect(func() { step(ctx) }, func(err error) {
			r.stopWaiting()
			if len(r.all) > 0 {
				r.c.warn(ctx, "tiercache: miss path failed", r.c.space().Key(r.all[0].id), err)
			}
			r.finishAll(err)
		})
	}
}

// settled reports whether every id has its answer.
func (r *resolution[V]) settled() bool {
	return len(r.read)+len(r.lock)+len(r.load)+len(r.waiting) == 0
}

// first notes the ids' epochs, then the keyspace, and reads the shared tier
// for the ids it can be read for. The epochs come first: a version switch
// swaps the keyspace then flushes, so a value read under the old keyspace
// cannot then enter L1. It runs on the leader's goroutine, so it stops when
// the leader's own context ends: what it has not done is left to rest,
// which runs detached.
func (r *resolution[V]) first(ctx context.Context) {
	for _, p := range r.all {
		p.ep = r.c.epochOf(p.id)
	}
	if r.caller != nil && r.caller.Done() != nil {
		// The leader's deadline as a deadline (go-redis bounds a socket
		// read by the context's deadline, not by its cancellation), and its
		// cancellation too.
		var cancel context.CancelFunc
		if dl, ok := r.caller.Deadline(); ok {
			ctx, cancel = context.WithDeadline(ctx, dl)
		} else {
			ctx, cancel = context.WithCancel(ctx)
		}
		defer cancel()
		defer context.AfterFunc(r.caller, cancel)()
	}
	if !r.start(ctx) {
		return
	}
	r.readRound(ctx)
}

// start reads the keyspace in effect (waiting for the generation to be
// known, within ctx) and routes each id: to a read, or, when the shared
// tier cannot be used for it, to decide. It reports false, routing nothing,
// if ctx ended first.
func (r *resolution[V]) start(ctx context.Context) bool {
	c := r.c
	ready := false
	r.space = c.base
	if c.tier != nil {
		s, ok := c.tier.Ready(ctx)
		if !ok && ctx.Err() != nil {
			return false
		}
		if ok {
			r.space, ready = s, true
		}
	}
	r.started = true
	now := c.now()
	for _, p := range r.all {
		p.key = r.space.Key(p.id)
		switch {
		case c.tier == nil:
			p.local = true
			r.load = append(r.load, p)
		case !ready || c.tier.Pending(p.id):
			r.route(ctx, p, decide(seen{tier: tierSkipped, prev: c.usable(p.prev, now), refresh: r.refresh}))
		case r.refresh:
			// The entry is stale or due: no need to read it again.
			r.route(ctx, p, decide(seen{tier: tierOK, canLock: c.locks, refresh: true}))
		default:
			r.read = append(r.read, p)
		}
	}
	return true
}

// rest takes the ids past the first read to their answers.
func (r *resolution[V]) rest(ctx context.Context) {
	defer r.stopWaiting()
	if !r.started {
		r.caller = nil
		r.start(ctx)
	}
	for !r.settled() {
		r.readRound(ctx)
		r.lockRound(ctx)
		r.loadRound(ctx)
		if len(r.lock) == 0 && len(r.read) == 0 && len(r.waiting) > 0 {
			r.waitRound(ctx)
		}
	}
}

// usable reports whether prev may answer while the shared tier fails: it
// is not past its hard expiry, and not older than L1TTL, the bound on how
// long a copy may have missed an invalidation.
func (c *Cache[V]) usable(prev *entry[V], now int64) bool {
	return prev != nil && now < prev.l1Until && prev.state(now) != expired
}

// route moves p on according to a.
func (r *resolution[V]) route(ctx context.Context, p *pend[V], a action) {
	c := r.c
	switch a {
	case serveCur:
		p.cur.inherit(p.prev)
		c.keep(p.id, p.cur, p.ep)
		f := c.served(ctx, p, p.cur, stats.L2, r)
		if p.waited {
			f.r.outcome = stats.Miss // it was not cached when asked
		}
		r.finish(p, f, nil)
	case servePrev:
		r.finish(p, c.served(ctx, p, p.prev, stats.L1, r), nil)
	case tryLock:
		r.lock = append(r.lock, p)
	case loadFill, loadLocal:
		p.local = a == loadLocal
		r.load = append(r.load, p)
	case wait:
		r.waiting = append(r.waiting, p)
	case giveUp:
		r.finish(p, fetched[V]{}, nil)
	case failWait:
		r.finish(p, fetched[V]{}, ErrLockWait)
	}
}

// served answers with an entry found in a tier; a stale one starts a
// refresh (unless this is one).
func (c *Cache[V]) served(ctx context.Context, p *pend[V], e *entry[V], tier stats.Tier, r *resolution[V]) fetched[V] {
	now := c.now()
	res := result{stats.Hit, tier}
	switch {
	case e.negative:
		res.outcome = stats.Negative
	case e.state(now) == stale:
		res.outcome = stats.Stale
		if !r.refresh {
			c.refresh(ctx, p.id, r.o, e, now, stats.Refresh)
		}
	}
	return fetched[V]{e: e, r: res}
}

// readRound reads the shared tier for r.read.
func (r *resolution[V]) readRound(ctx context.Context) {
	if len(r.read) == 0 {
		return
	}
	c := r.c
	ps := r.read
	r.read = nil
	ks := r.oneKey[:]
	if len(ps) > 1 {
		ks = make([]string, len(ps))
	}
	for i, p := range ps {
		ks[i] = p.key
	}
	bs, err := c.tier.Get(ctx, ks)
	if err != nil && r.caller != nil && ctx.Err() != nil {
		// The leader gave up during the read: read again, detached.
		r.read = ps
		return
	}
	r.failed = r.failed || stateOf(err) == tierFailed
	now := c.now()
	for i, p := range ps {
		s := seen{tier: stateOf(err), canLock: c.locks, prev: c.usable(p.prev, now)}
		if err == nil {
			p.cur = c.decode(ctx, p.key, bs[i], now, true)
			s.cur = freshnessOf(p.cur, now)
		}
		r.route(ctx, p, decide(s))
	}
}

// lockRound tries to take the locks of r.lock.
func (r *resolution[V]) lockRound(ctx context.Context) {
	if len(r.lock) == 0 {
		return
	}
	c := r.c
	ps := r.lock
	r.lock = nil
	reqs := make([]driver.LockRequest, len(ps))
	for i, p := range ps {
		p.token = driver.NewToken()
		reqs[i] = driver.LockRequest{Key: p.key, Token: p.token}
	}
	if !r.refresh && r.wake == nil {
		// Register before the attempt, so that a fill announced between the
		// attempt and the wait wakes us.
		r.wake = make(chan struct{}, 1)
		c.tier.Waiters().Add(idsOf(r.all), r.wake)
	}
	res, err := c.tier.Lock(ctx, reqs, c.cfg.LockTTL)
	r.failed = r.failed || stateOf(err) == tierFailed
	now := c.now()
	var release []driver.LockRequest
	for i, p := range ps {
		s := seen{tier: stateOf(err), locked: true, canLock: true, prev: c.usable(p.prev, now), refresh: r.refresh,
			timedOut: r.final, failWait: c.cfg.FailOnLockWait}
		if err == nil {
			s.acquired = res[i].Acquired
			p.cur = c.decode(ctx, p.key, res[i].Current, now, r.refresh)
			s.cur = freshnessOf(p.cur, now)
		}
		a := decide(s)
		if a == serveCur && s.acquired {
			release = append(release, reqs[i])
		}
		if a == wait && r.deadline.IsZero() {
			r.deadline = time.Now().Add(c.cfg.LockWait)
			r.poll = minPoll
		}
		if a == wait && !p.waited {
			p.waited = true
			c.record(stats.LockWait)
		}
		if r.final && (a == loadLocal || a == failWait) && s.tier == tierOK {
			c.record(stats.LockWaitTimeout)
		}
		r.route(ctx, p, a)
	}
	if len(release) > 0 {
		c.tier.Unlock(ctx, release)
	}
}

// waitRound waits for the fills of r.waiting (woken by their messages, or
// polling), then has them read again; past LockWait they get a last read and
// lock round, after which decide stops waiting for them.
func (r *resolution[V]) waitRound(ctx context.Context) {
	ps := r.waiting
	r.waiting = nil
	now := time.Now()
	if !now.Before(r.deadline) {
		// One last read and lock attempt (a dead holder's lock has expired
		// by now, LockWait defaulting to LockTTL); then decide gives up
		// waiting.
		r.final = true
		r.read = ps
		return
	}
	// Poll with backoff even when messages wake us: pub/sub delivers at
	// most once, and a fill whose reply was lost announces nothing.
	t := time.NewTimer(min(r.deadline.Sub(now), r.poll))
	r.poll = min(2*r.poll, maxPoll)
	select {
	case <-r.wake:
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()
	if ctx.Err() != nil {
		for _, p := range ps {
			r.finish(p, fetched[V]{}, context.Cause(ctx))
		}
		return
	}
	// Woken by a fill, a release or a poll: read before trying the lock
	// again, so that a completed fill is not taken for a free lock.
	r.read = ps
}

// stopWaiting removes r's registration for wake-ups.
func (r *resolution[V]) stopWaiting() {
	if r.wake != nil {
		r.c.tier.Waiters().Remove(idsOf(r.all), r.wake)
		r.wake = nil
	}
}

// loadRound calls the loader once for r.load, fills the shared tier with
// the results (conditionally on the locks taken), keeps them in L1 and
// answers.
func (r *resolution[V]) loadRound(ctx context.Context) {
	if len(r.load) == 0 {
		return
	}
	c := r.c
	ps := r.admit(ctx, r.load) // the bulkhead (MaxLoads)
	r.load = nil
	if len(ps) == 0 {
		return
	}
	ids := idsOf(ps)
	start := time.Now()
	var vals []V
	var found []bool
	err := ErrNilLoader
	if !r.o.missing() {
		vals, found, err = c.loadAll(ctx, ids, r.o)
	}
	c.unadmit()
	took := time.Since(start)
	if err != nil {
		r.release(ctx, ps)
		if !c.closed.Load() { // a load cancelled by Close is no degradation
			c.warn(ctx, "tiercache: load failed", ps[0].key, err)
		}
		for _, p := range ps {
			r.finish(p, fetched[V]{}, err)
		}
		return
	}
	now := c.now()
	entries := make([]*entry[V], len(ps))
	for i := range ps {
		entries[i] = c.newEntry(vals[i], !found[i], now, took)
	}
	results := r.fill(ctx, ps, entries)
	for i, p := range ps {
		if results[i] != refused && results[i] != tooLarge {
			c.keep(p.id, entries[i], p.ep)
		}
		if c.tier != nil {
			c.tier.Waiters().Wake(p.id)
		}
		r.finish(p, fetched[V]{e: entries[i], r: result{stats.Miss, stats.Origin}}, nil)
	}
}

// writeResult is what became of a fill.
type writeResult uint8

const (
	notFilled writeResult = iota // for this process alone, or the tier failed
	stored
	refused  // a conditional fill found the lock gone: the value may be older than a write
	tooLarge // the value exceeds MaxValueSize: cached nowhere
)

// fill stores entries in the shared tier: conditional fills where a lock
// was tried (one batch), plain fills for a store without locks, nothing for
// local loads. A fill releases its lock; locks of values not stored are
// released, and their waiters told.
func (r *resolution[V]) fill(ctx context.Context, ps []*pend[V], entries []*entry[V]) []writeResult {
	c := r.c
	results := make([]writeResult, len(ps))
	if c.tier == nil {
		return results
	}
	var ops []driver.FillOp
	var opIdx []int
	var release []*pend[V]
	for i, p := range ps {
		if p.local {
			continue
		}
		b, err := c.encode(p.key, entries[i])
		ttl := time.Duration(entries[i].hard - c.now())
		switch {
		case errors.Is(err, ErrValueTooLarge):
			c.oversize(ctx, p.key, err)
			results[i] = tooLarge
			release = append(release, p)
			continue
		case err != nil:
			c.warn(ctx, "tiercache: value not stored in the shared tier: encoding failed", p.key, err)
			release = append(release, p)
			continue
		case ttl < time.Millisecond:
			release = append(release, p)
			continue
		case p.token == "":
			// Without a lock nothing cancels this fill but the epoch: a Set
			// or Delete of this process since the load started must win.
			// (Another process's write can still lose to it: stores
			// without locks have no stale-set protection.)
			if !r.failed && !p.ep.changed(&c.gen) && c.tier.FillPlain(ctx, r.space, p.id, b, ttl) == nil {
				results[i] = stored
			}
			continue
		}
		ops = append(ops, driver.FillOp{Key: p.key, Token: p.token, Value: b, TTL: ttl})
		opIdx = append(opIdx, i)
	}
	r.release(ctx, release)
	if len(ops) == 0 {
		return results
	}
	if len(ops) == 1 {
		ops[0].Note = c.tier.FillNote(r.space, ps[opIdx[0]].id)
	}
	if r.failed {
		// The tier failed earlier in this request: fill (and so release
		// the locks we may hold) in the background, and answer now.
		r.later(ctx, func(ctx context.Context) {
			ok, _ := c.tier.Fill(ctx, ops)
			if len(ops) > 1 {
				var filled []string
				for j, i := range opIdx {
					if ok[j] {
						filled = append(filled, ps[i].id)
					}
				}
				c.tier.Filled(ctx, r.space, filled)
			}
		})
		return results
	}
	ok, err := c.tier.Fill(ctx, ops)
	r.failed = err != nil
	var filled []string
	var lost []*pend[V]
	for j, i := range opIdx {
		switch {
		case ok[j]:
			results[i] = stored
			filled = append(filled, ps[i].id)
		case err == nil:
			c.record(stats.FillLost)
			results[i] = refused
		default:
			lost = append(lost, ps[i])
		}
	}
	if len(ops) > 1 {
		c.tier.Filled(ctx, r.space, filled)
	}
	// The tier failed: a lock we may hold must not make the others wait for
	// its expiry.
	r.release(ctx, lost)
	return results
}

// release releases the locks ps may hold and tells the processes waiting
// for them, even when ctx has ended (the cache is closing), so that they
// load for themselves rather than wait for the locks to expire.
func (r *resolution[V]) release(ctx context.Context, ps []*pend[V]) {
	var reqs []driver.LockRequest
	var ids []string
	for _, p := range ps {
		if p.token != "" {
			reqs = append(reqs, driver.LockRequest{Key: p.key, Token: p.token})
			ids = append(ids, p.id)
		}
	}
	if len(reqs) == 0 {
		return
	}
	unlock := func(ctx context.Context) {
		r.c.tier.Unlock(ctx, reqs)
		r.c.tier.Released(ctx, r.space, ids)
	}
	if r.failed {
		r.later(ctx, unlock)
		return
	}
	unlock(context.WithoutCancel(ctx))
}

// later runs fn, calls to the shared tier that this request no longer waits
// for since a call failed (a fill, releases), on a goroutine of the cache's
// (detached from the callers, stopped by Close). If the tier is still down
// they fail fast (the breaker) and locks left behind expire by LockTTL.
func (r *resolution[V]) later(ctx context.Context, fn func(context.Context)) {
	r.c.loads.Go(ctx, fn)
}

// finish answers p's callers (once).
func (r *resolution[V]) finish(p *pend[V], f fetched[V], err error) {
	if p.done {
		return
	}
	p.done = true
	if p.call != nil {
		r.c.loads.Finish(p.id, p.call, f, err)
	}
}

// finishAll answers every call of r not answered yet with err.
func (r *resolution[V]) finishAll(err error) {
	if err == nil {
		err = errors.New("tiercache: miss path ended without an answer")
	}
	for _, p := range r.all {
		r.finish(p, fetched[V]{}, err)
	}
	r.read, r.lock, r.load, r.waiting = nil, nil, nil, nil
}

func idsOf[V any](ps []*pend[V]) []string {
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.id
	}
	return ids
}

// stateOf is the tierState of a call that returned err.
func stateOf(err error) tierState {
	switch {
	case err == nil:
		return tierOK
	case errors.Is(err, fleet.ErrBreakerOpen):
		return tierSkipped
	}
	return tierFailed
}

// freshnessOf is e's state for decide: 0 when there is no usable entry.
func freshnessOf[V any](e *entry[V], now int64) freshness {
	if e == nil {
		return 0
	}
	if st := e.state(now); st != expired {
		return st
	}
	return 0
}
