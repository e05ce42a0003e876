package redisstore_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cachetest"
	"github.com/tiercache/tiercache/redisstore"
)

// srv is this package's private redis-server.
var srv *cachetest.Server

func TestMain(m *testing.M) {
	var err error
	srv, err = cachetest.RunRedis(cachetest.Config{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	srv.Close()
	os.Exit(code)
}

func newClient(t *testing.T, addr string) *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func TestConformance(t *testing.T) {
	cachetest.TestStore(t, func(t *testing.T) tiercache.Store {
		return redisstore.New(newClient(t, srv.Addr()), nil)
	})
}

func TestConformanceContextTimeoutClient(t *testing.T) {
	cachetest.TestStore(t, func(t *testing.T) tiercache.Store {
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true})
		t.Cleanup(func() { rdb.Close() })
		return redisstore.New(rdb, nil)
	})
}

func TestLockKeySharesSlot(t *testing.T) {
	tests := []struct{ key, want string }{
		{"v1:user:42", "{v1:user:42}:lock"},
		{"{app}:v1:user:42", "{app}:v1:user:42:lock"},
		{"v1:user:a{", "{v1:user:a{}:lock"},
	}
	for _, tt := range tests {
		if got := redisstore.LockKey(tt.key); got != tt.want {
			t.Errorf("LockKey(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

func TestSetWritesTTLAndCancelsLock(t *testing.T) {
	s := redisstore.New(newClient(t, srv.Addr()), nil)
	ctx := t.Context()
	if err := s.Set(ctx, "t:ttl", []byte("v"), 90*time.Second); err != nil {
		t.Fatal(err)
	}
	pttl, err := srv.Do("PTTL", "t:ttl")
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
	if err := s.Set(t.Context(), "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := own.Pause(); err != nil {
		t.Fatal(err)
	}
	defer own.Resume()
	start := time.Now()
	_, err := s.Get(t.Context(), "k")
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
	if err := s.Publish(t.Context(), "ch", "after"); err != nil {
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
