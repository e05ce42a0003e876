package tiercacheotel_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/stats"
	"github.com/tiercache/tiercache/tiercacheotel"
)

// series is one collected data point, by a key naming its kind, metric and
// attributes: "counter tiercache.requests{tiercache.keyspace=user,...}".
// A histogram's value is its count.
type series map[string]float64

func seriesKey(kind, name string, set attribute.Set) string {
	return fmt.Sprintf("%s %s{%s}", kind, name, set.Encoded(attribute.DefaultEncoder()))
}

// collect reads every tiercacheotel series from reader, checking the scope.
func collect(t *testing.T, reader *sdkmetric.ManualReader) series {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	got := series{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != tiercacheotel.ScopeName {
			t.Errorf("metrics in scope %q, want %q", sm.Scope.Name, tiercacheotel.ScopeName)
		}
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					got[seriesKey(sumKind(d.IsMonotonic), m.Name, p.Attributes)] = float64(p.Value)
				}
			case metricdata.Sum[float64]:
				for _, p := range d.DataPoints {
					got[seriesKey(sumKind(d.IsMonotonic), m.Name, p.Attributes)] = p.Value
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					got[seriesKey("gauge", m.Name, p.Attributes)] = float64(p.Value)
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					got[seriesKey("histogram", m.Name, p.Attributes)] = float64(p.Count)
				}
			default:
				t.Errorf("%s: unexpected data %T", m.Name, m.Data)
			}
		}
	}
	return got
}

func sumKind(monotonic bool) string {
	if monotonic {
		return "counter"
	}
	return "updowncounter"
}

// fromStats is what the metrics must report for the snapshot s of
// keyspace: every counter of Stats, and a latency histogram per outcome
// counting the requests of that outcome.
func fromStats(want series, keyspace string, s stats.Snapshot) {
	ks := attribute.String("tiercache.keyspace", keyspace)
	set := func(kv ...attribute.KeyValue) attribute.Set { return attribute.NewSet(append(kv, ks)...) }
	for _, o := range stats.Outcomes() {
		var total uint64
		for _, tier := range stats.Tiers() {
			if n := s.Requests(o, tier); n > 0 {
				want[seriesKey("counter", "tiercache.requests", set(attribute.String("tiercache.outcome", o.String()), attribute.String("tiercache.tier", tier.String())))] = float64(n)
				total += n
			}
		}
		if total > 0 {
			want[seriesKey("histogram", "tiercache.request.duration", set(attribute.String("tiercache.outcome", o.String())))] = float64(total)
		}
	}
	want[seriesKey("counter", "tiercache.loads", set())] = float64(s.Loads)
	want[seriesKey("counter", "tiercache.load.errors", set())] = float64(s.LoadErrors)
	want[seriesKey("counter", "tiercache.load.duration", set())] = s.LoadTime.Seconds()
	for _, e := range stats.Events() {
		want[seriesKey("counter", "tiercache.events", set(attribute.String("tiercache.event", e.String())))] = float64(s.Event(e))
	}
	want[seriesKey("gauge", "tiercache.l1.entries", set())] = float64(s.L1Size)
	open := 0.0
	if s.Breaker == "open" || s.Breaker == "half-open" {
		open = 1
	}
	want[seriesKey("gauge", "tiercache.breaker.open", set())] = open
}

// diff describes how got differs from want, or is empty.
func diff(got, want series) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[k]; !ok {
			fmt.Fprintf(&b, "missing %s = %v\n", k, want[k])
		} else if g != want[k] {
			fmt.Fprintf(&b, "%s = %v, want %v\n", k, g, want[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			fmt.Fprintf(&b, "unexpected %s = %v\n", k, got[k])
		}
	}
	return b.String()
}

