package tiercache_test

// Regression tests for defects 1-5 of the consistency review: each test
// fails on the code as it was when the defect was reported and passes once
// the behaviour its comment states holds.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cachetest"
	"github.com/tiercache/tiercache/redisstore"
)

// reg1Options are the options of every cache in this file: values and L1
// copies live for an hour, so nothing a test sees is explained by an expiry.
func reg1Options(name string) tiercache.Options[user] {
	return tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: name}, TTL: time.Hour, L1: tiercache.L1[user]{TTL: time.Hour}}
}

// errReg1Loaded is what reg1NoLoad returns: the value should have come from
// a tier, never from the origin.
var errReg1Loaded = errors.New("loader called: no tier held the value")

func reg1NoLoad(context.Context, string) (user, error) { return user{}, errReg1Loaded }

// reg1Fresh reads id the way a process started now would: a new go-redis
// client and a new cache on addr, closed before it returns. Its L1 is
// empty, so it answers with what Redis holds.
func reg1Fresh(t *testing.T, addr string, o tiercache.Options[user], id string) (user, error) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	defer rdb.Close()
	o.Store = redisstore.New(rdb, nil)
	c, err := tiercache.New(&o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer c.Close()
	return c.Get(t.Context(), id, reg1NoLoad)
}

// reg1Wait polls cond until it holds, failing the test after within with
// what and the state state describes. It is waitUntil with a bound of the
// caller's and a description of what was seen last.
func reg1Wait(t *testing.T, within time.Duration, cond func() bool, state func() string, what string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last seen: %s", what, within, state())
		}
		runtime.Gosched()
	}
}

// reg1HoldInL1 loads id into c and waits until c answers it from L1 (which
// also means c trusts L1: its subscription is up).
func reg1HoldInL1(t *testing.T, c *tiercache.Cache[user], id string, load tiercache.LoaderFunc[user], name string) {
	t.Helper()
	waitUntil(t, func() bool {
		before := c.Stats().L1Hits
		_, err := c.Get(t.Context(), id, load)
		return err == nil && c.Stats().L1Hits == before+1
	}, name+" to answer "+id+" from L1")
}

// TestDefect1OwnWriteRace: once Delete (or Set) returns nil, the process
// that called it never serves the old value again (read-your-writes), even
// while other goroutines of the same process read the id concurrently.
//
// Each round, 3 readers hammer Get(id) in one process while the main
// goroutine updates the origin and calls Delete(id) (or Set(id, new)); a Get
// right after the write returns, and another once the readers have stopped,
// must both serve the new version (or newer). The defect: the write drops
// the L1 copy before its Redis command, and the process ignores its own
// message, so a reader that reads Redis in between puts the old value back
// in L1 for L1TTL.
func TestDefect1OwnWriteRace(t *testing.T) {
	t.Run("Delete", func(t *testing.T) { reg1OwnWriteRace(t, false, 200) })
	t.Run("Set", func(t *testing.T) { reg1OwnWriteRace(t, true, 200) })
}

