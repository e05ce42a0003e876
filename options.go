package tiercache

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/tiercache/tiercache/codec"
	"github.com/tiercache/tiercache/driver"
	"github.com/tiercache/tiercache/internal/keys"
	"github.com/tiercache/tiercache/stats"
)

// Keyspace names a family of values and versions their keys: a value's key
// in the shared tier is exactly "{Version}:{Name}:{id}", e.g. "v1:user:42".
// Changing Version (a new value format, a bad deploy) makes every entry of the
// old version unreachable at once; old keys expire by their TTL.
type Keyspace struct {
	// Name is the kind of value, e.g. "user". Required.
	Name string
	// Version is the version of the value format. Default "v1".
	Version string
}

// Options configure a Cache. The zero value of every field means its
// documented default; only Keyspace.Name is required. Where a number can
// turn a feature off, a negative value does (Jitter, EarlyRefreshBeta,
// Breaker.Failures).
//
// The everyday settings are at the top level; tuning is grouped by what it
// tunes: the in-process tier (L1), the shared tier (L2), rebuilds
// (Rebuild), a failing loader (Retry, Degrade) and observation (Observe).
type Options[V any] struct {
	// Keyspace names and versions the keys. Keyspace.Name is required.
	Keyspace Keyspace
	// Prefix goes in front of every key and channel the cache uses in the
	// shared tier, so that applications sharing one Redis cannot see each
	// other's entries. It must end with ':' (e.g. "billing:", or
	// "{billing}:" to keep an application's keys in one Redis Cluster slot).
	// Default none.
	Prefix string

	// Store is the shared tier (L2), e.g. redisstore.New(rdb, nil). Nil
	// means in-process only: every process loads for itself.
	Store driver.Store

	// TTL is how long a value is fresh (its soft expiry). Default 5 minutes.
	TTL time.Duration
	// StaleTTL is how long past TTL a value may still be served stale while
	// one caller in the fleet rebuilds it (its hard expiry is TTL+StaleTTL).
	// Default 0: no stale window, a value past TTL is a miss.
	StaleTTL time.Duration
	// NegativeTTL is how long a "not found" (ErrNotFound from the loader) is
	// cached, on both tiers. Default 1 minute.
	NegativeTTL time.Duration
	// Jitter spreads every TTL written (positive and negative, both tiers)
	// uniformly by ±Jitter of its length, so that keys written together do
	// not expire together. Default 0.1 (±10%); at most 0.5; negative: none,
	// every TTL written exactly as configured.
	Jitter float64

	// Logger receives structured logs: one Debug record per request and
	// Warn records for degradations, once per event. Nil means silent.
	Logger *slog.Logger

	// L1 tunes the in-process tier.
	L1 L1[V]
	// L2 tunes the use of the shared tier (Store).
	L2 L2[V]
	// Rebuild tunes how a missing or expiring value is rebuilt.
	Rebuild Rebuild
	// Retry governs how a failing loader is retried.
	Retry Retry
	// Degrade says what to serve when the loader fails.
	Degrade Degrade[V]
	// Observe receives what the cache does, for metrics and tracing.
	Observe stats.Observe

	// now replaces the cache's clock in tests (see export_test.go).
	now func() time.Time
}

// L1 tunes the in-process tier, a W-TinyLFU cache
// (github.com/maypok86/otter/v2) bounded by entries or by weight.
type L1[V any] struct {
	// Size bounds L1: the number of entries, or, with Weigher, their total
	// weight. Default 10 000 entries; required with Weigher.
	Size int
	// Weigher, if set, gives the weight of a value in L1 (e.g. its size in
	// bytes), and Size bounds the total.
	Weigher func(id string, v V) uint32
	// TTL bounds how long a process answers from its L1 copy of a value
	// without asking the shared tier, a backstop for invalidations it may
	// have missed. Default 1 minute; it never extends a value's own TTL.
	// Ignored without a Store.
	TTL time.Duration
}

