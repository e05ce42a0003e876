package tiercache

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

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
// documented default; only Keyspace.Name is required.
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
	// not expire together. Default 0.1 (±10%); at most 0.5.
	Jitter float64
	// DisableJitter writes every TTL exactly as configured.
	DisableJitter bool

	// L1Size bounds the in-process tier (L1) by number of entries. Default
	// 10 000. L1 uses W-TinyLFU admission (github.com/maypok86/otter/v2).
	L1Size int
	// L1MaxWeight bounds L1 by total weight instead of by entries, each
	// entry weighing what L1Weigher says (e.g. its size in bytes). Set both
	// or neither; L1Size must then be 0.
	L1MaxWeight uint64
	// L1Weigher gives the weight of a value in L1, for L1MaxWeight.
	L1Weigher func(id string, v V) uint32
	// MaxValueSize bounds the encoded size of a value in the shared tier, in
	// bytes: a bigger loaded value is served but cached in neither tier
	// (logged once per cache, counted as an "oversize" event), Set refuses
	// it with ErrValueTooLarge, and a bigger entry read from the shared tier
	// is a miss, never decoded, so that nothing read from Redis makes the
	// cache allocate much beyond the bytes received. Default 1 MiB.
	MaxValueSize int
	// L1TTL bounds how long a process answers from its L1 copy of a value
	// without asking the shared tier, a backstop for invalidation messages
	// it may have missed. Default 1 minute; it never extends a value's own
	// TTL. Ignored without a Store.
	L1TTL time.Duration

	// Codec encodes values for the shared tier. Default JSON (encoding/json),
	// so that entries stay readable with redis-cli and from other languages.
	Codec Codec[V]

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
	// Default 1.
	EarlyRefreshBeta float64
	// DisableEarlyRefresh turns early refresh off.
	DisableEarlyRefresh bool
	// MaxRefreshes bounds the background refreshes running at once; a
	// refresh past the bound is skipped (the stale value is served, and a
	// later read tries again). Default 64.
	MaxRefreshes int

	// Retry governs how a failing loader is retried.
	Retry Retry
	// MaxStale keeps values in L1 for this long past their hard expiry, to
	// be served when the loader fails (stale-if-error): Get then returns
	// the value with an error wrapping ErrStale and the cause. Default 0:
	// no stale-if-error.
	MaxStale time.Duration
	// Fallback, if set, gives the value to serve when the loader fails and
	// no stale value is left; Get then returns it with an error wrapping
	// ErrFallback and the cause. It must not block.
	Fallback func(id string, cause error) V

	// Breaker governs the circuit breaker in front of the shared tier.
	Breaker Breaker

	// DisableInvalidation turns off the messages through which processes
	// drop each other's L1 copies on Set and Delete and wake each other
	// after a rebuild. L1 copies then live up to L1TTL after a change.
	DisableInvalidation bool

	// Logger receives structured logs: one Debug record per request and
	// Warn records for degradations, once per event. Nil means silent.
	Logger *slog.Logger
	// Recorder, if set, receives every stats event as it happens, in
	// addition to the counters read with Cache.Stats. Evictions reach it
	// after L1's insertion that caused them, outside the cache's locks.
	Recorder stats.Recorder
	// Hooks, if set, are called around requests and loads, for tracing.
	Hooks Hooks

	// DisableTracking turns off server-assisted invalidation: Redis client
	// tracking (Redis 6+, where the user may run CLIENT TRACKING), through
	// which the store reports every change of the keyspace's keys in Redis,
	// by any client (redis-cli, a service in another language, a script),
	// so that each process drops its L1 copy within the invalidation bound.
	// Without it, or where the server refuses it (logged once), only
	// tiercache's own messages reach L1, and other writers' changes wait
	// for L1TTL. Default: on.
	DisableTracking bool

	// now replaces the cache's clock in tests (see export_test.go).
	now func() time.Time
}

// Retry governs how a failing loader is retried: up to Attempts calls in
// all, separated by exponential backoff with full jitter (a random wait
// between 0 and min(Max, Base·2^n)), within LoadTimeout. The zero value means
// the defaults.
type Retry struct {
	// Attempts is the number of loader calls in all. Default 3.
	Attempts int
	// Disable makes a single attempt.
	Disable bool
	// Base is the backoff before the second attempt. Default 100 ms.
	Base time.Duration
	// Max caps the backoff. Default 800 ms.
	Max time.Duration
	// Retryable reports whether an error is worth another attempt. Default:
	// every error except ErrNotFound and context errors, which are never
	// retried whatever Retryable says.
	Retryable func(error) bool
}