func reg1OwnWriteRace(t *testing.T, set bool, rounds int) {
	const id, readers = "k", 3
	c := newCache(t, srv(t).Addr(), reg1Options(keyspaceName(t)))
	db := newOrigin(id)
	// 100 KB values: encoding and decoding them widen the window, so that
	// the race shows in many rounds rather than a few in a thousand.
	pad := strings.Repeat("x", 100<<10)
	load := func(ctx context.Context, id string) (user, error) {
		u, err := db.load(ctx, id)
		u.Name += pad
		return u, err
	}
	ctx := t.Context()
	if _, err := c.Get(ctx, id, load); err != nil {
		t.Fatal(err)
	}
	op := "Delete"
	if set {
		op = "Set"
	}
	var stale []string
	for round := range rounds {
		var stop atomic.Bool
		var running, done sync.WaitGroup
		running.Add(readers)
		for range readers {
			done.Go(func() {
				for first := true; !stop.Load(); first = false {
					_, err := c.Get(ctx, id, load)
					if first {
						running.Done()
					}
					if err != nil {
						t.Errorf("reader: %v", err)
						return
					}
					runtime.Gosched() // hammer, but let the writer run
				}
			})
		}
		running.Wait() // every reader is hammering the id
		want := db.update(id)
		want.Name += pad
		var err error
		if set {
			err = c.Set(ctx, id, want)
		} else {
			err = c.Delete(ctx, id)
		}
		if err != nil {
			stop.Store(true)
			done.Wait()
			t.Fatalf("round %d: %s: %v", round, op, err)
		}
		atOnce, err1 := c.Get(ctx, id, load)
		stop.Store(true)
		done.Wait()
		after, err2 := c.Get(ctx, id, load)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatalf("round %d: Get after %s: %v", round, op, err)
		}
		if atOnce.Version < want.Version || after.Version < want.Version {
			stale = append(stale, fmt.Sprintf("round %d: %s of version %d returned nil, then Get served version %d at once and %d once the readers stopped",
				round, op, want.Version, atOnce.Version, after.Version))
		}
		if t.Failed() {
			return
		}
	}
	if len(stale) > 0 {
		t.Errorf("in %d of %d rounds this process served the old value after its own %s returned nil; first: %s",
			len(stale), rounds, op, stale[0])
	}
}

// reg1RacingSets runs ca.Set(id, v1) and cb.Set(id, v2) at once (released
// together by a barrier) and returns when both have.
func reg1RacingSets(ctx context.Context, ca, cb *tiercache.Cache[user], id string, v1, v2 user) error {
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, w := range []struct {
		c *tiercache.Cache[user]
		v user
	}{{ca, v1}, {cb, v2}} {
		wg.Go(func() {
			<-start
			errs[i] = w.c.Set(ctx, id, w.v)
		})
	}
	close(start)
	wg.Wait()
	return errors.Join(errs...)
}

// TestDefect2ConcurrentSets: two Sets of one id racing, in one process or
// in two, leave every process serving what Redis holds (what a process
// started afterwards reads). The defect: Set writes L1 unconditionally after
// its Redis SET, so the loser of the race in Redis can win in L1, and stay
// there for L1TTL.
func TestDefect2ConcurrentSets(t *testing.T) {
	t.Run("OneProcess", func(t *testing.T) {
		// Right after both Sets return, the process serves what a fresh
		// process reads.
		const rounds = 100
		o := reg1Options(keyspaceName(t))
		c := newCache(t, srv(t).Addr(), o)
		ctx := t.Context()
		var diverged []string
		for round := range rounds {
			id := "r" + strconv.Itoa(round)
			v4, v5 := user{ID: id, Name: "v4", Version: 4}, user{ID: id, Name: "v5", Version: 5}
			if err := reg1RacingSets(ctx, c, c, id, v4, v5); err != nil {
				t.Fatalf("round %d: Set: %v", round, err)
			}
			got, err := c.Get(ctx, id, reg1NoLoad)
			if err != nil {
				t.Fatalf("round %d: Get: %v", round, err)
			}
			redisHas, err := reg1Fresh(t, srv(t).Addr(), o, id)
			if err != nil {
				t.Fatalf("round %d: fresh process Get: %v", round, err)
			}
			if got.Version != redisHas.Version {
				diverged = append(diverged, fmt.Sprintf("round %d: the process serves v%d, a fresh process (Redis) v%d", round, got.Version, redisHas.Version))
			}
		}
		if len(diverged) > 0 {
			t.Errorf("in %d of %d rounds two concurrent Sets left L1 disagreeing with Redis; first: %s", len(diverged), rounds, diverged[0])
		}
	})
	t.Run("TwoProcesses", func(t *testing.T) {
		// After A.Set(v4) and B.Set(v5) return, A, B and a fresh process
		// agree within 3 s (messages take milliseconds); the first round
		// that does not converge fails the test.
		const rounds = 200
		o := reg1Options(keyspaceName(t))
		caches := fleet(t, 2, o)
		a, b := caches[0], caches[1]
		ctx := t.Context()
		for round := range rounds {
			id := "r" + strconv.Itoa(round)
			v4, v5 := user{ID: id, Name: "v4", Version: 4}, user{ID: id, Name: "v5", Version: 5}
			if err := reg1RacingSets(ctx, a, b, id, v4, v5); err != nil {
				t.Fatalf("round %d: Set: %v", round, err)
			}
			serves := func(c *tiercache.Cache[user]) string {
				u, err := c.Get(ctx, id, reg1NoLoad)
				if err != nil {
					return err.Error()
				}
				return "v" + strconv.Itoa(u.Version)
			}
			fresh := func() string {
				u, err := reg1Fresh(t, srv(t).Addr(), o, id)
				if err != nil {
					return err.Error()
				}
				return "v" + strconv.Itoa(u.Version)
			}
			reg1Wait(t, 3*time.Second, func() bool {
				sa := serves(a)
				return sa == serves(b) && sa == fresh()
			}, func() string {
				return fmt.Sprintf("A serves %s, B %s, a fresh process (Redis) %s", serves(a), serves(b), fresh())
			}, fmt.Sprintf("round %d: A, B and a fresh process to agree on %s after A.Set(v4) and B.Set(v5)", round, id))
		}
	})
}

