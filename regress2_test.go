package tiercache_test

// Regression tests for defects 6-10 (see the project's defect list): each
// TestDefectN fails on the code that has the defect and passes once it is
// fixed. They use only the public API, so that they survive the rewrite of
// the miss path, the store interfaces and version handling.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cachetest"
	"github.com/tiercache/tiercache/driver"
	"github.com/tiercache/tiercache/redisstore"
)

// reg2Within runs f on a goroutine of its own and reports whether it
// returned within d: a watchdog for calls that the defects make hang.
func reg2Within(d time.Duration, f func()) bool {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// reg2Recv waits at most d for ch to be closed or to deliver, and fails the
// test otherwise.
func reg2Recv[T any](t *testing.T, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("timed out after %v waiting for %s", d, what)
		panic("unreachable")
	}
}

// reg2Stuck is a loader whose first call ignores its context and blocks
// until the test ends, and whose later calls return at once. Create it
// after the cache it is used with: its release then runs in t.Cleanup
// before the cache's Close.
type reg2Stuck struct {
	calls   atomic.Int64
	started chan struct{} // closed when the first call begins
	release chan struct{} // closed at test cleanup
}

func reg2NewStuck(t *testing.T) *reg2Stuck {
	s := &reg2Stuck{started: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(func() { close(s.release) })
	return s
}

func (s *reg2Stuck) load(_ context.Context, id string) (user, error) {
	if s.calls.Add(1) == 1 {
		close(s.started)
		<-s.release // deliberately ignores ctx
	}
	return user{ID: id, Name: "user " + id}, nil
}

// reg2Tiers are the two configurations defect 6 is tested with: no shared
// tier, and Redis (srv).
func reg2Tiers() []struct {
	name string
	addr func(testing.TB) string
} {
	return []struct {
		name string
		addr func(testing.TB) string
	}{{"no-store", func(testing.TB) string { return "" }}, {"redis", func(tb testing.TB) string { return srv(tb).Addr() }}}
}

// reg2Outcome is what became of a Get run on a goroutine of its own:
// returned is false if the goroutine ended inside Get (runtime.Goexit).
type reg2Outcome struct {
	returned bool
	v        user
	err      error
}

// reg2Go runs get on a new goroutine and delivers its outcome on the
// returned channel, also when the goroutine ends inside get.
func reg2Go(get func() (user, error)) <-chan reg2Outcome {
	out := make(chan reg2Outcome, 1)
	go func() {
		var o reg2Outcome
		defer func() { out <- o }()
		o.v, o.err = get()
		o.returned = true
	}()
	return out
}

// TestDefect6LoaderIgnoringContext: a loader that ignores its context must
// not wedge its id, Close, or a Get with context.Background(), and a
// runtime.Goexit in a loader must be an error for every caller.
func TestDefect6LoaderIgnoringContext(t *testing.T) {
	for _, tier := range reg2Tiers() {
		t.Run(tier.name, func(t *testing.T) {
			t.Parallel()
			// Past LoadTimeout the stuck load is abandoned: a caller that
			// arrives after the first one got its error starts a new
			// loader call instead of joining the stuck one. (LockTTL 1 s:
			// with Redis, a lock the stuck load may still hold delays the
			// second caller by LockWait = LockTTL at most.)
			t.Run("abandoned-after-LoadTimeout", func(t *testing.T) {
				t.Parallel()
				c := newCache(t, tier.addr(t), tiercache.Options[user]{
					Rebuild: tiercache.Rebuild{LockTTL: time.Second, LoadTimeout: 300 * time.Millisecond}, Retry: tiercache.Retry{Attempts: 1},
				})
				s := reg2NewStuck(t)
				ctx1, cancel1 := context.WithTimeout(t.Context(), 2*time.Second)
				defer cancel1()
				if _, err := c.Get(ctx1, "42", s.load); err == nil {
					t.Fatal("first Get: nil error, but its loader never returned")
				}
				ctx2, cancel2 := context.WithTimeout(t.Context(), 2*time.Second)
				defer cancel2()
				u, err := c.Get(ctx2, "42", s.load)
				if err != nil || u.ID != "42" {
					t.Errorf("second Get, after the first failed = %+v, %v; want user 42 from a new loader call", u, err)
				}
				if n := s.calls.Load(); n != 2 {
					t.Errorf("loader called %d times, want 2 (the second caller must not join the stuck load)", n)
				}
			})

			// Close returns within a bound while a loader ignores ctx
			// (LoadTimeout is left at its default, LockTTL = 5 s).
			t.Run("close-is-bounded", func(t *testing.T) {
				t.Parallel()
				c := newCache(t, tier.addr(t), tiercache.Options[user]{})
				s := reg2NewStuck(t)
				go func() { _, _ = c.Get(t.Context(), "42", s.load) }()
				reg2Recv(t, s.started, 5*time.Second, "the loader to start")
				if !reg2Within(3*time.Second, func() { c.Close() }) {
					t.Fatal("Close did not return within 3 s while a loader ignores its context")
				}
			})

			// Get(context.Background()) returns an error after about
			// LoadTimeout.
			t.Run("background-get-returns", func(t *testing.T) {
				t.Parallel()
				c := newCache(t, tier.addr(t), tiercache.Options[user]{Rebuild: tiercache.Rebuild{LoadTimeout: 300 * time.Millisecond}})
				s := reg2NewStuck(t)
				out := reg2Go(func() (user, error) { return c.Get(context.Background(), "42", s.load) })
				timer := time.NewTimer(5 * time.Second)
				defer timer.Stop()
				select {
				case o := <-out:
					if o.err == nil {
						t.Fatalf("Get(context.Background()) = %+v, nil; want an error (the loader never returned)", o.v)
					}
				case <-timer.C:
					t.Fatal("Get(context.Background()) did not return within 5 s (LoadTimeout 300 ms) while its loader ignores ctx")
				}
			})

			// runtime.Goexit in a loader is an error for every caller
			// sharing the load, and the calling goroutines go on.
			for _, bg := range []bool{true, false} {
				name := "goexit-cancellable-ctx"
				if bg {
					name = "goexit-background-ctx"
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					c := newCache(t, tier.addr(t), tiercache.Options[user]{Rebuild: tiercache.Rebuild{LoadTimeout: 2 * time.Second}})
					release := make(chan struct{})
					var releaseOnce sync.Once
					t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
					load := func(ctx context.Context, id string) (user, error) {
						select {
						case <-release:
						case <-ctx.Done():
						}
						runtime.Goexit()
						return user{}, nil
					}
					ctx := t.Context()
					if bg {
						ctx = context.Background()
					}
					const callers = 4
					outs := make([]<-chan reg2Outcome, callers)
					for i := range outs {
						outs[i] = reg2Go(func() (user, error) { return c.Get(ctx, "42", load) })
					}
					waitUntil(t, func() bool { return tiercache.Joined(c, "42") == callers-1 }, "every caller to share the load")
					releaseOnce.Do(func() { close(release) })
					for i, out := range outs {
						o := reg2Recv(t, out, 5*time.Second, fmt.Sprintf("caller %d", i))
						switch {
						case !o.returned:
							t.Errorf("caller %d: its goroutine ended inside Get (the loader's runtime.Goexit ended it)", i)
						case !errors.Is(o.err, tiercache.ErrPanic):
							t.Errorf("caller %d: Get = %+v, %v; want ErrPanic (the loader called runtime.Goexit)", i, o.v, o.err)
						}
					}
				})
			}
		})
	}
}

