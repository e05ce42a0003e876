package flight

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestDo(t *testing.T) {
	var g Group[string]
	v, shared, err := g.Do(t.Context(), "key", func(context.Context) (string, error) {
		return "bar", nil
	})
	if v != "bar" || shared || err != nil {
		t.Fatalf("Do = %q, %v, %v; want bar, false, nil", v, shared, err)
	}
}

func TestDoErr(t *testing.T) {
	var g Group[string]
	someErr := errors.New("some error")
	v, _, err := g.Do(t.Context(), "key", func(context.Context) (string, error) {
		return "", someErr
	})
	if !errors.Is(err, someErr) || v != "" {
		t.Fatalf("Do = %q, %v; want \"\", %v", v, err, someErr)
	}
}

// TestDoDupSuppress is x/sync's test with a barrier instead of a sleep: fn
// blocks until every caller has joined, then returns once for all of them.
func TestDoDupSuppress(t *testing.T) {
	var g Group[string]
	const n = 10
	release := make(chan struct{})
	var calls atomic.Int32
	fn := func(context.Context) (string, error) {
		calls.Add(1)
		<-release
		return "bar", nil
	}

	var joined, wg sync.WaitGroup
	joined.Add(n)
	var sharedCount atomic.Int32
	for range n {
		wg.Go(func() {
			c, leader := g.Join("key")
			if leader {
				g.Lead(t.Context(), "key", c, fn)
			}
			joined.Done()
			v, err := c.Wait(t.Context())
			if v != "bar" || err != nil {
				t.Errorf("Wait = %q, %v; want bar, nil", v, err)
			}
			if !leader {
				sharedCount.Add(1)
			}
		})
	}
	joined.Wait()
	close(release)
	wg.Wait()
	if got := calls.Load(); got != 1 {
		t.Errorf("fn ran %d times, want 1", got)
	}
	if got := sharedCount.Load(); got != n-1 {
		t.Errorf("%d callers shared the call, want %d", got, n-1)
	}
}

func TestDoSharedFlag(t *testing.T) {
	var g Group[int]
	release := make(chan struct{})
	started := make(chan struct{})
	first := make(chan bool, 1)
	go func() {
		_, shared, _ := g.Do(t.Context(), "k", func(context.Context) (int, error) {
			close(started)
			<-release
			return 1, nil
		})
		first <- shared
	}()
	<-started
	second := make(chan bool, 1)
	go func() {
		_, shared, _ := g.Do(t.Context(), "k", func(context.Context) (int, error) {
			t.Error("second fn ran while the first was in flight")
			return 2, nil
		})
		second <- shared
	}()
	// The second caller must have joined before release: poll the map under
	// the lock (a barrier on the group's state, not a sleep).
	for !joinedWaiting(&g, "k") {
		runtime.Gosched()
	}
	close(release)
	if s := <-first; s {
		t.Error("leader reported shared = true")
	}
	if s := <-second; !s {
		t.Error("joiner reported shared = false")
	}
}

// joinedWaiting reports whether a caller other than the leader has joined
// key's call.
func joinedWaiting(g *Group[int], key string) bool { return g.Joined(key) > 0 }

func TestPanicBecomesErrorForEveryWaiter(t *testing.T) {
	var g Group[int]
	const n = 8
	release := make(chan struct{})
	var joined, wg sync.WaitGroup
	joined.Add(n)
	for range n {
		wg.Go(func() {
			c, leader := g.Join("k")
			if leader {
				g.Lead(t.Context(), "k", c, func(context.Context) (int, error) {
					<-release
					panic("boom")
				})
			}
			joined.Done()
			_, err := c.Wait(t.Context())
			var pe *PanicError
			if !errors.As(err, &pe) || pe.Value != "boom" || len(pe.Stack) == 0 {
				t.Errorf("err = %v, want a *PanicError with value boom and a stack", err)
			}
		})
	}
	joined.Wait()
	close(release)
	wg.Wait()
	// The group still works after a panic.
	v, _, err := g.Do(t.Context(), "k", func(context.Context) (int, error) { return 7, nil })
	if v != 7 || err != nil {
		t.Fatalf("Do after panic = %v, %v; want 7, nil", v, err)
	}
}

func TestPanicErrorUnwraps(t *testing.T) {
	var g Group[int]
	sentinel := errors.New("sentinel")
	_, _, err := g.Do(t.Context(), "k", func(context.Context) (int, error) { panic(sentinel) })
	if !errors.Is(err, sentinel) {
		t.Fatalf("err = %v, want it to wrap %v", err, sentinel)
	}
}

