package fleet

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/cachetest"
	"github.com/tiercache/tiercache/internal/keys"
	"github.com/tiercache/tiercache/redisstore"
	"github.com/tiercache/tiercache/stats"
)

// shared is the package's redis-server, started by the first test that
// needs it; without redis-server installed those tests skip, with the
// reason, and the others run.
var shared cachetest.Shared

func srv(tb testing.TB) *cachetest.Server {
	tb.Helper()
	return shared.Server(tb)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if err := shared.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// recorder is a Local that records what the tier asks of it.
type recorder struct {
	mu          sync.Mutex
	invalidated []string
	flushes     int
	trusted     bool
}

func (r *recorder) Invalidate(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.invalidated = append(r.invalidated, id)
	return true
}

func (r *recorder) Flush() {
	r.mu.Lock()
	r.flushes++
	r.mu.Unlock()
}

func (r *recorder) Trust(t bool) {
	r.mu.Lock()
	r.trusted = t
	r.mu.Unlock()
}

func (r *recorder) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.invalidated)
}

// newTier returns a started tier of keyspace name on srv, closed with the
// test, and its recorder.
func newTier(t *testing.T, name string) (*Tier, *recorder) {
	t.Helper()
	rec := &recorder{}
	tier := startTier(t, Config{Name: name, Local: rec, Tracking: true}, nil)
	return tier, rec
}

