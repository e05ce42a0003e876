package tiercache_test

import (
	"context"
	"math/rand/v2"
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

// nodeTrips records, per cluster node, the pipelines and commands sent.
type nodeTrips struct {
	mu    sync.Mutex
	trips map[string][][]string // node addr -> round trips -> command names
}

func (n *nodeTrips) hook(addr string) redis.Hook { return nodeHook{n, addr} }

type nodeHook struct {
	n    *nodeTrips
	addr string
}

func (h nodeHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h nodeHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.add(h.addr, cmd)
		return next(ctx, cmd)
	}
}
func (h nodeHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.add(h.addr, cmds...)
		return next(ctx, cmds)
	}
}

func (n *nodeTrips) add(addr string, cmds ...redis.Cmder) {
	var names []string
	for _, c := range cmds {
		name := strings.ToUpper(c.Name())
		if name == "HELLO" || name == "CLIENT" || name == "CLUSTER" || name == "READONLY" {
			return // connection set-up and topology, not the cache's traffic
		}
		names = append(names, name)
	}
	n.mu.Lock()
	n.trips[addr] = append(n.trips[addr], names)
	n.mu.Unlock()
}

func (n *nodeTrips) take() map[string][][]string {
	n.mu.Lock()
	defer n.mu.Unlock()
	t := n.trips
	n.trips = map[string][][]string{}
	return t
}

// clusterCache returns a cache ("process") on the cluster with its own
// ClusterClient, closed with the test; trips, if set, records its traffic.
func clusterCache(t *testing.T, cl *cachetest.Cluster, o tiercache.Options[user], trips *nodeTrips) *tiercache.Cache[user] {
	t.Helper()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs(), ContextTimeoutEnabled: true})
	if trips != nil {
		rdb.OnNewNode(func(node *redis.Client) { node.AddHook(trips.hook(node.Options().Addr)) })
	}
	t.Cleanup(func() { rdb.Close() })
	o.Store = redisstore.New(rdb, nil)
	c := newCache(t, "", o)
	waitSettled(t, c)
	return c
}

func countOf(trip []string, name string) int {
	n := 0
	for _, c := range trip {
		if c == name {
			n++
		}
	}
	return n
}

