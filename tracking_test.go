package tiercache_test

// Server-assisted invalidation (Redis client tracking): changes made in
// Redis by clients that are not tiercache reach every process's L1.

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cachetest"
	"github.com/tiercache/tiercache/redisstore"
)

// newBytes returns, for each id, the bytes the cache's keyspace stores for
// value(id) under id's key: written by a cache that tells nobody, read back,
// and deleted. An outside writer can then SET them: a valid entry that no
// tiercache process heard of.
func newBytes(t *testing.T, rdb redis.UniversalClient, o tiercache.Options[user], ids []string, value func(string) user) map[string][]byte {
	t.Helper()
	o.L2.Tracking = false
	o.Store = redisstore.New(rdb, nil)
	w := newCache(t, "", o)
	ctx := t.Context()
	out := make(map[string][]byte, len(ids))
	for _, id := range ids {
		if err := w.Set(ctx, id, value(id)); err != nil {
			t.Fatal(err)
		}
		b, err := rdb.Get(ctx, w.Key(id)).Bytes()
		if err != nil {
			t.Fatal(err)
		}
		out[id] = b
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = w.Key(id)
	}
	for _, k := range keys {
		if err := rdb.Del(ctx, k).Err(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// holdInL1 reads id in each cache until the read is an L1 hit.
func holdInL1(t *testing.T, cs []*tiercache.Cache[user], id string, load tiercache.LoaderFunc[user]) {
	t.Helper()
	for i, c := range cs {
		// Fills follow the answers: one still in flight could land after
		// an outside write and overwrite it.
		defer func() {
			if err := tiercache.WaitIdle(t.Context(), c); err != nil {
				t.Fatal(err)
			}
		}()
		for n := 0; ; n++ {
			before := c.Stats().L1Hits
			if _, err := c.Get(t.Context(), id, load); err != nil {
				t.Fatal(err)
			}
			if c.Stats().L1Hits > before {
				break
			}
			if n == 100 {
				t.Fatalf("process %d: %s never an L1 hit", i, id)
			}
		}
	}
}

// TestTrackingOutsideWrites: a DEL and a SET by a plain Redis client reach
// the L1 of every process, where before tracking they stayed until L1TTL
// (the process with tracking disabled shows it).
func TestTrackingOutsideWrites(t *testing.T) {
	o := tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: keyspaceName(t)}, TTL: time.Hour, L2: tiercache.L2[user]{Tracking: true}}
	ids := []string{"del", "set", "a:b%c"}
	db := newOrigin(ids...)
	outside := newRedis(t, srv(t).Addr())
	next := newBytes(t, outside, o, ids, func(id string) user { return user{ID: id, Name: "outside " + id, Version: 9} })
	var procs []*tiercache.Cache[user]
	for range 3 {
		procs = append(procs, newCache(t, srv(t).Addr(), o))
	}
	blind := o
	blind.L2.Tracking = false // only tiercache writes reach it (by messages); outside ones stay until L1.TTL
	control := newCache(t, srv(t).Addr(), blind)
	for _, id := range ids {
		holdInL1(t, append(procs, control), id, db.load)
	}

	ctx := t.Context()
	db.update("del") // the origin changed; the writer drops the cached copy
	if err := outside.Del(ctx, procs[0].Key("del")).Err(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"set", "a:b%c"} {
		if err := outside.Set(ctx, procs[0].Key(id), next[id], time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{"del": "user del v1", "set": "outside set", "a:b%c": "outside a:b%c"}
	for i, c := range procs {
		for id, name := range want {
			waitUntil(t, func() bool {
				u, err := c.Get(ctx, id, db.load)
				return err == nil && u.Name == name
			}, fmt.Sprintf("process %d to serve %q for %s", i, name, id))
		}
	}
	// The control process, without tracking, still serves its L1 copies of
	// the ids written from outside (not of "del": the tracking processes
	// reload it, and their fill's message reaches the control).
	for _, id := range []string{"set", "a:b%c"} {
		u, err := control.Get(ctx, id, db.load)
		if err != nil || u.Name != "user "+id {
			t.Errorf("without tracking: Get(%s) = %q, %v; want the L1 copy %q (is the control broken?)", id, u.Name, err, "user "+id)
		}
	}
}

// TestTrackingFlushAll: FLUSHALL (Redis's null invalidation) flushes every
// process's L1.
func TestTrackingFlushAll(t *testing.T) {
	s := cachetest.StartRedis(t)
	o := tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: "user"}, TTL: time.Hour, L2: tiercache.L2[user]{Tracking: true}}
	db := newOrigin("1", "2")
	procs := []*tiercache.Cache[user]{newCache(t, s.Addr(), o), newCache(t, s.Addr(), o)}
	holdInL1(t, procs, "1", db.load)
	holdInL1(t, procs, "2", db.load)
	db.update("1")
	db.update("2")
	if err := s.FlushAll(); err != nil {
		t.Fatal(err)
	}
	for i, c := range procs {
		for _, id := range []string{"1", "2"} {
			waitUntil(t, func() bool {
				u, err := c.Get(t.Context(), id, db.load)
				return err == nil && u.Version == 1
			}, fmt.Sprintf("process %d to serve %s's new version after FLUSHALL", i, id))
		}
	}
}

// trackingClients returns the ids of the connections of s that have
// tracking on (flag t in CLIENT LIST).
func trackingClients(t *testing.T, s *cachetest.Server) []string {
	t.Helper()
	v, err := s.Do("CLIENT", "LIST", "TYPE", "pubsub")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for line := range strings.SplitSeq(fmt.Sprint(v), "\n") {
		var id, flags string
		for f := range strings.FieldsSeq(line) {
			k, val, _ := strings.Cut(f, "=")
			switch k {
			case "id":
				id = val
			case "flags":
				flags = val
			}
		}
		if strings.Contains(flags, "t") {
			ids = append(ids, id)
		}
	}
	return ids
}

// TestTrackingConnectionKilled: the tracking connection killed (CLIENT
// KILL) is noticed: L1 is flushed and not trusted until the tracking is
// back, which it is (an outside DEL afterwards reaches L1), and the loss
// and the return are logged once each.
func TestTrackingConnectionKilled(t *testing.T) {
	s := cachetest.StartRedis(t)
	var logs cachetest.Buffer
	o := tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: "user"}, TTL: time.Hour, L2: tiercache.L2[user]{Tracking: true},
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	c := newCache(t, s.Addr(), o)
	db := newOrigin("1", "2")
	holdInL1(t, []*tiercache.Cache[user]{c}, "1", db.load)
	ids := trackingClients(t, s)
	if len(ids) != 1 {
		t.Fatalf("%d tracking connections, want 1", len(ids))
	}
	before := c.Stats()
	if _, err := s.Do("CLIENT", "KILL", "ID", ids[0]); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return strings.Contains(string(logs.Bytes()), "invalidation tracking back") }, "the tracking to come back")
	if after := c.Stats(); after.L1Size != 0 && after.L1Size >= before.L1Size {
		// Flushed at the return; nothing read since.
		t.Errorf("L1 holds %d entries after the tracking came back, want it flushed", after.L1Size)
	}
	if n := len(trackingClients(t, s)); n != 1 {
		t.Errorf("%d tracking connections after the kill, want 1 (re-established)", n)
	}
	if n := strings.Count(string(logs.Bytes()), "invalidation tracking lost"); n != 1 {
		t.Errorf("the loss logged %d times, want 1:\n%s", n, string(logs.Bytes()))
	}
	holdInL1(t, []*tiercache.Cache[user]{c}, "2", db.load)
	db.update("2")
	if _, err := s.Do("DEL", c.Key("2")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool {
		u, err := c.Get(t.Context(), "2", db.load)
		return err == nil && u.Version == 1
	}, "an outside DEL after the reconnection to reach L1")
}

