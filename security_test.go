package tiercache_test

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cachetest"
	"github.com/tiercache/tiercache/redisstore"
)

// minimalACL is the least privilege a cache with Prefix p needs: its keys,
// their rebuild locks, its version key, its channel, and the commands it
// sends (scripts run GET, SET and DEL inside). docs/architecture.md lists it.
func minimalACL(user, password, p string) []string {
	return []string{
		"ACL", "SETUSER", user, "reset", "on", ">" + password,
		"~" + p + "*", "~{" + p + "*}:lock", // values and version key; rebuild locks
		"&" + p + "tiercache:*", // the keyspace channels
		"+get", "+set", "+del", "+mget", "+pttl", "+type", "+time", "+eval", "+evalsha", "+publish", "+subscribe", "+ping",
		"+hello",
	}
}

// TestTLSAndACL runs tiercache against a TLS-only redis-server with a user
// restricted to one application's keys: every feature works; a client
// without TLS fails clearly; another application's key is refused by Redis;
// and the password appears in no error or log.
func TestTLSAndACL(t *testing.T) {
	dir := t.TempDir()
	pool, caFile, certFile, keyFile := cachetest.ThrowawayPKI(t, dir)
	tlsPort, err := cachetest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	// The plain port is for the test's own administration (cachetest's
	// client); the cache only ever uses the TLS port.
	own := cachetest.StartRedis(t, cachetest.Config{Args: []string{
		"--tls-port", strconv.Itoa(tlsPort), "--tls-cert-file", certFile, "--tls-key-file", keyFile,
		"--tls-ca-cert-file", caFile, "--tls-auth-clients", "no",
	}})
	const password = "s3cret-Pa55-do-not-log"
	if _, err := own.Do(minimalACL("app1", password, "app1:")...); err != nil {
		t.Fatal(err)
	}
	if _, err := own.Do("SET", "app2:v1:user:1", "another application's secret"); err != nil {
		t.Fatal(err)
	}
	tlsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsPort))
	newTLSClient := func(t *testing.T) *redis.Client {
		opts, err := redis.ParseURL("rediss://app1:" + password + "@" + tlsAddr + "/0")
		if err != nil {
			t.Fatal(err)
		}
		opts.TLSConfig.RootCAs = pool
		opts.ContextTimeoutEnabled = true
		rdb := redis.NewClient(opts)
		t.Cleanup(func() { rdb.Close() })
		return rdb
	}
	var logs cachetest.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	o := tiercache.Options[user]{
		Keyspace: tiercache.Keyspace{Name: "user"}, Prefix: "app1:", StaleTTL: time.Minute, Logger: logger,
	}
	newTLSCache := func() *tiercache.Cache[user] {
		o := o
		o.Store = redisstore.New(newTLSClient(t), nil)
		return newCache(t, "", o)
	}
	a, b := newTLSCache(), newTLSCache()
	ctx := t.Context()
	db := &batchOrigin{origin: newOrigin("1", "2", "3")}

	// Every feature, through the restricted user over TLS.
	if u, err := a.Get(ctx, "1", db.origin.load); err != nil || u.ID != "1" { // miss: lock, fill, publish
		t.Fatalf("Get = %+v, %v", u, err)
	}
	if err := tiercache.WaitIdle(ctx, a); err != nil { // the fill follows the answer
		t.Fatal(err)
	}
	if u, err := b.Get(ctx, "1", db.origin.load); err != nil || u.ID != "1" || b.Stats().L2Hits != 1 {
		t.Fatalf("second process Get = %+v, %v, L2 hits %d", u, err, b.Stats().L2Hits)
	}
	if _, err := a.Get(ctx, "404", db.origin.load); !errors.Is(err, tiercache.ErrNotFound) {
		t.Fatalf("Get(404) = %v", err)
	}
	if m, err := b.GetMany(ctx, []string{"1", "2", "3", "404"}, db.load); err != nil || len(m) != 3 {
		t.Fatalf("GetMany = %v, %v", m, err)
	}
	if err := a.Set(ctx, "2", user{ID: "2", Name: "set"}); err != nil {
		t.Fatalf("Set: %v", err)
	}
	waitUntil(t, func() bool { u, _ := b.Get(ctx, "2", db.origin.load); return u.Name == "set" }, "B to see A's Set (invalidation over TLS)")
	if err := a.Delete(ctx, "3"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := a.BumpVersion(ctx); err != nil {
		t.Fatalf("BumpVersion: %v", err)
	}
	waitUntil(t, func() bool { return b.Keyspace().Version == a.Keyspace().Version }, "B to follow the version bump")
	for _, c := range []*tiercache.Cache[user]{a, b} {
		if s := c.Stats(); s.L2Errors != 0 || s.Breaker != "closed" {
			t.Fatalf("the restricted user hit errors: L2Errors %d, breaker %s", s.L2Errors, s.Breaker)
		}
	}

	// Another application's key is refused by Redis itself.
	raw := newTLSClient(t)
	if err := raw.Get(ctx, "app2:v1:user:1").Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("reading app2's key as app1 = %v, want NOPERM", err)
	}

	// Without TLS, a client fails, and the store says what to check.
	plain := redis.NewClient(&redis.Options{Addr: tlsAddr, Username: "app1", Password: password, MaxRetries: -1})
	t.Cleanup(func() { plain.Close() })
	err = redisstore.New(plain, nil).Ping(ctx)
	if err == nil || !strings.Contains(err.Error(), "TLS") {
		t.Fatalf("plain-text Ping to the TLS port = %v, want an error pointing at TLS", err)
	}
	// A wrong password fails without echoing it.
	wrong := redis.NewClient(&redis.Options{Addr: tlsAddr, Username: "app1", Password: "wrong-" + password, TLSConfig: &tls.Config{RootCAs: pool}})
	t.Cleanup(func() { wrong.Close() })
	werr := redisstore.New(wrong, nil).Ping(ctx)
	if werr == nil {
		t.Fatal("Ping with a wrong password succeeded")
	}
	for _, text := range []string{err.Error(), werr.Error(), string(logs.Bytes())} {
		if strings.Contains(text, password) {
			t.Fatalf("the password appears in %q", text)
		}
	}
	t.Logf("plain-text client: %v; wrong password: %v", err, werr)
}
