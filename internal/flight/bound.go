package flight

import (
	"context"
	"sync"
	"time"
)

// Bound is the context of detached work: the values of one context (a
// caller's), the cancellation of another (the parent, e.g. a Group's, which
// Close cancels) and a deadline of its own, like context.WithDeadline's. It
// costs nothing until it is asked for its Done channel: the channel, the
// timer and the watch of the parent are made then, so that work that
// finishes without selecting on Done (an in-memory lookup, a computation)
// allocates nothing. Err reports the deadline whether or not Done was asked
// for.
//
// Init it, give it (as a pointer) to the work, and Release it when the work
// returns, as a CancelFunc is called.
type Bound struct {
	parent   context.Context
	values   context.Context
	deadline time.Time

	mu      sync.Mutex
	done    chan struct{}
	closed  bool
	err     error
	timer   *time.Timer
	unwatch func() bool
}

var _ context.Context = (*Bound)(nil)

// Init makes b a context with the values of values that ends when parent
// does or at deadline. parent must hold no values of its own (it derives
// from Background): it is asked first, so that the context package finds
// its cancellation, not that of values.
func (b *Bound) Init(parent, values context.Context, deadline time.Time) {
	b.parent, b.values, b.deadline = parent, values, deadline
}

// Deadline returns b's deadline.
func (b *Bound) Deadline() (time.Time, bool) { return b.deadline, true }

// Value returns the value for key of values (see Init).
func (b *Bound) Value(key any) any {
	if v := b.parent.Value(key); v != nil {
		return v
	}
	return b.values.Value(key)
}

// Err returns the parent's error once it has ended, DeadlineExceeded once
// the deadline has passed, Canceled once b is released, and nil before.
func (b *Bound) Err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil {
		if err := b.parent.Err(); err != nil {
			b.endLocked(err)
		} else if !time.Now().Before(b.deadline) {
			b.endLocked(context.DeadlineExceeded)
		}
	}
	return b.err
}

// Done returns a channel closed when b ends (see Err). The first call makes
// it, with a timer for the deadline and a watch of the parent.
func (b *Bound) Done() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done != nil {
		return b.done
	}
	b.done = make(chan struct{})
	if b.err == nil {
		if err := b.parent.Err(); err != nil {
			b.err = err
		} else if !time.Now().Before(b.deadline) {
			b.err = context.DeadlineExceeded
		}
	}
	if b.err != nil {
		b.closed = true
		close(b.done)
		return b.done
	}
	b.timer = time.AfterFunc(time.Until(b.deadline), func() { b.end(context.DeadlineExceeded) })
	if b.parent.Done() != nil {
		b.unwatch = context.AfterFunc(b.parent, func() { b.end(b.parent.Err()) })
	}
	return b.done
}

// Release ends b (with Canceled, unless it ended before) and stops its
// timer and its watch of the parent. Call it once the work is done.
func (b *Bound) Release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.endLocked(context.Canceled)
}

func (b *Bound) end(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.endLocked(err)
}

// endLocked records err as b's error unless it has one, closes Done if it
// was made, and stops the timer and the watch once b has ended.
func (b *Bound) endLocked(err error) {
	if b.err == nil {
		b.err = err
	}
	if b.done != nil && !b.closed {
		b.closed = true
		close(b.done)
	}
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	if b.unwatch != nil {
		b.unwatch()
		b.unwatch = nil
	}
}