// TestTrackingRefusedFallsBack: with the documented least-privilege ACL
// (no CLIENT), tracking is refused; the cache says so once, becomes ready,
// and processes still drop each other's copies through messages. With
// the three additions the docs give for tracking, outside writes reach L1.
func TestTrackingRefusedFallsBack(t *testing.T) {
	s := cachetest.StartRedis(t)
	const pw = "trk-pw"
	patterns := []string{"~v1:user:*", "~v1+*:user:*", "~{v1:user:*}:lock", "~{v1+*:user:*}:lock", "~tiercache:version:user", "&tiercache:user"}
	for _, u := range []struct {
		name  string
		extra []string
	}{{"plain", nil}, {"tracker", []string{"+client|id", "+client|tracking", "&__redis__:invalidate"}}} {
		acl := append([]string{"ACL", "SETUSER", u.name, "reset", "on", ">" + pw}, patterns...)
		acl = append(append(acl, advACLCommands...), u.extra...)
		if _, err := s.Do(acl...); err != nil {
			t.Fatal(err)
		}
	}
	var logs cachetest.Buffer
	o := tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: "user"}, TTL: time.Hour, L2: tiercache.L2[user]{Tracking: true},
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	a := advACLCache(t, s, "plain", pw, o)
	b := advACLCache(t, s, "plain", pw, o)
	for _, c := range []*tiercache.Cache[user]{a, b} {
		waitSettled(t, c)
	}
	if n := strings.Count(string(logs.Bytes()), "server-assisted invalidation unavailable"); n != 2 {
		t.Errorf("%d records saying tracking is unavailable, want 1 per cache (2):\n%s", n, string(logs.Bytes()))
	}
	db := newOrigin("1")
	holdInL1(t, []*tiercache.Cache[user]{a, b}, "1", db.load)
	if err := a.Set(t.Context(), "1", user{ID: "1", Name: "set by a"}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool {
		u, err := b.Get(t.Context(), "1", db.load)
		return err == nil && u.Name == "set by a"
	}, "a's Set to reach b's L1 through messages")

	c := advACLCache(t, s, "tracker", pw, o)
	waitSettled(t, c)
	holdInL1(t, []*tiercache.Cache[user]{c}, "1", db.load)
	if _, err := s.Do("DEL", c.Key("1")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool {
		u, err := c.Get(t.Context(), "1", db.load)
		return err == nil && u.Name == "user 1"
	}, "an outside DEL to reach L1 with the documented tracking permissions")
	if !strings.Contains(string(logs.Bytes()), "server-assisted invalidation on") {
		t.Errorf("no record saying tracking is on:\n%s", string(logs.Bytes()))
	}
	if s := c.Stats(); s.L2Errors != 0 {
		t.Errorf("L2Errors = %d, want 0", s.L2Errors)
	}
}

