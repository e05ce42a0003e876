// Package flight is a context-aware, generic single-flight: concurrent calls
// for one key share one execution of a function.
//
// It differs from golang.org/x/sync/singleflight in what production caches
// need:
//   - each waiter honours its own context: a caller whose ctx ends returns at
//     once with ctx's error, while the shared call goes on for the others;
//   - shared work runs with a context detached from every caller's
//     cancellation (it keeps the values of the caller that started it) and
//     cancelled by Close, which waits for it;
//   - a panic or runtime.Goexit becomes an error for every waiter instead of
//     crashing the process or hanging them (Protect);
//   - Join and Finish let a caller lead several keys at once (batch loads);
//   - a Runner calls functions that may ignore their context, and abandons
//     them when it ends, so that no call waits for them;
//   - for work that must cost next to nothing: Claim (a call whose channel
//     is made only when it is shared), Pool (goroutines that wait for the
//     next job instead of exiting) and Bound (a deadline context that makes
//     its timer only when asked for Done).
package flight

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// ErrPanic is wrapped by the error of a function that panicked (a
// *PanicError) or called runtime.Goexit (ErrGoexit). tiercache exports it as
// tiercache.ErrPanic: its text is the one users see.
var ErrPanic = errors.New("tiercache: loader panicked")

// ErrGoexit is the error of a function that called runtime.Goexit.
var ErrGoexit = fmt.Errorf("%w: it called runtime.Goexit", ErrPanic)

// ErrClosed is the error of calls that could not run because the group was
// closed.
var ErrClosed = errors.New("flight: group closed")

// PanicError is the error of a function that panicked.
type PanicError struct {
	Value any    // the value passed to panic
	Stack []byte // the stack of the panicking goroutine
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("%v: %v", ErrPanic, e.Value)
}

// Is reports whether target is ErrPanic.
func (e *PanicError) Is(target error) bool { return target == ErrPanic }

// Unwrap returns the panic value if it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// Protect calls fn. If fn panics, Protect recovers and calls abort with a
// *PanicError, then returns normally. If fn calls runtime.Goexit, Protect
// calls abort with ErrGoexit and the goroutine goes on exiting: so the code
// that waits for fn's result is told, whatever fn does.
func Protect(fn func(), abort func(error)) {
	normal := false
	defer func() {
		if normal {
			return
		}
		if r := recover(); r != nil {
			abort(&PanicError{Value: r, Stack: debug.Stack()})
			return
		}
		abort(ErrGoexit)
	}()
	fn()
	normal = true
}

// A Group runs work once per key at a time. The zero Group is ready to use
// and is safe for concurrent use; it must not be copied after first use.
type Group[V any] struct {
	mu     sync.Mutex
	calls  map[string]*Call[V]
	closed bool
	stop   context.Context // done once Close is called
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup // work started by Go and Run
	busy   busy           // work running; guarded by mu
}

// A Call is one execution shared by the callers of a key.
type Call[V any] struct {
	// done is closed once the call has its result. A call led with Claim
	// has none until a second caller joins: its leader does not wait.
	done     chan struct{}
	finished bool // guarded by Group.mu
	dups     int  // callers that joined after the leader; guarded by Group.mu
	val      V
	err      error

	// Deadline is when the leader's work is due (Claim's deadline); zero
	// for calls started by Join.
	Deadline time.Time

	// What a leader hands to a goroutine that does the work for it (see
	// Claim): it lives in the call so that a call allocates once.
	Key string // the call's key
	Fn  any    // the work
	Ctx Bound  // the work's context
	// Ready receives one value when the work is done, unless the leader
	// left first (see Deliver and Leave).
	Ready   chan struct{}
	handoff atomic.Int32
}

// States of a call's handoff between the goroutine doing the work and its
// leader.
const (
	working int32 = iota
	leaderLeft
	leaderAbandoned
	delivered
)

// Deliver is called by the goroutine that did the work, after Finish: it
// tells the leader, unless the leader left, and reports whether it did.
func (c *Call[V]) Deliver() bool {
	if c.handoff.CompareAndSwap(working, delivered) {
		c.Ready <- struct{}{}
		return true
	}
	return false
}

