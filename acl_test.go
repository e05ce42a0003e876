package tiercache_test

// Tests from the second adversarial review (each failed on the code it reviewed): the least-privilege ACL of docs/architecture.md
// ("Security and limits") on every path.

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cachetest"
	"github.com/tiercache/tiercache/redisstore"
)

// advACLCommands are the commands of the documented ACL.
var advACLCommands = []string{"+get", "+set", "+del", "+mget", "+pttl", "+type", "+time", "+eval", "+evalsha", "+publish", "+subscribe", "+ping", "+hello"}

// advACLCache returns a cache ("process") on s as user/password, closed with the test.
func advACLCache(t *testing.T, s *cachetest.Server, user, password string, o tiercache.Options[user]) *tiercache.Cache[user] {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr(), Username: user, Password: password, ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	o.Store = redisstore.New(rdb, nil)
	return newCache(t, "", o)
}

// TestACLWithoutPrefixSurvivesBump: docs/architecture.md gives the
// least-privilege ACL "for a cache with Prefix app1: (without a prefix,
// replace app1: by the keyspace's own patterns, e.g. ~v1:user:*
// ~{v1:user:*}:lock ~tiercache:version:user &tiercache:user)", and
// BumpVersion is a documented feature (as is the automatic bump of
// repairAll). Keys after a bump are "v1+{gen}:user:42": with the documented
// patterns every read, lock, fill, Set and Delete is refused (NOPERM) from
// the bump on, for every process of the fleet.
func TestACLWithoutPrefixSurvivesBump(t *testing.T) {
	s := cachetest.StartRedis(t)
	const pw = "adv2-pw"
	acl := append([]string{"ACL", "SETUSER", "app", "reset", "on", ">" + pw,
		"~v1:user:*", "~v1+*:user:*", "~{v1:user:*}:lock", "~{v1+*:user:*}:lock", "~tiercache:version:user", "&tiercache:user"}, advACLCommands...)
	if _, err := s.Do(acl...); err != nil {
		t.Fatal(err)
	}
	o := tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: "user"}, TTL: time.Hour}
	a := advACLCache(t, s, "app", pw, o)
	b := advACLCache(t, s, "app", pw, o)
	ctx := t.Context()
	db := newOrigin("1", "2", "3")

	// Before the bump every path works with these patterns.
	if _, err := a.Get(ctx, "1", db.load); err != nil {
		t.Fatal(err)
	}
	if err := a.Set(ctx, "2", user{ID: "2", Name: "set"}); err != nil {
		t.Fatalf("Set before the bump: %v", err)
	}
	if s := a.Stats(); s.L2Errors != 0 {
		t.Fatalf("L2Errors before the bump: %d", s.L2Errors)
	}

	if _, err := a.BumpVersion(ctx); err != nil {
		t.Fatalf("BumpVersion: %v", err)
	}
	waitUntil(t, func() bool { return b.Keyspace().Version == a.Keyspace().Version }, "B to follow the bump")
	t.Logf("keyspace after the bump: %s, key of 3: %s", a.Keyspace().Version, a.Key("3"))

	if _, err := a.Get(ctx, "3", db.load); err != nil {
		t.Fatal(err)
	}
	setErr := a.Set(ctx, "1", user{ID: "1", Name: "after bump"})
	delErr := b.Delete(ctx, "2")
	sa, sb := a.Stats(), b.Stats()
	if setErr != nil || delErr != nil || sa.L2Errors != 0 || sb.L2Errors != 0 {
		t.Errorf("with the documented no-prefix ACL, after BumpVersion: Set = %v; Delete = %v; L2Errors A %d, B %d (want nil, nil, 0, 0)",
			setErr, delErr, sa.L2Errors, sb.L2Errors)
	}
}

// TestACLOnCluster: the documented ACL, set on every node of a Redis
// Cluster (redisstore documents Cluster support; docs/architecture.md
// "Redis Cluster"), for a cache with Prefix app1:. The cache must be able
// to use the shared tier: read, lock, fill, Set, Delete, bump.
func TestACLOnCluster(t *testing.T) {
	cl := cachetest.StartCluster(t)
	const pw = "adv2-pw"
	acl := append([]string{"ACL", "SETUSER", "app1", "reset", "on", ">" + pw,
		"~app1:*", "~{app1:*}:lock", "&app1:tiercache:*", "+cluster|slots"}, advACLCommands...)
	for _, addr := range cl.Addrs() {
		if _, err := cl.Node(addr).Do(acl...); err != nil {
			t.Fatal(err)
		}
	}
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs(), Username: "app1", Password: pw, ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	o := tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: "user"}, Prefix: "app1:", Store: redisstore.New(rdb, nil)}
	c, err := tiercache.New(&o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	readyErr := c.Ready(ctx)
	db := newOrigin("1")
	_, getErr := c.Get(t.Context(), "1", db.load)
	setErr := c.Set(t.Context(), "1", user{ID: "1"})
	s := c.Stats()
	if readyErr != nil || getErr != nil || setErr != nil || s.L2Errors != 0 {
		t.Errorf("Redis Cluster with the documented ACL: Ready = %v; Get = %v; Set = %v; L2Errors %d (want nil, nil, nil, 0)",
			readyErr, getErr, setErr, s.L2Errors)
		if err := rdb.Get(t.Context(), "app1:x").Err(); err != nil && !errors.Is(err, redis.Nil) {
			t.Logf("a plain GET app1:x through the same client: %v", err)
		}
	}
}
