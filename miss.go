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
	probed bool      // its first call is a lock attempt, with no read before
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
	inline  bool            // it runs on the leader's goroutine to the end
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

// resolveLed resolves ps, whose calls the caller leads; every call is finished
// whatever happens.
func (c *Cache[V]) resolveLed(ctx context.Context, ps []*pend[V], o origin[V]) {
	c.runResolution(ctx, &resolution[V]{c: c, o: o, all: ps})
}

// runResolution is resolveLed of the resolution r.
func (c *Cache[V]) runResolution(ctx context.Context, r *resolution[V]) {
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
		r.inline = true
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
		case c.locks && c.lockFirst():
			p.probed = true
			r.lock = append(r.lock, p)
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
		c.putIf(p.id, p.cur, &p.ep)
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
	case serveLoad:
		// Served as a stale read would be, then refreshed here, under the
		// lock this attempt took, rather than by a refresh of its own
		// that would find the lock held.
		p.cur.inherit(p.prev)
		c.putIf(p.id, p.cur, &p.ep)
		c.record(stats.Refresh)
		r.finish(p, fetched[V]{e: p.cur, r: result{stats.Stale, stats.L2}}, nil)
		r.load = append(r.load, p)
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
	var reads readScore
	for i, p := range ps {
		s := seen{tier: stateOf(err), canLock: c.locks, prev: c.usable(p.prev, now)}
		if err == nil {
			p.cur = c.decode(ctx, p.key, bs[i], now, true)
			s.cur = freshnessOf(p.cur, now)
			reads.note(p.cur != nil)
		}
		r.route(ctx, p, decide(s))
	}
	c.noteReads(reads)
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
	var reads readScore
	for i, p := range ps {
		s := seen{tier: stateOf(err), locked: true, canLock: true, prev: c.usable(p.prev, now), refresh: r.refresh,
			timedOut: r.final, failWait: c.cfg.FailOnLockWait, probed: p.probed}
		p.probed = false
		if err == nil {
			s.acquired = res[i].Acquired
			// Reported as a read's would be when no read came before.
			p.cur = c.decode(ctx, p.key, res[i].Current, now, r.refresh || s.probed)
			s.cur = freshnessOf(p.cur, now)
			if s.probed {
				reads.note(p.cur != nil)
			}
		}
		a := decide(s)
		switch {
		case a == serveCur && s.acquired:
			release = append(release, reqs[i])
		case a == servePrev && s.probed && s.tier == tierFailed:
			// The lock may be ours (the reply was lost): let it go.
			r.unlock(ctx, []*pend[V]{p}, true)
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
	c.noteReads(reads)
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

// loadRound calls the loader once for r.load, answers the callers as soon
// as it returns (keeping the values in L1), and then fills the shared tier
// (conditionally on the locks taken). The fill runs on this goroutine,
// which no caller waits for, unless r runs on the leader's own goroutine
// (its context can never end): then on one of the cache's.
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
		for _, p := range ps {
			r.finish(p, fetched[V]{}, err)
		}
		r.release(ctx, ps)
		if !c.closed.Load() { // a load cancelled by Close is no degradation
			c.warn(ctx, "tiercache: load failed", ps[0].key, err)
		}
		return
	}
	now := c.now()
	f := &filling[V]{ps: ps, entries: make([]*entry[V], len(ps))}
	for i := range ps {
		f.entries[i] = c.newEntry(vals[i], !found[i], now, took)
	}
	r.prepare(ctx, f)
	// A batch is filled before its callers are answered and its values
	// kept in L1: keeping thousands of entries first (and evicting as many)
	// delayed the fill past the locks' expiry on a loaded machine, and every
	// fill of a 50,000-id GetMany was refused. A GetMany's caller waits for
	// its rounds anyway. A single id is answered first and filled after.
	batch := len(ps) > 1
	var refused []bool
	if batch {
		refused = r.fill(ctx, f)
	}
	for i, p := range ps {
		if !f.tooLarge[i] && (!batch || !refused[i]) {
			c.putIf(p.id, f.entries[i], &p.ep)
		}
		r.finish(p, fetched[V]{e: f.entries[i], r: result{stats.Miss, stats.Origin}}, nil)
	}
	if batch {
		return
	}
	if r.inline && c.loads.Go(ctx, func(ctx context.Context) {
		flight.Protect(func() { _ = r.fill(ctx, f) }, func(err error) {
			c.warn(ctx, "tiercache: fill failed", ps[0].key, err)
		})
	}) {
		return
	}
	_ = r.fill(ctx, f)
}

// filling is the fill of the values a load returned, prepared before the
// callers are answered and done after.
type filling[V any] struct {
	ps       []*pend[V]
	entries  []*entry[V]
	tooLarge []bool          // exceeds MaxValueSize: cached nowhere
	ops      []driver.FillOp // conditional fills
	opIdx    []int           // index in ps of each op
	plain    []int           // indexes of plain fills (a store without locks)
	bytes    [][]byte        // encoded values of the plain fills, by index in ps
	ttls     []time.Duration // TTLs of the plain fills, by index in ps
	release  []*pend[V]      // locks to release: nothing to fill
}

// prepare encodes the entries of f and sorts them: conditional fills where
// a lock was tried, plain fills for a store without locks, nothing for
// local loads; the locks of values that will not be stored are released.
func (r *resolution[V]) prepare(ctx context.Context, f *filling[V]) {
	c := r.c
	f.tooLarge = make([]bool, len(f.ps))
	if c.tier == nil {
		return
	}
	for i, p := range f.ps {
		if p.local {
			continue
		}
		b, err := c.encode(p.key, f.entries[i])
		ttl := time.Duration(f.entries[i].hard - c.now())
		switch {
		case errors.Is(err, ErrValueTooLarge):
			c.oversize(ctx, p.key, err)
			f.tooLarge[i] = true
			f.release = append(f.release, p)
		case err != nil:
			c.warn(ctx, "tiercache: value not stored in the shared tier: encoding failed", p.key, err)
			f.release = append(f.release, p)
		case ttl < time.Millisecond:
			f.release = append(f.release, p)
		case p.token == "":
			if f.bytes == nil {
				f.bytes, f.ttls = make([][]byte, len(f.ps)), make([]time.Duration, len(f.ps))
			}
			f.plain = append(f.plain, i)
			f.bytes[i], f.ttls[i] = b, ttl
		default:
			f.ops = append(f.ops, driver.FillOp{Key: p.key, Token: p.token, Value: b, TTL: ttl})
			f.opIdx = append(f.opIdx, i)
		}
	}
	if len(f.ops) == 1 {
		f.ops[0].Note = c.tier.FillNote(r.space, f.ps[f.opIdx[0]].id)
	}
}

// fill stores f in the shared tier (one batch of conditional fills), drops
// from L1 the values whose conditional fill was refused (they may be older
// than a write), releases the locks of values not stored, and wakes this
// process's waiters for the ids. It reads only what does not change once
// the ids are answered (r.c, r.space and f), so it may run beside r. It
// reports which fills were refused.
func (r *resolution[V]) fill(ctx context.Context, f *filling[V]) (refused []bool) {
	c := r.c
	refused = make([]bool, len(f.ps))
	if c.tier == nil {
		return refused
	}
	r.unlock(ctx, f.release, false)
	for _, i := range f.plain {
		// Without a lock nothing cancels this fill but the epoch: a Set
		// or Delete of this process since the load started must win.
		// (Another process's write can still lose to it: stores without
		// locks have no stale-set protection.)
		p := f.ps[i]
		if !p.ep.changed(&c.gen) {
			c.tier.FillPlain(ctx, r.space, p.id, f.bytes[i], f.ttls[i])
		}
	}
	if len(f.ops) > 0 {
		ok, err := c.tier.Fill(ctx, f.ops)
		var filled []string
		var lost []*pend[V]
		for j, i := range f.opIdx {
			p := f.ps[i]
			switch {
			case ok[j]:
				filled = append(filled, p.id)
			case err == nil:
				c.record(stats.FillLost)
				c.unkeep(p.id, f.entries[i])
				refused[i] = true
			default:
				lost = append(lost, p)
			}
		}
		if len(f.ops) > 1 {
			c.tier.Filled(ctx, r.space, filled)
		}
		// The tier failed: a lock we may hold must not make the others
		// wait for its expiry.
		r.unlock(ctx, lost, false)
	}
	for _, p := range f.ps {
		c.tier.Waiters().Wake(p.id)
	}
	return refused
}

// release releases the locks ps may hold and tells the processes waiting
// for them, even when ctx has ended (the cache is closing), so that they
// load for themselves rather than wait for the locks to expire. Once a call
// of this request to the shared tier failed, it does so in the background.
func (r *resolution[V]) release(ctx context.Context, ps []*pend[V]) {
	r.unlock(ctx, ps, r.failed)
}

// unlock is release, in the background if later is set. fill, which may
// run beside r, calls it rather than release: it must not read r.failed.
func (r *resolution[V]) unlock(ctx context.Context, ps []*pend[V], later bool) {
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
	do := func(ctx context.Context) {
		r.c.tier.Unlock(ctx, reqs)
		r.c.tier.Released(ctx, r.space, ids)
	}
	if later {
		r.later(ctx, do)
		return
	}
	do(context.WithoutCancel(ctx))
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

// Cache.absent's bounds: a score past absentMax says most of the recent
// reads of the shared tier found nothing.
const absentMax = 32

// lockFirst reports whether a miss in L1 should try the key's lock at once
// rather than read the key first: when most recent reads found nothing
// (more than two absent keys for each one found: a cold shared tier, new
// ids), the read would almost always be followed by the lock attempt,
// which reads the key too, so one round trip does both. A key found then
// costs a lock taken and released (after the answer).
func (c *Cache[V]) lockFirst() bool { return c.absent.Load() > 0 }

// readScore is what one call's reads add to Cache.absent: +1 for each key
// found absent, -2 for each found.
type readScore int32

func (s *readScore) note(found bool) {
	if found {
		*s -= 2
	} else {
		*s++
	}
}

// noteReads adds a call's score to Cache.absent (one atomic update per
// call, not per key), kept within ±absentMax: the score then says what the
// last few dozen reads found, and a warm tier turns lockFirst off after
// about a dozen hits.
func (c *Cache[V]) noteReads(s readScore) {
	if s == 0 {
		return
	}
	for {
		v := c.absent.Load()
		n := min(max(v+int32(s), -absentMax), absentMax)
		if n == v || c.absent.CompareAndSwap(v, n) {
			return
		}
	}
}
