package flight

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

type key struct{}

func TestBoundDeadlineWithoutDone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var b Bound
		values := context.WithValue(context.Background(), key{}, "caller's")
		b.Init(context.Background(), values, time.Now().Add(time.Second))
		defer b.Release()
		if err := b.Err(); err != nil {
			t.Fatalf("Err before the deadline = %v", err)
		}
		if d, ok := b.Deadline(); !ok || !d.Equal(time.Now().Add(time.Second)) {
			t.Errorf("Deadline = %v, %v", d, ok)
		}
		if v := b.Value(key{}); v != "caller's" {
			t.Errorf("Value = %v, want the caller's value", v)
		}
		time.Sleep(time.Second)
		if err := b.Err(); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Err at the deadline = %v, want DeadlineExceeded", err)
		}
		select {
		case <-b.Done(): // made after the end: closed at once
		default:
			t.Fatal("Done asked for after the deadline is not closed")
		}
	})
}

func TestBoundDoneFiresAtTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var b Bound
		start := time.Now()
		b.Init(context.Background(), context.Background(), start.Add(time.Second))
		defer b.Release()
		<-b.Done()
		if took := time.Since(start); took != time.Second {
			t.Errorf("Done closed after %v, want 1s", took)
		}
		if err := context.Cause(&b); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Cause = %v, want DeadlineExceeded", err)
		}
	})
}

// The parent's cancellation ends b, and its cause is what context.Cause
// reports; the values' context's cancellation does not.
func TestBoundParentAndValues(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stop, cancelStop := context.WithCancelCause(context.Background())
		caller, cancelCaller := context.WithCancelCause(context.Background())
		var b Bound
		b.Init(stop, caller, time.Now().Add(time.Hour))
		defer b.Release()
		done := b.Done()
		cancelCaller(errors.New("the caller gave up"))
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("the caller's cancellation ended b")
		default:
		}
		if err := context.Cause(&b); err != nil {
			t.Fatalf("Cause while running = %v, want nil (not the caller's cause)", err)
		}
		closed := errors.New("closed")
		cancelStop(closed)
		<-done
		if err := b.Err(); !errors.Is(err, context.Canceled) {
			t.Errorf("Err = %v, want Canceled", err)
		}
		if err := context.Cause(&b); !errors.Is(err, closed) {
			t.Errorf("Cause = %v, want the parent's cause", err)
		}
	})
}

// Release ends b and stops its timer; contexts derived from b end with it.
func TestBoundRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var b Bound
		b.Init(context.Background(), context.Background(), time.Now().Add(time.Hour))
		child, cancel := context.WithCancel(&b)
		defer cancel()
		b.Release()
		<-child.Done()
		if err := b.Err(); !errors.Is(err, context.Canceled) {
			t.Errorf("Err after Release = %v, want Canceled", err)
		}
		synctest.Wait() // no timer or goroutine left behind: synctest would report it
	})
}
