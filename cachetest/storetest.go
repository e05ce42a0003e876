package cachetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercache/tiercache/driver"
)

// TestStore runs the conformance suite of driver.Store against the store
// newStore returns, including the capabilities it reports. Stores from
// several calls of newStore must share their data, as processes sharing one
// Redis do. Each test uses keys of its own, so the suite can run against a
// store holding other data.
func TestStore(t *testing.T, newStore func(t *testing.T) driver.Store) {
	t.Run("GetMissing", func(t *testing.T) {
		s := newStore(t)
		k := key(t, "missing")
		got, err := s.Get(t.Context(), []string{k})
		if err != nil || len(got) != 1 || got[0] != nil {
			t.Fatalf("Get(missing) = %q, %v; want [nil], nil", got, err)
		}
		if got, err := s.Get(t.Context(), nil); err != nil || len(got) != 0 {
			t.Fatalf("Get(no keys) = %q, %v; want empty, nil", got, err)
		}
	})
	t.Run("SetGetBinary", func(t *testing.T) {
		s := newStore(t)
		k := key(t, "k")
		want := []byte("\x00\xc7\xff\r\n{\"a\":1}")
		if err := s.Set(t.Context(), k, want, time.Minute, driver.Note{}); err != nil {
			t.Fatalf("Set: %v", err)
		}
		if got := mustGet(t, s, k); got != string(want) {
			t.Fatalf("Get = %q; want %q", got, want)
		}
		// Another store on the same backend sees it.
		if got := mustGet(t, newStore(t), k); got != string(want) {
			t.Fatalf("Get from a second store = %q; want %q", got, want)
		}
	})
	t.Run("SetOverwrites", func(t *testing.T) {
		s := newStore(t)
		k := key(t, "k")
		mustSet(t, s, k, "one")
		mustSet(t, s, k, "two")
		if got := mustGet(t, s, k); got != "two" {
			t.Fatalf("Get = %q, want two", got)
		}
	})
	t.Run("GetMany", func(t *testing.T) {
		s := newStore(t)
		keys := make([]string, 20)
		for i := range keys {
			keys[i] = key(t, fmt.Sprint(i))
			if i%2 == 0 {
				mustSet(t, s, keys[i], fmt.Sprint("v", i))
			}
		}
		got, err := s.Get(t.Context(), keys)
		if err != nil || len(got) != len(keys) {
			t.Fatalf("Get(%d keys) = %d entries, %v", len(keys), len(got), err)
		}
		for i, b := range got {
			if i%2 == 0 && string(b) != fmt.Sprint("v", i) || i%2 == 1 && b != nil {
				t.Errorf("Get[%d] = %q", i, b)
			}
		}
	})
	t.Run("Delete", func(t *testing.T) {
		s := newStore(t)
		a, b, never := key(t, "a"), key(t, "b"), key(t, "never")
		mustSet(t, s, a, "1")
		mustSet(t, s, b, "2")
		if err := s.Delete(t.Context(), []string{a, b, never}, driver.Note{}); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		got, err := s.Get(t.Context(), []string{a, b})
		if err != nil || got[0] != nil || got[1] != nil {
			t.Fatalf("Get after Delete = %q, %v; want [nil nil], nil", got, err)
		}
		if err := s.Delete(t.Context(), nil, driver.Note{}); err != nil {
			t.Fatalf("Delete of no keys: %v", err)
		}
	})
	t.Run("ContextCancelled", func(t *testing.T) {
		s := newStore(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := s.Get(ctx, []string{key(t, "k")}); err == nil {
			t.Fatal("Get with a cancelled context succeeded, want an error")
		}
	})

	caps := newStore(t).Capabilities()
	if caps.Locks {
		t.Run("Locks", func(t *testing.T) { testLocks(t, newStore) })
	} else {
		t.Run("NoLocks", func(t *testing.T) {
			_, err := newStore(t).Lock(t.Context(), []driver.LockRequest{{Key: key(t, "k"), Token: driver.NewToken()}}, time.Second)
			if err == nil {
				t.Fatal("Lock of a store without locks succeeded, want driver.ErrUnsupported")
			}
		})
	}
	if caps.Messages {
		t.Run("Messages", func(t *testing.T) { testMessages(t, newStore) })
	}
	if caps.Generations {
		t.Run("Generations", func(t *testing.T) { testGenerations(t, newStore) })
	}
	if caps.Tracking {
		t.Run("Tracking", func(t *testing.T) { testTracking(t, newStore) })
	}
}

// trackRecorder is a driver.TrackHandler that passes what it sees on.
type trackRecorder struct {
	keys chan []string
	up   chan struct{}
}

func (r *trackRecorder) Invalidate(keys []string) { r.keys <- keys }
func (r *trackRecorder) Up()                      { r.up <- struct{}{} }
func (r *trackRecorder) Down(error)               {}

// testTracking: Track reports the writes and deletes of keys under its
// prefix made through another store, and not those of other keys; it ends
// with its context. A store whose backend refuses tracking returns
// driver.ErrUnsupported instead.
func testTracking(t *testing.T, newStore func(t *testing.T) driver.Store) {
	tracker, writer := newStore(t), newStore(t)
	prefix := key(t, "tracked") + ":"
	h := &trackRecorder{keys: make(chan []string, 64), up: make(chan struct{}, 8)}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- tracker.Track(ctx, prefix, h) }()
	defer func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, driver.ErrUnsupported) {
			t.Errorf("Track ended with %v, want ctx's error", err)
		}
	}()
	select {
	case <-h.up:
	case err := <-done:
		done <- err
		if !errors.Is(err, driver.ErrUnsupported) {
			t.Fatalf("Track = %v before Up, want an error wrapping driver.ErrUnsupported or Up", err)
		}
		return
	case <-time.After(10 * time.Second):
		t.Fatal("Track not up after 10 s")
	}
	// Each write, then one under the prefix as a marker: the first keys
	// reported after a write must be the write's (or nothing for a key
	// outside the prefix, then the marker).
	expect := func(want string) {
		t.Helper()
		select {
		case got := <-h.keys:
			if !slices.Contains(got, want) {
				t.Fatalf("invalidation %q, want one of %q", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no invalidation of %s within 10 s", want)
		}
	}
	mustSet(t, writer, key(t, "elsewhere"), "x") // not under the prefix: not reported
	mustSet(t, writer, prefix+"a", "1")
	expect(prefix + "a")
	if err := writer.Delete(t.Context(), []string{prefix + "a"}, driver.Note{}); err != nil {
		t.Fatal(err)
	}
	expect(prefix + "a")
}

func lock1(t *testing.T, s driver.Store, k, token string) driver.LockResult {
	t.Helper()
	rs, err := s.Lock(t.Context(), []driver.LockRequest{{Key: k, Token: token}}, time.Minute)
	if err != nil || len(rs) != 1 {
		t.Fatalf("Lock(%s) = %v, %v", k, rs, err)
	}
	return rs[0]
}

func fill1(t *testing.T, s driver.Store, k, token, v string) bool {
	t.Helper()
	ok, err := s.Fill(t.Context(), []driver.FillOp{{Key: k, Token: token, Value: []byte(v), TTL: time.Minute}})
	if err != nil || len(ok) != 1 {
		t.Fatalf("Fill(%s) = %v, %v", k, ok, err)
	}
	return ok[0]
}

func testLocks(t *testing.T, newStore func(t *testing.T) driver.Store) {
	ctx := context.Background()
	tokA, tokB, tokC := driver.NewToken(), driver.NewToken(), driver.NewToken()
	t.Run("ExclusiveAndReturnsCurrent", func(t *testing.T) {
		s, other := newStore(t), newStore(t)
		k := key(t, "k")
		mustSet(t, s, k, "old")
		if r := lock1(t, s, k, tokA); !r.Acquired || r.Repaired || string(r.Current) != "old" {
			t.Fatalf("first Lock = %+v; want acquired, current old", r)
		}
		if r := lock1(t, other, k, tokB); r.Acquired || string(r.Current) != "old" {
			t.Fatalf("second Lock = %+v; want not acquired, current old", r)
		}
		if r := lock1(t, s, key(t, "empty"), tokA); r.Current != nil {
			t.Fatalf("Lock of an empty key returned current %q, want nil", r.Current)
		}
	})
	t.Run("FillNeedsTheToken", func(t *testing.T) {
		s := newStore(t)
		k := key(t, "k")
		if !lock1(t, s, k, tokA).Acquired {
			t.Fatal("Lock failed on a free key")
		}
		if fill1(t, s, k, tokB, "intruder") {
			t.Fatal("Fill with another token stored")
		}
		if got := mustGet(t, s, k); got != "" {
			t.Fatalf("refused Fill stored %q", got)
		}
		if !fill1(t, s, k, tokA, "v1") {
			t.Fatal("Fill with the token refused")
		}
		if got := mustGet(t, s, k); got != "v1" {
			t.Fatalf("after Fill Get = %q, want v1", got)
		}
		// Fill released the lock; a second Fill with the spent token fails.
		if !lock1(t, s, k, tokC).Acquired {
			t.Fatal("lock still held after Fill")
		}
		if fill1(t, s, k, tokA, "again") {
			t.Fatal("Fill with a spent token stored")
		}
	})
	for _, cancel := range []string{"Set", "Delete"} {
		t.Run(cancel+"CancelsRebuild", func(t *testing.T) {
			s := newStore(t)
			k := key(t, "k")
			if !lock1(t, s, k, tokA).Acquired {
				t.Fatal("Lock failed on a free key")
			}
			want := "new"
			if cancel == "Set" {
				mustSet(t, s, k, "new")
			} else {
				want = ""
				if err := s.Delete(ctx, []string{k}, driver.Note{}); err != nil {
					t.Fatal(err)
				}
			}
			if fill1(t, s, k, tokA, "old") {
				t.Fatalf("Fill after %s stored", cancel)
			}
			if got := mustGet(t, s, k); got != want {
				t.Fatalf("after %s and a refused Fill, Get = %q, want %q", cancel, got, want)
			}
		})
	}
	t.Run("Unlock", func(t *testing.T) {
		s := newStore(t)
		k := key(t, "k")
		lock1(t, s, k, tokA)
		if err := s.Unlock(ctx, []driver.LockRequest{{Key: k, Token: tokB}}); err != nil {
			t.Fatal(err)
		}
		if lock1(t, s, k, tokC).Acquired {
			t.Fatal("Unlock with another token released the lock")
		}
		if err := s.Unlock(ctx, []driver.LockRequest{{Key: k, Token: tokA}}); err != nil {
			t.Fatal(err)
		}
		if !lock1(t, s, k, tokC).Acquired {
			t.Fatal("Unlock with the token did not release the lock")
		}
	})
	t.Run("OneWinnerUnderContention", func(t *testing.T) {
		k := key(t, "k")
		const n = 32
		var winners atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range n {
			s := newStore(t)
			wg.Go(func() {
				<-start
				rs, err := s.Lock(ctx, []driver.LockRequest{{Key: k, Token: driver.NewToken()}}, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if rs[0].Acquired {
					winners.Add(1)
				}
			})
		}
		close(start)
		wg.Wait()
		if got := winners.Load(); got != 1 {
			t.Fatalf("%d of %d contenders took the lock, want 1", got, n)
		}
	})
	t.Run("Batch", func(t *testing.T) {
		s := newStore(t)
		held, filled, free := key(t, "held"), key(t, "filled"), key(t, "free")
		mustSet(t, s, filled, "v")
		lock1(t, s, held, tokC)
		rs, err := s.Lock(ctx, []driver.LockRequest{{Key: held, Token: tokA}, {Key: filled, Token: tokB}, {Key: free, Token: tokA}}, time.Minute)
		if err != nil || len(rs) != 3 {
			t.Fatalf("Lock = %v, %v", rs, err)
		}
		if got := []bool{rs[0].Acquired, rs[1].Acquired, rs[2].Acquired}; !slices.Equal(got, []bool{false, true, true}) {
			t.Fatalf("acquired = %v, want [false true true]", got)
		}
		if rs[0].Current != nil || string(rs[1].Current) != "v" || rs[2].Current != nil {
			t.Fatalf("current = %q %q %q, want nil v nil", rs[0].Current, rs[1].Current, rs[2].Current)
		}
		stored, err := s.Fill(ctx, []driver.FillOp{
			{Key: held, Token: tokA, Value: []byte("intruder"), TTL: time.Minute},
			{Key: filled, Token: tokB, Value: []byte("v2"), TTL: time.Minute},
			{Key: free, Token: tokB, Value: []byte("x"), TTL: time.Minute},
		})
		if err != nil || !slices.Equal(stored, []bool{false, true, false}) {
			t.Fatalf("Fill = %v, %v; want [false true false]", stored, err)
		}
		if got := mustGet(t, s, filled); got != "v2" {
			t.Fatalf("filled key holds %q, want v2", got)
		}
		if got := mustGet(t, s, held); got != "" {
			t.Fatalf("a refused fill stored %q", got)
		}
	})
}

func testMessages(t *testing.T, newStore func(t *testing.T) driver.Store) {
	pub, sub := newStore(t), newStore(t)
	channel := key(t, "channel")
	h := subscribe(t, sub, channel)
	n, err := pub.Publish(t.Context(), channel, "one")
	if err != nil || n < 1 {
		t.Fatalf("Publish = %d, %v; want at least 1 receiver", n, err)
	}
	h.expect(t, "one")
	for _, m := range []string{"two\nlines", ""} {
		if _, err := pub.Publish(t.Context(), channel, m); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		h.expect(t, m)
	}
	// Writes publish their notes once done: a subscriber that hears of one
	// finds it made.
	k := key(t, "k")
	if err := pub.Set(t.Context(), k, []byte("v"), time.Minute, driver.Note{Channel: channel, Message: "set"}); err != nil {
		t.Fatal(err)
	}
	h.expect(t, "set")
	if got := mustGet(t, sub, k); got != "v" {
		t.Fatalf("after the Set's note, Get = %q, want v", got)
	}
	if err := pub.Delete(t.Context(), []string{k}, driver.Note{Channel: channel, Message: "deleted"}); err != nil {
		t.Fatal(err)
	}
	h.expect(t, "deleted")
	if got := mustGet(t, sub, k); got != "" {
		t.Fatalf("after the Delete's note, Get = %q, want nothing", got)
	}
	if pub.Capabilities().Locks {
		tok := driver.NewToken()
		lock1(t, pub, k, tok)
		ok, err := pub.Fill(t.Context(), []driver.FillOp{{Key: k, Token: tok, Value: []byte("f"), TTL: time.Minute, Note: driver.Note{Channel: channel, Message: "filled"}}})
		if err != nil || !ok[0] {
			t.Fatalf("Fill = %v, %v", ok, err)
		}
		h.expect(t, "filled")
		// A refused fill publishes nothing: the next message is the marker.
		pub.Fill(t.Context(), []driver.FillOp{{Key: k, Token: tok, Value: []byte("g"), TTL: time.Minute, Note: driver.Note{Channel: channel, Message: "refused"}}})
		pub.Publish(t.Context(), channel, "marker")
		h.expect(t, "marker")
	}
}

func testGenerations(t *testing.T, newStore func(t *testing.T) driver.Store) {
	s := newStore(t)
	ctx := t.Context()
	k := key(t, "version")
	if gen, raised, err := s.Generation(ctx, k, 0); err != nil || gen != 0 || !raised {
		t.Fatalf("Generation(missing, 0) = %d, %v, %v; want 0, raised", gen, raised, err)
	}
	if gen, raised, err := s.Generation(ctx, k, 0); err != nil || gen != 0 || raised {
		t.Fatalf("Generation(0, 0) = %d, %v, %v; want 0, not raised", gen, raised, err)
	}
	b1, err := s.Bump(ctx, k, 0)
	if err != nil || b1 <= 0 {
		t.Fatalf("Bump = %d, %v", b1, err)
	}
	if gen, raised, err := s.Generation(ctx, k, 0); gen != b1 || raised || err != nil {
		t.Fatalf("Generation(%d stored, known 0) = %d, %v, %v; want the stored one", b1, gen, raised, err)
	}
	b2, err := s.Bump(ctx, k, b1+1000)
	if err != nil || b2 <= b1+1000 {
		t.Fatalf("Bump(known %d) = %d, %v; want above it", b1+1000, b2, err)
	}
	// A process that knows a later generation than the store raises it.
	if gen, raised, err := s.Generation(ctx, k, b2+5); gen != b2+5 || !raised || err != nil {
		t.Fatalf("Generation(known %d) = %d, %v, %v; want raised to it", b2+5, gen, raised, err)
	}
	// Lost: a bump still gives a generation never used before.
	if err := s.Delete(ctx, []string{k}, driver.Note{}); err != nil {
		t.Fatal(err)
	}
	if b3, err := s.Bump(ctx, k, 0); err != nil || b3 <= b1 {
		t.Fatalf("Bump after the key was lost = %d, %v; want above the first bump %d", b3, err, b1)
	}
}

// subscription records what a subscription receives.
type subscription struct {
	up   chan struct{}
	msgs chan string
}

func (h *subscription) Message(p string) { h.msgs <- p }
func (h *subscription) Up()              { h.up <- struct{}{} }
func (h *subscription) Down(error)       {}

// subscribe subscribes s to channel until the test ends, once it is up.
func subscribe(t *testing.T, s driver.Store, channel string) *subscription {
	t.Helper()
	h := &subscription{up: make(chan struct{}, 8), msgs: make(chan string, 64)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Subscribe(ctx, channel, h) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Subscribe did not return within 10 s of its context ending")
		}
	})
	select {
	case <-h.up:
	case <-time.After(10 * time.Second):
		t.Fatal("no Up within 10 s of Subscribe")
	}
	return h
}

func (h *subscription) expect(t *testing.T, want string) {
	t.Helper()
	select {
	case got := <-h.msgs:
		if got != want {
			t.Fatalf("received %q, want %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("message %q not received within 10 s", want)
	}
}

// key returns a new key for the test, unique even across runs of it on one
// server (-count), so call it once per key a test uses.
func key(t *testing.T, name string) string {
	return fmt.Sprintf("cachetest:%s:%x:%s", strings.ReplaceAll(t.Name(), "/", ":"), rand.Uint64(), name)
}

func mustSet(t *testing.T, s driver.Store, k, v string) {
	t.Helper()
	if err := s.Set(t.Context(), k, []byte(v), time.Minute, driver.Note{}); err != nil {
		t.Fatalf("Set(%s): %v", k, err)
	}
}

// mustGet returns what k holds, "" for nothing.
func mustGet(t *testing.T, s driver.Store, k string) string {
	t.Helper()
	b, err := s.Get(t.Context(), []string{k})
	if err != nil {
		t.Fatalf("Get(%s): %v", k, err)
	}
	return string(bytes.Clone(b[0]))
}
