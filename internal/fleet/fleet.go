// Package fleet is the part of a tiercache cache that deals with the shared
// tier and the other processes using it, without knowing the cache's value
// type: the circuit breaker and batching in front of the store, lock
// tokens, the keyspace's messages and its subscription, the tracking of
// its keys by the store (see tracking.go), the processes
// waiting for a rebuild, the runtime generation, and the writes left to
// finish after a failure.
//
// A Tier is the cache's view of the fleet. It calls back into the cache
// (Local) to drop, flush and trust or distrust its in-process copies; the
// cache calls it for every shared-tier operation. All of it is safe for
// concurrent use.
package fleet

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tiercache/tiercache/driver"
	"github.com/tiercache/tiercache/internal/breaker"
	"github.com/tiercache/tiercache/internal/keys"
	"github.com/tiercache/tiercache/stats"
)

// ErrBreakerOpen is what a call returns, without calling the store, while
// the circuit breaker is open.
var ErrBreakerOpen = errors.New("tiercache: circuit breaker open")

// errNoGeneration is what a call returns when the keyspace's runtime
// generation is not known yet (the shared tier has not answered since the
// process started or its subscription was lost): the keys to use are not
// known.
var errNoGeneration = errors.New("tiercache: runtime version of the keyspace not known yet")

var errClosed = errors.New("tiercache: closed")

// Local is what the fleet needs of a cache's in-process tier.
type Local interface {
	// Invalidate drops id's copy and stops loads in flight from keeping an
	// older value; it reports whether a copy was held.
	Invalidate(id string) bool
	// Flush is Invalidate for every id.
	Flush()
	// Trust says whether in-process copies may answer before the shared
	// tier: false while messages may be missed.
	Trust(trusted bool)
}

// Config configures a Tier.
type Config struct {
	Store                 driver.Store
	Prefix, Version, Name string // checked by the caller
	Local                 Local
	// Messages turns on the keyspace's messages (if the store carries
	// them): invalidations, wake-ups and version hints.
	Messages bool
	// Breaker configures the circuit breaker; NoBreaker turns it off. While
	// it is open, the tier probes the store every Cooldown in the
	// background, and closes it when a probe succeeds.
	Breaker   breaker.Config
	NoBreaker bool
	Cooldown  time.Duration
	// Tracking turns on server-assisted invalidation (if the store can):
	// the store reports every change of the keyspace's keys, by any client.
	Tracking bool
	// ForwardWindow is how long after a switch to a new generation this
	// process carries writes announced under the previous one over to the
	// new keys (Options.L1.TTL: no copy made before the switch outlives it).
	ForwardWindow time.Duration
	// Now is the cache's clock, in unix nanoseconds.
	Now    func() int64
	Logger *slog.Logger
	Record func(stats.Event)
}