// metered returns the metrics on a manual reader, and a constructor of
// caches whose metrics they export.
func metered(t *testing.T) (*tiercacheotel.Metrics, *sdkmetric.ManualReader, func(string, *tiercache.Options[user]) *tiercache.Cache[user]) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { mp.Shutdown(context.WithoutCancel(t.Context())) })
	m, err := tiercacheotel.NewMetrics(mp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, reader, func(keyspace string, opts *tiercache.Options[user]) *tiercache.Cache[user] {
		opts.Keyspace = tiercache.Keyspace{Name: keyspace}
		opts.Observe.Recorder = m.Recorder(keyspace)
		c, err := tiercache.New(opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		m.Watch(keyspace, c)
		return c
	}
}

func load(_ context.Context, id string) (user, error) {
	switch id {
	case "gone":
		return user{}, tiercache.ErrNotFound
	case "down":
		return user{}, errDown
	}
	return user{ID: id}, nil
}

// TestMetricsEqualStats is the test: after a workload of hits,
// misses, negative hits, errors and fallbacks in two keyspaces, the full set
// of series a manual reader collects equals what the caches' Stats report
// (and the latency histograms, fed by the Recorder, count as many requests
// per outcome).
func TestMetricsEqualStats(t *testing.T) {
	_, reader, newCache := metered(t)
	users := newCache("user", &tiercache.Options[user]{Retry: tiercache.Retry{Attempts: 1}})
	accounts := newCache("account", &tiercache.Options[user]{
		Retry:   tiercache.Retry{Attempts: 2, Base: time.Nanosecond, Max: time.Nanosecond},
		Degrade: tiercache.Degrade[user]{Fallback: func(string, error) user { return user{ID: "anonymous"} }},
	})
	ctx := t.Context()
	for i := range 3 {
		users.Get(ctx, strconv.Itoa(i), load) // 3 misses
		users.Get(ctx, strconv.Itoa(i), load) // 3 L1 hits
	}
	users.Get(ctx, "gone", load) // a miss
	users.Get(ctx, "gone", load) // a negative hit
	users.Get(ctx, "down", load) // 2 errors (failures are not cached)
	if _, err := users.Get(ctx, "down", load); !errors.Is(err, errDown) {
		t.Fatalf("Get(down) = %v, want %v", err, errDown)
	}
	accounts.Get(ctx, "1", load) // a miss
	accounts.Get(ctx, "1", load) // an L1 hit
	if _, err := accounts.Get(ctx, "down", load); !errors.Is(err, tiercache.ErrFallback) {
		t.Fatalf("accounts.Get(down) = %v, want ErrFallback", err) // a fallback, after 2 attempts
	}

	// The Stats the metrics must equal, checked against the workload so
	// that they are not equal by being empty.
	su, sa := users.Stats(), accounts.Stats()
	for _, c := range []struct {
		name      string
		got, want uint64
	}{
		{"user misses", su.Misses, 4}, {"user L1 hits", su.L1Hits, 3}, {"user negative hits", su.NegativeHits, 1},
		{"user errors", su.Errors, 2}, {"user loads", su.Loads, 6}, {"user load errors", su.LoadErrors, 2},
		{"account misses", sa.Misses, 1}, {"account hits", sa.L1Hits, 1}, {"account fallbacks", sa.Fallbacks, 1},
		{"account loads", sa.Loads, 3}, {"account load errors", sa.LoadErrors, 2},
	} {
		if c.got != c.want {
			t.Errorf("Stats: %s = %d, want %d", c.name, c.got, c.want)
		}
	}

	got := collect(t, reader)
	after := map[string]stats.Snapshot{"user": users.Stats(), "account": accounts.Stats()}
	want := series{}
	fromStats(want, "user", su)
	fromStats(want, "account", sa)
	// L1's size is otter's estimate, which moves as it maintains itself:
	// the gauge must be between the sizes seen before and after collecting.
	for ks, before := range map[string]stats.Snapshot{"user": su, "account": sa} {
		k := seriesKey("gauge", "tiercache.l1.entries", attribute.NewSet(attribute.String("tiercache.keyspace", ks)))
		lo, hi := min(before.L1Size, after[ks].L1Size), max(before.L1Size, after[ks].L1Size)
		if g, ok := got[k]; ok && g >= float64(lo) && g <= float64(hi) {
			want[k] = g
		}
	}
	if d := diff(got, want); d != "" {
		t.Errorf("metrics differ from Stats:\n%s", d)
	}
	if len(got) < 50 {
		t.Errorf("collected %d series, fewer than the workload makes", len(got))
	}
}

// TestMetricsConcurrent collects while requests run, under -race, and the
// final collection still equals Stats.
func TestMetricsConcurrent(t *testing.T) {
	_, reader, newCache := metered(t)
	c := newCache("user", &tiercache.Options[user]{})
	// The collector runs until the requests are done, at least once.
	done := make(chan struct{})
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for {
			var rm metricdata.ResourceMetrics
			if err := reader.Collect(context.Background(), &rm); err != nil {
				t.Error(err)
			}
			select {
			case <-done:
				return
			default:
			}
		}
	}()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				c.Get(t.Context(), strconv.Itoa((g*200+i)%50), load)
			}
		})
	}
	wg.Wait()
	close(done)
	<-collected

	s := c.Stats()
	got := collect(t, reader)
	want := series{}
	fromStats(want, "user", s)
	want[seriesKey("gauge", "tiercache.l1.entries", attribute.NewSet(attribute.String("tiercache.keyspace", "user")))] =
		got[seriesKey("gauge", "tiercache.l1.entries", attribute.NewSet(attribute.String("tiercache.keyspace", "user")))]
	if d := diff(got, want); d != "" {
		t.Errorf("metrics differ from Stats:\n%s", d)
	}
	if s.Total() != 800 {
		t.Errorf("Stats count %d requests, want 800", s.Total())
	}
}