// TestDefect3VersionKeyLost: when Redis loses the runtime version key
// (FLUSHALL, or a restart without persistence), the fleet does not split:
// the running processes and one started afterwards converge on one version,
// a Delete by the new process reaches the old ones, and a later bump moves
// every process to a version none of them ever used. The defect: running
// processes stay on "v1+2" while new ones use "v1", and the next bump
// returns an already-used generation.
func TestDefect3VersionKeyLost(t *testing.T) {
	t.Run("FlushAll", func(t *testing.T) {
		reg1VersionKeyLost(t, func(s *cachetest.Server) error { _, err := s.Do("FLUSHALL"); return err })
	})
	t.Run("KillRestart", func(t *testing.T) {
		reg1VersionKeyLost(t, func(s *cachetest.Server) error { return errors.Join(s.Kill(), s.Restart()) })
	})
}

func reg1VersionKeyLost(t *testing.T, lose func(*cachetest.Server) error) {
	s := cachetest.StartRedis(t)
	o := reg1Options(keyspaceName(t))
	a, b := newCache(t, s.Addr(), o), newCache(t, s.Addr(), o)
	ctx := t.Context()

	// Every version any process is seen using during the test.
	seen := map[string]bool{}
	versions := func(cs ...*tiercache.Cache[user]) []string {
		vs := make([]string, len(cs))
		for i, c := range cs {
			vs[i] = c.Keyspace().Version
			seen[vs[i]] = true
		}
		return vs
	}
	describe := func(cs ...*tiercache.Cache[user]) func() string {
		return func() string {
			return fmt.Sprintf("A, B, C on %q; versions used so far: %q", versions(cs...), slices.Sorted(maps.Keys(seen)))
		}
	}
	versions(a, b)
	for range 2 {
		if _, err := a.BumpVersion(ctx); err != nil {
			t.Fatal(err)
		}
	}
	bumped := a.Keyspace().Version
	waitUntil(t, func() bool { vs := versions(a, b); return vs[0] == bumped && vs[1] == bumped && bumped != "v1" }, "A and B to reach A's second bump")

	if err := lose(s); err != nil {
		t.Fatal(err)
	}
	lost := time.Now()
	c := newCache(t, s.Addr(), o)
	reg1Wait(t, 10*time.Second, func() bool {
		vs := versions(a, b, c)
		return vs[0] == vs[1] && vs[1] == vs[2]
	}, describe(a, b, c), "after the version key was lost, A, B and C to use one version")
	t.Logf("A, B and a process started after the loss agree on %q %v after the version key was lost", a.Keyspace().Version, time.Since(lost).Round(time.Millisecond))

	// A Delete by the new process reaches the running ones.
	db := newOrigin("k")
	reg1HoldInL1(t, a, "k", db.load, "A")
	reg1HoldInL1(t, b, "k", db.load, "B")
	db.update("k")
	if err := c.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]*tiercache.Cache[user]{"A": a, "B": b} {
		reg1Wait(t, 10*time.Second, func() bool {
			u, err := p.Get(ctx, "k", db.load)
			return err == nil && u.Version == 1
		}, func() string {
			u, err := p.Get(ctx, "k", db.load)
			return fmt.Sprintf("%s serves %+v, %v; %s", name, u, err, describe(a, b, c)())
		}, name+" to serve the new value of k after C's Delete")
	}

	// A bump from C moves everyone to a version never used before.
	used := maps.Clone(seen)
	if _, err := c.BumpVersion(ctx); err != nil {
		t.Fatal(err)
	}
	reg1Wait(t, 10*time.Second, func() bool {
		vs := versions(a, b, c)
		return vs[0] == vs[1] && vs[1] == vs[2] && !used[vs[0]]
	}, describe(a, b, c), fmt.Sprintf("after C's bump, A, B and C to use one version outside %q", slices.Sorted(maps.Keys(used))))
}