// Tier is a cache's view of the shared tier and the fleet. Create it with
// New, start it with Start and stop it with Close.
type Tier struct {
	cfg      Config
	store    driver.Store
	caps     driver.Capabilities
	brk      *breaker.Breaker
	instance string // identifies this process's messages
	channel  string
	verKey   string

	space     atomic.Pointer[keys.Space]
	known     atomic.Bool  // the generation in space is confirmed by the store
	everKnown atomic.Bool  // it has been once: a later move is a switch
	prevGen   atomic.Int64 // the generation before the last switch
	switched  atomic.Int64 // when it happened, cache clock
	genMu     sync.Mutex   // serializes switches
	roundMu   sync.Mutex
	round     chan struct{} // closed when the next generation sync ends
	hint      chan struct{} // asks the maintenance goroutine to sync now

	waiters Waiters
	pending pending
	stuck   stuckLocks // releases that failed, retried (see stuck.go)
	// recent are the writes of this process since its generation was last
	// confirmed after they were done: if it turns out to have moved, they
	// may have gone to the old keys, and are carried over to the new.
	recentMu sync.Mutex
	recent   []*write
	kick     chan struct{} // asks the maintenance goroutine to repair now
	acks     atomic.Pointer[ackWait]
	up       atomic.Bool  // the subscription is up
	lost     atomic.Bool  // its loss was logged, its return not yet
	lostAt   atomic.Int64 // when, cache clock
	upMu     sync.Mutex
	upCh     chan struct{} // closed at the next Up (of either channel)
	opened   chan struct{} // signalled when the breaker opens
	trustMu  sync.Mutex    // serializes the computation and setting of trust

	trackState  atomic.Int32 // trackOff, trackPending, trackOn
	trackUp     atomic.Bool  // the tracking is up
	trackLost   atomic.Bool  // its loss was logged, its return not yet
	trackLostAt atomic.Int64
	trackLogged atomic.Bool // whether tracking is used was logged
	trackWasOn  atomic.Bool
	own         own           // this process's writes in flight, for the tracking
	ownSem      chan struct{} // bounds the checks of own writes
	trackMu     sync.Mutex
	trackStop   context.CancelFunc // ends the tracking of the current generation

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a Tier on cfg.Store. It does no I/O.
func New(cfg Config) *Tier {
	t := &Tier{
		cfg:      cfg,
		store:    cfg.Store,
		caps:     cfg.Store.Capabilities(),
		instance: driver.NewToken()[:16],
		channel:  keys.Channel(cfg.Prefix, cfg.Name),
		verKey:   keys.Version(cfg.Prefix, cfg.Name),
		round:    make(chan struct{}),
		hint:     make(chan struct{}, 1),
		kick:     make(chan struct{}, 1),
		upCh:     make(chan struct{}),
		opened:   make(chan struct{}, 1),
		ownSem:   make(chan struct{}, maxOwnChecks),
	}
	if !cfg.Messages {
		t.caps.Messages = false
	}
	if !cfg.NoBreaker {
		t.brk = breaker.New(cfg.Breaker, t.breakerChanged)
	}
	t.pending.limit = maxPending
	t.space.Store(keys.NewSpace(cfg.Prefix, cfg.Version, cfg.Name, 0))
	t.known.Store(!t.caps.Generations)
	t.ctx, t.cancel = context.WithCancel(context.Background())
	return t
}

// Capabilities returns what the store can do (Messages off if the cache
// turned them off).
func (t *Tier) Capabilities() driver.Capabilities { return t.caps }

// Start starts the goroutines the tier owns: the subscription to the
// keyspace's channel, the tracking of its keys, and the maintenance loop
// (generation syncs, repairs). Until the subscription and the tracking are
// up the cache's copies are not trusted.
func (t *Tier) Start() {
	if t.caps.Tracking && t.cfg.Tracking {
		t.trackState.Store(trackPending)
		t.wg.Go(t.track)
	}
	t.retrust()
	t.wg.Go(t.maintain)
	if t.brk != nil {
		t.wg.Go(t.probe)
	}
	if t.caps.Messages {
		t.wg.Go(func() {
			err := t.store.Subscribe(t.ctx, t.channel, handler{t})
			if err != nil && t.ctx.Err() == nil {
				t.warn(t.ctx, "tiercache: invalidation subscription ended", t.channel, err)
			}
		})
	}
}

// Close stops the tier's goroutines and waits for them; calls in flight
// end with their contexts.
func (t *Tier) Close() {
	t.cancel()
	t.wg.Wait()
}

// Space returns the keyspace in effect.
func (t *Tier) Space() *keys.Space { return t.space.Load() }

// Down reports whether the breaker is not closed: the tier is failing, and
// in-process copies answer even if messages may have been missed.
func (t *Tier) Down() bool {
	return t.brk != nil && t.brk.State() != breaker.Closed
}

// Breaker returns the state of the breaker, "closed" if there is none.
func (t *Tier) Breaker() string {
	if t.brk == nil {
		return breaker.Closed.String()
	}
	return t.brk.State().String()
}

// settled reports whether the tier is in its steady state: the generation
// read, and the subscription and the tracking up if there are.
func (t *Tier) settled() bool {
	return t.known.Load() && t.listening()
}

// WaitSettled waits until the tier is settled or ctx ends.
func (t *Tier) WaitSettled(ctx context.Context) error {
	for !t.settled() {
		t.upMu.Lock()
		up := t.upCh
		t.upMu.Unlock()
		t.roundMu.Lock()
		round := t.round
		t.roundMu.Unlock()
		if t.settled() {
			break
		}
		if !t.known.Load() {
			t.syncSoon()
		}
		// Not again at once if the read fails (a Redis down fails it at
		// once): the next round, or a pause between asks.
		pause := time.NewTimer(t.syncEvery() / 10)
		select {
		case <-up:
		case <-round:
			select {
			case <-pause.C:
			case <-up:
			case <-ctx.Done():
			case <-t.ctx.Done():
			}
		case <-ctx.Done():
		case <-t.ctx.Done():
		}
		pause.Stop()
		switch {
		case t.ctx.Err() != nil:
			return errClosed
		case ctx.Err() != nil:
			return context.Cause(ctx)
		}
	}
	return nil
}

// call runs one call to the store through the circuit breaker, and counts
// its failure. A failure caused by ctx ending is the caller's, not the
// tier's: it does not count against the breaker. A store found unreachable
// (driver.ErrUnreachable: its connection refused) opens the breaker at once.
func (t *Tier) call(ctx context.Context, fn func(context.Context) error) error {
	if t.brk != nil && !t.brk.Allow() {
		t.cfg.Record(stats.L2Error)
		return ErrBreakerOpen
	}
	err := fn(ctx)
	if t.brk != nil {
		switch {
		case err == nil:
			t.brk.Success(t.cfg.Now())
		case errors.Is(err, driver.ErrUnreachable):
			t.brk.Trip()
		case ctx.Err() == nil:
			t.brk.Failure(t.cfg.Now())
		}
	}
	if err != nil {
		t.cfg.Record(stats.L2Error)
	}
	return err
}

// probe runs while the tier does: each time the breaker opens, it probes
// the store every Cooldown, in the background, until a probe succeeds and
// closes it. No request waits for a probe: while the breaker is not closed,
// requests skip the tier. The probe is a read of the keyspace's version key
// (a GET for redisstore), the cheapest call every store has, which the
// least-privilege ACL allows.
func (t *Tier) probe() {
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-t.opened:
		}
		timer := time.NewTimer(t.cfg.Cooldown)
		for t.brk.State() == breaker.Open {
			timer.Reset(t.cfg.Cooldown)
			select {
			case <-t.ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
			if !t.brk.Probe() {
				break
			}
			_, err := t.store.Get(t.ctx, []string{t.verKey})
			if t.ctx.Err() != nil {
				return
			}
			t.brk.Probed(err == nil)
		}
		timer.Stop()
	}
}

