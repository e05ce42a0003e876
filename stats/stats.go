// Package stats counts what a tiercache.Cache does: requests by outcome and
// tier, loads, refreshes, rebuild locks and shared-tier errors.
//
// A Cache always keeps a Counter, read with Cache.Stats; a Recorder set in
// the cache's options receives the same events as they happen, for sinks
// such as Prometheus (package prom).
//
// # Counting rules
//
// Every Get, and every id of a GetMany, is one request with exactly one
// Outcome and one Tier. A request that found nothing usable and waited for a
// load started by another caller (in-process single-flight, or another
// process's rebuild) is a Miss, like the one that ran the load: it did not
// find the value cached. Such requests are also counted as SharedLoads. This
// is Caffeine's rule, not cachetools' (which counts them as hits).
package stats

import (
	"fmt"
	"math/bits"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"
)

// Tier is where a request's answer came from.
type Tier uint8

const (
	// L1 is the in-process tier.
	L1 Tier = iota + 1
	// L2 is the shared tier (Redis).
	L2
	// Origin is the loader.
	Origin
	// None is a request answered by nothing cached or loaded: an error
	// without a stale value, or a fallback.
	None

	numTiers = iota + 1
)

func (t Tier) String() string {
	switch t {
	case L1:
		return "l1"
	case L2:
		return "l2"
	case Origin:
		return "origin"
	case None:
		return "none"
	}
	return fmt.Sprintf("Tier(%d)", uint8(t))
}

// Outcome is what a request got.
type Outcome uint8

const (
	// Hit is a fresh value found in L1 or L2.
	Hit Outcome = iota + 1
	// Negative is a cached "not found": the request returned ErrNotFound
	// without calling the loader.
	Negative
	// Stale is a value past its soft expiry, served at once while one
	// background refresh rebuilds it.
	Stale
	// Miss is a request that found nothing usable and got the value (or a
	// fresh "not found") from a load, its own or a shared one.
	Miss
	// StaleIfError is a value past its hard expiry served because the load
	// failed; the request also returned an error wrapping ErrStale.
	StaleIfError
	// Fallback is the value of the cache's Fallback option, served because
	// the load failed and nothing stale was left.
	Fallback
	// Error is a request that returned an error and no value.
	Error

	numOutcomes = iota + 1
)

func (o Outcome) String() string {
	switch o {
	case Hit:
		return "hit"
	case Negative:
		return "negative"
	case Stale:
		return "stale"
	case Miss:
		return "miss"
	case StaleIfError:
		return "stale_if_error"
	case Fallback:
		return "fallback"
	case Error:
		return "error"
	}
	return fmt.Sprintf("Outcome(%d)", uint8(o))
}

// Outcomes lists every Outcome, in order, for exporters.
func Outcomes() []Outcome {
	return []Outcome{Hit, Negative, Stale, Miss, StaleIfError, Fallback, Error}
}

// Tiers lists every Tier, in order, for exporters.
func Tiers() []Tier { return []Tier{L1, L2, Origin, None} }

// Event is something counted that is not one per request.
type Event uint8

const (
	// SharedLoad is a request that waited for a load another caller started.
	SharedLoad Event = iota + 1
	// Refresh is a background refresh started for a stale entry.
	Refresh
	// EarlyRefresh is a background refresh started before the soft expiry
	// by probabilistic early refresh (XFetch).
	EarlyRefresh
	// RefreshDropped is a refresh not started because the limit on
	// concurrent refreshes was reached.
	RefreshDropped
	// LockAcquired is a rebuild lock taken in the shared tier.
	LockAcquired
	// LockContended is a rebuild lock found held by another process.
	LockContended
	// LockWait is a wait for another process's rebuild to fill the key.
	LockWait
	// LockWaitTimeout is such a wait that ended without the fill.
	LockWaitTimeout
	// FillLost is a fill refused because the lock was lost (it expired, or a
	// Set or Delete cancelled the rebuild).
	FillLost
	// L2Error is a shared-tier call that failed or was skipped because the
	// circuit breaker was open. Requests go on as if it were a miss.
	L2Error
	// L2Corrupt is a shared-tier entry that could not be decoded; it was
	// treated as a miss.
	L2Corrupt
	// Invalidation is an L1 entry dropped because another process changed
	// the key.
	Invalidation
	// Eviction is an L1 entry evicted to respect the L1 size.
	Eviction
	// Oversize is a value too large to cache (Options.L2.MaxValueSize), or an
	// entry too large to read.
	Oversize
	// LoadAbandoned is a load whose loader was still running past
	// LoadTimeout (it ignored its context): its callers got an error and
	// later callers start a new load; its result is dropped.
	LoadAbandoned
	// LockRepaired is a rebuild lock that could not be tiercache's (no
	// expiry, foreign content) taken over instead of waited for.
	LockRepaired
	// WriteRepaired is an id whose failed Set or Delete (or another
	// process's write carried over from an older generation) was completed
	// in the background by deleting its key.
	WriteRepaired
	// VersionSwitch is a move to a new runtime generation of the keyspace.
	VersionSwitch

	numEvents = iota + 1
)