func TestGoexit(t *testing.T) {
	var g Group[int]
	done := make(chan error, 1)
	go func() {
		_, _, err := g.Do(t.Context(), "k", func(context.Context) (int, error) {
			runtime.Goexit()
			return 1, nil
		})
		done <- err
	}()
	if err := <-done; !errors.Is(err, ErrGoexit) {
		t.Fatalf("err = %v, want ErrGoexit", err)
	}
}

// TestWaiterHonoursOwnContext: a caller whose context ends returns with its
// context's error, the shared call keeps running detached and the other
// callers get its value.
func TestWaiterHonoursOwnContext(t *testing.T) {
	var g Group[string]
	release := make(chan struct{})
	started := make(chan struct{})
	var fnCtxErr atomic.Value

	leaderCtx, cancelLeader := context.WithCancel(t.Context())
	leaderDone := make(chan error, 1)
	go func() {
		_, _, err := g.Do(leaderCtx, "k", func(ctx context.Context) (string, error) {
			close(started)
			<-release
			if err := ctx.Err(); err != nil {
				fnCtxErr.Store(err)
			}
			return "value", nil
		})
		leaderDone <- err
	}()
	<-started
	other := make(chan string, 1)
	go func() {
		v, _, err := g.Do(t.Context(), "k", nil)
		if err != nil {
			t.Errorf("other caller: %v", err)
		}
		other <- v
	}()
	for g.Joined("k") == 0 { // the other caller has joined the call
		runtime.Gosched()
	}
	cancelLeader()
	if err := <-leaderDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller got %v, want context.Canceled", err)
	}
	close(release)
	if v := <-other; v != "value" {
		t.Fatalf("other caller got %q, want value", v)
	}
	if err := fnCtxErr.Load(); err != nil {
		t.Fatalf("shared fn saw its context end: %v", err)
	}
}

func TestDetachedContextKeepsValues(t *testing.T) {
	type ctxKey struct{}
	var g Group[any]
	ctx := context.WithValue(t.Context(), ctxKey{}, "trace-1")
	v, _, err := g.Do(ctx, "k", func(ctx context.Context) (any, error) {
		return ctx.Value(ctxKey{}), nil
	})
	if v != "trace-1" || err != nil {
		t.Fatalf("value in fn ctx = %v, %v; want trace-1", v, err)
	}
}

func TestForget(t *testing.T) {
	var g Group[int]
	release := make(chan struct{})
	first, leader := g.Join("k")
	if !leader {
		t.Fatal("first Join is not the leader")
	}
	g.Forget("k")
	second, leader := g.Join("k")
	if !leader || second == first {
		t.Fatal("Join after Forget joined the forgotten call")
	}
	go func() { <-release; g.Finish("k", first, 1, nil) }()
	close(release)
	if v, _ := first.Wait(t.Context()); v != 1 {
		t.Errorf("forgotten call's waiter got %d, want 1", v)
	}
	// Finishing the forgotten call must not remove the new one.
	if c, leader := g.Join("k"); leader || c != second {
		t.Error("finishing the forgotten call dropped the new call")
	}
	g.Finish("k", second, 2, nil)
}

func TestForgetAll(t *testing.T) {
	var g Group[int]
	a, _ := g.Join("a")
	b, _ := g.Join("b")
	g.ForgetAll()
	for _, k := range []string{"a", "b"} {
		if _, leader := g.Join(k); !leader {
			t.Fatalf("Join(%s) after ForgetAll joined a forgotten call", k)
		}
	}
	g.Finish("a", a, 1, nil)
	g.Finish("b", b, 2, nil)
}

