package tiercache

import (
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/tiercache/tiercache/internal/wire"
)

// entry is a decoded value in L1. Its fields never change after it is put in
// L1, except holdoff; a new value is a new entry. It is kept small (48
// bytes beside a word-sized V): what follows from its fields and the
// options (the end of stale-if-error, the start of early refresh) is
// computed when needed, not stored.
type entry[V any] struct {
	value V

	// All times are unix nanoseconds of the cache's clock.
	soft    int64 // fresh before
	hard    int64 // stale before; past it a miss (stale-if-error aside)
	l1Until int64 // L1 may answer without asking L2 before

	// holdoff is the time before which no refresh of this entry is started
	// again: set by the one reader that starts one, so that concurrent
	// readers of a stale or nearly stale entry start a single refresh.
	holdoff atomic.Int64

	rebuild  uint32 // how long the load that produced the value took, µs
	negative bool
}

// rebuildTime returns how long the load that produced e took.
func (e *entry[V]) rebuildTime() time.Duration { return time.Duration(e.rebuild) * time.Microsecond }

// micros returns d in whole microseconds, within the range of entry.rebuild.
func micros(d time.Duration) uint32 {
	return uint32(min(max(d/time.Microsecond, 0), math.MaxUint32))
}

// retainUntil returns when e stops being usable for stale-if-error: MaxStale
// past its hard expiry.
func (c *Cache[V]) retainUntil(e *entry[V]) int64 { return e.hard + int64(c.cfg.MaxStale) }

// earlyFrom returns when the XFetch check of e starts: before it the chance
// of an early refresh is negligible (see xfetchWindow).
func (c *Cache[V]) earlyFrom(e *entry[V]) int64 {
	if beta := c.cfg.earlyBeta; beta > 0 && e.rebuild > 0 {
		return e.soft - int64(beta*xfetchWindow*float64(e.rebuildTime()))
	}
	return e.soft
}

type freshness uint8

const (
	fresh freshness = iota + 1
	stale
	expired
)

func (e *entry[V]) state(now int64) freshness {
	switch {
	case now < e.soft:
		return fresh
	case now < e.hard:
		return stale
	}
	return expired
}

// xfetchWindow is how many multiples of β·Δ before the soft expiry the early
// refresh check starts: before it the probability exp(-window) < 5e-5.
const xfetchWindow = 10

// refreshEarly is XFetch: true with probability exp(-(soft-now)/(β·Δ)),
// i.e. when now - β·Δ·ln(U) >= soft for U uniform in (0, 1].
func (e *entry[V]) refreshEarly(now int64, beta float64) bool {
	u := 1 - rand.Float64() // (0, 1]
	return float64(now)-beta*float64(e.rebuildTime())*math.Log(u) >= float64(e.soft)
}

// claimRefresh reports whether the caller is the one to start a refresh of
// this entry now, and holds off other refreshes of it until now+hold.
func (e *entry[V]) claimRefresh(now int64, hold time.Duration) bool {
	h := e.holdoff.Load()
	return now >= h && e.holdoff.CompareAndSwap(h, now+int64(hold))
}

// inherit takes over prev's refresh hold-off when e is the same value read
// again (the same soft expiry): replacing prev in L1 must not let every
// reader start a refresh that another is already doing.
func (e *entry[V]) inherit(prev *entry[V]) {
	if prev != nil && prev.soft == e.soft {
		e.holdoff.Store(max(e.holdoff.Load(), prev.holdoff.Load()))
	}
}

// header returns the envelope header of the entry for the shared tier.
func (e *entry[V]) header(key string, codec byte) wire.Header {
	h := wire.Header{Codec: codec, Soft: time.Unix(0, e.soft), Rebuild: e.rebuildTime(), KeyHash: wire.KeyHash(key)}
	if e.negative {
		h.Flags |= wire.Negative
	}
	return h
}

// newEntry returns the entry of a value (or a "not found") loaded or set at
// now, with freshly jittered lifetimes.
func (c *Cache[V]) newEntry(v V, negative bool, now int64, rebuild time.Duration) *entry[V] {
	e := &entry[V]{value: v, negative: negative, rebuild: micros(rebuild)}
	ttl := c.cfg.TTL
	if negative {
		ttl = c.cfg.NegativeTTL
	}
	c.setTimes(e, now+int64(c.jitter(ttl)), now)
	return e
}

// setTimes derives e's lifetimes from its soft expiry, as of now (when it
// enters L1). The hard expiry is soft + StaleTTL for values, soft for "not
// found"; every process derives the same from the soft expiry stored in the
// envelope.
func (c *Cache[V]) setTimes(e *entry[V], soft, now int64) {
	e.soft = soft
	e.hard = soft
	if !e.negative {
		e.hard += int64(c.cfg.StaleTTL)
	}
	e.l1Until = e.hard
	if c.tier != nil {
		e.l1Until = min(now+int64(c.jitter(c.cfg.L1TTL)), e.hard)
	}
}
