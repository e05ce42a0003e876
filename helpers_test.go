package tiercache_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
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

// shared is this package's private redis-server, started by the first test
// that needs it; tests that break Redis start their own. Where redis-server
// is not installed the tests that need it skip, saying so, and the
// in-process ones run.
var shared cachetest.Shared

// srv returns the shared redis-server.
func srv(tb testing.TB) *cachetest.Server {
	tb.Helper()
	return shared.Server(tb)
}

func TestMain(m *testing.M) {
	// go-redis logs every failed dial itself; the tests that kill Redis
	// would fill the output with them.
	redis.SetLogger(quietLogger{})
	code := m.Run()
	if err := shared.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

type user struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Version int    `json:"version"`
}

// newClock returns a fake clock for tests.
func newClock() *cachetest.Clock { return cachetest.NewClock(time.Unix(1_800_000_000, 0)) }

// keyspaceNames holds the keyspace name of each running test.
var keyspaceNames sync.Map // *testing.T -> string

// runs makes keyspace names differ between runs of one test (-count).
var runs atomic.Int64

// keyspaceName returns a keyspace name unique to the test and this run of
// it, the same for every call in the test, so tests sharing srv do not see
// each other's keys.
func keyspaceName(t *testing.T) string {
	if name, ok := keyspaceNames.Load(t); ok {
		return name.(string)
	}
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' {
			return r
		}
		return '-'
	}, t.Name())
	name = fmt.Sprintf("%s-%d", name, runs.Add(1))
	if len(name) > 64 {
		name = name[len(name)-64:]
	}
	keyspaceNames.Store(t, name)
	t.Cleanup(func() { keyspaceNames.Delete(t) })
	return name
}

// newRedis returns a go-redis client of its own on addr, closed with the test.
func newRedis(t *testing.T, addr string) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// newCache returns a cache on srv (or, with addr "", in-process only),
// closed with the test. Each call is a separate "process": its own client
// and L1.
func newCache[V any](t *testing.T, addr string, o tiercache.Options[V]) *tiercache.Cache[V] {
	t.Helper()
	if o.Keyspace.Name == "" {
		o.Keyspace.Name = keyspaceName(t)
	}
	settle := false
	if addr != "" && o.Store == nil {
		o.Store = redisstore.New(newRedis(t, addr), nil)
		settle = true
	}
	c, err := tiercache.New(&o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	// New does no I/O; until the subscription is up and the keyspace's
	// version read, L1 does not answer first. Tests count tiers: wait.
	// (A test that brings its own store waits itself if it needs to.)
	if settle {
		waitSettled(t, c)
	}
	return c
}

// deadAddr returns a loopback address nothing listens on: a shared tier
// that refuses every connection.
func deadAddr(t *testing.T) string {
	t.Helper()
	port, err := cachetest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// waitSettled waits until c's subscription is up and its keyspace's version
// read, so that its L1 answers first.
func waitSettled[V any](t *testing.T, c *tiercache.Cache[V]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := c.Ready(ctx); err != nil {
		t.Fatal(err)
	}
}

// origin is a fake database of users with call counting.
type origin struct {
	mu      sync.Mutex
	rows    map[string]user
	calls   atomic.Int64
	delay   chan struct{} // if set, each load waits for it to be closed
	started chan string   // if set, receives each id as its load starts
}

func newOrigin(ids ...string) *origin {
	o := &origin{rows: map[string]user{}}
	for _, id := range ids {
		o.rows[id] = user{ID: id, Name: "user " + id}
	}
	return o
}

func (o *origin) load(ctx context.Context, id string) (user, error) {
	o.calls.Add(1)
	if o.started != nil {
		o.started <- id
	}
	if o.delay != nil {
		select {
		case <-o.delay:
		case <-ctx.Done():
			return user{}, ctx.Err()
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	u, ok := o.rows[id]
	if !ok {
		return user{}, tiercache.ErrNotFound
	}
	return u, nil
}

func (o *origin) update(id string) user {
	o.mu.Lock()
	defer o.mu.Unlock()
	u := o.rows[id]
	u.ID = id
	u.Version++
	u.Name = fmt.Sprintf("user %s v%d", id, u.Version)
	o.rows[id] = u
	return u
}

// pttl returns the remaining TTL of key in srv.
func pttl(t *testing.T, s *cachetest.Server, key string) time.Duration {
	t.Helper()
	v, err := s.Do("PTTL", key)
	if err != nil {
		t.Fatalf("PTTL %s: %v", key, err)
	}
	return time.Duration(v.(int64)) * time.Millisecond
}

func within(got, want, tolerance time.Duration) bool {
	return got >= want-tolerance && got <= want+tolerance
}

// waitUntil polls cond, yielding between polls, until it holds: a barrier on
// state the test cannot be told about directly. It fails after 10 s.
func waitUntil(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
	}
}

// quietLogger drops go-redis's own log lines.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}