// chunks calls fn with [lo, hi) ranges of at most driver.MaxBatch of n
// items, in order, and stops at the first error.
func chunks(n int, fn func(lo, hi int) error) error {
	for lo := 0; lo < n; lo += driver.MaxBatch {
		if err := fn(lo, min(lo+driver.MaxBatch, n)); err != nil {
			return err
		}
	}
	return nil
}

// Get reads keys, driver.MaxBatch per call.
func (t *Tier) Get(ctx context.Context, ks []string) ([][]byte, error) {
	if len(ks) <= driver.MaxBatch {
		var out [][]byte
		err := t.call(ctx, func(ctx context.Context) (err error) {
			out, err = t.store.Get(ctx, ks)
			return err
		})
		return out, err
	}
	out := make([][]byte, 0, len(ks))
	err := chunks(len(ks), func(lo, hi int) error {
		return t.call(ctx, func(ctx context.Context) error {
			bs, err := t.store.Get(ctx, ks[lo:hi])
			out = append(out, bs...)
			return err
		})
	})
	return out, err
}

// Lock takes rebuild locks for ttl, driver.MaxBatch per call, and counts
// them.
func (t *Tier) Lock(ctx context.Context, reqs []driver.LockRequest, ttl time.Duration) ([]driver.LockResult, error) {
	out := make([]driver.LockResult, 0, len(reqs))
	err := chunks(len(reqs), func(lo, hi int) error {
		return t.call(ctx, func(ctx context.Context) error {
			rs, err := t.store.Lock(ctx, reqs[lo:hi], ttl)
			out = append(out, rs...)
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	for _, r := range out {
		switch {
		case r.Repaired:
			t.cfg.Record(stats.LockRepaired)
			t.cfg.Record(stats.LockAcquired)
		case r.Acquired:
			t.cfg.Record(stats.LockAcquired)
		default:
			t.cfg.Record(stats.LockContended)
		}
	}
	return out, nil
}

// Fill runs conditional fills, driver.MaxBatch per call. stored is as long
// as ops even on error (false past the failure).
func (t *Tier) Fill(ctx context.Context, ops []driver.FillOp) ([]bool, error) {
	for _, op := range ops {
		t.wrote(op.Key, op.Value)
	}
	stored := make([]bool, 0, len(ops))
	err := chunks(len(ops), func(lo, hi int) error {
		return t.call(ctx, func(ctx context.Context) error {
			s, err := t.store.Fill(ctx, ops[lo:hi])
			stored = append(stored, s...)
			return err
		})
	})
	stored = append(stored, make([]bool, len(ops)-len(stored))...)
	for i, op := range ops {
		if !stored[i] {
			t.own.failed(op.Key, op.Value)
		}
	}
	return stored, err
}

// Unlock releases locks; the ones it could not release are retried by
// the maintenance loop (see stuck.go).
func (t *Tier) Unlock(ctx context.Context, reqs []driver.LockRequest) {
	_ = chunks(len(reqs), func(lo, hi int) error {
		err := t.call(ctx, func(ctx context.Context) error { return t.store.Unlock(ctx, reqs[lo:hi]) })
		if err != nil && t.ctx.Err() == nil {
			t.stuck.add(reqs[lo:hi], t.cfg.Now())
			t.repairSoon()
		}
		return nil // the other chunks are released all the same
	})
}

// write is a Set or Delete of ids in progress or recently done (see
// Tier.recent).
type write struct {
	ids  []string
	done bool // guarded by Tier.recentMu
}

// begin records a write of ids before the keyspace to write them in is
// read, so that a switch from then on carries them over (switchTo carries
// and swaps the keyspace under recentMu: a write recorded after a carry
// reads the new keyspace).
func (t *Tier) begin(ids []string) *write {
	w := &write{ids: slices.Clone(ids)} // the caller may reuse its slice
	if t.caps.Generations {
		t.recentMu.Lock()
		t.recent = append(t.recent, w)
		t.recentMu.Unlock()
	}
	return w
}

// end marks w done; ids it could not write are left pending.
func (t *Tier) end(w *write, failed []string) {
	if len(failed) > 0 {
		t.markPending(failed)
	}
	t.recentMu.Lock()
	w.done = true
	t.recentMu.Unlock()
}

// Set stores the value encode returns (given the key) under the key of id
// for ttl, cancels rebuilds of it and announces the write. If encode fails,
// it deletes the key instead (the value it replaces must not be served) and
// returns the deletion's error. On a failure of the store the id is left for
// the maintenance loop to delete (see Pending), and the error returned.
func (t *Tier) Set(ctx context.Context, id string, encode func(key string) ([]byte, error), ttl time.Duration) error {
	w := t.begin([]string{id})
	space, ok := t.Ready(ctx)
	if !ok {
		t.end(w, w.ids)
		return errNoGeneration
	}
	value, err := encode(space.Key(id))
	if err != nil {
		err := t.del(ctx, space, w.ids)
		t.end(w, nil) // del left the id pending if it failed
		return err
	}
	t.wrote(space.Key(id), value)
	err = t.call(ctx, func(ctx context.Context) error {
		return t.store.Set(ctx, space.Key(id), value, ttl, t.note(opWrite, space, id))
	})
	if err != nil {
		t.own.failed(space.Key(id), value)
		t.end(w, w.ids)
		return err
	}
	t.end(w, nil)
	return nil
}

// FillPlain stores a loaded value under the key of id in space without a
// lock (for a store that has none) and announces the fill.
func (t *Tier) FillPlain(ctx context.Context, space *keys.Space, id string, value []byte, ttl time.Duration) error {
	t.wrote(space.Key(id), value)
	err := t.call(ctx, func(ctx context.Context) error {
		return t.store.Set(ctx, space.Key(id), value, ttl, t.note(opFill, space, id))
	})
	if err != nil {
		t.own.failed(space.Key(id), value)
	}
	return err
}

// Delete deletes the keys of ids, cancels rebuilds of them and announces
// it. On failure the ids not known deleted are left for the maintenance
// loop (see Pending), and the error returned.
func (t *Tier) Delete(ctx context.Context, ids []string) error {
	w := t.begin(ids)
	space, ok := t.Ready(ctx)
	if !ok {
		t.end(w, ids)
		return errNoGeneration
	}
	err := t.del(ctx, space, ids)
	t.end(w, nil) // del left the ids not deleted pending
	return err
}

// del deletes and announces the keys of ids in space, driver.MaxBatch per
// call; on failure the ids not known deleted are left pending.
func (t *Tier) del(ctx context.Context, space *keys.Space, ids []string) error {
	done := 0
	err := chunks(len(ids), func(lo, hi int) error {
		err := t.call(ctx, func(ctx context.Context) error {
			return t.store.Delete(ctx, keysOf(space, ids[lo:hi]), t.note(opWrite, space, ids[lo:hi]...))
		})
		if err == nil {
			done = hi
		}
		return err
	})
	if err != nil {
		t.markPending(ids[done:])
	}
	return err
}

func keysOf(space *keys.Space, ids []string) []string {
	ks := make([]string, len(ids))
	for i, id := range ids {
		ks[i] = space.Key(id)
	}
	return ks
}

// Pending reports whether id has a write this process could not complete
// in the shared tier: until the maintenance loop has, the shared tier may
// hold a value older than the write, and the cache must not read it there.
func (t *Tier) Pending(id string) bool { return t.pending.has(id) }

// Waiters returns the processes's registry of waits for rebuilds.
func (t *Tier) Waiters() *Waiters { return &t.waiters }

// breakerChanged logs an outage once: when the breaker opens from closed
// (Warn) and when it closes again (Info); the probes in between are Debug.
func (t *Tier) breakerChanged(from, to breaker.State) {
	switch to {
	case breaker.Open:
		select {
		case t.opened <- struct{}{}:
		default:
		}
	case breaker.Closed:
		// Writes and releases that failed while it was open are retried
		// now rather than after the repair loop's backoff.
		t.repairSoon()
	}
	if t.cfg.Logger == nil {
		return
	}
	level := slog.LevelDebug
	switch {
	case from == breaker.Closed && to == breaker.Open:
		level = slog.LevelWarn
	case to == breaker.Closed:
		level = slog.LevelInfo
	}
	t.cfg.Logger.LogAttrs(context.Background(), level, "tiercache: shared tier circuit breaker "+to.String(),
		slog.String("keyspace", t.cfg.Name), slog.String("from", from.String()), slog.String("to", to.String()))
}

// warn logs a degradation at Warn with the key and cause.
func (t *Tier) warn(ctx context.Context, msg, key string, err error) {
	if l := t.cfg.Logger; l != nil && l.Enabled(ctx, slog.LevelWarn) {
		l.LogAttrs(ctx, slog.LevelWarn, msg, slog.String("cache_key", key), slog.String("err", err.Error()))
	}
}

func (t *Tier) info(msg string, attrs ...slog.Attr) {
	if l := t.cfg.Logger; l != nil {
		l.LogAttrs(t.ctx, slog.LevelInfo, msg, append(attrs, slog.String("keyspace", t.cfg.Name))...)
	}
}