// TestDefect4UntrustedMessages: whoever can PUBLISH on a keyspace's channel
// cannot change the version a process uses nor make it drop its L1. The
// defect: a "v" message sets the generation it carries, so one message pins
// the fleet to any generation and a stream of them flushes L1 every time.
//
// The channel is Prefix + "tiercache:" + Name. Messages on one subscription
// are handled in order, so once A has handled B's Delete of a sentinel id
// it held in L1 (it serves the new value), it has handled everything
// published before.
func TestDefect4UntrustedMessages(t *testing.T) {
	hostile := []struct{ name, payload string }{
		{"Pin", "v attacker 9000000000000000000"},
		{"Negative", "v x -1"},
		{"One", "v x 1"},
		{"Garbage", "\x00\xff\xfe garbage\n\nv\n c"},
		{"Empty", ""},
		{"OneMB", "v x " + strings.Repeat("0", 1<<20) + "7"}, // ParseInt takes leading zeros
	}
	for _, h := range hostile {
		t.Run("Hostile/"+h.name, func(t *testing.T) {
			a, pub, sentinel := reg1MessagePair(t)
			before, key := a.Keyspace(), a.Key("1")
			pub(h.payload)
			sentinel()
			if got := a.Keyspace(); got != before {
				t.Errorf("a published message (%.40q...) moved A from keyspace %+v to %+v", h.payload, before, got)
			}
			if got := a.Key("1"); got != key {
				t.Errorf("A's key of id 1 went from %s to %.80s", key, got)
			}
		})
	}
	t.Run("Thrash", func(t *testing.T) {
		// 100 hot ids held in L1, then 100 "v" messages as fast as
		// possible: the loader is not called again for the hot ids.
		a, _, sentinel := reg1MessagePair(t)
		ids := make([]string, 100)
		for i := range ids {
			ids[i] = "hot" + strconv.Itoa(i)
		}
		hot := newOrigin(ids...)
		ctx := t.Context()
		for _, id := range ids {
			if _, err := a.Get(ctx, id, hot.load); err != nil {
				t.Fatal(err)
			}
		}
		if n := hot.calls.Load(); n != 100 {
			t.Fatalf("setup: %d origin calls for 100 ids", n)
		}
		rdb := newRedis(t, srv(t).Addr())
		channel := "tiercache:" + keyspaceName(t) // Prefix + "tiercache:" + Name
		cmds, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for n := 1; n <= 100; n++ {
				p.Publish(ctx, channel, "v x "+strconv.Itoa(n))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, cmd := range cmds {
			if n := cmd.(*redis.IntCmd).Val(); n < 2 {
				t.Fatalf("PUBLISH reached %d subscribers, want A and B", n)
			}
		}
		sentinel()
		for _, id := range ids {
			if _, err := a.Get(ctx, id, hot.load); err != nil {
				t.Fatal(err)
			}
		}
		if n := hot.calls.Load(); n != 100 {
			t.Errorf("after 100 published \"v x <n>\" messages the origin was called %d times for the 100 hot ids, want 100 (A on %+v)", n, a.Keyspace())
		}
	})
}

// reg1MessagePair starts processes A and B on srv and returns A, a function
// publishing a
// payload on their keyspace's channel, and the sentinel barrier: B deletes
// an id A holds in L1, and it returns once A serves the id's new value.
func reg1MessagePair(t *testing.T) (a *tiercache.Cache[user], publish func(string), sentinel func()) {
	t.Helper()
	caches := fleet(t, 2, reg1Options(keyspaceName(t)))
	a, b := caches[0], caches[1]
	ctx := t.Context()
	db := newOrigin("sentinel")
	reg1HoldInL1(t, a, "sentinel", db.load, "A")
	rdb := newRedis(t, srv(t).Addr())
	channel := "tiercache:" + keyspaceName(t) // Prefix + "tiercache:" + Name
	publish = func(payload string) {
		t.Helper()
		n, err := rdb.Publish(ctx, channel, payload).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n < 2 {
			t.Fatalf("PUBLISH on %s reached %d subscribers, want A and B", channel, n)
		}
	}
	sentinel = func() {
		t.Helper()
		want := db.update("sentinel")
		if err := b.Delete(ctx, "sentinel"); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, func() bool {
			u, err := a.Get(ctx, "sentinel", db.load)
			return err == nil && u.Version == want.Version
		}, "A to handle B's Delete of the sentinel id (and so every message before it)")
	}
	return a, publish, sentinel
}