// Abandoned reports whether the leader left because the work ran too long
// (Leave with abandon set).
func (c *Call[V]) Abandoned() bool { return c.handoff.Load() == leaderAbandoned }

// Leave is called by a leader that stops waiting for Ready (abandon: the
// work ran too long). It reports true if the work will not deliver; false
// if it delivered meanwhile, in which case Leave has taken the value from
// Ready and the call's result is ready.
func (c *Call[V]) Leave(abandon bool) bool {
	to := leaderLeft
	if abandon {
		to = leaderAbandoned
	}
	if c.handoff.CompareAndSwap(working, to) {
		return true
	}
	<-c.Ready
	return false
}

// Result returns the call's result, once it is finished.
func (c *Call[V]) Result() (V, error) { return c.val, c.err }

// Wait returns the call's result once it is done, or ctx's error if ctx ends
// first. It never cancels the call.
func (c *Call[V]) Wait(ctx context.Context) (V, error) {
	select {
	case <-c.done:
		return c.val, c.err
	default:
	}
	select {
	case <-c.done:
		return c.val, c.err
	case <-ctx.Done():
		var zero V
		return zero, context.Cause(ctx)
	}
}

// Done is closed when the call has its result.
func (c *Call[V]) Done() <-chan struct{} { return c.done }

// Join returns the call in flight for key and false, or registers a new call
// and returns it with true: the caller then leads it and must Finish it. After
// Close, Join returns (nil, false).
func (g *Group[V]) Join(key string) (c *Call[V], leader bool) {
	return g.join(key, true, time.Time{})
}

// Claim is Join for a leader that does the work on its own goroutine and
// never waits for the call: the call's channel is made only when a second
// caller joins, so that a call nobody shares allocates one object.
// deadline is the call's Deadline, for the callers who join it.
func (g *Group[V]) Claim(key string, deadline time.Time) (c *Call[V], leader bool) {
	return g.join(key, false, deadline)
}

func (g *Group[V]) join(key string, waits bool, deadline time.Time) (c *Call[V], leader bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, false
	}
	if c, ok := g.calls[key]; ok {
		c.dups++
		if c.done == nil {
			c.done = make(chan struct{})
		}
		return c, false
	}
	if g.calls == nil {
		g.calls = make(map[string]*Call[V])
	}
	c = &Call[V]{Deadline: deadline, Key: key}
	if waits {
		c.done = make(chan struct{})
	}
	g.calls[key] = c
	return c, true
}

// Finish records the result of a call led by the caller, wakes its waiters
// and forgets the key, so that the next caller starts a new call. Only the
// first Finish of a call counts; it reports whether this one did.
func (g *Group[V]) Finish(key string, c *Call[V], v V, err error) bool {
	g.mu.Lock()
	if c.finished {
		g.mu.Unlock()
		return false
	}
	c.finished = true
	if g.calls[key] == c {
		delete(g.calls, key)
	}
	c.val, c.err = v, err
	done := c.done
	g.mu.Unlock()
	if done != nil {
		close(done)
	}
	return true
}

// Joined returns how many callers joined the call in flight for key after
// its leader (0 when none is in flight).
func (g *Group[V]) Joined(key string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c, ok := g.calls[key]; ok {
		return c.dups
	}
	return 0
}

// Forget makes the next caller of key start a new call even if one is in
// flight. Waiters of the old call still get its result.
func (g *Group[V]) Forget(key string) {
	g.mu.Lock()
	delete(g.calls, key)
	g.mu.Unlock()
}

// ForgetAll is Forget for every key.
func (g *Group[V]) ForgetAll() {
	g.mu.Lock()
	clear(g.calls)
	g.mu.Unlock()
}

// Context returns a context for work that must outlive its caller: detached
// from ctx's cancellation but keeping its values, and cancelled (with cause
// ErrClosed) by Close.
func (g *Group[V]) Context(ctx context.Context) context.Context {
	return detached{Context: g.stopContext(), values: ctx}
}

