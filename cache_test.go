package tiercache_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/internal/wire"
	"github.com/tiercache/tiercache/stats"
)

func TestGetFillsBothTiers(t *testing.T) {
	db := newOrigin("42")
	name := keyspaceName(t)
	a := newCache(t, srv(t).Addr(), tiercache.Options[user]{
		Keyspace: tiercache.Keyspace{Name: name},
		TTL:      5 * time.Minute, StaleTTL: time.Minute, Jitter: -1,
	})
	ctx := t.Context()
	u, err := a.Get(ctx, "42", db.load)
	if err != nil || u.Name != "user 42" {
		t.Fatalf("Get = %+v, %v; want user 42", u, err)
	}
	if err := tiercache.WaitIdle(ctx, a); err != nil { // the fill follows the answer
		t.Fatal(err)
	}
	key := "v1:" + name + ":42"
	if got := a.Key("42"); got != key {
		t.Fatalf("Key = %q, want %s", got, key)
	}
	if ttl := pttl(t, srv(t), key); !within(ttl, 6*time.Minute, 2*time.Second) {
		t.Fatalf("PTTL = %v, want about TTL+StaleTTL = 6m", ttl)
	}
	// The stored bytes are an envelope around readable JSON.
	raw, err := srv(t).Do("GET", key)
	if err != nil {
		t.Fatal(err)
	}
	h, payload, err := wire.Decode([]byte(raw.(string)))
	if err != nil || h.Negative() || string(payload) != `{"id":"42","name":"user 42","version":0}` {
		t.Fatalf("stored %q, %+v, %v", payload, h, err)
	}

	// A second process on the same Redis gets it without loading.
	b := newCache(t, srv(t).Addr(), tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: name}})
	u, err = b.Get(ctx, "42", func(context.Context, string) (user, error) {
		t.Error("second process called the loader")
		return user{}, nil
	})
	if err != nil || u.Name != "user 42" {
		t.Fatalf("second process Get = %+v, %v", u, err)
	}
	if s := b.Stats(); s.L2Hits != 1 || s.Misses != 0 {
		t.Fatalf("second process stats: L2Hits %d, Misses %d; want 1, 0", s.L2Hits, s.Misses)
	}
	// And then from its L1, without Redis.
	if _, err := b.Get(ctx, "42", nil); err != nil {
		t.Fatal(err)
	}
	if s := b.Stats(); s.L1Hits != 1 {
		t.Fatalf("second Get: L1Hits %d, want 1", s.L1Hits)
	}
	if got := db.calls.Load(); got != 1 {
		t.Fatalf("origin called %d times, want 1", got)
	}
}

func TestNegativeCachingOnBothTiers(t *testing.T) {
	clk := newClock()
	db := newOrigin()
	opts := tiercache.Options[user]{NegativeTTL: 30 * time.Second, Jitter: -1}
	tiercache.SetClock(&opts, clk.Now)
	a := newCache(t, srv(t).Addr(), opts)
	ctx := t.Context()

	for i := range 3 {
		if _, err := a.Get(ctx, "404", db.load); !errors.Is(err, tiercache.ErrNotFound) {
			t.Fatalf("Get #%d err = %v, want ErrNotFound", i, err)
		}
	}
	if got := db.calls.Load(); got != 1 {
		t.Fatalf("origin called %d times for a missing id, want 1", got)
	}
	if err := tiercache.WaitIdle(ctx, a); err != nil { // the fill follows the answer
		t.Fatal(err)
	}
	key := a.Key("404")
	if ttl := pttl(t, srv(t), key); !within(ttl, 30*time.Second, 2*time.Second) {
		t.Fatalf("negative entry PTTL = %v, want about NegativeTTL = 30s", ttl)
	}
	// Another process reads the negative entry from L2.
	b := newCache(t, srv(t).Addr(), opts)
	if _, err := b.Get(ctx, "404", db.load); !errors.Is(err, tiercache.ErrNotFound) {
		t.Fatalf("second process err = %v, want ErrNotFound", err)
	}
	if got := db.calls.Load(); got != 1 {
		t.Fatalf("second process loaded: origin calls %d, want 1", got)
	}
	if s := b.Stats(); s.NegativeHits != 1 {
		t.Fatalf("second process NegativeHits = %d, want 1", s.NegativeHits)
	}
	// After NegativeTTL it is loaded again, and the row now exists.
	db.mu.Lock()
	db.rows["404"] = user{ID: "404", Name: "created"}
	db.mu.Unlock()
	clk.Advance(31 * time.Second)
	u, err := a.Get(ctx, "404", db.load)
	if err != nil || u.Name != "created" {
		t.Fatalf("after NegativeTTL Get = %+v, %v; want the created row", u, err)
	}
	if got := db.calls.Load(); got != 2 {
		t.Fatalf("origin calls %d, want 2", got)
	}
}