var eventNames = [numEvents]string{
	SharedLoad: "shared_load", Refresh: "refresh", EarlyRefresh: "early_refresh",
	RefreshDropped: "refresh_dropped", LockAcquired: "lock_acquired",
	LockContended: "lock_contended", LockWait: "lock_wait", LockWaitTimeout: "lock_wait_timeout",
	FillLost: "fill_lost", L2Error: "l2_error", L2Corrupt: "l2_corrupt",
	Invalidation: "invalidation", Eviction: "eviction", Oversize: "oversize",
	LoadAbandoned: "load_abandoned", LockRepaired: "lock_repaired",
	WriteRepaired: "write_repaired", VersionSwitch: "version_switch",
}

func (e Event) String() string {
	if e > 0 && int(e) < len(eventNames) {
		return eventNames[e]
	}
	return fmt.Sprintf("Event(%d)", uint8(e))
}

// Events lists every Event, in order, for exporters.
func Events() []Event {
	ev := make([]Event, 0, numEvents-1)
	for e := Event(1); e < numEvents; e++ {
		ev = append(ev, e)
	}
	return ev
}

// Recorder receives a cache's events as they happen. Implementations must be
// safe for concurrent use and fast: RecordRequest is on every request's path.
type Recorder interface {
	// RecordRequest is called once per request. latency is zero unless the
	// cache measures it (it does when a Recorder is set).
	RecordRequest(o Outcome, t Tier, latency time.Duration)
	// RecordLoad is called once per loader call (each retry attempt is a
	// call) with its duration and whether it failed. A "not found" is not a
	// failure.
	RecordLoad(d time.Duration, failed bool)
	// RecordEvent is called once per event.
	RecordEvent(e Event)
}

// Snapshot is a point-in-time copy of a cache's counters.
type Snapshot struct {
	// L1Hits and L2Hits count fresh values served from each tier.
	L1Hits, L2Hits uint64
	// NegativeHits counts cached "not found" answers, from either tier.
	NegativeHits uint64
	// StaleHits counts stale values served while a refresh runs.
	StaleHits uint64
	// Misses counts requests that found nothing usable and were answered by
	// a load (their own or a shared one; see SharedLoads).
	Misses uint64
	// SharedLoads counts the Misses that waited for another caller's load.
	SharedLoads uint64
	// StaleIfError, Fallbacks and Errors count requests whose load failed:
	// answered with a stale value and ErrStale, with the Fallback value, or
	// with an error alone.
	StaleIfError, Fallbacks, Errors uint64

	// Loads counts loader calls (each retry is one); LoadErrors those that
	// failed; LoadTime their total duration.
	Loads, LoadErrors uint64
	LoadTime          time.Duration

	Refreshes, EarlyRefreshes, RefreshesDropped uint64

	LockAcquired, LockContended, LockWaits, LockWaitTimeouts, FillsLost uint64

	L2Errors, L2Corrupt uint64
	// Breaker is the state of the shared tier's circuit breaker:
	// "closed" (healthy), "open" (calls skipped) or "half-open" (probing).
	// It is empty for a cache without a shared tier.
	Breaker string

	Invalidations uint64
	// L1Size is the number of entries in L1 (an estimate); L1Evictions those
	// evicted for size.
	L1Size      int
	L1Evictions uint64
	// Oversize counts values too large to cache and entries too large to
	// read (Options.L2.MaxValueSize).
	Oversize uint64
	// LoadsAbandoned counts loads whose loader ignored its context past
	// LoadTimeout; LocksRepaired rebuild locks taken over because they
	// could not be tiercache's; WritesRepaired ids whose failed write was
	// completed in the background; VersionSwitches moves to a new runtime
	// generation.
	LoadsAbandoned, LocksRepaired, WritesRepaired, VersionSwitches uint64

	requests [numOutcomes][numTiers]uint64
	events   [numEvents]uint64
}

// Event returns the number of events e.
func (s *Snapshot) Event(e Event) uint64 {
	if e >= numEvents {
		return 0
	}
	return s.events[e]
}

// Requests returns the number of requests with outcome o answered from tier t.
func (s *Snapshot) Requests(o Outcome, t Tier) uint64 {
	if int(o) >= numOutcomes || int(t) >= numTiers {
		return 0
	}
	return s.requests[o][t]
}

// Total returns the number of requests.
func (s *Snapshot) Total() uint64 {
	var n uint64
	for o := range s.requests {
		for t := range s.requests[o] {
			n += s.requests[o][t]
		}
	}
	return n
}

// HitRatio returns the share of requests answered from the cache without
// waiting for a load: fresh, negative and stale hits over all requests. It
// is 0 when there were no requests.
func (s *Snapshot) HitRatio() float64 {
	total := s.Total()
	if total == 0 {
		return 0
	}
	return float64(s.L1Hits+s.L2Hits+s.NegativeHits+s.StaleHits) / float64(total)
}

