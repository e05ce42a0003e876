package tiercache_test

// Tests from the second adversarial review (each failed on the code it reviewed): Redis Cluster.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
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

// TestClusterBumpReport: Bumped.Heard "is how many other processes'
// subscriptions received the bump's message (on Redis Cluster, only those
// connected to the node that took it)", and Switched "how many other
// processes said they moved ... (it waits up to 2 s for as many as heard
// it)". On a cluster PUBLISH goes to any node, while every subscription of
// the keyspace's channel is on the node of the channel's slot: the count is
// 0 whenever another node takes the PUBLISH, and the bump still subtracts
// its own subscription from it. Heard must never be negative (nor count
// fewer than zero processes), and a bump heard by nobody must not claim it.
func TestClusterBumpReport(t *testing.T) {
	cl := cachetest.StartCluster(t)
	o := tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: keyspaceName(t)}}
	a := clusterCache(t, cl, o, nil)
	b := clusterCache(t, cl, o, nil)
	for i := range 8 {
		r, err := a.BumpVersion(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		waitUntil(t, func() bool { return b.Keyspace().Version == a.Keyspace().Version }, "B to follow the bump")
		t.Logf("bump %d: %+v", i, r)
		if r.Heard < 0 || r.Heard > 1 || r.Switched > 1 {
			t.Errorf("bump %d on a cluster with one other process (which did switch): Heard = %d, Switched = %d; want Heard in [0, 1]",
				i, r.Heard, r.Switched)
		}
	}
}

// advReplicaOf returns a replica of the master at addr in cl (ROLE).
func advReplicaOf(t *testing.T, cl *cachetest.Cluster, master string) string {
	t.Helper()
	_, mport, _ := net.SplitHostPort(master)
	for _, a := range cl.Addrs() {
		r, err := cl.Node(a).Do("ROLE")
		if err != nil {
			t.Fatal(err)
		}
		role, _ := r.([]any)
		if len(role) >= 3 && role[0] == "slave" && fmt.Sprint(role[2]) == mport {
			return a
		}
	}
	t.Fatalf("no replica of %s", master)
	return ""
}

// TestClusterFailoverWithWaitReplicas: contract 1 (read-your-writes: "Once
// Set or Delete returns in a process, that process never serves the value
// the call replaced ... This holds when the call fails too") and 2. Redis
// replicates asynchronously: a Delete the master acknowledged but did not
// replicate before a failover is lost, and the promoted replica serves the
// value it replaced (found by the second adversarial review; the first
// architecture page called such a loss harmless). With
// redisstore.Options.WaitReplicas the Delete is an error instead (it may
// not have reached everyone), this process keeps away from the shared tier
// for the id, and its background repair deletes it on the new master.
//
// The replica misses the write because its replication link is down when
// the Delete runs (the test makes the master refuse the replica's
// reconnection for a moment: its default user needs a password), and is
// promoted right then (CLUSTER FAILOVER TAKEOVER, as an operator or an
// orchestrator does when the master's host is unreachable).
func TestClusterFailoverWithWaitReplicas(t *testing.T) {
	cl := cachetest.StartCluster(t, cachetest.ClusterConfig{Replicas: 1})
	for _, addr := range cl.Addrs() {
		if _, err := cl.Node(addr).Do("ACL", "SETUSER", "app", "on", ">app-pw", "~*", "&*", "+@all"); err != nil {
			t.Fatal(err)
		}
	}
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs(), Username: "app", Password: "app-pw", ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	o := tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: keyspaceName(t)}, TTL: time.Hour, L1: tiercache.L1[user]{TTL: time.Hour}}
	ao := o
	ao.Store = redisstore.New(rdb, &redisstore.Options{WaitReplicas: 1})
	a := newCache(t, "", ao)
	waitSettled(t, a)
	ctx := t.Context()
	const id = "k"
	db := newOrigin(id)
	if u, err := a.Get(ctx, id, db.load); err != nil || u.Version != 0 {
		t.Fatalf("Get = %+v, %v", u, err)
	}
	key := a.Key(id)
	master := cl.MasterOf(key)
	replica := advReplicaOf(t, cl, master)
	rep := redis.NewClient(&redis.Options{Addr: replica, OnConnect: func(ctx context.Context, cn *redis.Conn) error {
		return cn.ReadOnly(ctx).Err()
	}})
	t.Cleanup(func() { rep.Close() })
	waitUntil(t, func() bool { return rep.Exists(ctx, key).Val() == 1 }, "the entry to reach the replica")

	// The replica's link to its master goes down.
	admin := redis.NewClient(&redis.Options{Addr: master, Username: "app", Password: "app-pw"})
	t.Cleanup(func() { admin.Close() })
	if err := admin.Do(ctx, "ACL", "SETUSER", "default", "resetpass", ">locked").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Node(replica).Do("CLIENT", "KILL", "TYPE", "master"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool {
		r, _ := cl.Node(replica).Do("INFO", "replication")
		return strings.Contains(fmt.Sprint(r), "master_link_status:down")
	}, "the replica's link to go down")
	// The origin changes and the cache is told. The master takes the
	// Delete, but no replica does: with WaitReplicas the Delete says so (it
	// may not have reached everyone) instead of returning nil. The replica
	// is promoted.
	db.update(id)
	if err := a.Delete(ctx, id); !errors.Is(err, tiercache.ErrUnavailable) || !errors.Is(err, redisstore.ErrNotReplicated) {
		t.Fatalf("Delete with the replica's link down: %v, want ErrUnavailable and ErrNotReplicated", err)
	}
	if _, err := cl.Node(replica).Do("CLUSTER", "FAILOVER", "TAKEOVER"); err != nil {
		t.Fatal(err)
	}
	if err := admin.Do(ctx, "ACL", "SETUSER", "default", "nopass").Err(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return cl.MasterOf(key) == replica }, "the replica to serve the slot")
	t.Logf("after the failover %s holds %s: %v (PTTL %v)", replica, key, rep.Exists(ctx, key).Val() == 1, rep.PTTL(ctx, key).Val())

	// A reads the shared tier again (at once, or once its subscription has
	// come back if it was on the former master).
	var u user
	waitUntil(t, func() bool {
		before := a.Stats().L2Hits
		gctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		u, _ = a.Get(gctx, id, db.load)
		return a.Stats().L2Hits > before || u.Version == 1 && a.Stats().Misses > 1
	}, "A to read the shared tier")
	if u.Version != 1 {
		t.Errorf("after A's Delete(%q) failed and a failover: A serves version %d; the origin holds 1 (the Delete replaced version 0)", id, u.Version)
	}
	// Others may serve the old value until A's background repair has
	// deleted it on the new master; then they serve the new one.
	b := clusterCache(t, cl, o, nil) // a process started after the failover
	waitUntil(t, func() bool {
		ub, _ := b.Get(ctx, id, db.load)
		return ub.Version == 1
	}, "a process started after the failover to serve the new value (A's repair)")
}