// startTier starts a tier of keyspace v1:<cfg.Name> on the package's Redis
// (a client of its own, with messages; cfg's other zero fields filled in),
// calls before, if set, before it starts, and waits until it is settled.
func startTier(t *testing.T, cfg Config, before func(*Tier)) *Tier {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: srv(t).Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	cfg.Store, cfg.Version, cfg.Messages = redisstore.New(rdb, nil), "v1", true
	cfg.ForwardWindow = time.Minute
	cfg.Now = func() int64 { return time.Now().UnixNano() }
	if cfg.Record == nil {
		cfg.Record = func(stats.Event) {}
	}
	tier := New(cfg)
	if before != nil {
		before(tier)
	}
	tier.Start()
	t.Cleanup(tier.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := tier.WaitSettled(ctx); err != nil {
		t.Fatal(err)
	}
	return tier
}

func TestPendingMarks(t *testing.T) {
	p := pending{limit: maxPending}
	if p.has("a") {
		t.Fatal("empty set has a")
	}
	p.add("a", "b")
	ids, marks := p.take(10)
	if len(ids) != 2 || !slices.Contains(ids, "a") || !slices.Contains(ids, "b") || !p.has("a") {
		t.Fatalf("take = %v; has(a) = %v", ids, p.has("a"))
	}
	p.add("a") // a write of a again while the repair of the first is in flight
	p.done(ids, marks)
	if !p.has("a") || p.has("b") {
		t.Fatalf("after done: has(a) %v, has(b) %v; want a still pending (marked again), b done", p.has("a"), p.has("b"))
	}
}

func TestWaitersWakeEveryRegistration(t *testing.T) {
	var w Waiters
	ch1, ch2 := make(chan struct{}, 1), make(chan struct{}, 1)
	w.Add([]string{"a", "b"}, ch1)
	w.Add([]string{"b"}, ch2)
	w.Wake("b")
	w.Wake("b") // a second wake before anyone read does not block
	for i, ch := range []chan struct{}{ch1, ch2} {
		select {
		case <-ch:
		default:
			t.Fatalf("wait %d not woken", i+1)
		}
	}
	w.Remove([]string{"a", "b"}, ch1)
	w.Wake("a")
	select {
	case <-ch1:
		t.Fatal("a removed wait was woken")
	default:
	}
	if len(w.m["a"]) != 0 || len(w.m["b"]) != 1 {
		t.Fatalf("registrations left: %v", w.m)
	}
}

// TestHostileMessages: whatever is published on the channel, a process
// neither moves to another keyspace nor carries writes over; only a
// well-formed write or fill drops copies.
func TestHostileMessages(t *testing.T) {
	tier, rec := newTier(t, "hostile")
	before := tier.Space()
	handle := handler{tier}
	for _, m := range []string{
		"", " ", "v", "v attacker 9000000000000000000", "v x -1", "w", "w x", "w x v1+99999999999999999999 1",
		"a x v1+5", "zzz", strings.Repeat("w", 100_000), "\x00\x01", "w x v1 \n\n", "w x v1:v1 1", "f x v1+1+1 1",
		"w x v7 other", // another code Version (a rolling deploy): dropped and carried over
		"w x v1 ok",
	} {
		handle.Message(m)
	}
	if got := tier.Space(); got != before {
		t.Fatalf("keyspace moved from %q to %q on messages", before.Version, got.Version)
	}
	// Only the write of another code Version (a rolling deploy) is carried
	// over to this process's keys.
	if tier.pending.n.Load() > 1 || tier.Pending("ok") {
		t.Fatalf("%d ids pending after forged messages, want at most the other Version's", tier.pending.n.Load())
	}
	if got := rec.ids(); !slices.Equal(got, []string{"other", "ok"}) {
		t.Fatalf("invalidated %q, want only the ids of the well-formed writes", got)
	}
}

// TestForwardWindow: a write announced under the generation this process
// just left is carried over to the new keys; one from an older generation,
// its own, or after the window, is not.
func TestForwardWindow(t *testing.T) {
	tier, _ := newTier(t, "forward")
	ctx := t.Context()
	old := tier.Space()
	b, err := tier.Bump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tier.Space().Gen != b.Generation || tier.Space() == old {
		t.Fatalf("after Bump the tier is on %q", tier.Space().Version)
	}
	handle := handler{tier}
	handle.Message("w other " + keys.VersionAt("v1", old.Gen+1_000_000_000) + " 7") // not the previous generation
	handle.Message("w " + tier.instance + " " + old.Version + " 8")                 // its own
	if tier.Pending("7") || tier.Pending("8") {
		t.Fatal("carried over a write that was not another process's under the previous generation")
	}
	handle.Message("w other " + old.Version + " 9")
	if !tier.Pending("9") {
		t.Fatal("a write announced under the previous generation was not carried over")
	}
	waitFor(t, func() bool { return !tier.Pending("9") }, "the carried-over write to be repaired")
	tier.switched.Store(time.Now().Add(-2 * time.Minute).UnixNano())
	handle.Message("w other " + old.Version + " 10")
	if tier.Pending("10") {
		t.Fatal("carried over a write after the window")
	}
}

// TestLostVersionKey: a tier restores the generation it knows when the key
// is lost, and a bump after the loss is above every generation used.
func TestLostVersionKey(t *testing.T) {
	tier, _ := newTier(t, "lost")
	ctx := t.Context()
	first, err := tier.Bump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv(t).Do("DEL", keys.Version("", "lost")); err != nil {
		t.Fatal(err)
	}
	tier.syncSoon()
	waitFor(t, func() bool {
		v, err := srv(t).Do("GET", keys.Version("", "lost"))
		return err == nil && v == fmt.Sprint(first.Generation)
	}, "the generation to be restored")
	if _, err := srv(t).Do("DEL", keys.Version("", "lost")); err != nil {
		t.Fatal(err)
	}
	second, err := tier.Bump(ctx)
	if err != nil || second.Generation <= first.Generation {
		t.Fatalf("bump after the loss = %+v, %v; want above %d", second, err, first.Generation)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPendingOverflowBumps: past its bound the pending set no longer knows
// which ids are pending: every id is, and the maintenance loop moves the
// keyspace to a new generation, after which ids are tracked again.
func TestPendingOverflowBumps(t *testing.T) {
	tier, rec := newTier(t, "overflow")
	before := tier.Space()
	tier.pending.mu.Lock()
	tier.pending.limit = 3
	tier.pending.mu.Unlock()
	tier.markPending([]string{"a", "b", "c", "d"})
	waitFor(t, func() bool { return tier.Space().Gen > before.Gen }, "the keyspace to move to a new generation")
	waitFor(t, func() bool { all, _ := tier.pending.overflowed(); return !all }, "the pending set to be known again")
	if tier.Pending("z") {
		t.Fatal("an id never written is pending after the move")
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.flushes < 2 {
		t.Fatalf("%d flushes of the cache's copies, want the switch's", rec.flushes)
	}
}
