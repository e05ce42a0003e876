package tiercache

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/tiercache/tiercache/internal/breaker"
	"github.com/tiercache/tiercache/internal/flight"
	"github.com/tiercache/tiercache/stats"
)

// LoaderFunc loads the value of id from the origin. It returns ErrNotFound
// (or an error wrapping it) when the value does not exist. Its context is
// detached from the cancellation of any one caller, keeps the values of the
// caller that started the load, and is bounded by Options.LoadTimeout.
type LoaderFunc[V any] func(ctx context.Context, id string) (V, error)

// Cache is a two-tier cache-aside cache of values of type V: an in-process
// tier (L1) in front of an optional shared tier (L2, a Store such as Redis)
// in front of the origin, which a LoaderFunc reads.
//
// A Cache is safe for concurrent use. Create it with New and stop it with
// Close.
type Cache[V any] struct {
	cfg    *config[V]
	l1     *otter.Cache[string, *entry[V]]
	codec  Codec[V]
	store  Store       // nil: in-process only
	locker Locker      // nil: no fleet-wide rebuild lock
	bcast  Broadcaster // nil: no invalidation messages
	multi  MultiGetter // nil: GetMany reads L2 one key at a time
	brk    *breaker.Breaker

	loads flight.Group[fetched[V]]

	counter  *stats.Counter
	recorder stats.Recorder // user's, or nil
	logger   *slog.Logger   // nil: silent
	// observed is set when a Recorder or a Get hook wants every request
	// measured: the L1 hit path reads this one flag instead of both.
	observed bool

	coarse  *otter.CoarseClock // the clock, unless testNow is set
	testNow func() time.Time

	ks       atomic.Pointer[keyspace]
	genMu    sync.Mutex // serializes version switches (useGeneration)
	instance string     // identifies this cache in broadcast messages
	channel  string

	// Invalidation epochs: a load notes the epoch of its id's stripe (and
	// the global generation) before it starts, and does not keep its result
	// in L1 if a Set, Delete or flush bumped them meanwhile.
	seed   maphash.Seed
	epochs [epochStripes]atomic.Uint64
	gen    atomic.Uint64

	// l1Trusted is false while the invalidation subscription is down: L1
	// then does not answer before L2 (it still does when L2 fails).
	l1Trusted atomic.Bool
	// l1First is l1Trusted and not closed: the one flag the L1 hit path
	// reads.
	l1First atomic.Bool

	waiters waiters

	refreshSem chan struct{}
	bg         sync.WaitGroup // refreshes and the subscription
	bgCtx      context.Context
	stopBg     context.CancelFunc
	closed     atomic.Bool
	// oversizeLogged is set once a too-large value has been logged.
	oversizeLogged atomic.Bool
	closeOnce      sync.Once
}

const epochStripes = 1024

// keyspace is the key prefix in effect: Prefix + Version + ":" + Name + ":",
// Version carrying the runtime generation, if any.
type keyspace struct {
	gen     int64
	version string
	prefix  string
}

func (k *keyspace) key(id string) string { return k.prefix + id }

// New returns a Cache configured by o, or an error wrapping
// ErrInvalidOptions if o cannot be used.
func New[V any](o *Options[V]) (*Cache[V], error) {
	cfg, err := o.resolve()
	if err != nil {
		return nil, err
	}
	c := &Cache[V]{
		cfg:      cfg,
		codec:    cfg.Codec,
		store:    cfg.Store,
		counter:  stats.NewCounter(),
		recorder: cfg.Recorder,
		logger:   cfg.Logger,
		observed: cfg.Recorder != nil || cfg.Hooks.Get != nil,
		seed:     maphash.MakeSeed(),
		instance: newToken(),
		channel:  channelOf(cfg.Prefix, cfg.Keyspace.Name),
	}
	l1 := &otter.Options[string, *entry[V]]{
		MaximumSize: cfg.L1Size,
		OnDeletion: func(e otter.DeletionEvent[string, *entry[V]]) {
			if e.Cause == otter.CauseOverflow {
				c.record(stats.Eviction)
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
	c.ks.Store(c.newKeyspace(0))
	c.setTrusted(true)
	c.refreshSem = make(chan struct{}, cfg.MaxRefreshes)
	c.bgCtx, c.stopBg = context.WithCancel(context.Background())

	if c.store != nil {
		c.locker, _ = c.store.(Locker)
		c.multi, _ = c.store.(MultiGetter)
		if b, ok := c.store.(Broadcaster); ok && !cfg.DisableInvalidation {
			c.bcast = b
		}
		if !cfg.Breaker.Disable {
			c.brk = breaker.New(cfg.Breaker.Failures, cfg.Breaker.Cooldown, c.breakerChanged)
		}
	}
	if c.store != nil {
		c.loadGeneration(context.Background())
	}
	if c.bcast != nil {
		c.subscribe()
	}
	return c, nil
}

// clockResolution is how often the cache reads the time. Reading the precise
// time costs about as much as an L1 hit; a coarse clock costs an atomic load,
// and expiry times are only this much less exact.
const clockResolution = time.Millisecond

// Close stops every goroutine the cache started: in-flight loads are
// cancelled and waited for, as are background refreshes and the
// subscription. After Close the cache's methods return ErrClosed. Close
// never fails; it returns an error only to satisfy io.Closer.
func (c *Cache[V]) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.l1First.Store(false)
		c.stopBg()
		c.loads.Close()
		c.bg.Wait()
		if c.coarse != nil {
			c.coarse.Stop()
		}
		c.l1.StopAllGoroutines()
	})
	return nil
}

