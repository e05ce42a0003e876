package tiercache_test

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"

	"github.com/maypok86/otter/v2"

	"github.com/tiercache/tiercache"
)

const benchKeys = 1 << 10

var benchIDs = func() []string {
	ids := make([]string, benchKeys)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	return ids
}()

func benchLoad(_ context.Context, id string) (user, error) { return user{ID: id}, nil }

// BenchmarkL1Hit compares a tiercache L1 hit with a raw otter GetIfPresent
// on the same keys, in the same run: the cost tiercache adds on its hottest
// path (freshness check, stats).
func BenchmarkL1Hit(b *testing.B) {
	b.Run("otter.GetIfPresent", func(b *testing.B) {
		c := otter.Must(&otter.Options[string, *user]{MaximumSize: 10_000})
		for _, id := range benchIDs {
			c.Set(id, &user{ID: id})
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if u, ok := c.GetIfPresent(benchIDs[i&(benchKeys-1)]); !ok || u.ID == "" {
					b.Fatal("miss")
				}
				i++
			}
		})
	})
	for _, bc := range []struct {
		name   string
		logger *slog.Logger
	}{
		{"tiercache.Get", nil},
		{"tiercache.Get/logger-info", slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c, err := tiercache.New(&tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: "bench"}, Logger: bc.logger})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			ctx := context.Background()
			for _, id := range benchIDs {
				c.Get(ctx, id, benchLoad)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if u, err := c.Get(ctx, benchIDs[i&(benchKeys-1)], benchLoad); err != nil || u.ID == "" {
						b.Fatal(err)
					}
					i++
				}
			})
		})
	}
}

// BenchmarkL1HitSerial is BenchmarkL1Hit on one goroutine: the cost without
// cross-core contention.
func BenchmarkL1HitSerial(b *testing.B) {
	b.Run("otter.GetIfPresent", func(b *testing.B) {
		c := otter.Must(&otter.Options[string, *user]{MaximumSize: 10_000})
		for _, id := range benchIDs {
			c.Set(id, &user{ID: id})
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if u, ok := c.GetIfPresent(benchIDs[i&(benchKeys-1)]); !ok || u.ID == "" {
				b.Fatal("miss")
			}
			i++
		}
	})
	b.Run("tiercache.Get", func(b *testing.B) {
		c, err := tiercache.New(&tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: "bench"}})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		ctx := context.Background()
		for _, id := range benchIDs {
			c.Get(ctx, id, benchLoad)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if u, err := c.Get(ctx, benchIDs[i&(benchKeys-1)], benchLoad); err != nil || u.ID == "" {
				b.Fatal(err)
			}
			i++
		}
	})
}