// TestDefect5UnannouncedChanges: Set and Delete report an error when the
// other processes may not have been told of the change (here: the client's
// user may not PUBLISH), rather than nil while others keep serving the old
// value. A process whose user may publish is unaffected.
func TestDefect5UnannouncedChanges(t *testing.T) {
	s := cachetest.StartRedis(t)
	if _, err := s.Do("ACL", "SETUSER", "nopub", "on", ">pw", "~*", "&*", "+@all", "-publish"); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	name := keyspaceName(t)
	nopub := redis.NewClient(&redis.Options{Addr: s.Addr(), Username: "nopub", Password: "pw", ContextTimeoutEnabled: true})
	t.Cleanup(func() { nopub.Close() })
	if err := nopub.Publish(ctx, "tiercache:"+name, "probe").Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("setup: PUBLISH as nopub = %v, want NOPERM", err)
	}
	o := reg1Options(name)
	o.L2.Breaker.Failures = -1 // every failure below is the PUBLISH's, never a skipped call
	o.Store = redisstore.New(nopub, nil)
	a := newCache(t, "", o) // logs in as nopub
	b := newCache(t, s.Addr(), reg1Options(name))

	db := newOrigin("1", "2", "3")
	reg1HoldInL1(t, b, "1", db.load, "B")
	reg1HoldInL1(t, b, "2", db.load, "B")
	if err := a.Set(ctx, "1", user{ID: "1", Name: "set by A", Version: 7}); err == nil {
		u, _ := b.Get(ctx, "1", db.load)
		t.Errorf("A.Set returned nil though its change was never announced (B serves %+v)", u)
	}
	db.update("2")
	if err := a.Delete(ctx, "2"); err == nil {
		u, _ := b.Get(ctx, "2", db.load)
		t.Errorf("A.Delete returned nil though its change was never announced (B serves %+v)", u)
	}

	// B, whose user may publish, is unaffected.
	if err := b.Set(ctx, "3", user{ID: "3", Name: "set by B"}); err != nil {
		t.Errorf("B.Set: %v", err)
	}
	if u, err := b.Get(ctx, "3", db.load); err != nil || u.Name != "set by B" {
		t.Errorf("B.Get after its Set = %+v, %v", u, err)
	}
	if err := b.Delete(ctx, "3"); err != nil {
		t.Errorf("B.Delete: %v", err)
	}
	if u, err := b.Get(ctx, "3", db.load); err != nil || u.Name != "user 3" {
		t.Errorf("B.Get after its Delete = %+v, %v", u, err)
	}
	if st := b.Stats(); st.L2Errors != 0 {
		t.Errorf("B counted %d shared-tier errors, want 0", st.L2Errors)
	}
}
