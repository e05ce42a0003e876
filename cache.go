package tiercache

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/tiercache/tiercache/codec"
	"github.com/tiercache/tiercache/driver"
	"github.com/tiercache/tiercache/internal/breaker"
	"github.com/tiercache/tiercache/internal/fleet"
	"github.com/tiercache/tiercache/internal/flight"
	"github.com/tiercache/tiercache/internal/keys"
	"github.com/tiercache/tiercache/stats"
)

// LoaderFunc loads the value of id from the origin. It returns ErrNotFound
// (or an error wrapping it) when the value does not exist. Its context is
// detached from the cancellation of any one caller, keeps the values of the
// caller that started the load, and is bounded by Options.Rebuild.LoadTimeout.
type LoaderFunc[V any] func(ctx context.Context, id string) (V, error)

// Cache is a two-tier cache-aside cache of values of type V: an in-process
// tier (L1) in front of an optional shared tier (L2, a Store such as Redis)
// in front of the origin, which a LoaderFunc reads.
//
// A Cache is safe for concurrent use. Create it with New and stop it with
// Close.
type Cache[V any] struct {
	cfg   *config[V]
	l1    *otter.Cache[string, *entry[V]]
	codec codec.Codec[V]
	tier  *fleet.Tier // nil: in-process only
	base  *keys.Space // the keyspace without a store
	locks bool        // the store takes rebuild locks
	// absent scores the recent reads of the shared tier: up by one for a
	// key found absent, down by two for one found (see lockFirst).
	absent atomic.Int32

	loads   flight.Group[fetched[V]] // one miss per id at a time; owns the cache's goroutines
	loaders flight.Runner            // the loader calls

	// Without a shared tier (see inprocess.go): the goroutines that run
	// loads, what leaders wait with, and the loads abandoned still running.
	inPool      flight.Pool[*inCall[V]]
	leaderWaits sync.Pool
	inAbandoned atomic.Int64

	counter  *stats.Counter
	recorder stats.Recorder // user's, or nil
	logger   *slog.Logger   // nil: silent
	// observed is set when a Recorder or a Get hook wants every request
	// measured: the L1 hit path reads this one flag instead of both.
	observed bool

	coarse  *otter.CoarseClock // the clock, unless testNow is set
	testNow func() time.Time

	// Invalidation epochs: a load notes the epoch of its id's stripe (and
	// the global generation) before it reads the keyspace, and does not keep
	// its result in L1 if a write, a message or a flush bumped them since.
	seed   maphash.Seed
	epochs [epochStripes]atomic.Uint64
	gen    atomic.Uint64

	// l1First is set while L1 may answer before L2: its copies cannot have
	// missed an invalidation (the subscription is up, or there are no
	// messages) and the cache is not closed. It is the one flag the L1 hit
	// path reads.
	l1First atomic.Bool
	trusted atomic.Bool

	refreshSem chan struct{}
	loading    chan struct{} // a place per load running (MaxLoads)
	closed     atomic.Bool
	// oversizeLogged is set once a too-large value has been logged.
	oversizeLogged atomic.Bool
	closeOnce      sync.Once

	// evicted counts evictions not yet passed to the Recorder.
	evicted atomic.Int64
}

const epochStripes = 1024

// maxInitialCapacity caps the L1 hash table allocated up front; a larger L1
// grows to its bound as it fills.
const maxInitialCapacity = 1 << 16

// maxAbandoned bounds the loader calls still running past LoadTimeout
// (loaders that ignore their context); past it loads fail at once.
const maxAbandoned = 128

// closeGrace is how long Close waits for loaders to return after cancelling
// their contexts; loaders that ignore it are abandoned.
const closeGrace = time.Second