// Stats returns the cache's counters.
func (c *Cache[V]) Stats() stats.Snapshot {
	s := c.counter.Snapshot()
	s.L1Size = c.l1.EstimatedSize()
	if c.store != nil {
		s.Breaker = breaker.Closed.String()
		if c.brk != nil {
			s.Breaker = c.brk.State().String()
		}
	}
	return s
}

// Keyspace returns the keyspace in effect: Options.Keyspace, with the
// version a runtime bump set, if any.
func (c *Cache[V]) Keyspace() Keyspace {
	return Keyspace{Name: c.cfg.Keyspace.Name, Version: c.ks.Load().version}
}

// Key returns the shared-tier key of id, e.g. "v1:user:42".
func (c *Cache[V]) Key(id string) string { return c.ks.Load().key(id) }

func (c *Cache[V]) newKeyspace(gen int64) *keyspace {
	version := effectiveVersion(c.cfg.Keyspace.Version, gen)
	return &keyspace{gen: gen, version: version, prefix: c.cfg.Prefix + version + ":" + c.cfg.Keyspace.Name + ":"}
}

// now returns the time, in unix nanoseconds, of the cache's clock.
func (c *Cache[V]) now() int64 {
	if c.testNow != nil {
		return c.testNow().UnixNano()
	}
	return c.coarse.NowNano()
}

// setTrusted records whether L1 may have missed invalidations.
func (c *Cache[V]) setTrusted(trusted bool) {
	c.l1Trusted.Store(trusted)
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

// keep puts e in L1 unless id was invalidated since ep was noted. It
// re-checks after the write, so that an invalidation racing it is not lost:
// either the invalidation's own L1 delete or this re-check removes e.
func (c *Cache[V]) keep(id string, e *entry[V], ep epoch) {
	if ep.changed(&c.gen) {
		return
	}
	c.l1.Set(id, e)
	if ep.changed(&c.gen) {
		c.l1.ComputeIfPresent(id, func(old *entry[V]) (*entry[V], otter.ComputeOp) {
			if old == e {
				return nil, otter.InvalidateOp
			}
			return old, otter.CancelOp
		})
	}
}

// invalidate drops id from L1, makes loads in flight for it leave L1 alone,
// and makes later callers start a new load rather than share one that may
// have read the origin before the change.
func (c *Cache[V]) invalidate(id string) {
	c.epochs[maphash.String(c.seed, id)%epochStripes].Add(1)
	c.loads.Forget(id)
	c.l1.Invalidate(id)
}

// flushL1 is invalidate for every id.
func (c *Cache[V]) flushL1() {
	c.gen.Add(1)
	c.loads.ForgetAll()
	c.l1.InvalidateAll()
}

func (c *Cache[V]) record(e stats.Event) {
	c.counter.RecordEvent(e)
	if c.recorder != nil {
		c.recorder.RecordEvent(e)
	}
}

func (c *Cache[V]) breakerChanged(from, to breaker.State) {
	if c.logger == nil {
		return
	}
	level := slog.LevelInfo
	if to == breaker.Open {
		level = slog.LevelWarn
	}
	c.logger.LogAttrs(context.Background(), level, "tiercache: shared tier circuit breaker "+to.String(),
		slog.String("keyspace", c.cfg.Keyspace.Name), slog.String("from", from.String()), slog.String("to", to.String()))
}

// newToken returns 128 random bits in hex, for lock tokens and instance ids.
func newToken() string {
	var b [16]byte
	for i := 0; i < len(b); i += 8 {
		u := rand.Uint64()
		for j := range 8 {
			b[i+j] = byte(u >> (8 * j))
		}
	}
	return hex.EncodeToString(b[:])
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