// TestDefect7ForeignLockAndValueKeys: a lock key without a TTL, a lock key
// of another type or a value key of another type, left by anything else,
// must not cost a LockWait on every miss, keep the value out of Redis, or
// open the circuit breaker.
func TestDefect7ForeignLockAndValueKeys(t *testing.T) {
	// lockKey is the rebuild lock of a value key without a hash tag:
	// "{" + valueKey + "}:lock".
	lockKey := func(valueKey string) string { return "{" + valueKey + "}:lock" }
	do := func(t *testing.T, args ...string) any {
		t.Helper()
		v, err := srv(t).Do(args...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return v
	}
	cases := []struct {
		name  string
		plant func(t *testing.T, key string)
	}{
		{"lock-without-ttl", func(t *testing.T, key string) { do(t, "SET", lockKey(key), "x") }},
		{"lock-of-another-type", func(t *testing.T, key string) { do(t, "HSET", lockKey(key), "owner", "someone-else") }},
		{"value-of-another-type", func(t *testing.T, key string) { do(t, "RPUSH", key, "x") }},
	}
	const n = 20
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := tiercache.Options[user]{Rebuild: tiercache.Rebuild{LockWait: time.Second}}
			a := newCache(t, srv(t).Addr(), o)
			b := newCache(t, srv(t).Addr(), o) // a second process of the same keyspace
			ids := make([]string, n)
			for i := range ids {
				ids[i] = strconv.Itoa(i)
				tc.plant(t, a.Key(ids[i]))
			}

			// A's loaders wait for each other (at most 2 s), so that every
			// Get has met its bad key before any value is stored.
			var arrived atomic.Int64
			all := make(chan struct{})
			load := func(ctx context.Context, id string) (user, error) {
				if arrived.Add(1) == n {
					close(all)
				}
				timer := time.NewTimer(2 * time.Second)
				defer timer.Stop()
				select {
				case <-all:
				case <-timer.C:
				case <-ctx.Done():
				}
				return user{ID: id, Name: "user " + id}, nil
			}
			outs := make([]<-chan reg2Outcome, n)
			for i, id := range ids {
				outs[i] = reg2Go(func() (user, error) { return a.Get(t.Context(), id, load) })
			}
			for i, out := range outs {
				o := reg2Recv(t, out, 10*time.Second, "Get of id "+ids[i])
				if o.err != nil || o.v.ID != ids[i] {
					t.Errorf("Get(%s) = %+v, %v; want the loader's value", ids[i], o.v, o.err)
				}
			}
			if err := tiercache.WaitIdle(t.Context(), a); err != nil { // its fills
				t.Fatal(err)
			}

			var notStored, lockNoTTL []string
			for _, id := range ids {
				if typ := do(t, "TYPE", a.Key(id)); typ != "string" {
					notStored = append(notStored, fmt.Sprintf("%s (%v)", a.Key(id), typ))
				}
				if ttl := do(t, "PTTL", lockKey(a.Key(id))); ttl == int64(-1) {
					lockNoTTL = append(lockNoTTL, lockKey(a.Key(id)))
				}
			}
			if len(notStored) > 0 {
				t.Errorf("%d of %d values not stored in Redis after Get, e.g. %s", len(notStored), n, notStored[0])
			}
			if len(lockNoTTL) > 0 {
				t.Errorf("%d of %d lock keys still there without a TTL, e.g. %s", len(lockNoTTL), n, lockNoTTL[0])
			}
			if s := a.Stats(); s.Breaker != "closed" {
				t.Errorf("after %d ids with a bad key the circuit breaker is %q, want closed (L2 errors %d)", n, s.Breaker, s.L2Errors)
			}

			// B finds every value in Redis: its loader is never called.
			var bLoads atomic.Int64
			bLoad := func(ctx context.Context, id string) (user, error) {
				bLoads.Add(1)
				return user{ID: id, Name: "user " + id}, nil
			}
			for i, id := range ids {
				outs[i] = reg2Go(func() (user, error) { return b.Get(t.Context(), id, bLoad) })
			}
			for i, out := range outs {
				if o := reg2Recv(t, out, 10*time.Second, "B's Get of id "+ids[i]); o.err != nil || o.v.ID != ids[i] {
					t.Errorf("B: Get(%s) = %+v, %v", ids[i], o.v, o.err)
				}
			}
			if got := bLoads.Load(); got != 0 {
				t.Errorf("a second process called its loader for %d of %d ids, want 0 (L2 hits)", got, n)
			}
		})
	}
}

