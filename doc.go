// Package tiercache is a two-tier cache-aside cache for Go services: an
// in-process tier (L1) for the hottest values, a shared tier (L2, Redis
// through package redisstore) so that every replica sees the same cache,
// and a loader that reads the origin (a database) only when both miss.
//
//	users, err := tiercache.New(&tiercache.Options[User]{
//		Keyspace: tiercache.Keyspace{Name: "user", Version: "v1"}, // keys "v1:user:<id>"
//		Store:    redisstore.New(rdb, nil),                         // nil: in-process only
//		TTL:      5 * time.Minute,
//		StaleTTL: time.Minute,
//	})
//	u, err := users.Get(ctx, "42", func(ctx context.Context, id string) (User, error) {
//		return db.FetchUser(ctx, id) // tiercache.ErrNotFound when there is no such user
//	})
//
// # What Get does
//
// Get answers from L1 when it holds a fresh copy: no I/O, no decoding, no
// allocation. Otherwise it reads L2 (one GET) and keeps what it finds in L1.
// When neither tier has a usable value, one caller in the process loads it
// (concurrent callers share that load), and with a Redis store one process
// in the whole fleet does: it takes the key's rebuild lock
// ("{v1:user:42}:lock", SET NX PX), loads, and stores the value only if it
// still holds the lock; the others wait for its fill message and read it.
// GetMany does the same for many ids at once, one round trip per step.
//
// Around that path:
//   - Negative caching: a loader's ErrNotFound is cached for NegativeTTL on
//     both tiers and returned by Get without calling the loader.
//   - Versioned keys: a key is "{Version}:{Name}:{id}"; a new Version (or
//     BumpVersion at runtime) makes every old entry unreachable at once,
//     without a scan.
//   - Stale-while-revalidate and early refresh (XFetch) keep hot keys from
//     expiring under load; TTL jitter spreads the expiry of keys written
//     together.
//   - Failures: Redis errors are misses, never errors; a circuit breaker
//     stops calling a Redis that keeps failing; failing loads are retried
//     with backoff, then answered with a stale value (ErrStale), a fallback
//     value (ErrFallback) or the error; a loader that hangs is abandoned at
//     Rebuild.LoadTimeout.
//
// # Consistency
//
// Once Set or Delete returns, this process never serves the value it
// replaced; once it returns nil, every process serves the change within the
// invalidation bound (1.2 s with redisstore's defaults, milliseconds in
// practice); an error means the change may not have reached everyone, and it
// is retried in the background. A value is never another key's, keyspace's
// or prefix's. docs/architecture.md states the contract in full, what holds
// under each fault, and how the read path works in detail.
//
// # Observability
//
// Stats returns counters per outcome and tier; Options.Observe.Recorder receives the
// same events as they happen (package prom exports them to Prometheus), and
// Options.Logger gets one Debug record per request with cache_key, outcome,
// tier and latency_ms, and Warn records for degradations.
//
// The design, its choices and their reasons are in docs/architecture.md.
package tiercache
