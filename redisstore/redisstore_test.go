package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/cachetest"
	"github.com/tiercache/tiercache/driver"
	"github.com/tiercache/tiercache/redisstore"
)

// shared is the package's redis-server, started by the first test that
// needs it; without redis-server installed those tests skip, with the
// reason, and the others run.
var shared cachetest.Shared

func srv(tb testing.TB) *cachetest.Server {
	tb.Helper()
	return shared.Server(tb)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if err := shared.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

func newClient(t *testing.T, addr string) *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// conformanceOpts are the options of the conformance suite's stores: it
// tests what a store does, not how fast, and creates up to 32 stores at once,
// each of whose first call dials, says HELLO and loads a script; under -race
// on this shared 2-core VM that took up to 270 ms (measured), past the
// default Timeout, which redisstore now holds for the whole call.
var conformanceOpts = &redisstore.Options{Timeout: 2 * time.Second}

func TestConformance(t *testing.T) {
	cachetest.TestStore(t, func(t *testing.T) driver.Store {
		return redisstore.New(newClient(t, srv(t).Addr()), conformanceOpts)
	})
}

func TestConformanceContextTimeoutClient(t *testing.T) {
	cachetest.TestStore(t, func(t *testing.T) driver.Store {
		rdb := redis.NewClient(&redis.Options{Addr: srv(t).Addr(), ContextTimeoutEnabled: true})
		t.Cleanup(func() { rdb.Close() })
		return redisstore.New(rdb, conformanceOpts)
	})
}

func TestLockKeySharesSlot(t *testing.T) {
	tests := []struct{ key, want string }{
		{"v1:user:42", "{v1:user:42}:lock"},
		{"{app}:v1:user:42", "{app}:v1:user:42}:lock"},
		{"v1:user:a{", "{v1:user:a{}:lock"},
	}
	for _, tt := range tests {
		if got := redisstore.LockKey(tt.key); got != tt.want {
			t.Errorf("LockKey(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

func TestSetWritesTTLAndCancelsLock(t *testing.T) {
	s := redisstore.New(newClient(t, srv(t).Addr()), nil)
	ctx := t.Context()
	if err := s.Set(ctx, "t:ttl", []byte("v"), 90*time.Second, driver.Note{}); err != nil {
		t.Fatal(err)
	}
	pttl, err := srv(t).Do("PTTL", "t:ttl")
	if err != nil {
		t.Fatal(err)
	}
	if ms := pttl.(int64); ms <= 89_000 || ms > 90_000 {
		t.Fatalf("PTTL = %d ms, want about 90 000", ms)
	}
}

// TestTimeoutBoundsCallsToAPausedServer: with Redis stopped (SIGSTOP), a
// call returns after about Timeout, even on a client without
// ContextTimeoutEnabled, instead of go-redis's 3 s read timeout.
func TestTimeoutBoundsCallsToAPausedServer(t *testing.T) {
	own := cachetest.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: own.Addr(), MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	s := redisstore.New(rdb, &redisstore.Options{Timeout: 100 * time.Millisecond})
	if err := s.Set(t.Context(), "k", []byte("v"), time.Minute, driver.Note{}); err != nil {
		t.Fatal(err)
	}
	if err := own.Pause(); err != nil {
		t.Fatal(err)
	}
	defer own.Resume()
	start := time.Now()
	_, err := s.Get(t.Context(), []string{"k"})
	took := time.Since(start)
	if err == nil {
		t.Fatal("Get from a paused server succeeded")
	}
	if took > time.Second {
		t.Fatalf("Get took %v with a 100 ms timeout", took)
	}
}

// TestSubscribeReportsLossAndRecovery kills the subscription's connection
// (CLIENT KILL TYPE pubsub): the handler sees Down, then Up again, and
// receives messages published after that.
func TestSubscribeReportsLossAndRecovery(t *testing.T) {
	own := cachetest.StartRedis(t)
	s := redisstore.New(newClient(t, own.Addr()), &redisstore.Options{HealthInterval: 100 * time.Millisecond})
	h := &handler{up: make(chan struct{}, 4), down: make(chan error, 4), msgs: make(chan string, 4)}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { s.Subscribe(ctx, "ch", h) })
	defer wg.Wait()
	defer cancel()

	waitFor(t, h.up, "first Up")
	if _, err := own.Do("CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, h.down, "Down after CLIENT KILL")
	waitFor(t, h.up, "Up after reconnecting")
	if _, err := s.Publish(t.Context(), "ch", "after"); err != nil {
		t.Fatal(err)
	}
	if got := waitFor(t, h.msgs, "message after reconnecting"); got != "after" {
		t.Fatalf("got %q, want after", got)
	}
}

// TestSubscribeNoticesAPausedServer: a subscription to a server that stops
// answering is reported down within HealthInterval + Timeout.
func TestSubscribeNoticesAPausedServer(t *testing.T) {
	own := cachetest.StartRedis(t)
	s := redisstore.New(newClient(t, own.Addr()), &redisstore.Options{
		HealthInterval: 100 * time.Millisecond, Timeout: 100 * time.Millisecond,
	})
	h := &handler{up: make(chan struct{}, 4), down: make(chan error, 16), msgs: make(chan string, 4)}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { s.Subscribe(ctx, "ch", h) })
	defer wg.Wait()
	defer cancel()
	waitFor(t, h.up, "first Up")
	if err := own.Pause(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitFor(t, h.down, "Down while paused")
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Down came %v after the pause, want within about 200 ms", took)
	}
	if err := own.Resume(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, h.up, "Up after resume")
}

// TestLockRepairsWhatCannotBeALock: a lock key left without an expiry,
// holding something that is not a token, or of another type is taken over
// (and reported repaired), not waited for; a lock of tiercache's is not.
func TestLockRepairsWhatCannotBeALock(t *testing.T) {
	s := redisstore.New(newClient(t, srv(t).Addr()), nil)
	ctx := t.Context()
	lockOf := func(k string) driver.LockResult {
		t.Helper()
		rs, err := s.Lock(ctx, []driver.LockRequest{{Key: k, Token: driver.NewToken()}}, time.Minute)
		if err != nil {
			t.Fatalf("Lock(%s): %v", k, err)
		}
		return rs[0]
	}
	for name, setup := range map[string][]string{
		"no expiry":        {"SET", "", driver.NewToken()},
		"not a token":      {"SET", "", "x", "PX", "60000"},
		"another type":     {"HSET", "", "f", "v"},
		"a list, no token": {"RPUSH", "", "a"},
	} {
		k := "t:repair:" + name
		setup[1] = redisstore.LockKey(k)
		if _, err := srv(t).Do(setup...); err != nil {
			t.Fatal(err)
		}
		if r := lockOf(k); !r.Acquired || !r.Repaired {
			t.Errorf("%s: Lock = %+v, want acquired and repaired", name, r)
		}
		if ms, _ := srv(t).Do("PTTL", redisstore.LockKey(k)); ms.(int64) <= 0 {
			t.Errorf("%s: the repaired lock has PTTL %v, want an expiry", name, ms)
		}
	}
	// A genuine lock is respected.
	k := "t:repair:genuine"
	if r := lockOf(k); !r.Acquired || r.Repaired {
		t.Fatalf("first Lock = %+v", r)
	}
	if r := lockOf(k); r.Acquired || r.Repaired {
		t.Fatalf("second Lock = %+v, want the first one's lock respected", r)
	}
}

// TestAnotherTypeReadsAsForeign: a value key holding another Redis type is
// neither an error (which would count against the circuit breaker) nor
// nothing: it reads as an empty entry, in Get, in a batch and in Lock.
func TestAnotherTypeReadsAsForeign(t *testing.T) {
	s := redisstore.New(newClient(t, srv(t).Addr()), nil)
	ctx := t.Context()
	if _, err := srv(t).Do("RPUSH", "t:list", "a"); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, []string{"t:list"})
	if err != nil || got[0] == nil || len(got[0]) != 0 {
		t.Fatalf("Get(list) = %q, %v; want an empty, non-nil entry", got, err)
	}
	rs, err := s.Lock(ctx, []driver.LockRequest{{Key: "t:list", Token: driver.NewToken()}}, time.Minute)
	if err != nil || !rs[0].Acquired || rs[0].Current == nil || len(rs[0].Current) != 0 {
		t.Fatalf("Lock(list) = %+v, %v; want acquired with an empty current", rs, err)
	}
	ok, err := s.Fill(ctx, []driver.FillOp{{Key: "t:list", Token: "x", Value: []byte("v"), TTL: time.Minute}})
	if err != nil || ok[0] {
		t.Fatalf("Fill with a wrong token = %v, %v", ok, err)
	}
	if err := s.Set(ctx, "t:list", []byte("v"), time.Minute, driver.Note{}); err != nil {
		t.Fatalf("Set over a list: %v", err)
	}
}

// TestDeleteWithoutPublishFails: a Delete whose note cannot be published
// (an ACL user without PUBLISH) fails as a whole: nothing is deleted
// unannounced.
func TestDeleteWithoutPublishFails(t *testing.T) {
	own := cachetest.StartRedis(t)
	if _, err := own.Do("ACL", "SETUSER", "nopub", "on", ">pw", "~*", "&*", "+@all", "-publish"); err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: own.Addr(), Username: "nopub", Password: "pw"})
	t.Cleanup(func() { rdb.Close() })
	s := redisstore.New(rdb, nil)
	ctx := t.Context()
	if err := s.Set(ctx, "k", []byte("v"), time.Minute, driver.Note{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, []string{"k"}, driver.Note{Channel: "ch", Message: "m"}); err == nil {
		t.Fatal("Delete with a note it cannot publish succeeded")
	}
	if got, _ := own.Do("EXISTS", "k"); got != int64(1) {
		t.Fatalf("EXISTS k = %v after the failed Delete, want 1 (all or nothing)", got)
	}
	if err := s.Set(ctx, "k", []byte("w"), time.Minute, driver.Note{Channel: "ch", Message: "m"}); err == nil {
		t.Fatal("Set with a note it cannot publish succeeded")
	}
}

type handler struct {
	up   chan struct{}
	down chan error
	msgs chan string
}

func (h *handler) Message(p string) { h.msgs <- p }
func (h *handler) Up()              { h.up <- struct{}{} }
func (h *handler) Down(err error) {
	select {
	case h.down <- err:
	default:
	}
}

func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10 s", what)
		panic("unreachable")
	}
}