// TestDefect8LargeGetMany: a GetMany of 50,000 cold ids with the default
// redisstore options (Timeout 200 ms) stores every value, so that a second
// process's GetMany of the same ids loads none from the origin.
func TestDefect8LargeGetMany(t *testing.T) {
	const n = 50_000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	batch := func(calls *atomic.Int64) tiercache.BatchLoaderFunc[user] {
		return func(_ context.Context, ids []string) (map[string]user, error) {
			calls.Add(int64(len(ids)))
			m := make(map[string]user, len(ids))
			for _, id := range ids {
				m[id] = user{ID: id, Name: "user " + id}
			}
			return m, nil
		}
	}
	a := newCache(t, srv(t).Addr(), tiercache.Options[user]{})
	b := newCache(t, srv(t).Addr(), tiercache.Options[user]{})
	var aLoads, bLoads atomic.Int64
	got, err := a.GetMany(t.Context(), ids, batch(&aLoads))
	if err != nil || len(got) != n {
		t.Fatalf("first GetMany: %d values, %v; want %d, nil", len(got), err, n)
	}
	if err := tiercache.WaitIdle(t.Context(), a); err != nil { // its fills
		t.Fatal(err)
	}
	got, err = b.GetMany(t.Context(), ids, batch(&bLoads))
	if err != nil || len(got) != n {
		t.Errorf("second process's GetMany: %d values, %v; want %d, nil", len(got), err, n)
	}
	if l := bLoads.Load(); l != 0 {
		sa := a.Stats()
		t.Errorf("second process loaded %d of %d ids from the origin, want 0 (the first GetMany stores them all); first loaded %d (first's L2 errors %d, fills lost %d, breaker %s)", l, n, aLoads.Load(), sa.L2Errors, sa.FillsLost, sa.Breaker)
	}
}

