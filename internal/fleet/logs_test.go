package fleet

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/cachetest"
	"github.com/tiercache/tiercache/driver"
	"github.com/tiercache/tiercache/redisstore"
	"github.com/tiercache/tiercache/stats"
)

// recordsWith returns the records logs holds whose message contains msg.
func recordsWith(t *testing.T, logs *cachetest.Buffer, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, rec := range logs.Records(t) {
		if m, _ := rec["msg"].(string); strings.Contains(m, msg) {
			out = append(out, rec)
		}
	}
	return out
}

// TestRecoveryLogged: an outage of the shared tier is logged as one Warn
// when the subscription is lost (not one per failed reconnection) and one
// Info when it is back, saying for how long it was down (by the tier's
// clock); a version switch is one Info naming the old and new versions.
func TestRecoveryLogged(t *testing.T) {
	s := cachetest.StartRedis(t)
	var clock atomic.Int64
	clock.Store(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC).UnixNano())
	logs := &cachetest.Buffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	store := &downCounter{Store: redisstore.New(rdb, nil)}
	tier := New(Config{
		Store: store, Version: "v1", Name: "recovery", Local: &recorder{}, Messages: true,
		ForwardWindow: time.Minute, Now: clock.Load, Logger: logger, Record: func(stats.Event) {},
	})
	tier.Start()
	t.Cleanup(tier.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := tier.WaitSettled(ctx); err != nil {
		t.Fatal(err)
	}

	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	// Several failed resubscriptions, each reported with Down.
	waitFor(t, func() bool { return store.downs.Load() >= 4 }, "four failed resubscriptions")
	clock.Add(int64(7 * time.Second))
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(recordsWith(t, logs, "subscription back")) > 0 }, "the return to be logged")
	if err := tier.WaitSettled(ctx); err != nil {
		t.Fatal(err)
	}
	lost, back := recordsWith(t, logs, "subscription lost"), recordsWith(t, logs, "subscription back")
	if len(lost) != 1 || lost[0]["level"] != "WARN" {
		t.Errorf("loss records %v, want one Warn", lost)
	}
	if len(back) != 1 || back[0]["level"] != "INFO" || back[0]["down"] != "7s" {
		t.Errorf("return records %v, want one Info with down=7s", back)
	}

	// A bump by another process: one Info, from the old version to the new.
	before := tier.Space().Version
	b, err := Bump(ctx, redisstore.New(rdb, nil), "", "v1", "recovery")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return tier.Space().Gen == b.Generation }, "the tier to switch")
	switches := recordsWith(t, logs, "switched to a new runtime version")
	if len(switches) != 1 || switches[0]["level"] != "INFO" || switches[0]["from"] != before || switches[0]["to"] != b.Version || switches[0]["keyspace"] != "recovery" {
		t.Errorf("switch records %v, want one Info from %s to %s", switches, before, b.Version)
	}
	// Nothing else about the subscription (other degradations of the
	// outage, a message not sent say, are their own events).
	if subs := recordsWith(t, logs, "subscription"); len(subs) != 2 {
		t.Errorf("records about the subscription %v, want the loss and the return", subs)
	}
}

// downCounter is a store that counts the Down calls of its subscription.
type downCounter struct {
	driver.Store
	downs atomic.Int32
}

func (s *downCounter) Subscribe(ctx context.Context, channel string, h driver.Handler) error {
	return s.Store.Subscribe(ctx, channel, countDowns{h, &s.downs})
}

type countDowns struct {
	driver.Handler
	n *atomic.Int32
}

func (h countDowns) Down(err error) {
	h.Handler.Down(err)
	h.n.Add(1)
}
