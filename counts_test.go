package tiercache_test

// Tests from the second adversarial review (each failed on the code it reviewed): stats and logs that must equal what happened.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cachetest"
)

// TestAbandonedCountsOnlyLoadersThatIgnoreCtx: stats.Snapshot says
// "LoadsAbandoned counts loads whose loader ignored its context past
// LoadTimeout" and docs/architecture.md "one still running at LoadTimeout
// (it ignores its context) is abandoned ... and it is counted
// (LoadsAbandoned)". A loader that honours its context (returns ctx.Err()
// the moment its context ends) is not abandoned, and must not be counted,
// nor told it "ignores its context".
func TestAbandonedCountsOnlyLoadersThatIgnoreCtx(t *testing.T) {
	c := newCache(t, srv(t).Addr(), tiercache.Options[user]{
		Rebuild: tiercache.Rebuild{LoadTimeout: 30 * time.Millisecond},
		Retry:   tiercache.Retry{Attempts: 1},
	})
	// A well-behaved loader: it waits for the origin, but returns at once
	// when its context ends.
	polite := func(ctx context.Context, id string) (user, error) {
		<-ctx.Done()
		return user{}, ctx.Err()
	}
	const n = 20
	var lastErr error
	for i := range n {
		_, err := c.Get(t.Context(), "k"+string(rune('a'+i)), polite)
		if err == nil {
			t.Fatal("Get succeeded with a loader that never answers")
		}
		lastErr = err
	}
	if got := c.Stats().LoadsAbandoned; got != 0 {
		t.Errorf("%d loads timed out with a loader that honours its context; LoadsAbandoned = %d, want 0 (it counts loaders that ignore their context); last error: %v",
			n, got, lastErr)
	}
}

// TestCloseDoesNotCountPoliteLoaderAbandoned: Close cancels the loads
// in flight; a loader that returns as soon as its context ends is not
// abandoned ("A loader that ignores its context is waited for at most a
// second, then abandoned"), and must not be counted as such.
func TestCloseDoesNotCountPoliteLoaderAbandoned(t *testing.T) {
	c := newCache(t, srv(t).Addr(), tiercache.Options[user]{Retry: tiercache.Retry{Attempts: 1}})
	started := make(chan struct{}, 10)
	polite := func(ctx context.Context, id string) (user, error) {
		started <- struct{}{}
		<-ctx.Done()
		return user{}, ctx.Err()
	}
	const n = 10
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := c.Get(context.Background(), "c"+string(rune('a'+i)), polite)
			errs <- err
		}()
	}
	for range n {
		<-started
	}
	c.Close()
	for range n {
		if err := <-errs; err == nil || !errors.Is(err, tiercache.ErrClosed) && !errors.Is(err, context.Canceled) {
			t.Logf("Get during Close: %v", err)
		}
	}
	if got := c.Stats().LoadsAbandoned; got != 0 {
		t.Errorf("Close cancelled %d loads whose loader returned at once; LoadsAbandoned = %d, want 0", n, got)
	}
}

// TestStartupIsNoVersionSwitch: stats.VersionSwitch is "a move to a new
// runtime generation of the keyspace", and the Info log "a switch to a new
// runtime version" is "what an operator wants to know happened". A process
// that starts on a keyspace bumped earlier reads the generation before it
// uses Redis at all ("Until a process has read the generation (at start
// ...) it does not use Redis: it does not know its keys"): it never used
// generation 0, so it moved nowhere. It counts a switch, logs one ("from
// v1"), flushes its (empty) L1 and publishes an acknowledgement to the
// fleet, at every start of every process: a fleet of 200 processes
// restarting reports 200 version switches that never happened.
func TestStartupIsNoVersionSwitch(t *testing.T) {
	name := keyspaceName(t)
	o := tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: name}}
	a := newCache(t, srv(t).Addr(), o)
	if _, err := a.BumpVersion(t.Context()); err != nil {
		t.Fatal(err)
	}
	var buf cachetest.Buffer
	o.Logger = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	c := newCache(t, srv(t).Addr(), o) // a process started after the bump
	if got := c.Keyspace().Version; got != a.Keyspace().Version {
		t.Fatalf("the new process is on %q, want %q", got, a.Keyspace().Version)
	}
	var switched []string
	for _, rec := range records(t, &buf) {
		if msg, _ := rec["msg"].(string); strings.Contains(msg, "switched") {
			switched = append(switched, fmt.Sprintf("%v (from %v to %v)", rec["msg"], rec["from"], rec["to"]))
		}
	}
	if n := c.Stats().VersionSwitches; n != 0 || len(switched) != 0 {
		t.Errorf("a process that started on an already bumped keyspace counts %d version switches and logs %q; want none", n, switched)
	}
}

// TestGetCancelledByCloseIsNoDegradation: loadRound says "a load
// cancelled by Close is no degradation", and degrade skips Fallback for
// ErrClosed (get.go: `!errors.Is(cause, ErrClosed)`); Close's doc: "loads in
// flight ... are cancelled", "After Close the cache's methods return
// ErrClosed". A Get whose load Close cancels gets an error that does not
// wrap ErrClosed (the group's cause is flight.ErrClosed, or the loader's
// context.Canceled), so it is served the Fallback value as a degraded
// answer and counted as a fallback.
func TestGetCancelledByCloseIsNoDegradation(t *testing.T) {
	o := tiercache.Options[user]{
		Retry:   tiercache.Retry{Attempts: 1},
		Degrade: tiercache.Degrade[user]{Fallback: func(id string, cause error) user { return user{ID: id, Name: "fallback"} }},
	}
	c := newCache(t, srv(t).Addr(), o)
	started := make(chan struct{}, 2)
	ignores := func(ctx context.Context, id string) (user, error) { // a loader that ignores its context
		started <- struct{}{}
		time.Sleep(1500 * time.Millisecond)
		return user{}, errors.New("too late")
	}
	polite := func(ctx context.Context, id string) (user, error) {
		started <- struct{}{}
		<-ctx.Done()
		return user{}, ctx.Err()
	}
	type res struct {
		u   user
		err error
	}
	out := make(chan res, 2)
	for i, load := range []tiercache.LoaderFunc[user]{ignores, polite} {
		go func() {
			u, err := c.Get(context.Background(), "k"+strconv.Itoa(i), load)
			out <- res{u, err}
		}()
	}
	<-started
	<-started
	c.Close()
	for range 2 {
		r := <-out
		if !errors.Is(r.err, tiercache.ErrClosed) || tiercache.Degraded(r.err) {
			t.Errorf("Get cancelled by Close = %+v, %v (wraps ErrClosed: %v, Degraded: %v); want ErrClosed, no fallback",
				r.u, r.err, errors.Is(r.err, tiercache.ErrClosed), tiercache.Degraded(r.err))
		}
	}
	if n := c.Stats().Fallbacks; n != 0 {
		t.Errorf("%d fallbacks counted for Gets cancelled by Close", n)
	}
}
