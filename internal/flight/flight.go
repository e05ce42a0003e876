// Package flight is a context-aware, generic single-flight: concurrent calls
// for one key share one execution of a function.
//
// It differs from golang.org/x/sync/singleflight in what production caches
// need:
//   - each waiter honours its own context: a caller whose ctx ends returns at
//     once with ctx's error, while the shared call goes on for the others;
//   - the shared function runs in its own goroutine with a context detached
//     from every caller's cancellation (context.WithoutCancel keeps the trace
//     values of the caller that started it) and bounded by Group.Timeout, so
//     the first caller giving up does not fail the rest;
//   - a panic or runtime.Goexit in the function becomes an error for every
//     waiter instead of crashing the process or hanging them;
//   - Join and Finish let a caller lead several keys at once (batch loads).
package flight

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"
)

// ErrGoexit is the error of a call whose function called runtime.Goexit.
var ErrGoexit = errors.New("flight: function called runtime.Goexit")

// ErrClosed is returned by Do after Close.
var ErrClosed = errors.New("flight: group closed")

// PanicError is the error of a call whose function panicked.
type PanicError struct {
	Value any    // the value passed to panic
	Stack []byte // the stack of the panicking goroutine
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("flight: function panicked: %v", e.Value)
}

// Unwrap returns the panic value if it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// A Group runs functions once per key at a time. The zero Group is ready to
// use and is safe for concurrent use; it must not be copied after first use.
type Group[V any] struct {
	// Timeout bounds the context of each function Do runs; zero means no
	// bound beyond Close.
	Timeout time.Duration

	mu     sync.Mutex
	calls  map[string]*Call[V]
	closed bool
	stop   context.Context // done once Close is called
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup // functions started by Do
}

// A Call is one execution shared by the callers of a key.
type Call[V any] struct {
	done chan struct{}
	dups int // callers that joined after the leader; guarded by Group.mu
	val  V
	err  error
}

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

// Do runs fn for key unless a call for key is in flight, in which case it
// waits for that call's result. shared reports whether the caller joined a
// call started by another caller. fn runs in a new goroutine with
// context.WithoutCancel(ctx), bounded by g.Timeout and cancelled by Close.
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

// Join returns the call in flight for key and false, or registers a new call
// and returns it with true: the caller then leads it and must Finish it. After
// Close, Join returns (nil, false).
func (g *Group[V]) Join(key string) (c *Call[V], leader bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, false
	}
	if c, ok := g.calls[key]; ok {
		c.dups++
		return c, false
	}
	if g.calls == nil {
		g.calls = make(map[string]*Call[V])
	}
	c = &Call[V]{done: make(chan struct{})}
	g.calls[key] = c
	return c, true
}

// Finish records the result of a call led by the caller, wakes its waiters
// and forgets the key, so that the next caller starts a new call.
func (g *Group[V]) Finish(key string, c *Call[V], v V, err error) {
	g.mu.Lock()
	if g.calls[key] == c {
		delete(g.calls, key)
	}
	g.mu.Unlock()
	c.val, c.err = v, err
	close(c.done)
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
// from ctx's cancellation but keeping its values, bounded by g.Timeout, and
// cancelled by Close. The caller must call the returned cancel function.
func (g *Group[V]) Context(ctx context.Context) (context.Context, context.CancelFunc) {
	d := detached{Context: g.stopContext(), values: ctx}
	if g.Timeout > 0 {
		return context.WithTimeout(d, g.Timeout)
	}
	return d, func() {}
}

// stopContext returns the context Close cancels (with cause ErrClosed).
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
// in one allocation, where WithoutCancel, WithCancelCause and AfterFunc took
// five. Value asks the group's context first: it holds no values of its own
// (it derives from Background), only the context package's own lookup of the
// cancelCtx behind Done, which must find the group's so that Cause and
// derived contexts see the right cancellation.
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
// cancels its context and waits for it. It is how a caller that leads calls
// taken with Join runs their shared work. It reports false, without running
// fn, after Close.
func (g *Group[V]) Go(ctx context.Context, fn func(context.Context)) bool {
	if !g.add() {
		return false
	}
	fctx, cancel := g.Context(ctx)
	go func() {
		defer g.wg.Done()
		defer cancel()
		fn(fctx)
	}()
	return true
}

// Lead runs fn for the call c of key, which the caller leads (see Join),
// with Context(ctx), and finishes c with its result. fn runs in a new
// goroutine, so that the caller can stop waiting at its own deadline while
// the others get the result; but when ctx can never end (ctx.Done() is nil,
// as for context.Background), the caller could not stop waiting anyway, and
// fn runs on the caller's goroutine, sparing a goroutine and its stack.
// Either way a panic or runtime.Goexit in fn becomes the call's error, and
// Close cancels fn and waits for it.
func (g *Group[V]) Lead(ctx context.Context, key string, c *Call[V], fn func(context.Context) (V, error)) {
	body := func(ctx context.Context) {
		// If fn calls runtime.Goexit, the assignment below never happens and
		// the deferred Finish hands ErrGoexit to the waiters.
		var v V
		err := ErrGoexit
		defer func() { g.Finish(key, c, v, err) }()
		v, err = run(ctx, fn)
	}
	if ctx.Done() == nil {
		if !g.add() {
			var zero V
			g.Finish(key, c, zero, ErrClosed)
			return
		}
		defer g.wg.Done()
		fctx, cancel := g.Context(ctx)
		defer cancel()
		body(fctx)
		return
	}
	if !g.Go(ctx, body) {
		var zero V
		g.Finish(key, c, zero, ErrClosed)
	}
}

// add counts a function about to run in the group's lifetime, unless the
// group is closed.
func (g *Group[V]) add() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Add(1)
	return true
}

// run calls fn and turns a panic in it into a *PanicError.
func run[V any](ctx context.Context, fn func(context.Context) (V, error)) (v V, err error) {
	defer func() {
		if r := recover(); r != nil {
			var zero V
			v, err = zero, &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return fn(ctx)
}

// Close cancels the context of every function Do started, waits for them to
// return, and makes later calls of Do fail with ErrClosed.
func (g *Group[V]) Close() {
	g.stopContext()
	g.mu.Lock()
	g.closed = true
	cancel := g.cancel
	g.mu.Unlock()
	cancel(ErrClosed)
	g.wg.Wait()
}
