// Package breaker is a circuit breaker for calls to a shared tier: when the
// calls of a recent window fail at a high rate, or one fails because the
// tier cannot be reached at all, it opens and callers skip the tier at once
// instead of each waiting for a deadline. It never lets a caller's call
// through to probe: its owner probes in the background (Probe, then
// Probed) and it closes when a probe succeeds.
//
// It is written here rather than taken from sony/gobreaker because the check
// sits on every request's path to Redis: Allow is one atomic load,
// allocation-free, and time comes from the caller's clock so tests drive it
// without sleeping.
//
// Why a rate over a window rather than a run of consecutive failures: under
// a heavy load on a small machine a healthy Redis sometimes misses a few
// deadlines in a row (a scheduling hiccup, a GC pause), and five in a row
// opened the breaker against a healthy local Redis during the demo (98
// deletes failed). A window of a second in which at least half the calls
// failed, and at least MinFailures of them, does not happen to a healthy
// Redis; a dead one fails every call.
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
	// Open skips every call until a probe succeeds.
	Open
	// HalfOpen skips every call while the owner's probe runs.
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

// Config configures a Breaker. The zero value of each field means its
// default.
type Config struct {
	// MinFailures is how many calls must fail within Window before the rate
	// is judged. Default 5.
	MinFailures int
	// Rate is the share of the calls of the window that, failing, opens the
	// breaker. Default 0.5.
	Rate float64
	// Window is how far back calls count. Default 1 second.
	Window time.Duration
}

// Defaults.
const (
	DefaultMinFailures = 5
	DefaultRate        = 0.5
	DefaultWindow      = time.Second
)

// slots is how many parts the window is counted in: a call leaves the count
// between Window·(slots-1)/slots and Window after it was made.
const slots = 10

// slot counts the calls of one part of the window.
type slot struct {
	epoch    atomic.Int64 // which part of time it counts (now / width)
	ok, fail atomic.Int64
}

// Breaker is safe for concurrent use. Create one with New.
type Breaker struct {
	minFailures int64
	rate        float64
	width       int64 // of a slot, ns

	state  atomic.Uint32
	lastOK atomic.Int64 // when a call last worked, to within width/16
	run    atomic.Int64 // calls failed since one last worked
	slots  [slots]slot
	// onChange, if set, is called after each state change.
	onChange func(from, to State)
}

// New returns a closed Breaker configured by cfg. onChange may be nil.
func New(cfg Config, onChange func(from, to State)) *Breaker {
	if cfg.MinFailures <= 0 {
		cfg.MinFailures = DefaultMinFailures
	}
	if cfg.Rate <= 0 || cfg.Rate > 1 {
		cfg.Rate = DefaultRate
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	b := &Breaker{
		minFailures: int64(cfg.MinFailures),
		rate:        cfg.Rate,
		width:       max(int64(cfg.Window)/slots, 1),
		onChange:    onChange,
	}
	b.state.Store(uint32(Closed))
	return b
}

// State returns the current state.
func (b *Breaker) State() State { return State(b.state.Load()) }

// Allow reports whether a call may go to the tier: only while closed.
func (b *Breaker) Allow() bool { return State(b.state.Load()) == Closed }

// Success records a call that worked, at time now (unix nanos).
func (b *Breaker) Success(now int64) {
	b.slotAt(now).ok.Add(1)
	if now-b.lastOK.Load() > b.width/16 { // mostly a load: the line stays shared
		b.lastOK.Store(now)
	}
	if b.run.Load() != 0 {
		b.run.Store(0)
	}
}

// Failure records a call that failed at time now (unix nanos), and opens
// the breaker if the window's calls now fail at Rate or more, with at least
// MinFailures failures, or if at least MinFailures calls failed since one
// last worked and none has worked for a tenth of the window: a tier that
// stopped answering would otherwise be called until the successes before it
// left the window (and calls bounded by a deadline longer than a tenth of
// the window each fall in a slot of their own).
func (b *Breaker) Failure(now int64) {
	b.slotAt(now).fail.Add(1)
	run := b.run.Add(1)
	if State(b.state.Load()) != Closed {
		return
	}
	if run >= b.minFailures && now-b.lastOK.Load() >= b.width {
		b.transition(Closed, Open)
		return
	}
	ok, fail := b.window(now)
	if fail >= b.minFailures && float64(fail) >= b.rate*float64(ok+fail) {
		b.transition(Closed, Open)
	}
}

// Trip opens the breaker at once: a call found the tier unreachable (its
// connection refused), which no later call will find otherwise soon.
func (b *Breaker) Trip() { b.transition(Closed, Open) }

// Probe moves an open breaker to half-open and reports true, for the owner
// to probe the tier and report with Probed; it reports false if the breaker
// was not open.
func (b *Breaker) Probe() bool { return b.transition(Open, HalfOpen) }

// Probed ends a probe: a success closes the breaker, with a window that
// forgets the failures before it; a failure opens it again.
func (b *Breaker) Probed(ok bool) {
	if !ok {
		b.transition(HalfOpen, Open)
		return
	}
	for i := range b.slots {
		b.slots[i].ok.Store(0)
		b.slots[i].fail.Store(0)
	}
	b.run.Store(0)
	b.transition(HalfOpen, Closed)
}

// slotAt returns the slot counting time now, reset first if it counted an
// older part of time. A call counted by another goroutine between the reset's
// CAS and its stores may be lost: the counts are an estimate.
func (b *Breaker) slotAt(now int64) *slot {
	e := now / b.width
	s := &b.slots[uint64(e)%slots]
	if old := s.epoch.Load(); old != e && s.epoch.CompareAndSwap(old, e) {
		s.ok.Store(0)
		s.fail.Store(0)
	}
	return s
}

// window returns the calls that worked and failed within the window ending
// at now.
func (b *Breaker) window(now int64) (ok, fail int64) {
	e := now / b.width
	for i := range b.slots {
		s := &b.slots[i]
		if ep := s.epoch.Load(); ep > e-slots && ep <= e {
			ok += s.ok.Load()
			fail += s.fail.Load()
		}
	}
	return ok, fail
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
