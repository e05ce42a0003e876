package flight

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrTooManyAbandoned is the error of a Runner call refused because too many
// earlier calls are still running past their context.
var ErrTooManyAbandoned = errors.New("flight: too many abandoned calls still running")

// abandonGrace is how long Run waits, once the context has ended, for the
// function to return before it abandons it.
const abandonGrace = 20 * time.Millisecond

// ErrAbandoned marks the error of a Runner call whose function was still
// running when its context ended; the error also wraps the context's cause.
var ErrAbandoned = errors.New("flight: call abandoned")

// A Runner calls functions that may not honour their context (user code
// such as a cache's loader): each runs on a goroutine of its own, and the
// caller stops waiting when ctx ends. A function still running then is
// abandoned: its result is dropped when it returns. Abandoned functions are
// counted, and past Limit of them still running, Run refuses new calls
// rather than pile up goroutines behind a hung origin.
//
// The zero Runner is ready to use (with no limit); it is safe for concurrent
// use.
type Runner struct {
	// Limit bounds the abandoned calls still running; 0 means no bound.
	Limit int

	mu        sync.Mutex
	running   busy // calls whose function has not returned
	abandoned int  // of those, calls whose caller stopped waiting
}

// Run calls fn with ctx on a goroutine of its own and returns its error (a
// *PanicError if it panicked, ErrGoexit if it called runtime.Goexit). If ctx
// ends first and fn does not return within a short grace (abandonGrace), Run
// abandons fn and returns an error wrapping ErrAbandoned and ctx's cause;
// the caller must then not read anything fn writes. abandon, if
// not nil, is called when fn is abandoned.
func (r *Runner) Run(ctx context.Context, fn func(context.Context) error, abandon func()) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	r.mu.Lock()
	if r.Limit > 0 && r.abandoned >= r.Limit {
		r.mu.Unlock()
		return ErrTooManyAbandoned
	}
	r.running.add()
	r.mu.Unlock()

	done := make(chan error, 1)
	var state struct {
		sync.Mutex
		abandoned bool
	}
	go func() {
		var err error
		defer func() {
			done <- err
			state.Lock()
			left := state.abandoned
			state.Unlock()
			r.mu.Lock()
			r.running.done()
			if left {
				r.abandoned--
			}
			r.mu.Unlock()
		}()
		Protect(func() { err = fn(ctx) }, func(e error) { err = e })
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	// A function that honours its context returns at once now: give it a
	// moment before calling it abandoned.
	grace := time.NewTimer(abandonGrace)
	select {
	case err := <-done:
		grace.Stop()
		return err
	case <-grace.C:
	}
	// Between the grace ending and now fn may have returned: prefer its
	// result.
	state.Lock()
	select {
	case err := <-done:
		state.Unlock()
		return err
	default:
	}
	state.abandoned = true
	state.Unlock()
	r.mu.Lock()
	r.abandoned++
	r.mu.Unlock()
	if abandon != nil {
		abandon()
	}
	return fmt.Errorf("%w: %w", ErrAbandoned, context.Cause(ctx))
}

// Abandoned returns how many abandoned calls are still running.
func (r *Runner) Abandoned() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.abandoned
}

// Wait waits until no function is running, or for d at most, and reports
// whether none is.
func (r *Runner) Wait(d time.Duration) bool {
	r.mu.Lock()
	idle := r.running.wait()
	r.mu.Unlock()
	return idle == nil || waitFor(idle, d)
}

// busy counts work running, and lets one wait until none is. Its owner's
// mutex guards it.
type busy struct {
	n    int
	idle chan struct{} // closed when n drops to 0
}

func (b *busy) add() { b.n++ }

func (b *busy) done() {
	b.n--
	if b.n == 0 && b.idle != nil {
		close(b.idle)
		b.idle = nil
	}
}

// wait returns nil if nothing is running, else a channel closed once
// nothing is.
func (b *busy) wait() <-chan struct{} {
	if b.n == 0 {
		return nil
	}
	if b.idle == nil {
		b.idle = make(chan struct{})
	}
	return b.idle
}

// waitFor waits until done is closed, or for d at most, and reports whether
// it was.
func waitFor(done <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}