// New returns a Cache configured by o, or an error wrapping
// ErrInvalidOptions if o cannot be used. It does no I/O: the shared tier is
// first used by the first request, and the cache's goroutines (its
// subscription, its maintenance) start in the background.
func New[V any](o *Options[V]) (*Cache[V], error) {
	cfg, err := o.resolve()
	if err != nil {
		return nil, err
	}
	if err := cfg.checkPlain(); err != nil {
		return nil, err
	}
	c := &Cache[V]{
		cfg:      cfg,
		codec:    cfg.Codec,
		counter:  stats.NewCounter(),
		recorder: cfg.Recorder,
		logger:   cfg.Logger,
		observed: cfg.Recorder != nil || cfg.Hooks.Get != nil,
		seed:     maphash.MakeSeed(),
		base:     keys.NewSpace(cfg.Prefix, cfg.Keyspace.Version, cfg.Keyspace.Name, 0),
	}
	c.loaders.Limit = maxAbandoned
	c.inPool.Run = c.runInProcess
	c.leaderWaits.New = newLeaderWait
	l1 := &otter.Options[string, *entry[V]]{
		MaximumSize:     cfg.L1Size,
		InitialCapacity: min(cfg.L1Size, maxInitialCapacity),
		// Maintenance (admission, eviction, the frequency sketch) runs on
		// the goroutine that triggers it, as otter's simulator runs it:
		// with otter's default executor it runs on goroutines of its own,
		// reads are dropped while one is pending and L1 outgrows its bound
		// until it runs, which cost up to 17 points of hit ratio on public
		// traces (docs/architecture.md, "L1").
		Executor: func(f func()) { f() },
		// Evictions are counted as part of otter's eviction (under its
		// lock): a listener on the executor costs an allocation each.
		OnAtomicDeletion: func(e otter.DeletionEvent[string, *entry[V]]) {
			if e.Cause == otter.CauseOverflow {
				c.counter.RecordEvent(stats.Eviction)
				if c.recorder != nil {
					c.evicted.Add(1) // forwarded by putIf, outside the locks
				}
			}
		},
	}
	if w := cfg.L1Weigher; w != nil {
		l1.MaximumWeight = cfg.L1MaxWeight
		l1.Weigher = func(id string, e *entry[V]) uint32 {
			if e.negative {
				return 1
			}
			return max(w(id, e.value), 1)
		}
	}
	c.l1, err = otter.New(l1)
	if err != nil {
		return nil, fmt.Errorf("%w: L1: %w", ErrInvalidOptions, err)
	}
	c.testNow = cfg.now
	if c.testNow == nil {
		c.coarse = otter.NewCoarseClock(clockResolution)
	}
	c.trust(true)
	c.refreshSem = make(chan struct{}, maxRefreshes)
	c.loading = make(chan struct{}, cfg.MaxLoads)
	if cfg.Store != nil {
		c.tier = fleet.New(fleet.Config{
			Store: cfg.Store, Prefix: cfg.Prefix, Version: cfg.Keyspace.Version, Name: cfg.Keyspace.Name,
			Local: (*local[V])(c), Messages: true, Tracking: cfg.Tracking,
			Breaker:   breaker.Config{MinFailures: cfg.Breaker.Failures},
			NoBreaker: cfg.Breaker.Failures == 0, Cooldown: cfg.Breaker.Cooldown, ForwardWindow: cfg.L1TTL,
			Now: c.now, Logger: cfg.Logger, Record: c.record,
		})
		c.locks = c.tier.Capabilities().Locks
		c.logCapabilities(c.tier.Capabilities())
		c.tier.Start()
	}
	return c, nil
}

// logCapabilities says, once, what the shared tier can do.
func (c *Cache[V]) logCapabilities(caps driver.Capabilities) {
	if c.logger == nil {
		return
	}
	var can, cannot []string
	for _, f := range []struct {
		ok   bool
		name string
	}{{caps.Locks, "rebuild locks"}, {caps.Messages, "invalidation messages"}, {caps.Generations, "runtime versions"}} {
		if f.ok {
			can = append(can, f.name)
		} else {
			cannot = append(cannot, f.name)
		}
	}
	attrs := []slog.Attr{slog.String("keyspace", c.cfg.Keyspace.Name), slog.String("shared_tier", strings.Join(can, ", "))}
	if len(cannot) > 0 {
		attrs = append(attrs, slog.String("without", strings.Join(cannot, ", ")))
	}
	if caps.Messages {
		attrs = append(attrs, slog.Duration("invalidation_bound", caps.NotifyBound))
	}
	c.logger.LogAttrs(context.Background(), slog.LevelInfo, "tiercache: cache ready", attrs...)
}