func TestVersionIsolatesKeys(t *testing.T) {
	name := keyspaceName(t)
	v1 := newCache(t, srv(t).Addr(), tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: name, Version: "v1"}})
	v2 := newCache(t, srv(t).Addr(), tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: name, Version: "v2"}})
	ctx := t.Context()
	if _, err := v1.Get(ctx, "42", func(context.Context, string) (user, error) { return user{Name: "old format"}, nil }); err != nil {
		t.Fatal(err)
	}
	u, err := v2.Get(ctx, "42", func(context.Context, string) (user, error) { return user{Name: "new format"}, nil })
	if err != nil || u.Name != "new format" {
		t.Fatalf("v2 Get = %+v, %v; want its own load, not the v1 entry", u, err)
	}
	for _, c := range []*tiercache.Cache[user]{v1, v2} {
		if err := tiercache.WaitIdle(ctx, c); err != nil { // the fills follow the answers
			t.Fatal(err)
		}
	}
	for key, want := range map[string]string{"v1:" + name + ":42": "old format", "v2:" + name + ":42": "new format"} {
		raw, err := srv(t).Do("GET", key)
		if err != nil || raw == nil || !strings.Contains(raw.(string), want) {
			t.Fatalf("GET %s = %v, %v; want it to hold %q", key, raw, err, want)
		}
	}
}

// TestCorruptEntriesAreMisses writes foreign and truncated bytes under a key:
// each is a miss (never a panic or an error to the caller), and the fill
// that follows overwrites it.
func TestCorruptEntriesAreMisses(t *testing.T) {
	header := func(key string, codec byte) string {
		return string(wire.AppendHeader(nil, wire.Header{Codec: codec, Soft: time.Now().Add(time.Hour), KeyHash: wire.KeyHash(key)}))
	}
	cases := map[string]func(key string) string{
		"empty":             func(string) string { return "" },
		"one zero byte":     func(string) string { return "\x00" },
		"plain JSON":        func(string) string { return `{"id":"1","name":"from python"}` },
		"python nil marker": func(string) string { return `{"__nil": true}` },
		"64 KiB of zeros":   func(string) string { return strings.Repeat("\x00", 64<<10) },
		"truncated payload": func(key string) string { return header(key, 1) + `{"id":"1"` },
		"foreign codec":     func(key string) string { return header(key, 99) + "x" },
		"another key's entry": func(key string) string {
			return header(strings.TrimSuffix(key, "1")+"2", 1) + `{"id":"2","name":"user 2"}`
		},
	}
	for name, rawOf := range cases {
		t.Run(name, func(t *testing.T) {
			c := newCache(t, srv(t).Addr(), tiercache.Options[user]{})
			key := c.Key("1")
			raw := rawOf(key)
			if _, err := srv(t).Do("SET", key, raw, "EX", "600"); err != nil {
				t.Fatal(err)
			}
			db := newOrigin("1")
			u, err := c.Get(t.Context(), "1", db.load)
			if err != nil || u.Name != "user 1" {
				t.Fatalf("Get = %+v, %v; want the loaded user", u, err)
			}
			s := c.Stats()
			if s.L2Corrupt != 1 || s.Misses != 1 {
				t.Fatalf("L2Corrupt %d, Misses %d; want 1, 1", s.L2Corrupt, s.Misses)
			}
			if err := tiercache.WaitIdle(t.Context(), c); err != nil { // the fill follows the answer
				t.Fatal(err)
			}
			got, err := srv(t).Do("GET", key)
			if err != nil {
				t.Fatal(err)
			}
			if _, payload, err := wire.Decode([]byte(got.(string))); err != nil || !strings.Contains(string(payload), "user 1") {
				t.Fatalf("after the fill the key holds %q, %v; want the new envelope", got, err)
			}
		})
	}
}