// TestTrackingFollowsBump: after a runtime version bump the keys' head
// changes ("v1+gen:user:"); the tracking follows it.
func TestTrackingFollowsBump(t *testing.T) {
	o := tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: keyspaceName(t)}, TTL: time.Hour, L2: tiercache.L2[user]{Tracking: true}}
	a, b := newCache(t, srv(t).Addr(), o), newCache(t, srv(t).Addr(), o)
	if _, err := a.BumpVersion(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return b.Keyspace().Version == a.Keyspace().Version }, "b to follow the bump")
	waitSettled(t, a)
	waitSettled(t, b)
	db := newOrigin("1")
	procs := []*tiercache.Cache[user]{a, b}
	holdInL1(t, procs, "1", db.load)
	db.update("1")
	if err := newRedis(t, srv(t).Addr()).Del(t.Context(), a.Key("1")).Err(); err != nil {
		t.Fatal(err)
	}
	for i, c := range procs {
		waitUntil(t, func() bool {
			u, err := c.Get(t.Context(), "1", db.load)
			return err == nil && u.Version == 1
		}, fmt.Sprintf("process %d to see an outside DEL of %s", i, a.Key("1")))
	}
}

// TestTrackingCluster: on Redis Cluster every master reports its own keys:
// outside DELs of keys spread over all masters reach every process, and so
// do they after a failover (the tracking moves to the new master).
func TestTrackingCluster(t *testing.T) {
	cl := cachetest.StartCluster(t, cachetest.ClusterConfig{Replicas: 1})
	o := tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: keyspaceName(t)}, TTL: time.Hour, L2: tiercache.L2[user]{Tracking: true}}
	var procs []*tiercache.Cache[user]
	for range 3 {
		procs = append(procs, clusterCache(t, cl, o, nil))
	}
	outside := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { outside.Close() })
	ctx := t.Context()

	ids := make([]string, 30)
	byMaster := map[string][]string{}
	for i := range ids {
		ids[i] = fmt.Sprint(i)
		m := cl.MasterOf(procs[0].Key(ids[i]))
		byMaster[m] = append(byMaster[m], ids[i])
	}
	if len(byMaster) != 3 {
		t.Fatalf("ids on %d masters, want 3", len(byMaster))
	}
	db := newOrigin(ids...)
	outsideDel := func(ids []string, what string) {
		t.Helper()
		for _, id := range ids {
			holdInL1(t, procs, id, db.load)
		}
		for _, id := range ids {
			db.update(id)
			if err := outside.Del(ctx, procs[0].Key(id)).Err(); err != nil {
				t.Fatal(err)
			}
		}
		for i, c := range procs {
			for _, id := range ids {
				waitUntil(t, func() bool {
					u, err := c.Get(ctx, id, db.load)
					want, _ := db.load(ctx, id)
					return err == nil && u.Version == want.Version
				}, fmt.Sprintf("process %d to see the outside DEL of %s %s", i, id, what))
			}
		}
	}
	outsideDel(ids, "on every master")

	failed := cl.MasterOf(procs[0].Key(ids[0]))
	if err := cl.Failover(failed); err != nil {
		t.Fatal(err)
	}
	promoted := cl.MasterOf(procs[0].Key(ids[0]))
	if promoted == failed {
		t.Fatalf("the slot of %s is still on %s after the failover", ids[0], failed)
	}
	// The processes notice the new master (CLUSTER SLOTS, every
	// HealthInterval) and track on it; they trust L1 again once it is up.
	waitUntil(t, func() bool { return len(trackingClients(t, cl.Node(promoted))) == len(procs) },
		"every process to track on the promoted master")
	for _, c := range procs {
		waitSettled(t, c)
	}
	outsideDel(byMaster[failed], "after the failover")
}