// TestClusterRYWDuringReshardAndFailover: contract 1 (read-your-writes,
// "This holds when the call fails too") and 4 (the value of the id asked
// for), on a cluster while the hot id's slot is resharded and then its
// master fails over manually (no write is lost by either), with writes
// (origin update, then Set or Delete) and reads in three processes.
func TestClusterRYWDuringReshardAndFailover(t *testing.T) {
	cl := cachetest.StartCluster(t, cachetest.ClusterConfig{Replicas: 1})
	o := tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: keyspaceName(t)}, TTL: time.Hour, L1: tiercache.L1[user]{TTL: time.Hour}}
	const procs, ids = 3, 6
	var caches []*tiercache.Cache[user]
	for range procs {
		caches = append(caches, clusterCache(t, cl, o, nil))
	}
	var origin [ids]atomic.Int64
	var idMu [ids]sync.Mutex
	var done [procs][ids]atomic.Int64 // the version of p's last write of id that returned
	load := func(ctx context.Context, id string) (user, error) {
		i, _ := strconv.Atoi(id)
		return user{ID: id, Version: int(origin[i].Load())}, nil
	}
	ctx := t.Context()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads, writes, writeErrs atomic.Int64
	var mu sync.Mutex
	var violations []string
	for p, c := range caches {
		for w := range 3 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(p), uint64(w)))
				for {
					select {
					case <-stop:
						return
					default:
					}
					i := rng.IntN(ids)
					id := strconv.Itoa(i)
					if rng.IntN(4) == 0 {
						idMu[i].Lock()
						v := origin[i].Add(1)
						var err error
						if rng.IntN(2) == 0 {
							err = c.Set(ctx, id, user{ID: id, Version: int(v)})
						} else {
							err = c.Delete(ctx, id)
						}
						done[p][i].Store(v)
						idMu[i].Unlock()
						writes.Add(1)
						if err != nil {
							writeErrs.Add(1)
						}
						continue
					}
					want := done[p][i].Load()
					u, err := c.Get(ctx, id, load)
					reads.Add(1)
					if err == nil && (u.ID != id || int64(u.Version) < want) {
						mu.Lock()
						violations = append(violations, fmt.Sprintf("process %d read %s = version %d (id %q) after its own write of version %d", p, id, u.Version, u.ID, want))
						mu.Unlock()
					}
				}
			})
		}
	}
	waitUntil(t, func() bool { return reads.Load() > 2000 }, "load to build up")
	hot := caches[0].Key("0")
	from := cl.MasterOf(hot)
	var to string
	for _, m := range cl.Masters() {
		if m != from {
			to = m
			break
		}
	}
	err := cl.MoveSlot(cl.SlotOf(hot), to)
	if err == nil {
		n := reads.Load()
		waitUntil(t, func() bool { return reads.Load() > n+2000 }, "load to go on after the reshard")
		err = cl.Failover(cl.MasterOf(hot))
	}
	n := reads.Load()
	waitUntil(t, func() bool { return reads.Load() > n+2000 }, "load to go on after the failover")
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d reads, %d writes (%d failed) during a reshard and a failover of the hot slot", reads.Load(), writes.Load(), writeErrs.Load())
	if len(violations) > 0 {
		t.Errorf("%d read-your-writes violations, first: %s", len(violations), violations[0])
	}
}
