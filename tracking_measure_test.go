package tiercache_test

// The measurement of server-assisted invalidation that docs/architecture.md
// quotes (run: go test -count=1 -run TestTrackingMeasure -v .). It asserts
// only correctness: every process serves the new state within 10 s.

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cachetest"
	"github.com/tiercache/tiercache/redisstore"
)

// measureTarget is a Redis to measure on: how to make a client, and the
// nodes whose INFO to sum.
type measureTarget struct {
	name   string
	client func() redis.UniversalClient
	nodes  []*cachetest.Server
}

// TestTrackingMeasure: 1,000 cached keys held in the L1 of 3 processes
// (caches with their own clients), each written by a plain go-redis
// client; the time until every process serves the new state, and what a
// write costs Redis with tracking on and with messages only.
func TestTrackingMeasure(t *testing.T) {
	if os.Getenv("TIERCACHE_MEASURE") == "" {
		// About a minute under -race, and its outside-SET bound failed in CI
		// (2 of 3 processes kept the old value for over 10 s): tracking is
		// opt-in until that and the large-batch cost are fixed (issue 16).
		t.Skip("a measurement of the opt-in tracking: run with TIERCACHE_MEASURE=1")
	}
	s := cachetest.StartRedis(t)
	single := measureTarget{name: "single node", nodes: []*cachetest.Server{s},
		client: func() redis.UniversalClient {
			return redis.NewClient(&redis.Options{Addr: s.Addr(), ContextTimeoutEnabled: true})
		}}
	cl := cachetest.StartCluster(t)
	var masters []*cachetest.Server
	for _, a := range cl.Masters() {
		masters = append(masters, cl.Node(a))
	}
	cluster := measureTarget{name: "cluster (3 masters)", nodes: masters,
		client: func() redis.UniversalClient {
			return redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs(), ContextTimeoutEnabled: true})
		}}
	for _, tg := range []measureTarget{single, cluster} {
		t.Run(strings.Fields(tg.name)[0], func(t *testing.T) {
			// Each in a subtest of its own: its processes (and keyspace)
			// end with it, and hear nothing of the next one's writes.
			for _, op := range []string{"DEL", "SET"} {
				t.Run("bound-"+op, func(t *testing.T) { measureBound(t, tg, op) })
			}
			for _, sc := range []struct {
				name             string
				tracking, byTier bool
			}{
				{"outside DEL, tracking on", true, false},
				{"outside DEL, tracking off", false, false},
				{"tiercache Delete, messages only (today)", false, true},
				{"tiercache Delete, messages + tracking", true, true},
			} {
				t.Run("cost", func(t *testing.T) { measureCost(t, tg, sc.name, sc.tracking, sc.byTier) })
			}
		})
	}
}

const measureKeys = 1000

// measureFleet returns 3 processes holding measureKeys ids in L1, the ids,
// and the origin.
func measureFleet(t *testing.T, tg measureTarget, tracking bool) ([]*tiercache.Cache[user], []string, *origin, tiercache.Options[user]) {
	t.Helper()
	o := tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: keyspaceName(t)}, TTL: time.Hour, L1: tiercache.L1[user]{TTL: time.Hour},
		L2: tiercache.L2[user]{Tracking: tracking}}
	var procs []*tiercache.Cache[user]
	for range 3 {
		rdb := tg.client()
		t.Cleanup(func() { rdb.Close() })
		oo := o
		oo.Store = redisstore.New(rdb, nil)
		c := newCache(t, "", oo)
		waitSettled(t, c)
		procs = append(procs, c)
	}
	ids := make([]string, measureKeys)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	db := newOrigin(ids...)
	holdAll(t, procs, ids, db)
	return procs, ids, db, o
}

// holdAll reads every id in every process until a whole pass is L1 hits
// (fills make the other processes, and with tracking the filler, drop
// their copies once more).
func holdAll(t *testing.T, procs []*tiercache.Cache[user], ids []string, db *origin) {
	t.Helper()
	ctx := t.Context()
	for pass := 0; ; pass++ {
		misses := 0
		for _, c := range procs {
			// Fills follow the answers: a fill still in flight could land
			// after an outside write and overwrite it.
			if err := tiercache.WaitIdle(ctx, c); err != nil {
				t.Fatal(err)
			}
			before := c.Stats().L1Hits
			for _, id := range ids {
				if _, err := c.Get(ctx, id, db.load); err != nil {
					t.Fatal(err)
				}
			}
			misses += len(ids) - int(c.Stats().L1Hits-before)
		}
		if misses == 0 {
			return
		}
		if pass == 50 {
			t.Fatalf("%d reads still not L1 hits after %d passes", misses, pass)
		}
	}
}