// clockResolution is how often the cache reads the time. Reading the precise
// time costs about as much as an L1 hit; a coarse clock costs an atomic load,
// and expiry times are only this much less exact.
const clockResolution = time.Millisecond

// Close stops every goroutine the cache started: loads in flight and
// background refreshes are cancelled and waited for, as are the
// subscription and the maintenance loop. A loader that ignores its
// context is waited for at most a second, then abandoned (its result is
// dropped), so Close returns within about a second plus one shared-tier
// timeout. After Close the cache's methods return ErrClosed. Close never
// fails; it returns an error only to satisfy io.Closer.
func (c *Cache[V]) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.l1First.Store(false)
		c.loads.Close()
		if c.tier != nil {
			c.tier.Close()
		}
		graceEnd := time.Now().Add(closeGrace)
		c.loaders.Wait(closeGrace)
		c.inPool.Close(time.Until(graceEnd))
		if c.coarse != nil {
			c.coarse.Stop()
		}
		c.l1.StopAllGoroutines()
	})
	return nil
}

// Ready waits until the cache's shared tier has answered: the runtime
// version of the keyspace read and the invalidation subscription up. New
// does no I/O, and a cache answers before it is ready (its first requests
// read the shared tier first, and load from the origin if it is down);
// Ready is for readiness checks at startup, and for tests. It returns ctx's
// error if ctx ends first, and nil at once for a cache without a Store.
func (c *Cache[V]) Ready(ctx context.Context) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if c.tier == nil {
		return nil
	}
	if err := c.tier.WaitSettled(ctx); err != nil {
		if c.closed.Load() {
			return ErrClosed
		}
		return fmt.Errorf("tiercache: shared tier not ready: %w", err)
	}
	// The subscription's Up also makes L1 trusted; Up runs it first.
	return nil
}

// Stats returns the cache's counters.
func (c *Cache[V]) Stats() stats.Snapshot {
	s := c.counter.Snapshot()
	s.L1Size = c.l1.EstimatedSize()
	if c.tier != nil {
		s.Breaker = c.tier.Breaker()
	}
	return s
}

// Keyspace returns the keyspace in effect: Options.Keyspace, with the
// version a runtime bump set, if any.
func (c *Cache[V]) Keyspace() Keyspace {
	return Keyspace{Name: c.cfg.Keyspace.Name, Version: c.space().Version}
}

// Key returns the shared-tier key of id, e.g. "v1:user:42".
func (c *Cache[V]) Key(id string) string { return c.space().Key(id) }

func (c *Cache[V]) space() *keys.Space {
	if c.tier != nil {
		return c.tier.Space()
	}
	return c.base
}

// now returns the time, in unix nanoseconds, of the cache's clock.
func (c *Cache[V]) now() int64 {
	if c.testNow != nil {
		return c.testNow().UnixNano()
	}
	return c.coarse.NowNano()
}

// local is the Cache as its fleet.Tier sees it.
type local[V any] Cache[V]

func (l *local[V]) Invalidate(id string) bool {
	c := (*Cache[V])(l)
	_, held := c.l1.GetIfPresent(id)
	c.invalidate(id)
	return held
}

func (l *local[V]) Flush() { (*Cache[V])(l).flushL1() }

func (l *local[V]) Trust(trusted bool) { (*Cache[V])(l).trust(trusted) }

// trust records whether L1 may have missed invalidations.
func (c *Cache[V]) trust(trusted bool) {
	c.trusted.Store(trusted)
	c.l1First.Store(trusted && !c.closed.Load())
}

// epoch is what a load notes before it starts; see Cache.epochs.
type epoch struct {
	stripe *atomic.Uint64
	at     uint64
	gen    uint64
}

func (c *Cache[V]) epochOf(id string) epoch {
	s := &c.epochs[maphash.String(c.seed, id)%epochStripes]
	return epoch{stripe: s, at: s.Load(), gen: c.gen.Load()}
}

