package fleet

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ownDone waits until no write of key is remembered: its invalidation came
// and its check (if any) ended.
func ownDone(t *testing.T, tier *Tier, key string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tier.own.mu.Lock()
		_, ok := tier.own.writes[key]
		tier.own.mu.Unlock()
		if !ok && len(tier.ownSem) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the write of %s is still remembered after 10 s", key)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestOwnWriteKeepsCopy: the tracking invalidation of this process's own
// Set keeps its copy (the shared tier holds the bytes written), but one
// whose key holds other bytes by the time it is checked (another client's
// write, merged by Redis with ours into one invalidation) drops it.
func TestOwnWriteKeepsCopy(t *testing.T) {
	tier, rec := newTier(t, "own")
	if !tier.Tracking() {
		t.Fatal("tracking not on")
	}
	ctx := t.Context()
	key := tier.Space().Key("a")
	if err := tier.Set(ctx, "a", func(string) ([]byte, error) { return []byte("mine"), nil }, time.Hour); err != nil {
		t.Fatal(err)
	}
	ownDone(t, tier, key)
	if slices.Contains(rec.ids(), "a") {
		t.Fatalf("own Set's invalidation dropped the copy (invalidated %v)", rec.ids())
	}

	// As if this process had just written "mine" and another client's
	// write of the same key came in the same event loop turn: one
	// invalidation for both.
	outside := redis.NewClient(&redis.Options{Addr: srv(t).Addr()})
	t.Cleanup(func() { outside.Close() })
	tier.wrote(key, []byte("mine"))
	if err := outside.Set(context.Background(), key, "theirs", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	ownDone(t, tier, key)
	if !slices.Contains(rec.ids(), "a") {
		t.Fatalf("an invalidation of a key holding another client's bytes kept the copy (invalidated %v)", rec.ids())
	}
}