// L2 tunes the use of the shared tier.
type L2[V any] struct {
	// Codec encodes values for the shared tier. Default codec.JSON
	// (encoding/json's bytes and semantics), so that entries stay readable
	// with redis-cli and from other languages.
	Codec codec.Codec[V]
	// MaxValueSize bounds the encoded size of a value in the shared tier, in
	// bytes: a bigger loaded value is served but cached in neither tier
	// (logged once per cache, counted as an "oversize" event), Set refuses
	// it with ErrValueTooLarge, and a bigger entry read from the shared tier
	// is a miss, never decoded, so that nothing read from Redis makes the
	// cache allocate much beyond the bytes received. Default 1 MiB.
	MaxValueSize int
	// Breaker governs the circuit breaker in front of the shared tier.
	Breaker Breaker
	// Tracking turns on server-assisted invalidation where the store can
	// (redisstore: Redis client tracking; Redis 6 or later, with CLIENT
	// allowed): a write, delete or expiry of a cached key by any client,
	// not only by tiercache, drops every process's L1 copy within the
	// invalidation bound. Off by default for now (docs/architecture.md,
	// "Server-assisted invalidation", says why).
	Tracking bool
}

// Rebuild tunes how a missing or expiring value is rebuilt: one caller in
// the fleet loads it under a lock in the shared tier while the others wait
// for its value or serve a stale one.
type Rebuild struct {
	// LockTTL is how long a process holds a key's rebuild lock in the shared
	// tier at most; a holder that dies releases it by expiry. It should
	// exceed the loader's usual duration. Default 5 seconds.
	LockTTL time.Duration
	// LockWait bounds how long a process waits for another process's
	// rebuild of a key it needs and has no stale value for. Default LockTTL.
	LockWait time.Duration
	// FailOnLockWait makes a request whose wait for another process's
	// rebuild timed out fail with ErrLockWait instead of loading itself.
	FailOnLockWait bool
	// LoadTimeout bounds the loader's work for one load, all retries
	// included (waiting for another process's rebuild is bounded by LockWait
	// instead). Default LockTTL: a load that outlives its lock cannot store
	// its value anyway.
	LoadTimeout time.Duration
	// EarlyRefreshBeta is β of probabilistic early refresh (XFetch,
	// Vattani et al., VLDB 2015): a read at time t before the soft expiry
	// starts a background refresh with probability exp(-(soft-t)/(β·Δ)),
	// Δ being how long the last rebuild took. Larger β refreshes earlier.
	// Default 1; negative: no early refresh.
	EarlyRefreshBeta float64
	// MaxLoads bounds the loads from the origin this process runs at once,
	// with a shared tier (a bulkhead). Past it, ids of which this process
	// holds a copy are answered with it at once (stale if it is; with
	// ErrStale if past its hard expiry but within Degrade.MaxStale), the
	// others wait in line for a place, within LoadTimeout and each caller's
	// context, and background refreshes are skipped (a later read tries
	// again). It matters most when the shared tier is down: every process
	// then loads every id its L1 cannot answer. Default 8 per CPU, at least
	// 16.
	MaxLoads int
}

// Degrade says what a request is answered when the loader fails (after its
// retries): a stale value kept for MaxStale if there is one, else Fallback's
// value, else the error. A degraded answer is a value with an error for which
// Degraded reports true.
type Degrade[V any] struct {
	// MaxStale keeps values in L1 for this long past their hard expiry, to
	// be served when the loader fails (stale-if-error): Get then returns
	// the value with an error wrapping ErrStale and the cause. Default 0:
	// no stale-if-error.
	MaxStale time.Duration
	// Fallback, if set, gives the value to serve when the loader fails and
	// no stale value is left; Get then returns it with an error wrapping
	// ErrFallback and the cause. It must not block.
	Fallback func(id string, cause error) V
}

// Retry governs how a failing loader is retried: up to Attempts calls in
// all, separated by exponential backoff with full jitter (a random wait
// between 0 and min(Max, Base·2^n)), within Rebuild.LoadTimeout. The zero
// value means the defaults.
type Retry struct {
	// Attempts is the number of loader calls in all: 1 makes a single
	// attempt. Default 3.
	Attempts int
	// Base is the backoff before the second attempt. Default 100 ms.
	Base time.Duration
	// Max caps the backoff. Default 800 ms.
	Max time.Duration
	// Retryable reports whether an error is worth another attempt. Default:
	// every error except ErrNotFound, context errors and a loader's panic,
	// which are never retried whatever Retryable says.
	Retryable func(error) bool
}

