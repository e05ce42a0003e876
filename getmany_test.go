package tiercache_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/redisstore"
)

// roundTrips is a go-redis hook that records each round trip: one per
// command, one per pipeline, with the command names.
type roundTrips struct {
	mu    sync.Mutex
	trips [][]string
}

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.add(cmd)
		return next(ctx, cmd)
	}
}

func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.add(cmds...)
		return next(ctx, cmds)
	}
}

func (h *roundTrips) add(cmds ...redis.Cmder) {
	var names []string
	for _, c := range cmds {
		name := strings.ToUpper(c.Name())
		if name == "HELLO" || name == "CLIENT" {
			return // a new connection's handshake, not the cache's traffic
		}
		if slices.ContainsFunc(c.Args(), func(a any) bool { s, _ := a.(string); return strings.Contains(s, "tiercache:version:") }) {
			return // the background read of the runtime version, not a request's
		}
		names = append(names, name)
	}
	h.mu.Lock()
	h.trips = append(h.trips, names)
	h.mu.Unlock()
}

func (h *roundTrips) take() [][]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.trips
	h.trips = nil
	return t
}

// batchOrigin is a batch loader over an origin, recording its calls.
type batchOrigin struct {
	*origin
	mu    sync.Mutex
	batch [][]string
}

func (b *batchOrigin) load(ctx context.Context, ids []string) (map[string]user, error) {
	b.mu.Lock()
	b.batch = append(b.batch, slices.Clone(ids))
	b.mu.Unlock()
	out := make(map[string]user, len(ids))
	for _, id := range ids {
		u, err := b.origin.load(ctx, id)
		switch {
		case errors.Is(err, tiercache.ErrNotFound):
		case err != nil:
			return nil, err
		default:
			out[id] = u
		}
	}
	return out, nil
}

// TestGetManyRoundTrips: GetMany of 100 ids, 50 of them in Redis, reads all
// 100 in one round trip (one MGET), takes the 50 locks in one, calls the
// loader once for the other 50, fills them in one and announces them in one
// message. A second GetMany answers from L1 without Redis.
func TestGetManyRoundTrips(t *testing.T) {
	name := keyspaceName(t)
	writer := newCache(t, srv(t).Addr(), tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: name}})
	db := &batchOrigin{origin: newOrigin()}
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
		if i < 95 { // 5 ids do not exist
			db.rows[ids[i]] = user{ID: ids[i], Name: "user " + ids[i]}
		}
	}
	ctx := t.Context()
	for i := 0; i < 50; i++ {
		if _, err := writer.Get(ctx, ids[i], db.origin.load); err != nil {
			t.Fatal(err)
		}
	}
	// The cache under test starts after the writer's fills (which follow
	// their answers), so their messages do not reach it: one arriving
	// later drops its id from L1, and the second GetMany reads it again.
	if err := tiercache.WaitIdle(ctx, writer); err != nil {
		t.Fatal(err)
	}
	rdb := newRedis(t, srv(t).Addr())
	hook := &roundTrips{}
	rdb.AddHook(hook)
	// Without tracking: its check of this process's own fills (one MGET
	// after them, in the background: see internal/fleet/own.go) is not the
	// read path's round trips this test counts.
	c := newCache(t, "", tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: name}, Store: redisstore.New(rdb, nil)})
	waitSettled(t, c)
	hook.take()

	got, err := c.GetMany(ctx, ids, db.load)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 95 {
		t.Fatalf("GetMany returned %d values, want 95 (5 ids do not exist)", len(got))
	}
	for id, u := range got {
		if u.ID != id {
			t.Fatalf("GetMany[%s] = %+v", id, u)
		}
	}
	if len(db.batch) != 1 || len(db.batch[0]) != 50 || db.batch[0][0] != "50" {
		t.Fatalf("loader calls %v, want one call with the 50 ids not in Redis", db.batch)
	}
	// The callers are answered before the fill: wait for it.
	if err := tiercache.WaitIdle(ctx, c); err != nil {
		t.Fatal(err)
	}
	trips := hook.take()
	want := [][]string{{"MGET"}, append(slices.Repeat([]string{"SET"}, 50), "MGET"), {"EVALSHA"}, {"PUBLISH"}}
	if len(trips) != len(want) || len(trips[0]) != 1 || trips[0][0] != "MGET" {
		t.Fatalf("round trips %v, want %d: MGET, locks and a read, fills, publish", summarize(trips), len(want))
	}
	for i := range want {
		if !slices.Equal(trips[i], want[i]) {
			t.Fatalf("round trip %d: %v, want %v", i, summarize(trips[i:i+1]), summarize(want[i:i+1]))
		}
	}
	t.Logf("GetMany(100 ids, 50 in Redis): %d round trips: %v; 1 loader call for 50 ids", len(trips), summarize(trips))

	// Again: all from L1 (values and "not found"), no Redis, no loader.
	got, err = c.GetMany(ctx, ids, db.load)
	if err != nil || len(got) != 95 {
		t.Fatalf("second GetMany = %d values, %v", len(got), err)
	}
	if trips := hook.take(); len(trips) != 0 || len(db.batch) != 1 {
		t.Fatalf("second GetMany: %d round trips %v, %d loader calls; want 0 and still 1", len(trips), summarize(trips), len(db.batch))
	}
	s := c.Stats()
	if s.L2Hits != 50 || s.Misses != 50 || s.L1Hits != 95 || s.NegativeHits != 5 {
		t.Fatalf("stats: L2 hits %d, misses %d, L1 hits %d, negative %d; want 50, 50, 95, 5", s.L2Hits, s.Misses, s.L1Hits, s.NegativeHits)
	}
}