// TestPanickingLoader: every concurrent caller of a panicking load gets an
// error, the process survives, and the next Get loads again.
func TestPanickingLoader(t *testing.T) {
	c := newCache(t, "", tiercache.Options[user]{Retry: tiercache.Retry{Attempts: 1}})
	const n = 16
	release := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	started := make(chan struct{})
	var once sync.Once
	load := func(ctx context.Context, id string) (user, error) {
		once.Do(func() { close(started) })
		<-release
		panic("loader bug")
	}
	wg.Go(func() { _, err := c.Get(t.Context(), "1", load); errs <- err })
	<-started
	for range n - 1 {
		wg.Go(func() { _, err := c.Get(t.Context(), "1", load); errs <- err })
	}
	waitUntil(t, func() bool { return tiercache.Joined(c, "1") == n-1 }, "every caller joining the load")
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, tiercache.ErrPanic) || !strings.Contains(err.Error(), "loader bug") {
			t.Fatalf("caller got %v, want ErrPanic with the panic's value", err)
		}
	}
	u, err := c.Get(t.Context(), "1", func(context.Context, string) (user, error) { return user{Name: "ok"}, nil })
	if err != nil || u.Name != "ok" {
		t.Fatalf("Get after the panic = %+v, %v", u, err)
	}
}

// TestCancelledCallerDoesNotFailOthers: a caller whose context ends returns
// at its deadline; the callers sharing its load get the value.
func TestCancelledCallerDoesNotFailOthers(t *testing.T) {
	c := newCache(t, srv(t).Addr(), tiercache.Options[user]{})
	db := newOrigin("7")
	db.delay = make(chan struct{})
	db.started = make(chan string, 1)

	ctx, cancel := context.WithCancel(t.Context())
	first := make(chan error, 1)
	go func() { _, err := c.Get(ctx, "7", db.load); first <- err }()
	<-db.started
	second := make(chan user, 1)
	go func() {
		u, err := c.Get(t.Context(), "7", db.load)
		if err != nil {
			t.Errorf("second caller: %v", err)
		}
		second <- u
	}()
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller got %v, want context.Canceled", err)
	}
	close(db.delay)
	if u := <-second; u.Name != "user 7" {
		t.Fatalf("second caller got %+v", u)
	}
	if got := db.calls.Load(); got != 1 {
		t.Fatalf("origin calls %d, want 1", got)
	}
}

