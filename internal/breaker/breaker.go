// Package breaker is a circuit breaker for calls to a shared tier: after a
// run of consecutive failures it opens and callers skip the tier at once
// instead of each waiting for a timeout; after a cooldown it lets one call
// through to probe, and closes again when that call succeeds.
//
// It is written here rather than taken from sony/gobreaker because the check
// sits on every request's path to Redis: Allow is one atomic load when
// closed, allocation-free, and time comes from the caller's clock so tests
// drive it without sleeping.
package breaker

import (
	"sync/atomic"
	"time"
)

// State is the state of a Breaker.
type State uint32

const (
	// Closed lets every call through.
	Closed State = iota + 1
	// Open skips every call until the cooldown has passed.
	Open
	// HalfOpen lets one probe call through.
	HalfOpen
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return "unknown"
}

// Breaker is safe for concurrent use. Create one with New.
type Breaker struct {
	threshold int64
	cooldown  int64 // nanoseconds

	state    atomic.Uint32
	failures atomic.Int64 // consecutive failures while closed
	openedAt atomic.Int64 // unix nanos of the last opening
	// OnChange, if set before use, is called after each state change.
	onChange func(from, to State)
}

// New returns a closed Breaker that opens after threshold consecutive
// failures and probes after cooldown. onChange may be nil.
func New(threshold int, cooldown time.Duration, onChange func(from, to State)) *Breaker {
	b := &Breaker{threshold: int64(max(threshold, 1)), cooldown: int64(cooldown), onChange: onChange}
	b.state.Store(uint32(Closed))
	return b
}

// State returns the current state.
func (b *Breaker) State() State { return State(b.state.Load()) }

// Allow reports whether a call may go to the tier at time now (unix nanos).
// When it returns true in the half-open state, the caller is the probe and
// must report its result with Success or Failure.
func (b *Breaker) Allow(now int64) bool {
	switch State(b.state.Load()) {
	case Closed:
		return true
	case Open:
		if now-b.openedAt.Load() < b.cooldown {
			return false
		}
		// One caller wins the transition to half-open and probes.
		return b.transition(Open, HalfOpen)
	default: // HalfOpen: a probe is in flight.
		return false
	}
}

// Success records a call that worked.
func (b *Breaker) Success() {
	b.failures.Store(0)
	if State(b.state.Load()) != Closed {
		b.transition(HalfOpen, Closed)
	}
}

// Failure records a call that failed at time now (unix nanos).
func (b *Breaker) Failure(now int64) {
	switch State(b.state.Load()) {
	case Closed:
		if b.failures.Add(1) >= b.threshold {
			b.openedAt.Store(now)
			if b.transition(Closed, Open) {
				b.failures.Store(0)
			}
		}
	case HalfOpen:
		b.openedAt.Store(now)
		b.transition(HalfOpen, Open)
	}
}

func (b *Breaker) transition(from, to State) bool {
	if !b.state.CompareAndSwap(uint32(from), uint32(to)) {
		return false
	}
	if b.onChange != nil {
		b.onChange(from, to)
	}
	return true
}