func (ep epoch) changed(gen *atomic.Uint64) bool {
	return ep.stripe.Load() != ep.at || gen.Load() != ep.gen
}

// unkeep drops id from L1 if it still holds e.
func (c *Cache[V]) unkeep(id string, e *entry[V]) {
	c.l1.Compute(id, func(cur *entry[V], found bool) (*entry[V], otter.ComputeOp) {
		if found && cur == e {
			return nil, otter.InvalidateOp
		}
		return cur, otter.CancelOp
	})
}

// put inserts e in L1 under id.
func (c *Cache[V]) put(id string, e *entry[V]) { c.putIf(id, e, nil) }

// putIf is put, unless ep is given and id was invalidated since it was
// noted.
//
// The check and the insertion are one step under the lock of id's bucket
// in otter's table (Compute), and an invalidation bumps id's epoch before
// it deletes id under the same lock: an insertion that checked before the
// bump is deleted after it, one that checks after sees the bump. So a value
// read before a write never enters L1 after the write has dropped id.
//
// otter runs its maintenance (eviction) on the goroutine that inserts
// unless another holds its maintenance lock; an insertion that finds L1
// over its bound by more than a 1024th then runs the maintenance itself
// (CleanUp), so L1 is over its bound by at most that and the insertions in
// progress at that moment, for anyone who looks.
func (c *Cache[V]) putIf(id string, e *entry[V], ep *epoch) {
	if ep == nil {
		c.l1.Set(id, e)
	} else {
		c.l1.Compute(id, func(cur *entry[V], found bool) (*entry[V], otter.ComputeOp) {
			if ep.changed(&c.gen) {
				return cur, otter.CancelOp
			}
			return e, otter.WriteOp
		})
	}
	if c.overBound() {
		c.l1.CleanUp()
	}
	c.forwardEvictions()
}

// forwardEvictions passes the evictions counted during L1's maintenance
// to the Recorder, outside every lock (a Recorder may call the cache).
func (c *Cache[V]) forwardEvictions() {
	if c.recorder == nil {
		return
	}
	for n := c.evicted.Swap(0); n > 0; n-- {
		c.recorder.RecordEvent(stats.Eviction)
	}
}

// overBound reports whether L1 is over its bound by more than a
// 1024th: otter leaves the writes made while another goroutine runs its
// maintenance for the next read or write to apply, and running it at once
// on every such insertion (CleanUp waits for that goroutine) made
// insertions queue behind each other.
func (c *Cache[V]) overBound() bool {
	if c.cfg.L1MaxWeight > 0 {
		return c.l1.WeightedSize() > c.cfg.L1MaxWeight+c.cfg.L1MaxWeight/1024
	}
	return c.l1.EstimatedSize() > c.cfg.L1Size+c.cfg.L1Size/1024
}

// invalidate drops id from L1, makes loads in flight for it leave L1 alone,
// and makes later callers start a new load rather than share one that may
// have read an older value.
func (c *Cache[V]) invalidate(id string) {
	c.epochs[maphash.String(c.seed, id)%epochStripes].Add(1) // before the delete: see putIf
	c.loads.Forget(id)
	c.l1.Invalidate(id)
}

// flushL1 is invalidate for every id.
func (c *Cache[V]) flushL1() {
	c.gen.Add(1) // before the deletes: see putIf
	c.loads.ForgetAll()
	c.l1.InvalidateAll()
}

func (c *Cache[V]) record(e stats.Event) {
	c.counter.RecordEvent(e)
	if c.recorder != nil {
		c.recorder.RecordEvent(e)
	}
}

// jitter spreads d by ±cfg.Jitter.
func (c *Cache[V]) jitter(d time.Duration) time.Duration {
	j := c.cfg.Jitter
	if j == 0 || d <= 0 {
		return d
	}
	return time.Duration(float64(d) * (1 - j + 2*j*rand.Float64()))
}

// errorsIsContext reports whether err comes from a context ending.
func errorsIsContext(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
