package tiercache_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cachetest"
	"github.com/tiercache/tiercache/stats"
)

// records parses the JSON log lines in buf.
func records(t *testing.T, buf *cachetest.Buffer) []map[string]any {
	t.Helper()
	return buf.Records(t)
}

// TestDebugLogPerRequest: at Debug, each Get writes exactly one record with
// cache_key, outcome, tier and latency_ms, and the outcomes of a miss, an L1
// hit, an L2 hit, a negative hit and a stale hit are told apart.
func TestDebugLogPerRequest(t *testing.T) {
	clk := newClock()
	var buf cachetest.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	o := tiercache.Options[user]{TTL: time.Minute, StaleTTL: time.Hour, L1: tiercache.L1[user]{TTL: time.Hour}, Jitter: -1, Logger: logger}
	tiercache.SetClock(&o, clk.Now)
	a := newCache(t, srv(t).Addr(), o)
	b := newCache(t, srv(t).Addr(), o)
	db := newOrigin("1")
	ctx := t.Context()

	steps := []struct {
		name          string
		c             *tiercache.Cache[user]
		id            string
		before        func()
		outcome, tier string
		err           bool
	}{
		{"miss", a, "1", nil, "miss", "origin", false},
		{"L1 hit", a, "1", nil, "hit", "l1", false},
		{"L2 hit", b, "1", nil, "hit", "l2", false},
		{"miss on a missing id", a, "404", nil, "miss", "origin", true},
		{"negative hit", a, "404", nil, "negative", "l1", true},
		{"negative hit from L2", b, "404", nil, "negative", "l2", true},
		{"stale hit", a, "1", func() { clk.Advance(2 * time.Minute) }, "stale", "l1", false},
	}
	for _, st := range steps {
		// A fill follows its answer: the other process's step must find it
		// done, not the lock it holds (a wait, logged as a miss).
		for _, c := range []*tiercache.Cache[user]{a, b} {
			if err := tiercache.WaitIdle(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		if st.before != nil {
			st.before()
		}
		before := len(records(t, &buf))
		_, err := st.c.Get(ctx, st.id, db.load)
		if (err != nil) != st.err {
			t.Fatalf("%s: err = %v", st.name, err)
		}
		var gets []map[string]any
		for _, r := range records(t, &buf)[before:] {
			if r["msg"] == "tiercache get" {
				gets = append(gets, r)
			}
		}
		if len(gets) != 1 {
			t.Fatalf("%s: %d request records, want exactly 1: %v", st.name, len(gets), gets)
		}
		r := gets[0]
		if r["level"] != "DEBUG" || r["cache_key"] != st.c.Key(st.id) || r["outcome"] != st.outcome || r["tier"] != st.tier {
			t.Errorf("%s: record %v, want key %s, outcome %s, tier %s", st.name, r, st.c.Key(st.id), st.outcome, st.tier)
		}
		if _, ok := r["latency_ms"].(float64); !ok {
			t.Errorf("%s: latency_ms %v is not a number", st.name, r["latency_ms"])
		}
		if _, hasErr := r["err"]; hasErr != st.err {
			t.Errorf("%s: err attribute present = %v, want %v", st.name, hasErr, st.err)
		}
	}
}

// TestStatsHandCount checks the counters against a deterministic sequence
// counted by hand, including loads shared by concurrent callers.
func TestStatsHandCount(t *testing.T) {
	a := newCache(t, srv(t).Addr(), tiercache.Options[user]{})
	db := newOrigin()
	for i := range 5 {
		db.rows[strconv.Itoa(i)] = user{ID: strconv.Itoa(i)}
	}
	db.rows["shared"] = user{ID: "shared"}
	ctx := t.Context()
	get := func(c *tiercache.Cache[user], id string) {
		if _, err := c.Get(ctx, id, db.load); err != nil && !errors.Is(err, tiercache.ErrNotFound) {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		get(a, strconv.Itoa(i)) // 5 misses, 5 loads
	}
	for i := range 5 {
		get(a, strconv.Itoa(i)) // 5 L1 hits
	}
	if err := tiercache.WaitIdle(t.Context(), a); err != nil { // a's fills follow its answers
		t.Fatal(err)
	}
	// b starts after a's fills: their messages, still on their way to
	// subscribers, would drop from b's L1 the copies it is about to take.
	b := newCache(t, srv(t).Addr(), tiercache.Options[user]{Keyspace: a.Keyspace()})
	for i := range 5 {
		get(b, strconv.Itoa(i)) // 5 L2 hits on b
		get(b, strconv.Itoa(i)) // 5 L1 hits on b
	}
	get(a, "missing") // 1 miss, 1 load
	get(a, "missing") // 1 negative hit
	if err := tiercache.WaitIdle(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	get(b, "missing") // 1 negative hit, from L2

	// 10 concurrent callers of one cold id on a: 1 load, 10 misses, 9 shared.
	db.delay = make(chan struct{})
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() { get(a, "shared") })
	}
	waitUntil(t, func() bool { return tiercache.Joined(a, "shared") == 9 }, "9 callers to join the load")
	close(db.delay)
	wg.Wait()

	sa, sb := a.Stats(), b.Stats()
	checks := []struct {
		name      string
		got, want uint64
	}{
		{"a.Misses", sa.Misses, 5 + 1 + 10}, {"a.L1Hits", sa.L1Hits, 5}, {"a.L2Hits", sa.L2Hits, 0},
		{"a.NegativeHits", sa.NegativeHits, 1}, {"a.SharedLoads", sa.SharedLoads, 9},
		{"a.Loads", sa.Loads, 5 + 1 + 1}, {"a.LoadErrors", sa.LoadErrors, 0}, {"a.Total", sa.Total(), 5 + 5 + 1 + 1 + 10},
		{"b.Misses", sb.Misses, 0}, {"b.L2Hits", sb.L2Hits, 5}, {"b.L1Hits", sb.L1Hits, 5},
		{"b.NegativeHits", sb.NegativeHits, 1}, {"b.Requests(negative, l2)", sb.Requests(stats.Negative, stats.L2), 1},
		{"b.Loads", sb.Loads, 0}, {"origin calls", uint64(db.calls.Load()), 7},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	if got, want := sa.HitRatio(), 6.0/22; got != want {
		t.Errorf("a.HitRatio = %v, want %v", got, want)
	}
}

// TestHooks: the Get hook wraps each request and its context reaches the
// loader, whose own hook wraps each attempt.
func TestHooks(t *testing.T) {
	type spanKey struct{}
	var mu sync.Mutex
	var events []string
	add := func(s string) { mu.Lock(); events = append(events, s); mu.Unlock() }
	c := newCache(t, "", tiercache.Options[user]{
		Retry: tiercache.Retry{Attempts: 2, Base: time.Millisecond, Max: time.Millisecond},
		Observe: stats.Observe{Hooks: stats.Hooks{
			Get: func(ctx context.Context, key string) (context.Context, func(stats.Outcome, stats.Tier, error)) {
				add("get " + key)
				return context.WithValue(ctx, spanKey{}, "span"), func(o stats.Outcome, tr stats.Tier, err error) {
					add("done " + o.String() + " " + tr.String())
				}
			},
			Load: func(ctx context.Context, key string, attempt int) (context.Context, func(error)) {
				add("load " + strconv.Itoa(attempt) + " " + ctx.Value(spanKey{}).(string))
				return ctx, func(err error) { add("loaded " + strconv.FormatBool(err == nil)) }
			},
		}},
	})
	fails := 1
	load := func(ctx context.Context, id string) (user, error) {
		if ctx.Value(spanKey{}) != "span" {
			t.Error("the loader's context lacks the value the Get hook added")
		}
		if fails > 0 {
			fails--
			return user{}, errors.New("transient")
		}
		return user{ID: id}, nil
	}
	c.Get(t.Context(), "1", load)
	c.Get(t.Context(), "1", load)
	key := c.Key("1")
	want := []string{"get " + key, "load 1 span", "loaded false", "load 2 span", "loaded true", "done miss origin", "get " + key, "done hit l1"}
	if len(events) != len(want) {
		t.Fatalf("events %q, want %q", events, want)
	}
	for i := range want {
		if events[i] != want[i] {
			t.Fatalf("events %q, want %q", events, want)
		}
	}
}

// BenchmarkL1HitObservability measures the L1 hit with the logger at Info
// (Debug off: no record built) and at Debug, and with a Recorder.
func BenchmarkL1HitObservability(b *testing.B) {
	info := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	debug := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for _, bc := range []struct {
		name string
		o    tiercache.Options[user]
	}{
		{"no-logger", tiercache.Options[user]{}},
		{"debug-off", tiercache.Options[user]{Logger: info}},
		{"debug-on", tiercache.Options[user]{Logger: debug}},
		{"recorder", tiercache.Options[user]{Observe: stats.Observe{Recorder: stats.NewCounter()}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			bc.o.Keyspace.Name = "bench"
			c, err := tiercache.New(&bc.o)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			ctx := context.Background()
			c.Get(ctx, "1", benchLoad)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Get(ctx, "1", benchLoad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