// measureBound writes (DEL or SET) each id from an outside client, one at
// a time, and measures how long until each of the processes serves the new
// state (each polls its Get every ~20 µs).
func measureBound(t *testing.T, tg measureTarget, op string) {
	procs, ids, db, o := measureFleet(t, tg, true)
	outside := tg.client()
	t.Cleanup(func() { outside.Close() })
	ctx := t.Context()
	var next map[string][]byte
	if op == "SET" {
		next = newBytes(t, outside, o, ids, func(id string) user { return user{ID: id, Name: "outside " + id, Version: 7} })
		holdAll(t, procs, ids, db) // newBytes's writes dropped copies
	}
	lat := make([]time.Duration, 0, len(ids)*len(procs))
	var mu sync.Mutex
	start := time.Now()
	for _, id := range ids {
		key := procs[0].Key(id)
		want := 7
		t0 := time.Now()
		if op == "DEL" {
			want = db.update(id).Version
			if err := outside.Del(ctx, key).Err(); err != nil {
				t.Fatal(err)
			}
		} else if err := outside.Set(ctx, key, next[id], time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for p, c := range procs {
			wg.Go(func() {
				for {
					u, err := c.Get(ctx, id, db.load)
					if err == nil && u.Version == want {
						mu.Lock()
						lat = append(lat, time.Since(t0))
						mu.Unlock()
						return
					}
					if time.Since(t0) > 10*time.Second {
						t.Errorf("%s %s: process %d still serves %+v, %v after 10 s", op, key, p, u, err)
						return
					}
					time.Sleep(20 * time.Microsecond)
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}
	}
	slices.Sort(lat)
	t.Logf("%s, outside %s of %d keys held in L1 by %d processes: until each process serves the new state: p50 %v, p99 %v, max %v (%d samples, %v in all; poll every ~20 µs)",
		tg.name, op, len(ids), len(procs), pctl(lat, 50), pctl(lat, 99), lat[len(lat)-1], len(lat), time.Since(start).Round(time.Millisecond))
}

// measureCost writes every id once (an outside DEL, or a tiercache Delete
// by a fourth process) and reports Redis's CPU, output bytes and commands
// per write, and the invalidations the processes received.
func measureCost(t *testing.T, tg measureTarget, name string, tracking, byTier bool) {
	procs, ids, _, o := measureFleet(t, tg, tracking)
	ctx := t.Context()
	var write func(id string) error
	if byTier {
		rdb := tg.client()
		t.Cleanup(func() { rdb.Close() })
		o.Store = redisstore.New(rdb, nil)
		w := newCache(t, "", o)
		waitSettled(t, w)
		write = func(id string) error { return w.Delete(ctx, id) }
	} else {
		outside := tg.client()
		t.Cleanup(func() { outside.Close() })
		write = func(id string) error { return outside.Del(ctx, procs[0].Key(id)).Err() }
	}
	var inv0 uint64
	for _, c := range procs {
		inv0 += c.Stats().Invalidations
	}
	before := redisInfo(t, tg.nodes)
	for _, id := range ids {
		if err := write(id); err != nil {
			t.Fatal(err)
		}
	}
	// Every process drops every copy (the correctness this costs), but an
	// outside write without tracking reaches none: the baseline.
	var inv uint64
	waitUntil(t, func() bool {
		inv = 0
		for _, c := range procs {
			inv += c.Stats().Invalidations
		}
		return !tracking && !byTier || inv-inv0 >= uint64(len(ids)*len(procs))
	}, fmt.Sprintf("%s: every process to drop every copy", name))
	after := redisInfo(t, tg.nodes)
	n := float64(len(ids))
	t.Logf("%s, %s: per write: Redis CPU %.1f µs, output %.0f bytes, %.2f commands, %.2f invalidations received (3 processes hold the key)",
		tg.name, name, (after.cpu-before.cpu)*1e6/n, float64(after.out-before.out)/n, float64(after.calls-before.calls)/n, float64(inv-inv0)/n)
}

// redisStats is what measureCost reads from INFO, summed over nodes.
type redisStats struct {
	cpu   float64 // used_cpu_sys + used_cpu_user, seconds
	out   int64   // total_net_output_bytes
	calls int64   // commands, INFO excluded
}

func redisInfo(t *testing.T, nodes []*cachetest.Server) redisStats {
	t.Helper()
	var st redisStats
	for _, s := range nodes {
		v, err := s.Do("INFO", "all")
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(fmt.Sprint(v), "\r\n") {
			k, val, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			switch {
			case k == "used_cpu_sys" || k == "used_cpu_user":
				f, _ := strconv.ParseFloat(val, 64)
				st.cpu += f
			case k == "total_net_output_bytes":
				n, _ := strconv.ParseInt(val, 10, 64)
				st.out += n
			case strings.HasPrefix(k, "cmdstat_") && k != "cmdstat_info":
				c, _, _ := strings.Cut(strings.TrimPrefix(val, "calls="), ",")
				n, _ := strconv.ParseInt(c, 10, 64)
				st.calls += n
			}
		}
	}
	return st
}
