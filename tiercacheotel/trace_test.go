package tiercacheotel_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cachetest"
	"github.com/tiercache/tiercache/redisstore"
	"github.com/tiercache/tiercache/stats"
	"github.com/tiercache/tiercache/tiercacheotel"
)

type user struct{ ID string }

var errDown = errors.New("database down")

// tracing returns a TracerProvider whose ended spans the returned recorder
// holds.
func tracing(t *testing.T) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { tp.Shutdown(context.WithoutCancel(t.Context())) })
	return tp, sr
}

// newCache returns an in-process cache of keyspace "user" traced with hooks.
func newCache(t *testing.T, hooks stats.Hooks, opts *tiercache.Options[user]) *tiercache.Cache[user] {
	t.Helper()
	if opts == nil {
		opts = &tiercache.Options[user]{}
	}
	opts.Keyspace = tiercache.Keyspace{Name: "user"}
	opts.Observe.Hooks = hooks
	c, err := tiercache.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// attrs returns a span's attributes by key.
func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := make(map[attribute.Key]attribute.Value)
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// checkAttrs checks that span s has the attributes want (and tiercache.*
// attributes only among them).
func checkAttrs(t *testing.T, s sdktrace.ReadOnlySpan, want map[string]any) {
	t.Helper()
	got := attrs(s)
	for k, w := range want {
		v, ok := got[attribute.Key(k)]
		if !ok {
			t.Errorf("%s: no attribute %s; attributes %v", s.Name(), k, s.Attributes())
			continue
		}
		if v.AsInterface() != w {
			t.Errorf("%s: %s = %v, want %v", s.Name(), k, v.AsInterface(), w)
		}
	}
	for k := range got {
		if _, ok := want[string(k)]; !ok {
			t.Errorf("%s: unexpected attribute %s = %v", s.Name(), k, got[k].AsInterface())
		}
	}
}

// byName returns the ended spans named name, in the order they ended.
func byName(sr *tracetest.SpanRecorder, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range sr.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// TestGetSpans is the test: one Get that misses produces a
// tiercache.get span with the key, outcome and tier, in the caller's trace,
// and one tiercache.load span under it; the loader's own span nests under
// the load span. A second Get is an L1 hit: one span, tier l1, no load.
func TestGetSpans(t *testing.T) {
	tp, sr := tracing(t)
	c := newCache(t, tiercacheotel.Hooks(tp), nil)
	load := func(ctx context.Context, id string) (user, error) {
		_, span := tp.Tracer("db").Start(ctx, "db.query")
		span.End()
		return user{ID: id}, nil
	}

	ctx, caller := tp.Tracer("app").Start(t.Context(), "handler")
	if _, err := c.Get(ctx, "42", load); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "42", load); err != nil {
		t.Fatal(err)
	}
	caller.End()

	gets, loads, queries := byName(sr, "tiercache.get"), byName(sr, "tiercache.load"), byName(sr, "db.query")
	if len(gets) != 2 || len(loads) != 1 || len(queries) != 1 || len(sr.Ended()) != 5 {
		t.Fatalf("got %d get, %d load, %d db.query spans of %d, want 2, 1, 1 of 5", len(gets), len(loads), len(queries), len(sr.Ended()))
	}
	miss, hit, ld := gets[0], gets[1], loads[0]
	checkAttrs(t, miss, map[string]any{"tiercache.key": "v1:user:42", "tiercache.outcome": "miss", "tiercache.tier": "origin"})
	checkAttrs(t, hit, map[string]any{"tiercache.key": "v1:user:42", "tiercache.outcome": "hit", "tiercache.tier": "l1"})
	checkAttrs(t, ld, map[string]any{"tiercache.key": "v1:user:42", "tiercache.load.attempt": int64(1)})
	for _, s := range []sdktrace.ReadOnlySpan{miss, hit, ld} {
		if s.SpanKind() != trace.SpanKindInternal {
			t.Errorf("%s: kind %v, want internal", s.Name(), s.SpanKind())
		}
		if s.Status().Code != codes.Unset || len(s.Events()) != 0 {
			t.Errorf("%s: status %v, events %v, want unset and none", s.Name(), s.Status(), s.Events())
		}
		if s.InstrumentationScope().Name != tiercacheotel.ScopeName {
			t.Errorf("%s: scope %q, want %q", s.Name(), s.InstrumentationScope().Name, tiercacheotel.ScopeName)
		}
	}
	if got, want := miss.Parent().SpanID(), caller.SpanContext().SpanID(); got != want {
		t.Errorf("get span's parent = %v, want the caller's span %v", got, want)
	}
	if got, want := hit.Parent().SpanID(), caller.SpanContext().SpanID(); got != want {
		t.Errorf("hit span's parent = %v, want the caller's span %v", got, want)
	}
	if got, want := ld.Parent().SpanID(), miss.SpanContext().SpanID(); got != want {
		t.Errorf("load span's parent = %v, want the get span %v", got, want)
	}
	if got, want := queries[0].Parent().SpanID(), ld.SpanContext().SpanID(); got != want {
		t.Errorf("loader's span's parent = %v, want the load span %v", got, want)
	}
	if ld.SpanContext().TraceID() != caller.SpanContext().TraceID() {
		t.Error("the load span is in another trace than the caller's")
	}
}

// TestRetrySpans: a loader that fails twice, retried (Options.Retry), gives
// one load span per attempt, numbered, the failed ones with status Error,
// the exception and error.type; the Get, answered, has no error.
func TestRetrySpans(t *testing.T) {
	tp, sr := tracing(t)
	var calls atomic.Int32
	c := newCache(t, tiercacheotel.Hooks(tp), &tiercache.Options[user]{
		Retry: tiercache.Retry{Attempts: 3, Base: time.Nanosecond, Max: time.Nanosecond},
	})
	load := func(ctx context.Context, id string) (user, error) {
		if calls.Add(1) < 3 {
			return user{}, errDown
		}
		return user{ID: id}, nil
	}
	if _, err := c.Get(t.Context(), "7", load); err != nil {
		t.Fatal(err)
	}
	gets, loads := byName(sr, "tiercache.get"), byName(sr, "tiercache.load")
	if len(gets) != 1 || len(loads) != 3 {
		t.Fatalf("got %d get and %d load spans, want 1 and 3", len(gets), len(loads))
	}
	checkAttrs(t, gets[0], map[string]any{"tiercache.key": "v1:user:7", "tiercache.outcome": "miss", "tiercache.tier": "origin"})
	if gets[0].Status().Code != codes.Unset {
		t.Errorf("get span status %v, want unset", gets[0].Status())
	}
	for i, s := range loads {
		want := map[string]any{"tiercache.key": "v1:user:7", "tiercache.load.attempt": int64(i + 1)}
		failed := i < 2
		if failed {
			want["error.type"] = "_OTHER"
		}
		checkAttrs(t, s, want)
		if s.Parent().SpanID() != gets[0].SpanContext().SpanID() {
			t.Errorf("attempt %d: parent %v, want the get span", i+1, s.Parent().SpanID())
		}
		switch {
		case failed && (s.Status().Code != codes.Error || s.Status().Description != errDown.Error()):
			t.Errorf("attempt %d: status %+v, want error %q", i+1, s.Status(), errDown)
		case failed && (len(s.Events()) != 1 || s.Events()[0].Name != "exception"):
			t.Errorf("attempt %d: events %v, want one exception", i+1, s.Events())
		case !failed && (s.Status().Code != codes.Unset || len(s.Events()) != 0):
			t.Errorf("attempt %d: status %+v, events %v, want unset, none", i+1, s.Status(), s.Events())
		}
	}
}

// TestOutcomeSpans covers the other answers: "not found" (a miss, then a
// negative hit) is no error; a failed load without a value is the Get's
// error; a fallback value is answered, its cause an event only.
func TestOutcomeSpans(t *testing.T) {
	tp, sr := tracing(t)
	c := newCache(t, tiercacheotel.Hooks(tp), &tiercache.Options[user]{Retry: tiercache.Retry{Attempts: 1}})
	notFound := func(context.Context, string) (user, error) { return user{}, tiercache.ErrNotFound }
	failing := func(context.Context, string) (user, error) { return user{}, errDown }
	for range 2 {
		if _, err := c.Get(t.Context(), "gone", notFound); !errors.Is(err, tiercache.ErrNotFound) {
			t.Fatalf("Get(gone) = %v, want ErrNotFound", err)
		}
	}
	if _, err := c.Get(t.Context(), "down", failing); !errors.Is(err, errDown) {
		t.Fatalf("Get(down) = %v, want %v", err, errDown)
	}
	fb := newCache(t, tiercacheotel.Hooks(tp), &tiercache.Options[user]{
		Retry:   tiercache.Retry{Attempts: 1},
		Degrade: tiercache.Degrade[user]{Fallback: func(id string, _ error) user { return user{ID: "anonymous"} }},
	})
	if v, err := fb.Get(t.Context(), "down", failing); !errors.Is(err, tiercache.ErrFallback) || v.ID != "anonymous" {
		t.Fatalf("Get(down) with a fallback = %v, %v; want the fallback and ErrFallback", v, err)
	}

	gets := byName(sr, "tiercache.get")
	if len(gets) != 4 {
		t.Fatalf("got %d get spans, want 4", len(gets))
	}
	for i, tc := range []struct {
		key, outcome, tier string
		status             codes.Code
		events             int
	}{
		{"v1:user:gone", "miss", "origin", codes.Unset, 0},
		{"v1:user:gone", "negative", "l1", codes.Unset, 0},
		{"v1:user:down", "error", "none", codes.Error, 1},
		{"v1:user:down", "fallback", "none", codes.Unset, 1},
	} {
		s := gets[i]
		want := map[string]any{"tiercache.key": tc.key, "tiercache.outcome": tc.outcome, "tiercache.tier": tc.tier}
		if tc.status == codes.Error {
			want["error.type"] = "_OTHER"
		}
		checkAttrs(t, s, want)
		if s.Status().Code != tc.status || len(s.Events()) != tc.events {
			t.Errorf("%s span: status %v, %d events; want %v, %d", tc.outcome, s.Status(), len(s.Events()), tc.status, tc.events)
		}
	}
	// The not-found load is no error either.
	for _, s := range byName(sr, "tiercache.load") {
		if attrs(s)["tiercache.key"].AsString() == "v1:user:gone" && s.Status().Code != codes.Unset {
			t.Errorf("load of a missing id: status %v, want unset", s.Status())
		}
	}
}

// TestSpanOptions: WithAttributes adds to every span, WithoutKeys leaves the
// key off.
func TestSpanOptions(t *testing.T) {
	tp, sr := tracing(t)
	service := attribute.String("service.cache", "users")
	c := newCache(t, tiercacheotel.Hooks(tp, tiercacheotel.WithAttributes(service), tiercacheotel.WithoutKeys()), nil)
	if _, err := c.Get(t.Context(), "1", func(_ context.Context, id string) (user, error) { return user{ID: id}, nil }); err != nil {
		t.Fatal(err)
	}
	get, load := byName(sr, "tiercache.get"), byName(sr, "tiercache.load")
	if len(get) != 1 || len(load) != 1 {
		t.Fatalf("got %d get and %d load spans, want 1 and 1", len(get), len(load))
	}
	checkAttrs(t, get[0], map[string]any{"service.cache": "users", "tiercache.outcome": "miss", "tiercache.tier": "origin"})
	checkAttrs(t, load[0], map[string]any{"service.cache": "users", "tiercache.load.attempt": int64(1)})
}

// TestErrorClass: error.type names the context error or tiercache sentinel
// a failure wraps.
func TestErrorClass(t *testing.T) {
	tp, sr := tracing(t)
	c := newCache(t, tiercacheotel.Hooks(tp), &tiercache.Options[user]{Retry: tiercache.Retry{Attempts: 1}})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	c.Get(ctx, "1", func(ctx context.Context, _ string) (user, error) { return user{}, ctx.Err() })
	c.Get(t.Context(), "2", nil) // a miss without a loader
	gets := byName(sr, "tiercache.get")
	if len(gets) != 2 {
		t.Fatalf("got %d get spans, want 2", len(gets))
	}
	for i, want := range []string{"context.Canceled", "tiercache.ErrNilLoader"} {
		if got := attrs(gets[i])["error.type"].AsString(); got != want {
			t.Errorf("Get %d: error.type %q, want %q (status %v)", i+1, got, want, gets[i].Status())
		}
	}
}

// TestL2Span: a value another process loaded is answered from the shared
// tier (a private redis-server): tier l2, no load span.
func TestL2Span(t *testing.T) {
	srv := cachetest.StartRedis(t)
	tp, sr := tracing(t)
	newShared := func() *tiercache.Cache[user] {
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true})
		t.Cleanup(func() { rdb.Close() })
		c := newCache(t, tiercacheotel.Hooks(tp), &tiercache.Options[user]{Store: redisstore.New(rdb, nil)})
		if err := c.Ready(t.Context()); err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := newShared(), newShared()
	load := func(_ context.Context, id string) (user, error) { return user{ID: id}, nil }
	if _, err := a.Get(t.Context(), "9", load); err != nil {
		t.Fatal(err)
	}
	sr.Reset()
	if v, err := b.Get(t.Context(), "9", load); err != nil || v.ID != "9" {
		t.Fatalf("b.Get(9) = %v, %v", v, err)
	}
	gets, loads := byName(sr, "tiercache.get"), byName(sr, "tiercache.load")
	if len(gets) != 1 || len(loads) != 0 {
		t.Fatalf("got %d get and %d load spans, want 1 and 0", len(gets), len(loads))
	}
	checkAttrs(t, gets[0], map[string]any{"tiercache.key": "v1:user:9", "tiercache.outcome": "hit", "tiercache.tier": "l2"})
}