// Breaker governs the circuit breaker in front of the shared tier: after
// Failures consecutive failed calls it opens, and calls are skipped (as
// misses) without waiting for the tier; after Cooldown it lets one call
// through to probe, and closes again if it succeeds. The zero value means
// the defaults.
type Breaker struct {
	// Failures opens the breaker. Default 5.
	Failures int
	// Cooldown is how long it stays open before probing. Default 1 second.
	Cooldown time.Duration
	// Disable turns the breaker off: every call goes to the tier.
	Disable bool
}

// Defaults.
const (
	DefaultTTL          = 5 * time.Minute
	DefaultNegativeTTL  = time.Minute
	DefaultJitter       = 0.1
	DefaultL1Size       = 10_000
	DefaultL1TTL        = time.Minute
	DefaultLockTTL      = 5 * time.Second
	DefaultMaxRefreshes = 64
	DefaultMaxValueSize = 1 << 20
	defaultVersion      = "v1"
	defaultAttempts     = 3
	defaultBackoffBase  = 100 * time.Millisecond
	defaultBackoffMax   = 800 * time.Millisecond
	defaultFailures     = 5
	defaultCooldown     = time.Second
)

// config is Options with the defaults filled in and checked.
type config[V any] struct {
	Options[V]
	earlyBeta float64 // 0 when early refresh is off
}

func (o *Options[V]) resolve() (*config[V], error) {
	if o == nil {
		return nil, fmt.Errorf("%w: nil options", ErrInvalidOptions)
	}
	c := &config[V]{Options: *o}
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
		{"TTL", &c.TTL, DefaultTTL},
		{"StaleTTL", &c.StaleTTL, 0},
		{"NegativeTTL", &c.NegativeTTL, DefaultNegativeTTL},
		{"L1TTL", &c.L1TTL, DefaultL1TTL},
		{"LockTTL", &c.LockTTL, DefaultLockTTL},
		{"LockWait", &c.LockWait, 0},
		{"LoadTimeout", &c.LoadTimeout, 0},
		{"MaxStale", &c.MaxStale, 0},
		{"Retry.Base", &c.Retry.Base, defaultBackoffBase},
		{"Retry.Max", &c.Retry.Max, defaultBackoffMax},
		{"Breaker.Cooldown", &c.Breaker.Cooldown, defaultCooldown},
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
		bad("LockTTL %v is under a millisecond, the lock's resolution", c.LockTTL)
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
	case math.IsNaN(c.Jitter) || c.Jitter < 0 || c.Jitter > 0.5:
		bad("Jitter %v is outside [0, 0.5]", c.Jitter)
	case c.DisableJitter:
		c.Jitter = 0
	case c.Jitter == 0:
		c.Jitter = DefaultJitter
	}

	switch {
	case math.IsNaN(c.EarlyRefreshBeta) || math.IsInf(c.EarlyRefreshBeta, 0) || c.EarlyRefreshBeta < 0:
		bad("EarlyRefreshBeta %v is not a finite non-negative number", c.EarlyRefreshBeta)
	case c.DisableEarlyRefresh:
	case c.EarlyRefreshBeta == 0:
		c.earlyBeta = 1
	default:
		c.earlyBeta = c.EarlyRefreshBeta
	}

	ints := []struct {
		name string
		n    *int
		def  int
	}{
		{"MaxValueSize", &c.MaxValueSize, DefaultMaxValueSize},
		{"MaxRefreshes", &c.MaxRefreshes, DefaultMaxRefreshes},
		{"Retry.Attempts", &c.Retry.Attempts, defaultAttempts},
		{"Breaker.Failures", &c.Breaker.Failures, defaultFailures},
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
		bad("L1Size is negative (%d)", c.L1Size)
	case c.L1MaxWeight > 0 && c.L1Size > 0:
		bad("L1Size and L1MaxWeight are both set: bound L1 by entries or by weight")
	case (c.L1MaxWeight > 0) != (c.L1Weigher != nil):
		bad("L1MaxWeight and L1Weigher go together")
	case c.L1MaxWeight == 0 && c.L1Size == 0:
		c.L1Size = DefaultL1Size
	}
	if c.Retry.Disable {
		c.Retry.Attempts = 1
	}
	if c.Codec == nil {
		c.Codec = JSON[V]()
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidOptions, errors.Join(errs...))
	}
	return c, nil
}