func summarize(trips [][]string) []string {
	var out []string
	for _, t := range trips {
		// Runs of one command, in order: [50×SET MGET].
		var runs []string
		for i := 0; i < len(t); {
			j := i
			for j < len(t) && t[j] == t[i] {
				j++
			}
			if j-i == 1 {
				runs = append(runs, t[i])
			} else {
				runs = append(runs, strconv.Itoa(j-i)+"×"+t[i])
			}
			i = j
		}
		out = append(out, strings.Join(runs, " "))
	}
	return out
}

// TestGetManySharesLoadsWithGet: an id whose Get is loading is not loaded
// again by a concurrent GetMany, which gets the Get's value; and a Get of an
// id a GetMany is loading waits for it.
func TestGetManySharesLoadsWithGet(t *testing.T) {
	c := newCache(t, srv(t).Addr(), tiercache.Options[user]{})
	db := &batchOrigin{origin: newOrigin("a", "b", "c")}
	release := make(chan struct{})
	started := make(chan struct{})
	slow := func(ctx context.Context, id string) (user, error) {
		close(started)
		<-release
		return user{ID: id, Name: "from Get"}, nil
	}
	getDone := make(chan user, 1)
	go func() {
		u, err := c.Get(t.Context(), "a", slow)
		if err != nil {
			t.Error(err)
		}
		getDone <- u
	}()
	<-started
	manyDone := make(chan map[string]user, 1)
	go func() {
		m, err := c.GetMany(t.Context(), []string{"a", "b", "c"}, db.load)
		if err != nil {
			t.Error(err)
		}
		manyDone <- m
	}()
	waitUntil(t, func() bool { return tiercache.Joined(c, "a") == 1 }, "GetMany to join the Get's load of a")
	close(release)
	m := <-manyDone
	<-getDone
	if m["a"].Name != "from Get" || m["b"].ID != "b" || m["c"].ID != "c" {
		t.Fatalf("GetMany = %+v", m)
	}
	if len(db.batch) != 1 || slices.Contains(db.batch[0], "a") {
		t.Fatalf("batch loader calls %v: a was loaded again", db.batch)
	}
	if s := c.Stats(); s.SharedLoads != 1 {
		t.Fatalf("SharedLoads = %d, want 1", s.SharedLoads)
	}
}

// TestGetManyLoadFailure: when the batch loader fails, ids with a value
// within MaxStale are answered stale, the error says so and wraps the cause,
// and nothing is cached as a value.
func TestGetManyLoadFailure(t *testing.T) {
	clk := newClock()
	o := tiercache.Options[user]{TTL: time.Minute, Degrade: tiercache.Degrade[user]{MaxStale: time.Hour}, Jitter: -1, Retry: tiercache.Retry{Attempts: 1}}
	tiercache.SetClock(&o, clk.Now)
	c := newCache(t, srv(t).Addr(), o)
	db := &batchOrigin{origin: newOrigin("1", "2")}
	if _, err := c.GetMany(t.Context(), []string{"1"}, db.load); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute) // past the hard expiry
	down := errors.New("db down")
	failing := func(context.Context, []string) (map[string]user, error) { return nil, down }
	m, err := c.GetMany(t.Context(), []string{"1", "2"}, failing)
	if !errors.Is(err, tiercache.ErrStale) || !errors.Is(err, down) {
		t.Fatalf("err = %v, want it to wrap ErrStale and the cause", err)
	}
	if len(m) != 1 || m["1"].ID != "1" {
		t.Fatalf("result %+v, want only the stale value of 1", m)
	}
	// Nothing was cached: a working loader is called for both.
	m, err = c.GetMany(t.Context(), []string{"1", "2"}, db.load)
	if err != nil || len(m) != 2 {
		t.Fatalf("after recovery: %+v, %v", m, err)
	}
}

// TestGetManyRedisDown: with the shared tier unreachable, GetMany still
// answers from the loader, in one call.
func TestGetManyRedisDown(t *testing.T) {
	c := newCache(t, "", tiercache.Options[user]{Store: redisstore.New(newRedis(t, deadAddr(t)), nil)})
	db := &batchOrigin{origin: newOrigin("1", "2", "3")}
	var calls atomic.Int64
	load := func(ctx context.Context, ids []string) (map[string]user, error) {
		calls.Add(1)
		return db.load(ctx, ids)
	}
	m, err := c.GetMany(t.Context(), []string{"1", "2", "3", "4"}, load)
	if err != nil || len(m) != 3 || calls.Load() != 1 {
		t.Fatalf("GetMany with Redis down = %v, %v, %d loader calls", m, err, calls.Load())
	}
}