func TestCloseCancelsAndWaits(t *testing.T) {
	var g Group[int]
	started := make(chan struct{})
	var returned atomic.Bool
	var cause atomic.Value
	go g.Do(t.Context(), "k", func(ctx context.Context) (int, error) {
		close(started)
		<-ctx.Done()
		// A context derived from the detached one sees the same cause.
		child, cancel := context.WithCancel(ctx)
		defer cancel()
		<-child.Done()
		cause.Store(context.Cause(child))
		returned.Store(true)
		return 0, ctx.Err()
	})
	<-started
	g.Close()
	if !returned.Load() {
		t.Fatal("Close returned before the running function")
	}
	if got := cause.Load(); got != ErrClosed {
		t.Fatalf("Cause of the function's context after Close = %v, want ErrClosed", got)
	}
	if _, _, err := g.Do(t.Context(), "k", func(context.Context) (int, error) { return 1, nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Do after Close = %v, want ErrClosed", err)
	}
}

// TestRun: Run runs fn on the caller's goroutine, with the values of the
// caller's context and the group's cancellation, and Close waits for it.
func TestRun(t *testing.T) {
	var g Group[string]
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, "v")
	// On the caller's goroutine, the stack goes down to the test runner.
	onCaller := func() bool {
		buf := make([]byte, 64<<10)
		return strings.Contains(string(buf[:runtime.Stack(buf, false)]), "testing.tRunner")
	}
	var got string
	if !g.Run(ctx, func(ctx context.Context) { got = fmt.Sprint(onCaller(), ctx.Value(key{})) }) {
		t.Fatal("Run refused before Close")
	}
	if got != "truev" {
		t.Fatalf("Run: %q, want fn on the caller's goroutine with the values", got)
	}
	started, closed := make(chan struct{}), make(chan struct{})
	var sawCancel atomic.Bool
	go g.Run(ctx, func(ctx context.Context) {
		close(started)
		<-ctx.Done()
		sawCancel.Store(true)
	})
	<-started
	go func() { g.Close(); close(closed) }()
	<-closed
	if !sawCancel.Load() {
		t.Fatal("Close returned before the function Run was running")
	}
	if g.Run(ctx, func(context.Context) { t.Error("ran after Close") }) {
		t.Fatal("Run after Close reported true")
	}
}

// TestFinishOnce: only the first Finish of a call counts.
func TestFinishOnce(t *testing.T) {
	var g Group[int]
	c, _ := g.Join("k")
	if !g.Finish("k", c, 1, nil) || g.Finish("k", c, 2, errors.New("late")) {
		t.Fatal("Finish did not report first-wins")
	}
	if v, err := c.Wait(t.Context()); v != 1 || err != nil {
		t.Fatalf("Wait = %v, %v; want the first result", v, err)
	}
}

func TestRunnerResults(t *testing.T) {
	var r Runner
	if err := r.Run(t.Context(), func(context.Context) error { return nil }, nil); err != nil {
		t.Fatalf("Run = %v", err)
	}
	boom := errors.New("boom")
	if err := r.Run(t.Context(), func(context.Context) error { panic(boom) }, nil); !errors.Is(err, boom) {
		t.Fatalf("panic: %v, want a *PanicError wrapping boom", err)
	}
	if err := r.Run(t.Context(), func(context.Context) error { runtime.Goexit(); return nil }, nil); !errors.Is(err, ErrGoexit) {
		t.Fatalf("Goexit: %v, want ErrGoexit", err)
	}
}

// TestRunnerAbandons: a function that ignores its context is abandoned when
// the context ends; abandoned calls are counted, bounded by Limit, and
// dropped from the count when they return.
func TestRunnerAbandons(t *testing.T) {
	r := Runner{Limit: 2}
	release := make(chan struct{})
	var abandoned atomic.Int32
	stuck := func(context.Context) error { <-release; return nil }
	for i := range 2 {
		ctx, cancel := context.WithCancel(t.Context())
		go func() {
			for r.runningCount() <= i { // this call's function has started
				runtime.Gosched()
			}
			cancel()
		}()
		err := r.Run(ctx, stuck, func() { abandoned.Add(1) })
		if !errors.Is(err, ErrAbandoned) || !errors.Is(err, context.Canceled) {
			t.Fatalf("Run of a stuck function = %v, want ErrAbandoned and Canceled", err)
		}
	}
	if got := r.Abandoned(); got != 2 || abandoned.Load() != 2 {
		t.Fatalf("Abandoned = %d (callbacks %d), want 2", got, abandoned.Load())
	}
	if err := r.Run(t.Context(), func(context.Context) error { return nil }, nil); !errors.Is(err, ErrTooManyAbandoned) {
		t.Fatalf("Run past Limit = %v, want ErrTooManyAbandoned", err)
	}
	if r.Wait(time.Millisecond) {
		t.Fatal("Wait reported idle with stuck functions running")
	}
	close(release)
	if !r.Wait(10 * time.Second) {
		t.Fatal("Wait timed out after the stuck functions returned")
	}
	if got := r.Abandoned(); got != 0 {
		t.Fatalf("Abandoned = %d after they returned, want 0", got)
	}
}

func (r *Runner) runningCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running.n
}