// Counter is the Recorder every cache keeps. Its zero value is not usable;
// create one with NewCounter. It is safe for concurrent use, and spreads
// its counts over per-CPU stripes so that cores do not contend on one cache
// line.
type Counter struct {
	stripes  []stripe
	mask     uint32
	shift    uint8 // 64 - log2(len(stripes))
	loadTime atomic.Int64
}

const (
	numRequestCells = numOutcomes * numTiers
	numCells        = numRequestCells + int(numEvents) + 2 // + loads, load errors
	loadsCell       = numRequestCells + int(numEvents)
	loadErrorsCell  = loadsCell + 1
)

type stripe struct {
	cells [numCells]atomic.Uint64
	_     [64]byte // keep neighbouring stripes off each other's cache lines
}

// NewCounter returns a zeroed Counter.
func NewCounter() *Counter {
	// Four stripes per CPU, so that two goroutines running at once rarely
	// share one.
	n := uint32(1) << bits.Len32(uint32(4*max(runtime.GOMAXPROCS(0), 1))-1)
	n = min(n, 256)
	return &Counter{stripes: make([]stripe, n), mask: n - 1, shift: uint8(64 - bits.TrailingZeros32(n))}
}

// add counts one in cell, in the stripe of the calling goroutine. Go has no
// goroutine- or CPU-local storage, so the stripe is picked by the address of
// the goroutine's stack (of a local variable): stable for a goroutine, free
// to compute, and different for goroutines running at once. Cores then keep
// mostly to their own stripes instead of bouncing one cache line between
// them, which costs more than the rest of an L1 hit.
func (c *Counter) add(cell int) {
	var local byte
	sp := uint64(uintptr(unsafe.Pointer(&local))) >> 12 // stacks are at least 2 KiB apart; their pages differ
	i := uint32((sp * 0x9E3779B97F4A7C15) >> c.shift)
	c.stripes[i&c.mask].cells[cell].Add(1)
}

// RecordRequest counts one request; it ignores latency.
func (c *Counter) RecordRequest(o Outcome, t Tier, _ time.Duration) {
	if int(o) < numOutcomes && int(t) < numTiers {
		c.add(int(o)*numTiers + int(t))
	}
}

// RecordLoad counts one loader call.
func (c *Counter) RecordLoad(d time.Duration, failed bool) {
	c.add(loadsCell)
	if failed {
		c.add(loadErrorsCell)
	}
	c.loadTime.Add(int64(d))
}

// RecordEvent counts one event.
func (c *Counter) RecordEvent(e Event) {
	if e > 0 && e < numEvents {
		c.add(numRequestCells + int(e))
	}
}

// Snapshot returns the current counts. Fields the counter cannot know
// (Breaker, L1Size) are left for the cache to fill in.
func (c *Counter) Snapshot() Snapshot {
	var sum [numCells]uint64
	for i := range c.stripes {
		for j := range sum {
			sum[j] += c.stripes[i].cells[j].Load()
		}
	}
	var s Snapshot
	for o := range numOutcomes {
		for t := range numTiers {
			s.requests[o][t] = sum[o*numTiers+t]
		}
	}
	for e := Event(1); e < numEvents; e++ {
		s.events[e] = sum[numRequestCells+int(e)]
	}
	ev := func(e Event) uint64 { return s.events[e] }
	row := func(o Outcome) (n uint64) {
		for _, v := range s.requests[o] {
			n += v
		}
		return n
	}
	s.L1Hits = s.requests[Hit][L1]
	s.L2Hits = s.requests[Hit][L2]
	s.NegativeHits = row(Negative)
	s.StaleHits = row(Stale)
	s.Misses = row(Miss)
	s.StaleIfError = row(StaleIfError)
	s.Fallbacks = row(Fallback)
	s.Errors = row(Error)
	s.SharedLoads = ev(SharedLoad)
	s.Loads = sum[loadsCell]
	s.LoadErrors = sum[loadErrorsCell]
	s.LoadTime = time.Duration(c.loadTime.Load())
	s.Refreshes = ev(Refresh)
	s.EarlyRefreshes = ev(EarlyRefresh)
	s.RefreshesDropped = ev(RefreshDropped)
	s.LockAcquired = ev(LockAcquired)
	s.LockContended = ev(LockContended)
	s.LockWaits = ev(LockWait)
	s.LockWaitTimeouts = ev(LockWaitTimeout)
	s.FillsLost = ev(FillLost)
	s.L2Errors = ev(L2Error)
	s.L2Corrupt = ev(L2Corrupt)
	s.Invalidations = ev(Invalidation)
	s.L1Evictions = ev(Eviction)
	s.Oversize = ev(Oversize)
	s.LoadsAbandoned = ev(LoadAbandoned)
	s.LocksRepaired = ev(LockRepaired)
	s.WritesRepaired = ev(WriteRepaired)
	s.VersionSwitches = ev(VersionSwitch)
	return s
}

var _ Recorder = (*Counter)(nil)
