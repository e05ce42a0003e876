package tiercache_test

// Tests from the second adversarial review (each failed on the code it reviewed): a reply lost after Redis ran the command (the
// connection dropped between the two), which go-redis retries.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/redisstore"
)

// advLoseReply is a dialer whose connections, once armed, let the first
// command whose bytes match through to Redis, swallow its reply and drop
// the connection: the command ran, its caller sees the connection fail.
type advLoseReply struct {
	match func(cmd []byte) bool
	armed atomic.Bool
	lost  atomic.Int64
}

func (d *advLoseReply) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &advLossyConn{Conn: c, d: d}, nil
}

type advLossyConn struct {
	net.Conn
	d    *advLoseReply
	mu   sync.Mutex
	drop bool
}

func (c *advLossyConn) Write(p []byte) (int, error) {
	if c.d.match(p) && c.d.armed.CompareAndSwap(true, false) {
		c.mu.Lock()
		c.drop = true
		c.mu.Unlock()
	}
	return c.Conn.Write(p)
}

func (c *advLossyConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	drop := c.drop
	c.drop = false
	c.mu.Unlock()
	if drop {
		// Wait for Redis's reply (the command ran), then drop it.
		c.Conn.SetReadDeadline(time.Now().Add(time.Second))
		c.Conn.Read(make([]byte, 64<<10))
		c.Conn.Close()
		c.d.lost.Add(1)
		return 0, io.EOF
	}
	return c.Conn.Read(p)
}

// isLockAttempt matches the rebuild lock's attempt for id "lost": the
// pipeline whose first command is SET "{...:lost}:lock" token NX PX ttl GET.
func isLockAttempt(cmd []byte) bool {
	return bytes.HasPrefix(cmd, []byte("*7\r\n$3\r\nSET\r\n")) && bytes.Contains(cmd, []byte(":lost}:lock")) && bytes.Contains(cmd, []byte("\r\nNX\r\n"))
}

// TestLostLockReplyIsNotAnotherProcess: docs/architecture.md, the read
// path: after each call decide says "the tier failed ...: after a lock
// attempt whose reply was lost, load and fill conditionally, which releases
// a lock we may hold", and "wait" is for "ids another process is
// rebuilding". redisstore leaves retries to go-redis ("go-redis already
// retries what is safe to"), and go-redis retries a command whose
// connection dropped (EOF, reset) after Redis ran it: the lock attempt runs
// again with the same token, finds the lock held (by this very attempt)
// and reports it contended. The process then waits LockWait for a rebuild
// that nobody is doing, and the whole fleet with it (every process finds
// the lock held); with FailOnLockWait the Get fails with ErrLockWait
// ("timed out waiting for another process's rebuild") although no other
// process exists.
func TestLostLockReplyIsNotAnotherProcess(t *testing.T) {
	d := &advLoseReply{match: isLockAttempt}
	rdb := redis.NewClient(&redis.Options{Addr: srv(t).Addr(), ContextTimeoutEnabled: true, Dialer: d.dial})
	t.Cleanup(func() { rdb.Close() })
	c := newCache(t, "", tiercache.Options[user]{
		Keyspace: tiercache.Keyspace{Name: keyspaceName(t)}, Store: redisstore.New(rdb, nil),
		Rebuild: tiercache.Rebuild{LockTTL: 2 * time.Second, LockWait: 500 * time.Millisecond, FailOnLockWait: true}})
	waitSettled(t, c)
	db := newOrigin("warm", "lost")
	// Warm up: the fill script is loaded in Redis (EVALSHA answers).
	if _, err := c.Get(t.Context(), "warm", db.load); err != nil {
		t.Fatal(err)
	}
	d.armed.Store(true)
	start := time.Now()
	u, err := c.Get(t.Context(), "lost", db.load)
	took := time.Since(start)
	s := c.Stats()
	t.Logf("Get with the lock script's reply lost once: %+v, %v after %v; replies lost %d, loader calls %d, lock waits %d, contended %d",
		u, err, took.Round(time.Millisecond), d.lost.Load(), db.calls.Load(), s.LockWaits, s.LockContended)
	if d.lost.Load() != 1 {
		t.Fatalf("the fault was not injected (%d replies lost)", d.lost.Load())
	}
	if err != nil || u.ID != "lost" || s.LockWaits != 0 || took > 500*time.Millisecond {
		t.Errorf("a single process whose lock reply was lost: Get = %+v, %v after %v, %d lock waits; want the value at once (its own lock is not another process's rebuild)",
			u, err, took.Round(time.Millisecond), s.LockWaits)
	}
	if errors.Is(err, tiercache.ErrLockWait) {
		t.Errorf("Get failed with ErrLockWait (timed out waiting for another process's rebuild) with no other process in the fleet")
	}
}

// TestLostFillReplyCountsNoLostFill: stats.FillLost is "a conditional
// fill refused because the lock was lost" (FillsLost in Stats), and a fill
// that stored its value keeps it in L1 (loadRound: only refused fills are
// kept out of L1, since their value "may be older than a write"). When
// the fill script's reply is lost and go-redis runs it again, the second
// run finds the lock gone, released by the first, which stored the value:
// the cache counts a lost fill that did not happen, and drops from L1 a
// value that is in Redis, fresh.
func TestLostFillReplyCountsNoLostFill(t *testing.T) {
	d := &advLoseReply{match: func(cmd []byte) bool {
		return bytes.HasPrefix(cmd, []byte("*10\r\n")) && bytes.Contains(bytes.ToLower(cmd), []byte("eval")) && bytes.Contains(cmd, []byte(":lost}:lock"))
	}}
	rdb := redis.NewClient(&redis.Options{Addr: srv(t).Addr(), ContextTimeoutEnabled: true, Dialer: d.dial})
	t.Cleanup(func() { rdb.Close() })
	c := newCache(t, "", tiercache.Options[user]{
		Keyspace: tiercache.Keyspace{Name: keyspaceName(t)}, Store: redisstore.New(rdb, nil), TTL: time.Hour, L1: tiercache.L1[user]{TTL: time.Hour},
	})
	waitSettled(t, c)
	db := newOrigin("warm", "lost")
	if _, err := c.Get(t.Context(), "warm", db.load); err != nil {
		t.Fatal(err)
	}
	d.armed.Store(true)
	if _, err := c.Get(t.Context(), "lost", db.load); err != nil {
		t.Fatal(err)
	}
	if err := tiercache.WaitIdle(t.Context(), c); err != nil { // the fill follows the answer
		t.Fatal(err)
	}
	if d.lost.Load() != 1 {
		t.Fatalf("the fault was not injected (%d replies lost)", d.lost.Load())
	}
	n, _ := srv(t).Do("EXISTS", c.Key("lost"))
	before := c.Stats()
	c.Get(t.Context(), "lost", db.load)
	after := c.Stats()
	if before.FillsLost != 0 || after.L1Hits != before.L1Hits+1 {
		t.Errorf("the fill stored the value (EXISTS %s = %v), but the cache counted %d lost fills and the next Get was answered from %s (L1 hits %d -> %d)",
			c.Key("lost"), n, before.FillsLost, map[bool]string{true: "L1", false: "Redis"}[after.L1Hits > before.L1Hits], before.L1Hits, after.L1Hits)
	}
}
