package tiercache_test

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cachetest"
	"github.com/tiercache/tiercache/internal/wire"
)

// TestMaxValueSize: a value larger than MaxValueSize is served but cached in
// neither tier (logged once), Set refuses it, and an oversized entry in Redis
// is a miss that is never decoded.
func TestMaxValueSize(t *testing.T) {
	var buf cachetest.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c := newCache(t, srv(t).Addr(), tiercache.Options[user]{L2: tiercache.L2[user]{MaxValueSize: 100}, Logger: logger})
	big := user{Name: strings.Repeat("x", 200)}
	loads := 0
	load := func(ctx context.Context, id string) (user, error) { loads++; return big, nil }
	ctx := t.Context()
	for range 2 {
		u, err := c.Get(ctx, "big", load)
		if err != nil || u.Name != big.Name {
			t.Fatalf("Get of an oversized value = %d bytes, %v; want it served", len(u.Name), err)
		}
	}
	if loads != 2 {
		t.Fatalf("loader called %d times, want 2 (the value is cached nowhere)", loads)
	}
	if err := tiercache.WaitIdle(t.Context(), c); err != nil { // a fill would follow the answer
		t.Fatal(err)
	}
	if n, _ := srv(t).Do("EXISTS", c.Key("big")); n != int64(0) {
		t.Fatal("the oversized value was written to Redis")
	}
	if s := c.Stats(); s.Oversize != 2 {
		t.Fatalf("Oversize = %d, want 2", s.Oversize)
	}
	warns := 0
	for _, r := range records(t, &buf) {
		if strings.Contains(r["msg"].(string), "too large") {
			warns++
		}
	}
	if warns != 1 {
		t.Fatalf("%d warnings for 2 oversized values, want 1 (once per cache)", warns)
	}
	if err := c.Set(ctx, "big", big); !errors.Is(err, tiercache.ErrValueTooLarge) {
		t.Fatalf("Set of an oversized value = %v, want ErrValueTooLarge", err)
	}
	// 64 KiB under the key with a valid header: a miss, not decoded.
	raw := string(wire.AppendHeader(nil, wire.Header{Codec: 1, KeyHash: wire.KeyHash(c.Key("raw"))})) + `"` + strings.Repeat("y", 64<<10) + `"`
	if _, err := srv(t).Do("SET", c.Key("raw"), raw); err != nil {
		t.Fatal(err)
	}
	u, err := c.Get(ctx, "raw", func(context.Context, string) (user, error) { return user{Name: "small"}, nil })
	if err != nil || u.Name != "small" {
		t.Fatalf("Get over an oversized entry = %+v, %v; want a miss and a load", u, err)
	}
}

// TestL1Weight bounds L1 by weight.
func TestL1Weight(t *testing.T) {
	c := newCache(t, "", tiercache.Options[user]{
		L1: tiercache.L1[user]{Size: 1000, Weigher: func(id string, u user) uint32 { return uint32(len(u.Name)) }},
	})
	load := func(ctx context.Context, id string) (user, error) { return user{Name: strings.Repeat("n", 100)}, nil }
	for i := range 200 { // 20 000 of weight for a bound of 1 000
		if _, err := c.Get(t.Context(), strconv.Itoa(i), load); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, func() bool { return c.Stats().L1Size <= 10 }, "L1 to hold at most 10 entries of weight 100")
	for _, o := range []tiercache.Options[user]{
		{Keyspace: tiercache.Keyspace{Name: "u"}, L1: tiercache.L1[user]{Weigher: func(string, user) uint32 { return 1 }}},
		{Keyspace: tiercache.Keyspace{Name: "u"}, L1: tiercache.L1[user]{Size: -10, Weigher: func(string, user) uint32 { return 1 }}},
	} {
		if _, err := tiercache.New(&o); !errors.Is(err, tiercache.ErrInvalidOptions) {
			t.Errorf("New with L1.Size %d and a weigher: err %v, want ErrInvalidOptions", o.L1.Size, err)
		}
	}
}

// TestPrefixIsolates: applications with different prefixes share a Redis
// without seeing each other's entries or messages.
func TestPrefixIsolates(t *testing.T) {
	name := keyspaceName(t)
	app1 := newCache(t, srv(t).Addr(), tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: name}, Prefix: "app1:"})
	app2 := newCache(t, srv(t).Addr(), tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: name}, Prefix: "app2:"})
	ctx := t.Context()
	app1.Get(ctx, "1", func(context.Context, string) (user, error) { return user{Name: "app1's"}, nil })
	u, _ := app2.Get(ctx, "1", func(context.Context, string) (user, error) { return user{Name: "app2's"}, nil })
	if u.Name != "app2's" || !strings.HasPrefix(app1.Key("1"), "app1:v1:") {
		t.Fatalf("app2 got %+v; app1's key %s", u, app1.Key("1"))
	}
	if err := app1.Delete(ctx, "1"); err != nil {
		t.Fatal(err)
	}
	if u, _ := app2.Get(ctx, "1", nil); u.Name != "app2's" {
		t.Fatalf("app1's Delete reached app2: %+v", u)
	}
}
