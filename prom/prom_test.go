package prom_test

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cachetest"
	"github.com/tiercache/tiercache/prom"
	"github.com/tiercache/tiercache/redisstore"
	"github.com/tiercache/tiercache/stats"
)

type user struct{ ID string }

func load(ctx context.Context, id string) (user, error) {
	if id == "missing" {
		return user{}, tiercache.ErrNotFound
	}
	return user{ID: id}, nil
}

// TestExposition drives two caches ("processes") sharing a Redis through a
// hand-counted sequence and scrapes the collector over HTTP: the exposition
// carries the same counts as Stats, labelled by keyspace, outcome and tier,
// and a latency histogram per outcome.
func TestExposition(t *testing.T) {
	srv := cachetest.StartRedis(t)
	metrics := prom.New()
	newCache := func(keyspace string) *tiercache.Cache[user] {
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true})
		t.Cleanup(func() { rdb.Close() })
		c, err := tiercache.New(&tiercache.Options[user]{
			Keyspace: tiercache.Keyspace{Name: "user"},
			Store:    redisstore.New(rdb, nil),
			Observe:  stats.Observe{Recorder: metrics.Recorder(keyspace)},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Ready(t.Context()); err != nil { // so that L1 answers first
			t.Fatal(err)
		}
		metrics.Watch(keyspace, c)
		return c
	}
	a, b := newCache("user-a"), newCache("user-b")
	ctx := t.Context()
	for i := range 3 {
		a.Get(ctx, strconv.Itoa(i), load) // 3 misses
		a.Get(ctx, strconv.Itoa(i), load) // 3 L1 hits
		b.Get(ctx, strconv.Itoa(i), load) // 3 L2 hits
	}
	if _, err := a.Get(ctx, "missing", load); !errors.Is(err, tiercache.ErrNotFound) {
		t.Fatal(err)
	}
	a.Get(ctx, "missing", load) // a negative hit

	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics)
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	text := string(body)
	for _, want := range []string{
		`tiercache_requests_total{keyspace="user-a",outcome="miss",tier="origin"} 4`,
		`tiercache_requests_total{keyspace="user-a",outcome="hit",tier="l1"} 3`,
		`tiercache_requests_total{keyspace="user-a",outcome="negative",tier="l1"} 1`,
		`tiercache_requests_total{keyspace="user-b",outcome="hit",tier="l2"} 3`,
		`tiercache_loads_total{keyspace="user-a"} 4`,
		`tiercache_loads_total{keyspace="user-b"} 0`,
		`tiercache_events_total{event="lock_acquired",keyspace="user-a"} 4`,
		`tiercache_breaker_open{keyspace="user-a"} 0`,
		`tiercache_request_duration_seconds_count{keyspace="user-a",outcome="hit"} 3`,
		`tiercache_request_duration_seconds_count{keyspace="user-a",outcome="miss"} 4`,
		`tiercache_request_duration_seconds_count{keyspace="user-b",outcome="hit"} 3`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("exposition lacks %s", want)
		}
	}
	// L1's size is otter's estimate, updated as it maintains itself: the
	// series must be there; its value is at most the 3 entries b holds.
	if !strings.Contains(text, `tiercache_l1_entries{keyspace="user-b"} `) {
		t.Error("exposition lacks tiercache_l1_entries for user-b")
	}
	if t.Failed() {
		t.Logf("exposition:\n%s", text)
	}
}