// TestCluster runs the acceptance behaviours on a local Redis Cluster of 3
// masters and 3 replicas, then a failover and a resharding of a hot key's
// slot under load.
func TestCluster(t *testing.T) {
	cl := cachetest.StartCluster(t, cachetest.ClusterConfig{Replicas: 1})
	fleetOn := func(t *testing.T, n int, o tiercache.Options[user]) []*tiercache.Cache[user] {
		o.Keyspace.Name = keyspaceName(t)
		var cs []*tiercache.Cache[user]
		for range n {
			cs = append(cs, clusterCache(t, cl, o, nil))
		}
		return cs
	}

	t.Run("ColdStampede", func(t *testing.T) {
		coldStampede(t, fleetOn(t, 4, tiercache.Options[user]{}), 400)
	})

	t.Run("StaleOneRefresh", func(t *testing.T) {
		clk := newClock()
		o := tiercache.Options[user]{TTL: time.Minute, StaleTTL: time.Hour, Jitter: -1, Rebuild: tiercache.Rebuild{EarlyRefreshBeta: -1}}
		tiercache.SetClock(&o, clk.Now)
		caches := fleetOn(t, 4, o)
		db := newOrigin("k")
		for _, c := range caches {
			c.Get(t.Context(), "k", db.load)
		}
		db.update("k")
		clk.Advance(2 * time.Minute)
		db.delay = make(chan struct{})
		for _, c := range caches {
			if u, err := c.Get(t.Context(), "k", db.load); err != nil || u.Version != 0 {
				t.Fatalf("stale Get = %+v, %v", u, err)
			}
		}
		close(db.delay)
		for _, c := range caches {
			waitUntil(t, func() bool { u, _ := c.Get(t.Context(), "k", db.load); return u.Version == 1 }, "the refreshed value")
		}
		if got := db.calls.Load(); got != 2 { // the first load and one refresh
			t.Fatalf("origin called %d times, want 2", got)
		}
	})

	t.Run("DeleteReachesOthers", func(t *testing.T) {
		caches := fleetOn(t, 2, tiercache.Options[user]{TTL: time.Hour, L1: tiercache.L1[user]{TTL: time.Hour}})
		db := newOrigin("k")
		caches[1].Get(t.Context(), "k", db.load)
		db.update("k")
		if err := caches[0].Delete(t.Context(), "k"); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, func() bool { u, _ := caches[1].Get(t.Context(), "k", db.load); return u.Version == 1 }, "B to see A's Delete")
	})

	t.Run("GetManyOneTripPerNode", func(t *testing.T) {
		trips := &nodeTrips{trips: map[string][][]string{}}
		name := keyspaceName(t)
		// Without tracking: its background check of this process's own
		// fills (internal/fleet/own.go) is not the read path this counts.
		c := clusterCache(t, cl, tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: name}}, trips)
		db := &batchOrigin{origin: newOrigin()}
		ids := make([]string, 100)
		for i := range ids {
			ids[i] = strconv.Itoa(i)
			db.rows[ids[i]] = user{ID: ids[i]}
		}
		// Warm the connections, so that the count below is the cache's.
		c.GetMany(t.Context(), []string{"warm-a", "warm-b", "warm-c", "warm-d"}, db.load)
		trips.take()
		m, err := c.GetMany(t.Context(), ids, db.load)
		if err != nil || len(m) != 100 || len(db.batch) != 2 {
			t.Fatalf("GetMany = %d values, %v, %d loader calls", len(m), err, len(db.batch))
		}
		nodes, gets := 0, 0
		for node, ts := range trips.take() {
			reads := 0
			for _, trip := range ts {
				// A read pipeline, or, the warm-up having found only
				// absent keys (see Cache.lockFirst), locks and reads in
				// one pipeline.
				if n := countOf(trip, "GET"); n > 0 {
					reads++
					gets += n
				}
			}
			if reads != 1 {
				t.Errorf("node %s got the reads in %d round trips, want 1: %v", node, reads, ts)
			}
			nodes++
		}
		if nodes != 3 || gets != 100 {
			t.Fatalf("reads went to %d nodes with %d GETs, want the 3 masters and 100", nodes, gets)
		}
		t.Logf("GetMany of 100 ids on 3 masters: one pipelined round trip of GETs (with the locks) per master")
	})

	for _, change := range []string{"Failover", "Reshard"} {
		t.Run(change+"UnderLoad", func(t *testing.T) {
			caches := fleetOn(t, 4, tiercache.Options[user]{TTL: time.Hour, L1: tiercache.L1[user]{Size: 20}})
			hot := caches[0].Key("hot")
			var calls atomic.Int64
			fn := deterministicLoad(&calls)
			stop := make(chan struct{})
			var total, wrong, failed atomic.Int64
			var wg sync.WaitGroup
			for i, c := range caches {
				for w := range 3 {
					wg.Go(func() {
						rng := rand.New(rand.NewPCG(uint64(i), uint64(w)))
						for {
							select {
							case <-stop:
								return
							default:
							}
							id := "hot"
							if rng.IntN(2) == 0 {
								id = strconv.Itoa(rng.IntN(200))
							}
							u, err := c.Get(t.Context(), id, fn)
							total.Add(1)
							switch {
							case err != nil:
								failed.Add(1)
							case u != valueOf(id):
								wrong.Add(1)
							}
						}
					})
				}
			}
			waitUntil(t, func() bool { return total.Load() > 2000 }, "load to build up")
			from := cl.MasterOf(hot)
			var err error
			if change == "Failover" {
				err = cl.Failover(from)
			} else {
				to := ""
				for _, m := range cl.Masters() {
					if m != from {
						to = m
						break
					}
				}
				err = cl.MoveSlot(cl.SlotOf(hot), to)
			}
			if err != nil {
				close(stop)
				wg.Wait()
				t.Fatal(err)
			}
			after := total.Load()
			waitUntil(t, func() bool { return total.Load() > after+2000 }, "load to go on after the change")
			close(stop)
			wg.Wait()
			if now := cl.MasterOf(hot); now == from {
				t.Fatalf("the hot key's slot is still served by %s", from)
			}
			t.Logf("%s of the hot key's slot (from %s) under load: %d Gets, %d wrong, %d errors, %d origin calls",
				change, from, total.Load(), wrong.Load(), failed.Load(), calls.Load())
			if wrong.Load() != 0 || failed.Load() != 0 {
				t.Fatalf("%d wrong values and %d errors during the %s", wrong.Load(), failed.Load(), change)
			}
		})
	}
}