// TestWaitReplicas: with WaitReplicas, Set and Delete succeed once a
// replica has them, and fail (ErrNotReplicated) when none does, so that a
// write a failover could lose is never reported done.
func TestWaitReplicas(t *testing.T) {
	primary, replica := cachetest.StartRedis(t), cachetest.StartRedis(t)
	if _, err := primary.Do("CONFIG", "SET", "repl-diskless-sync-delay", "0"); err != nil {
		t.Fatal(err)
	}
	if _, err := replica.Do("REPLICAOF", "127.0.0.1", fmt.Sprint(primary.Port())); err != nil {
		t.Fatal(err)
	}
	waitLink := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			info, _ := primary.Do("INFO", "replication")
			if strings.Contains(fmt.Sprint(info), want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("primary replication never showed %q: %v", want, info)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitLink("state=online")
	s := redisstore.New(newClient(t, primary.Addr()), &redisstore.Options{WaitReplicas: 1, Timeout: 200 * time.Millisecond})
	ctx := t.Context()
	// A replica just synced may take a moment to answer WAIT: the first Set
	// that it acknowledges is the barrier.
	deadline := time.Now().Add(10 * time.Second)
	for err := errors.New("not yet"); err != nil; err = s.Set(ctx, "k", []byte("v"), time.Minute, driver.Note{}) {
		if time.Now().After(deadline) {
			t.Fatalf("Set with a replica: %v", err)
		}
	}
	if err := s.Set(ctx, "k", []byte("v2"), time.Minute, driver.Note{}); err != nil {
		t.Fatalf("Set with a replica: %v", err)
	}
	if err := s.Delete(ctx, []string{"k", "other"}, driver.Note{Channel: "ch", Message: "m"}); err != nil {
		t.Fatalf("Delete with a replica: %v", err)
	}
	if _, err := replica.Do("REPLICAOF", "NO", "ONE"); err != nil {
		t.Fatal(err)
	}
	waitLink("connected_slaves:0")
	// (Under load the call may hit its deadline before WAIT answers: an
	// error all the same.)
	notReplicated := func(err error) bool {
		return errors.Is(err, redisstore.ErrNotReplicated) || errors.Is(err, context.DeadlineExceeded)
	}
	if err := s.Set(ctx, "k", []byte("v"), time.Minute, driver.Note{}); !notReplicated(err) {
		t.Fatalf("Set without a replica: %v, want ErrNotReplicated", err)
	}
	if err := s.Delete(ctx, []string{"k"}, driver.Note{}); !notReplicated(err) {
		t.Fatalf("Delete without a replica: %v, want ErrNotReplicated", err)
	}
}