// TestBumpWithoutStore: a cache without a store has no runtime versions to
// bump, and says so with errors.ErrUnsupported.
func TestBumpWithoutStore(t *testing.T) {
	c := newCache(t, "", tiercache.Options[user]{})
	if _, err := c.BumpVersion(t.Context()); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("BumpVersion without a store = %v, want errors.ErrUnsupported", err)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		o    tiercache.Options[user]
		want string
	}{
		{"no name", tiercache.Options[user]{}, "Keyspace.Name is required"},
		{"colon in name", tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: "a:b"}}, "Keyspace.Name"},
		{"brace in version", tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: "u", Version: "{v1}"}}, "Keyspace.Version"},
		{"negative TTL", tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: "u"}, TTL: -time.Second}, "TTL is negative"},
		{"jitter too big", tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: "u"}, Jitter: 0.9}, "Jitter"},
		{"negative L1Size", tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: "u"}, L1: tiercache.L1[user]{Size: -1}}, "L1.Size"},
		{"NaN jitter", tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: "u"}, Jitter: math.NaN()}, "Jitter"},
		{"infinite beta", tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: "u"}, Rebuild: tiercache.Rebuild{EarlyRefreshBeta: math.Inf(1)}}, "Rebuild.EarlyRefreshBeta"},
		{"negative attempts", tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: "u"}, Retry: tiercache.Retry{Attempts: -1}}, "Retry.Attempts"},
		{"sub-millisecond lock", tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: "u"}, Rebuild: tiercache.Rebuild{LockTTL: time.Microsecond}}, "Rebuild.LockTTL"},
		{"negative cooldown", tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: "u"}, L2: tiercache.L2[user]{Breaker: tiercache.Breaker{Cooldown: -1}}}, "L2.Breaker.Cooldown"},
		{"retry max below base", tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: "u"}, Retry: tiercache.Retry{Base: time.Second, Max: time.Millisecond}}, "Retry.Max"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tiercache.New(&tt.o)
			if c != nil || !errors.Is(err, tiercache.ErrInvalidOptions) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, %v; want ErrInvalidOptions mentioning %q", c, err, tt.want)
			}
		})
	}
	if _, err := tiercache.New[user](nil); !errors.Is(err, tiercache.ErrInvalidOptions) {
		t.Fatalf("New(nil) err = %v", err)
	}
}

func TestInvalidIDs(t *testing.T) {
	c := newCache(t, "", tiercache.Options[user]{})
	db := newOrigin()
	for _, id := range []string{"", "a\nb", "a{b}", "\x00", strings.Repeat("x", 513), "\xff"} {
		if _, err := c.Get(t.Context(), id, db.load); !errors.Is(err, tiercache.ErrInvalidID) {
			t.Errorf("Get(%q) err = %v, want ErrInvalidID", id, err)
		}
		if err := c.Set(t.Context(), id, user{}); !errors.Is(err, tiercache.ErrInvalidID) {
			t.Errorf("Set(%q) err = %v, want ErrInvalidID", id, err)
		}
	}
	if got := db.calls.Load(); got != 0 {
		t.Fatalf("loader called %d times for invalid ids", got)
	}
}

func TestSetAndDelete(t *testing.T) {
	db := newOrigin("1")
	a := newCache(t, srv(t).Addr(), tiercache.Options[user]{})
	b := newCache(t, srv(t).Addr(), tiercache.Options[user]{})
	ctx := t.Context()
	if err := a.Set(ctx, "1", user{ID: "1", Name: "set"}); err != nil {
		t.Fatal(err)
	}
	u, err := b.Get(ctx, "1", db.load)
	if err != nil || u.Name != "set" {
		t.Fatalf("b.Get after a.Set = %+v, %v", u, err)
	}
	if err := a.Delete(ctx, "1", "never-cached"); err != nil {
		t.Fatal(err)
	}
	if v, _ := srv(t).Do("EXISTS", a.Key("1")); v != int64(0) {
		t.Fatalf("key still exists after Delete")
	}
	u, err = a.Get(ctx, "1", db.load)
	if err != nil || u.Name != "user 1" {
		t.Fatalf("a.Get after Delete = %+v, %v; want the origin's row", u, err)
	}
}

func TestClose(t *testing.T) {
	c := newCache(t, srv(t).Addr(), tiercache.Options[user]{})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := c.Get(t.Context(), "1", newOrigin("1").load); !errors.Is(err, tiercache.ErrClosed) {
		t.Fatalf("Get after Close = %v, want ErrClosed", err)
	}
	if err := c.Set(t.Context(), "1", user{}); !errors.Is(err, tiercache.ErrClosed) {
		t.Fatalf("Set after Close = %v, want ErrClosed", err)
	}
	if s := c.Stats(); s.Requests(stats.Error, stats.None) != 1 {
		t.Fatalf("error requests = %d, want 1", s.Requests(stats.Error, stats.None))
	}
}