// TestMetricsClose: after Close the caches are no longer read; Watch
// replaces a keyspace's source; WithAttributes labels every series.
func TestMetricsClose(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.WithoutCancel(t.Context()))
	m, err := tiercacheotel.NewMetrics(mp, tiercacheotel.WithAttributes(attribute.String("service.name", "users")))
	if err != nil {
		t.Fatal(err)
	}
	newCache := func() *tiercache.Cache[user] {
		c, err := tiercache.New(&tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: "user"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := newCache(), newCache()
	a.Get(t.Context(), "1", load)
	b.Get(t.Context(), "1", load)
	b.Get(t.Context(), "2", load)
	m.Watch("user", a)
	m.Watch("user", b) // replaces a
	key := seriesKey("counter", "tiercache.loads", attribute.NewSet(
		attribute.String("tiercache.keyspace", "user"), attribute.String("service.name", "users")))
	if got := collect(t, reader)[key]; got != 2 {
		t.Errorf("%s = %v, want b's 2", key, got)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if got := collect(t, reader); len(got) != 0 {
		t.Errorf("after Close, collected %d series, want none: %v", len(got), got)
	}
}

// counting is a Recorder that counts its calls.
type counting struct {
	mu                      sync.Mutex
	requests, loads, events int
}

func (c *counting) RecordRequest(stats.Outcome, stats.Tier, time.Duration) {
	c.mu.Lock()
	c.requests++
	c.mu.Unlock()
}

func (c *counting) RecordLoad(time.Duration, bool) {
	c.mu.Lock()
	c.loads++
	c.mu.Unlock()
}

func (c *counting) RecordEvent(stats.Event) {
	c.mu.Lock()
	c.events++
	c.mu.Unlock()
}

// TestTee: Tee passes every call to each Recorder; a cache with Tee of two
// reports to both.
func TestTee(t *testing.T) {
	if r := tiercacheotel.Tee(); r != nil {
		t.Errorf("Tee() = %v, want nil", r)
	}
	one := &counting{}
	if r := tiercacheotel.Tee(nil, one, nil); r != one {
		t.Errorf("Tee(nil, r, nil) = %v, want r", r)
	}
	a, b := &counting{}, &counting{}
	tee := tiercacheotel.Tee(a, nil, b)
	tee.RecordEvent(stats.Refresh)
	tee.RecordEvent(stats.L2Error)
	tee.RecordLoad(time.Millisecond, true)
	c, err := tiercache.New(&tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: "user"}, Observe: stats.Observe{Recorder: tee}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Get(t.Context(), "1", load) // a request and a load
	c.Get(t.Context(), "1", load) // a request
	for i, r := range []*counting{a, b} {
		if r.requests != 2 || r.loads != 2 || r.events < 2 {
			t.Errorf("recorder %d got %d requests, %d loads, %d events; want 2, 2, at least 2", i, r.requests, r.loads, r.events)
		}
	}
	if a.events != b.events {
		t.Errorf("the recorders got %d and %d events", a.events, b.events)
	}
}