// Breaker governs the circuit breaker in front of the shared tier. It opens
// when half or more of the calls of the last second fail (with at least
// Failures failures), when Failures calls in a row fail and none has worked
// for 100 ms, or at once when a call finds the tier unreachable (connection
// refused, dial failed). While it is open, calls are skipped (as misses)
// without waiting for the tier, and the cache probes the tier in the
// background every Cooldown, never on a request; the first probe that
// succeeds closes it. The zero value means the defaults.
type Breaker struct {
	// Failures is the fewest failed calls within the breaker's window (1
	// second) that may open it. Default 5; negative: the breaker never
	// opens and every call goes to the tier.
	Failures int
	// Cooldown is how long it stays open between probes. Default 1 second.
	Cooldown time.Duration
}

// The defaults, documented on the fields they fill.
const (
	defaultTTL          = 5 * time.Minute
	defaultNegativeTTL  = time.Minute
	defaultJitter       = 0.1
	defaultL1Size       = 10_000
	defaultL1TTL        = time.Minute
	defaultLockTTL      = 5 * time.Second
	maxRefreshes        = 64 // background refreshes at once (with a store MaxLoads bounds them too)
	defaultMaxValueSize = 1 << 20
	defaultVersion      = "v1"
	defaultAttempts     = 3
	defaultBackoffBase  = 100 * time.Millisecond
	defaultBackoffMax   = 800 * time.Millisecond
	defaultFailures     = 5
	defaultCooldown     = time.Second
	defaultEarlyBeta    = 1
)

// config is Options with the defaults filled in and checked, flat: the
// cache's code reads c.cfg.LockTTL whatever group the option is in.
type config[V any] struct {
	Keyspace                       Keyspace
	Prefix                         string
	Store                          driver.Store
	TTL, StaleTTL, NegativeTTL     time.Duration
	Jitter                         float64 // 0: none
	Logger                         *slog.Logger
	L1Size                         int
	L1MaxWeight                    uint64
	L1Weigher                      func(id string, v V) uint32
	L1TTL                          time.Duration
	Codec                          codec.Codec[V]
	MaxValueSize                   int
	Breaker                        Breaker // Failures 0: never opens
	Tracking                       bool
	LockTTL, LockWait, LoadTimeout time.Duration
	FailOnLockWait                 bool
	earlyBeta                      float64 // 0: no early refresh
	MaxLoads                       int
	Retry                          Retry
	MaxStale                       time.Duration
	Fallback                       func(id string, cause error) V
	Recorder                       stats.Recorder
	Hooks                          stats.Hooks
	now                            func() time.Time
}