// Stop returns the context Close cancels: it derives from Background and
// holds no values.
func (g *Group[V]) Stop() context.Context { return g.stopContext() }

// stopContext returns the context Close cancels.
func (g *Group[V]) stopContext() context.Context {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stop == nil {
		g.stop, g.cancel = context.WithCancelCause(context.Background())
	}
	return g.stop
}

// detached has the values of one context (a caller's) and the cancellation
// of another (the group's): context.WithoutCancel and Close's cancellation
// in one allocation. Value asks the group's context first: it holds no
// values of its own (it derives from Background), only the context
// package's own lookup of the cancelCtx behind Done, which must find the
// group's so that Cause and derived contexts see the right cancellation.
type detached struct {
	context.Context                 // the group's: Deadline, Done, Err
	values          context.Context // the caller's: Value
}

func (d detached) Value(key any) any {
	if v := d.Context.Value(key); v != nil {
		return v
	}
	return d.values.Value(key)
}

// Go runs fn in a goroutine the group owns, with Context(ctx): Close
// cancels its context and waits for it. It reports false, without running
// fn, after Close.
func (g *Group[V]) Go(ctx context.Context, fn func(context.Context)) bool {
	if !g.add() {
		return false
	}
	fctx := g.Context(ctx)
	go func() {
		defer g.done()
		fn(fctx)
	}()
	return true
}

// Run is Go on the caller's goroutine, for a caller that would only wait
// for fn anyway: it spares a goroutine. Close waits for it too.
func (g *Group[V]) Run(ctx context.Context, fn func(context.Context)) bool {
	if !g.add() {
		return false
	}
	defer g.done()
	fn(g.Context(ctx))
	return true
}

// Do runs fn for key unless a call for key is in flight, in which case it
// waits for that call's result. shared reports whether the caller joined a
// call started by another caller. fn runs in a goroutine of the group's,
// with Context(ctx); a panic or Goexit in it is the call's error.
func (g *Group[V]) Do(ctx context.Context, key string, fn func(context.Context) (V, error)) (v V, shared bool, err error) {
	c, leader := g.Join(key)
	if c == nil {
		var zero V
		return zero, false, ErrClosed
	}
	if leader {
		g.Lead(ctx, key, c, fn)
	}
	v, err = c.Wait(ctx)
	return v, !leader, err
}

// Lead runs fn for the call c of key, which the caller leads (see Join), in
// a goroutine of the group's with Context(ctx), and finishes c with its
// result: a panic or Goexit in fn is the call's error, and a closed group's
// is ErrClosed.
func (g *Group[V]) Lead(ctx context.Context, key string, c *Call[V], fn func(context.Context) (V, error)) {
	var zero V
	started := g.Go(ctx, func(ctx context.Context) {
		Protect(func() {
			v, err := fn(ctx)
			g.Finish(key, c, v, err)
		}, func(err error) { g.Finish(key, c, zero, err) })
	})
	if !started {
		g.Finish(key, c, zero, ErrClosed)
	}
}

// add counts work about to run in the group's lifetime, unless the group is
// closed. Checking closed and adding under one lock is what lets Close's
// Wait see every piece of work.
func (g *Group[V]) add() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Add(1)
	g.busy.add()
	return true
}

// done counts the end of work counted by add.
func (g *Group[V]) done() {
	g.mu.Lock()
	g.busy.done()
	g.mu.Unlock()
	g.wg.Done()
}

// WaitIdle waits until no work started by Go or Run is running (work may
// start again at once), or ctx ends. It is for tests: a miss answers its
// callers before its fill is done.
func (g *Group[V]) WaitIdle(ctx context.Context) error {
	g.mu.Lock()
	ch := g.busy.wait()
	g.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Close cancels the context of the group's work, waits for it to return,
// and makes later Join, Go and Run fail.
func (g *Group[V]) Close() {
	g.stopContext()
	g.mu.Lock()
	g.closed = true
	cancel := g.cancel
	g.mu.Unlock()
	cancel(ErrClosed)
	g.wg.Wait()
}