// reg2Item is a value type whose JSON decoding of a user succeeds (unknown
// fields are ignored): a cache of items reading a user's entry would serve
// a zero item rather than fail.
type reg2Item struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

// reg2KS is one cache configuration and the id it is asked for.
type reg2KS struct{ P, V, N, id string }

func (k reg2KS) String() string {
	return fmt.Sprintf("{Prefix:%q Version:%q Name:%q id:%q}", k.P, k.V, k.N, k.id)
}

func reg2Options[V any](k reg2KS, store driver.Store) *tiercache.Options[V] {
	return &tiercache.Options[V]{Prefix: k.P, Keyspace: tiercache.Keyspace{Name: k.N, Version: k.V}, Store: store}
}

// TestDefect9AliasedKeys: configurations whose keys collide textually must
// be rejected by New or given distinct keys; two caches of different value
// types never decode each other's entries; and no cache can overwrite the
// runtime-version key of another keyspace.
func TestDefect9AliasedKeys(t *testing.T) {
	pairs := [][2]reg2KS{
		{{P: "a", V: "v1", N: "user", id: "42"}, {P: "", V: "av1", N: "user", id: "42"}},             // av1:user:42
		{{P: "", V: "a", N: "v1", id: "user:42"}, {P: "a:", V: "v1", N: "user", id: "42"}},           // a:v1:user:42
		{{P: "", V: "v1", N: "user", id: "42:x"}, {P: "v1:", V: "user", N: "42", id: "x"}},           // v1:user:42:x
		{{P: "v1:user:", V: "v1", N: "user", id: "1"}, {P: "", V: "v1", N: "user", id: "v1:user:1"}}, // v1:user:v1:user:1
	}
	// A private server: the literal keyspaces of the table must not meet
	// other tests' keys.
	rs := cachetest.StartRedis(t)
	ctx := t.Context()
	for i, p := range pairs {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			ku, errU := tiercache.New(reg2Options[user](p[0], nil))
			ki, errI := tiercache.New(reg2Options[reg2Item](p[1], nil))
			if errU == nil {
				defer ku.Close()
			}
			if errI == nil {
				defer ki.Close()
			}
			if errU != nil || errI != nil {
				t.Logf("New rejected one of %v, %v: %v, %v", p[0], p[1], errU, errI)
				return
			}
			if ku.Key(p[0].id) == ki.Key(p[1].id) {
				t.Errorf("%v and %v both use the key %q", p[0], p[1], ku.Key(p[0].id))
			}

			// Behaviour: each cache of one type Sets, a process of the other
			// type must load its own value, not decode the other's entry.
			users := newCache(t, "", *reg2Options[user](p[0], redisstore.New(newRedis(t, rs.Addr()), nil)))
			items := newCache(t, "", *reg2Options[reg2Item](p[1], redisstore.New(newRedis(t, rs.Addr()), nil)))
			if err := users.Set(ctx, p[0].id, user{ID: p[0].id, Name: "a user"}); err != nil {
				t.Fatalf("users.Set: %v", err)
			}
			var itemLoads atomic.Int64
			it, err := items.Get(ctx, p[1].id, func(context.Context, string) (reg2Item, error) {
				itemLoads.Add(1)
				return reg2Item{SKU: "sku-1", Qty: 7}, nil
			})
			if err != nil || itemLoads.Load() != 1 || it != (reg2Item{SKU: "sku-1", Qty: 7}) {
				t.Errorf("items.Get(%q) after users.Set(%q) = %+v, %v with %d loader calls; want its loader's item (1 call)",
					p[1].id, p[0].id, it, err, itemLoads.Load())
			}
			if err := items.Set(ctx, p[1].id, reg2Item{SKU: "sku-2", Qty: 9}); err != nil {
				t.Fatalf("items.Set: %v", err)
			}
			users2 := newCache(t, "", *reg2Options[user](p[0], redisstore.New(newRedis(t, rs.Addr()), nil)))
			var userLoads atomic.Int64
			u, err := users2.Get(ctx, p[0].id, func(_ context.Context, id string) (user, error) {
				userLoads.Add(1)
				return user{ID: id, Name: "loaded"}, nil
			})
			// Its own keyspace holds the user Set above (keys no longer
			// collide); what it must never do is decode the item.
			if err != nil || u.ID != p[0].id || (u.Name != "a user" && u.Name != "loaded") {
				t.Errorf("a new users process: Get(%q) after items.Set(%q) = %+v, %v with %d loader calls; want the user Set or its loader's",
					p[0].id, p[1].id, u, err, userLoads.Load())
			}
		})
	}

	// A cache with Version "tiercache" and Name "version" must not overwrite
	// the runtime-version key ("tiercache:version:" + Name) of keyspace
	// "orders".
	t.Run("version-key", func(t *testing.T) {
		const x = "orders"
		orders := newCache(t, "", tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: x}, Store: redisstore.New(newRedis(t, rs.Addr()), nil)})
		if _, err := orders.BumpVersion(ctx); err != nil {
			t.Fatalf("BumpVersion: %v", err)
		}
		if v := orders.Keyspace().Version; v == "v1" {
			t.Fatalf("after BumpVersion the version is still %q", v)
		}
		evil, err := tiercache.New(&tiercache.Options[user]{
			Keyspace: tiercache.Keyspace{Name: "version", Version: "tiercache"},
			Store:    redisstore.New(newRedis(t, rs.Addr()), nil),
		})
		if err != nil {
			t.Logf("New rejected Version tiercache, Name version: %v", err)
		} else {
			defer evil.Close()
			err := evil.Set(ctx, x, user{ID: x})
			t.Logf("cache tiercache/version: Set(%q) under key %q: %v", x, evil.Key(x), err)
		}
		later := newCache(t, "", tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: x}, Store: redisstore.New(newRedis(t, rs.Addr()), nil)})
		waitSettled(t, later) // New does no I/O: the version is read in the background
		if v := later.Keyspace().Version; v == "v1" {
			t.Errorf("a new process of keyspace %q starts on version %q: the runtime bump was overwritten by another keyspace's Set", x, v)
		}
	})
}