func (o *Options[V]) resolve() (*config[V], error) {
	if o == nil {
		return nil, fmt.Errorf("%w: nil options", ErrInvalidOptions)
	}
	c := &config[V]{
		Keyspace: o.Keyspace, Prefix: o.Prefix, Store: o.Store,
		TTL: o.TTL, StaleTTL: o.StaleTTL, NegativeTTL: o.NegativeTTL, Jitter: o.Jitter, Logger: o.Logger,
		L1Size: o.L1.Size, L1Weigher: o.L1.Weigher, L1TTL: o.L1.TTL,
		Codec: o.L2.Codec, MaxValueSize: o.L2.MaxValueSize, Breaker: o.L2.Breaker, Tracking: o.L2.Tracking,
		LockTTL: o.Rebuild.LockTTL, LockWait: o.Rebuild.LockWait, LoadTimeout: o.Rebuild.LoadTimeout,
		FailOnLockWait: o.Rebuild.FailOnLockWait, MaxLoads: o.Rebuild.MaxLoads,
		Retry: o.Retry, MaxStale: o.Degrade.MaxStale, Fallback: o.Degrade.Fallback,
		Recorder: o.Observe.Recorder, Hooks: o.Observe.Hooks, now: o.now,
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}

	if c.Keyspace.Version == "" {
		c.Keyspace.Version = defaultVersion
	}
	if c.Keyspace.Name == "" {
		bad("Keyspace.Name is required")
	} else if err := keys.CheckName(c.Keyspace.Name); err != nil {
		bad("Keyspace.Name %q: %v", c.Keyspace.Name, err)
	}
	if err := keys.CheckName(c.Keyspace.Version); err != nil {
		bad("Keyspace.Version %q: %v", c.Keyspace.Version, err)
	}
	if err := keys.CheckPrefix(c.Prefix); err != nil {
		bad("Prefix %q: %v", c.Prefix, err)
	}

	durations := []struct {
		name string
		d    *time.Duration
		def  time.Duration
	}{
		{"TTL", &c.TTL, defaultTTL},
		{"StaleTTL", &c.StaleTTL, 0},
		{"NegativeTTL", &c.NegativeTTL, defaultNegativeTTL},
		{"L1.TTL", &c.L1TTL, defaultL1TTL},
		{"Rebuild.LockTTL", &c.LockTTL, defaultLockTTL},
		{"Rebuild.LockWait", &c.LockWait, 0},
		{"Rebuild.LoadTimeout", &c.LoadTimeout, 0},
		{"Degrade.MaxStale", &c.MaxStale, 0},
		{"Retry.Base", &c.Retry.Base, defaultBackoffBase},
		{"Retry.Max", &c.Retry.Max, defaultBackoffMax},
		{"L2.Breaker.Cooldown", &c.Breaker.Cooldown, defaultCooldown},
	}
	for _, f := range durations {
		switch {
		case *f.d < 0:
			bad("%s is negative (%v)", f.name, *f.d)
		case *f.d == 0:
			*f.d = f.def
		}
	}
	if c.LockTTL > 0 && c.LockTTL < time.Millisecond {
		bad("Rebuild.LockTTL %v is under a millisecond, the lock's resolution", c.LockTTL)
	}
	if c.LockWait == 0 {
		c.LockWait = c.LockTTL
	}
	if c.LoadTimeout == 0 {
		c.LoadTimeout = c.LockTTL
	}
	if c.Retry.Max < c.Retry.Base {
		bad("Retry.Max %v is below Retry.Base %v", c.Retry.Max, c.Retry.Base)
	}

	switch {
	case math.IsNaN(c.Jitter) || c.Jitter > 0.5:
		bad("Jitter %v is not at most 0.5", c.Jitter)
	case c.Jitter < 0:
		c.Jitter = 0
	case c.Jitter == 0:
		c.Jitter = defaultJitter
	}

	switch beta := o.Rebuild.EarlyRefreshBeta; {
	case math.IsNaN(beta) || math.IsInf(beta, 1):
		bad("Rebuild.EarlyRefreshBeta %v is not a finite number", beta)
	case beta < 0: // off
	case beta == 0:
		c.earlyBeta = defaultEarlyBeta
	default:
		c.earlyBeta = beta
	}

	switch {
	case c.Breaker.Failures < 0:
		c.Breaker.Failures = 0 // never opens
	case c.Breaker.Failures == 0:
		c.Breaker.Failures = defaultFailures
	}
	ints := []struct {
		name string
		n    *int
		def  int
	}{
		{"L2.MaxValueSize", &c.MaxValueSize, defaultMaxValueSize},
		{"Rebuild.MaxLoads", &c.MaxLoads, defaultMaxLoads()},
		{"Retry.Attempts", &c.Retry.Attempts, defaultAttempts},
	}
	for _, f := range ints {
		switch {
		case *f.n < 0:
			bad("%s is negative (%d)", f.name, *f.n)
		case *f.n == 0:
			*f.n = f.def
		}
	}
	switch {
	case c.L1Size < 0:
		bad("L1.Size is negative (%d)", c.L1Size)
	case c.L1Weigher != nil && c.L1Size == 0:
		bad("L1.Weigher needs L1.Size, the bound of the total weight")
	case c.L1Weigher != nil:
		c.L1MaxWeight, c.L1Size = uint64(c.L1Size), 0
	case c.L1Size == 0:
		c.L1Size = defaultL1Size
	}
	if c.Codec == nil {
		c.Codec = codec.JSON[V]()
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidOptions, errors.Join(errs...))
	}
	return c, nil
}

// checkPlain refuses the options that a store keeping plain JSON
// (driver.Capabilities.PlainJSON, redisstore.NewPlain) cannot honour: it
// stores the JSON of values and one expiry, the Redis TTL.
func (c *config[V]) checkPlain() error {
	if c.Store == nil || !c.Store.Capabilities().PlainJSON {
		return nil
	}
	var errs []error
	if id, json := c.Codec.ID(), codec.JSON[V]().ID(); id != json {
		errs = append(errs, fmt.Errorf("L2.Codec %d is not JSON (%d): the store keeps plain JSON values; use the default codec", id, json))
	}
	if c.StaleTTL > 0 {
		errs = append(errs, fmt.Errorf("StaleTTL %v: the store keeps plain JSON values whose only expiry is the Redis TTL, so there is no stale window to store; set StaleTTL to 0", c.StaleTTL))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidOptions, errors.Join(errs...))
	}
	return nil
}