// TestDefect10Lifecycle: no refresh outlives Close; GetMany racing Close
// leaves no call unfinished; New does no blocking I/O.
func TestDefect10Lifecycle(t *testing.T) {
	// (a) Stale entries read by many goroutines while Close runs: no loader
	// call may start after Close returned.
	t.Run("no-refresh-after-close", func(t *testing.T) {
		// Many rounds: the window is narrow. They stop at the first late
		// call, or after 2 s.
		const maxRounds, ids, readers = 20_000, 64, 4
		var late, refreshCalls atomic.Int64
		rounds := 0
		for began := time.Now(); rounds < maxRounds && late.Load() == 0 && time.Since(began) < 2*time.Second; rounds++ {
			round := rounds
			clk := newClock()
			o := tiercache.Options[user]{
				Keyspace: tiercache.Keyspace{Name: keyspaceName(t)},
				TTL:      time.Minute, StaleTTL: time.Hour, Jitter: -1, Rebuild: tiercache.Rebuild{EarlyRefreshBeta: -1},
			}
			tiercache.SetClock(&o, clk.Now)
			c, err := tiercache.New(&o)
			if err != nil {
				t.Fatal(err)
			}
			var closed atomic.Bool // set once Close has returned
			load := func(_ context.Context, id string) (user, error) {
				if closed.Load() {
					late.Add(1)
				}
				refreshCalls.Add(1)
				return user{ID: id}, nil
			}
			for i := range ids {
				if _, err := c.Get(t.Context(), strconv.Itoa(i), load); err != nil {
					t.Fatal(err)
				}
			}
			clk.Advance(2 * time.Minute) // stale: every first read refreshes
			start := make(chan struct{})
			var wg sync.WaitGroup
			for r := range readers {
				wg.Go(func() {
					<-start
					for i := r; i < ids; i += readers {
						if _, err := c.Get(t.Context(), strconv.Itoa(i), load); errors.Is(err, tiercache.ErrClosed) {
							return
						}
					}
				})
			}
			close(start)
			for range round % 8 { // vary where Close lands among the reads
				runtime.Gosched()
			}
			c.Close()
			closed.Store(true)
			wg.Wait()
		}
		if n := late.Load(); n > 0 {
			t.Errorf("%d loader calls started after Close returned (over %d rounds, %d loader calls)", n, rounds, refreshCalls.Load())
		}
	})

	// (b) GetMany of ids 0..99 racing Close and a Get(context.Background())
	// of one of its ids: every call returns.
	t.Run("getmany-racing-close", func(t *testing.T) {
		const rounds = 1000
		batch := func(_ context.Context, ids []string) (map[string]user, error) {
			m := make(map[string]user, len(ids))
			for _, id := range ids {
				m[id] = user{ID: id}
			}
			return m, nil
		}
		load := func(_ context.Context, id string) (user, error) { return user{ID: id}, nil }
		ids := make([]string, 100)
		for i := range ids {
			ids[i] = strconv.Itoa(i)
		}
		for round := range rounds {
			c, err := tiercache.New(&tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: keyspaceName(t)}})
			if err != nil {
				t.Fatal(err)
			}
			var getManyDone, getDone, closeDone atomic.Bool
			start := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				<-start
				_, _ = c.GetMany(context.Background(), ids, batch)
				getManyDone.Store(true)
			})
			wg.Go(func() {
				<-start
				for range round % 4 {
					runtime.Gosched()
				}
				_, _ = c.Get(context.Background(), "50", load)
				getDone.Store(true)
			})
			wg.Go(func() {
				<-start
				for range round % 7 {
					runtime.Gosched()
				}
				c.Close()
				closeDone.Store(true)
			})
			close(start)
			if !reg2Within(10*time.Second, wg.Wait) {
				t.Fatalf("round %d: calls still running after 10 s: GetMany returned %v, Get(context.Background(), \"50\") returned %v, Close returned %v",
					round, getManyDone.Load(), getDone.Load(), closeDone.Load())
			}
		}
	})

	// (c) New with a store on a server that accepts connections and never
	// answers must return at once: it does no blocking I/O.
	t.Run("new-does-no-blocking-io", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var conns []net.Conn
		hungUp := false
		hangUp := func() { // makes every call on the black hole fail at once
			ln.Close()
			mu.Lock()
			defer mu.Unlock()
			hungUp = true
			for _, c := range conns {
				c.Close()
			}
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				if hungUp {
					c.Close()
				} else {
					conns = append(conns, c) // held open, never read or answered
				}
				mu.Unlock()
			}
		}()
		rdb := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), ContextTimeoutEnabled: true})
		t.Cleanup(func() { rdb.Close() })
		store := redisstore.New(rdb, &redisstore.Options{Timeout: 5 * time.Second})
		type made struct {
			c   *tiercache.Cache[user]
			err error
		}
		out := make(chan made, 1)
		go func() {
			c, err := tiercache.New(&tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: keyspaceName(t)}, Store: store})
			out <- made{c, err}
		}()
		t.Cleanup(func() {
			hangUp()
			if m := <-out; m.err == nil { // New returns once the I/O fails
				m.c.Close()
			}
		})
		timer := time.NewTimer(2 * time.Second)
		defer timer.Stop()
		select {
		case m := <-out:
			out <- m // for the cleanup
			if m.err != nil {
				t.Fatalf("New: %v", m.err)
			}
		case <-timer.C:
			t.Fatal("New did not return within 2 s with a store whose server never answers (redisstore Timeout 5 s): it does blocking I/O")
		}
	})
}
