package cachetest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercache/tiercache"
)

// TestStore runs the conformance suite of tiercache.Store against the store
// newStore returns, and the suites of the optional interfaces it implements
// (tiercache.Locker, tiercache.MultiGetter, tiercache.Broadcaster). Stores
// from several calls of newStore must share their data, as processes sharing
// one Redis do. Each test uses keys of its own, so the suite can run against
// a store holding other data.
func TestStore(t *testing.T, newStore func(t *testing.T) tiercache.Store) {
	t.Run("GetMissing", func(t *testing.T) {
		s := newStore(t)
		b, err := s.Get(t.Context(), key(t, "missing"))
		if b != nil || err != nil {
			t.Fatalf("Get(missing) = %q, %v; want nil, nil", b, err)
		}
	})
	t.Run("SetGetBinary", func(t *testing.T) {
		s := newStore(t)
		k := key(t, "k")
		want := []byte("\x00\xc7\xff\r\n{\"a\":1}")
		if err := s.Set(t.Context(), k, want, time.Minute); err != nil {
			t.Fatalf("Set: %v", err)
		}
		got, err := s.Get(t.Context(), k)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("Get = %q, %v; want %q", got, err, want)
		}
		// Another store on the same backend sees it.
		got, err = newStore(t).Get(t.Context(), k)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("Get from a second store = %q, %v; want %q", got, err, want)
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
	t.Run("Delete", func(t *testing.T) {
		s := newStore(t)
		a, b, never := key(t, "a"), key(t, "b"), key(t, "never")
		mustSet(t, s, a, "1")
		mustSet(t, s, b, "2")
		if err := s.Delete(t.Context(), a, b, never); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		for _, k := range []string{a, b} {
			if got, err := s.Get(t.Context(), k); got != nil || err != nil {
				t.Fatalf("Get(%s) after Delete = %q, %v; want nil, nil", k, got, err)
			}
		}
		if err := s.Delete(t.Context()); err != nil {
			t.Fatalf("Delete() with no keys: %v", err)
		}
	})
	t.Run("ContextCancelled", func(t *testing.T) {
		s := newStore(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := s.Get(ctx, key(t, "k")); err == nil {
			t.Fatal("Get with a cancelled context succeeded, want an error")
		}
	})

	if _, ok := newStore(t).(tiercache.MultiGetter); ok {
		t.Run("GetMulti", func(t *testing.T) { testGetMulti(t, newStore) })
	}
	if _, ok := newStore(t).(tiercache.Locker); ok {
		t.Run("Locker", func(t *testing.T) { testLocker(t, newStore) })
	}
	if _, ok := newStore(t).(tiercache.BatchLocker); ok {
		t.Run("BatchLocker", func(t *testing.T) { testBatchLocker(t, newStore) })
	}
	if _, ok := newStore(t).(tiercache.Broadcaster); ok {
		t.Run("Broadcaster", func(t *testing.T) { testBroadcaster(t, newStore) })
	}
}

func testGetMulti(t *testing.T, newStore func(t *testing.T) tiercache.Store) {
	s := newStore(t)
	m := s.(tiercache.MultiGetter)
	keys := make([]string, 20)
	for i := range keys {
		keys[i] = key(t, fmt.Sprint(i))
		if i%2 == 0 {
			mustSet(t, s, keys[i], fmt.Sprint("v", i))
		}
	}
	got, err := m.GetMulti(t.Context(), keys)
	if err != nil {
		t.Fatalf("GetMulti: %v", err)
	}
	if len(got) != len(keys) {
		t.Fatalf("GetMulti returned %d entries for %d keys", len(got), len(keys))
	}
	for i, b := range got {
		want := ""
		if i%2 == 0 {
			want = fmt.Sprint("v", i)
		}
		if (b == nil) != (want == "") || string(b) != want {
			t.Errorf("GetMulti[%d] = %q, want %q", i, b, want)
		}
	}
	if got, err := m.GetMulti(t.Context(), nil); err != nil || len(got) != 0 {
		t.Errorf("GetMulti(nil) = %v, %v; want empty, nil", got, err)
	}
}

func testLocker(t *testing.T, newStore func(t *testing.T) tiercache.Store) {
	ctx := t.Context()
	lockerOf := func(t *testing.T) (tiercache.Store, tiercache.Locker) {
		s := newStore(t)
		return s, s.(tiercache.Locker)
	}
	t.Run("ExclusiveAndReturnsCurrent", func(t *testing.T) {
		s, l := lockerOf(t)
		_, other := lockerOf(t)
		k := key(t, "k")
		mustSet(t, s, k, "old")
		got, cur, err := l.TryLock(ctx, k, "A", time.Minute)
		if err != nil || !got || string(cur) != "old" {
			t.Fatalf("first TryLock = %v, %q, %v; want true, old, nil", got, cur, err)
		}
		got, cur, err = other.TryLock(ctx, k, "B", time.Minute)
		if err != nil || got || string(cur) != "old" {
			t.Fatalf("second TryLock = %v, %q, %v; want false, old, nil", got, cur, err)
		}
		_, cur, _ = l.TryLock(ctx, key(t, "empty"), "A", time.Minute)
		if cur != nil {
			t.Fatalf("TryLock of an empty key returned current %q, want nil", cur)
		}
	})
	t.Run("FillNeedsTheToken", func(t *testing.T) {
		s, l := lockerOf(t)
		k := key(t, "k")
		if got, _, _ := l.TryLock(ctx, k, "A", time.Minute); !got {
			t.Fatal("TryLock failed on a free key")
		}
		if ok, err := l.Fill(ctx, tiercache.FillOp{Key: k, Token: "B", Value: []byte("intruder"), TTL: time.Minute}); ok || err != nil {
			t.Fatalf("Fill with another token = %v, %v; want false, nil", ok, err)
		}
		if b, _ := s.Get(ctx, k); b != nil {
			t.Fatalf("refused Fill stored %q", b)
		}
		if ok, err := l.Fill(ctx, tiercache.FillOp{Key: k, Token: "A", Value: []byte("v1"), TTL: time.Minute}); !ok || err != nil {
			t.Fatalf("Fill with the token = %v, %v; want true, nil", ok, err)
		}
		if got := mustGet(t, s, k); got != "v1" {
			t.Fatalf("after Fill Get = %q, want v1", got)
		}
		// Fill released the lock.
		if got, _, _ := l.TryLock(ctx, k, "C", time.Minute); !got {
			t.Fatal("lock still held after Fill")
		}
		// A second Fill with the spent token is refused.
		if ok, _ := l.Fill(ctx, tiercache.FillOp{Key: k, Token: "A", Value: []byte("again"), TTL: time.Minute}); ok {
			t.Fatal("Fill with a spent token stored")
		}
	})
	for _, cancel := range []string{"Set", "Delete"} {
		t.Run(cancel+"CancelsRebuild", func(t *testing.T) {
			s, l := lockerOf(t)
			k := key(t, "k")
			if got, _, _ := l.TryLock(ctx, k, "A", time.Minute); !got {
				t.Fatal("TryLock failed on a free key")
			}
			if cancel == "Set" {
				mustSet(t, s, k, "new")
			} else if err := s.Delete(ctx, k); err != nil {
				t.Fatal(err)
			}
			if ok, err := l.Fill(ctx, tiercache.FillOp{Key: k, Token: "A", Value: []byte("old"), TTL: time.Minute}); ok || err != nil {
				t.Fatalf("Fill after %s = %v, %v; want false, nil", cancel, ok, err)
			}
			want := "new"
			if cancel == "Delete" {
				want = ""
			}
			if b, _ := s.Get(ctx, k); string(b) != want {
				t.Fatalf("after %s and a refused Fill, Get = %q, want %q", cancel, b, want)
			}
		})
	}
	t.Run("Unlock", func(t *testing.T) {
		_, l := lockerOf(t)
		k := key(t, "k")
		l.TryLock(ctx, k, "A", time.Minute)
		if err := l.Unlock(ctx, k, "B"); err != nil {
			t.Fatal(err)
		}
		if got, _, _ := l.TryLock(ctx, k, "C", time.Minute); got {
			t.Fatal("Unlock with another token released the lock")
		}
		if err := l.Unlock(ctx, k, "A"); err != nil {
			t.Fatal(err)
		}
		if got, _, _ := l.TryLock(ctx, k, "C", time.Minute); !got {
			t.Fatal("Unlock with the token did not release the lock")
		}
	})
	t.Run("OneWinnerUnderContention", func(t *testing.T) {
		k := key(t, "k")
		const n = 32
		var winners atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			_, l := lockerOf(t)
			wg.Go(func() {
				<-start
				got, _, err := l.TryLock(ctx, k, fmt.Sprint("t", i), time.Minute)
				if err != nil {
					t.Error(err)
				}
				if got {
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
}

func testBatchLocker(t *testing.T, newStore func(t *testing.T) tiercache.Store) {
	ctx := t.Context()
	s := newStore(t)
	bl := s.(tiercache.BatchLocker)
	held, filled, free := key(t, "held"), key(t, "filled"), key(t, "free")
	mustSet(t, s, filled, "v")
	if got, _, _ := s.(tiercache.Locker).TryLock(ctx, held, "other", time.Minute); !got {
		t.Fatal("setup TryLock failed")
	}
	acquired, current, err := bl.TryLockMulti(ctx, []string{held, filled, free}, []string{"A", "B", "C"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(acquired, []bool{false, true, true}) {
		t.Fatalf("acquired = %v, want [false true true]", acquired)
	}
	if current[0] != nil || string(current[1]) != "v" || current[2] != nil {
		t.Fatalf("current = %q, want [nil v nil]", current)
	}
	stored, err := bl.FillMulti(ctx, []tiercache.FillOp{
		{Key: held, Token: "A", Value: []byte("intruder"), TTL: time.Minute},
		{Key: filled, Token: "B", Value: []byte("v2"), TTL: time.Minute},
		{Key: free, Token: "wrong", Value: []byte("x"), TTL: time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(stored, []bool{false, true, false}) {
		t.Fatalf("stored = %v, want [false true false]", stored)
	}
	if got := mustGet(t, s, filled); got != "v2" {
		t.Fatalf("filled key holds %q, want v2", got)
	}
	if b, _ := s.Get(ctx, held); b != nil {
		t.Fatalf("a refused fill stored %q", b)
	}
}

func testBroadcaster(t *testing.T, newStore func(t *testing.T) tiercache.Store) {
	pub := newStore(t).(tiercache.Broadcaster)
	sub := newStore(t).(tiercache.Broadcaster)
	channel := key(t, "channel")
	h := &recordingHandler{up: make(chan struct{}, 8), msgs: make(chan string, 8)}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- sub.Subscribe(ctx, channel, h) }()
	select {
	case <-h.up:
	case <-time.After(10 * time.Second):
		t.Fatal("no Up within 10 s of Subscribe")
	}
	for _, m := range []string{"one", "two\nlines", ""} {
		if err := pub.Publish(t.Context(), channel, m); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		select {
		case got := <-h.msgs:
			if got != m {
				t.Fatalf("received %q, want %q", got, m)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %q not received within 10 s", m)
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Subscribe did not return within 10 s of its context ending")
	}
}

type recordingHandler struct {
	up   chan struct{}
	msgs chan string
	mu   sync.Mutex
	down []error
}

func (h *recordingHandler) Message(p string) { h.msgs <- p }
func (h *recordingHandler) Up()              { h.up <- struct{}{} }
func (h *recordingHandler) Down(err error) {
	h.mu.Lock()
	h.down = append(h.down, err)
	h.mu.Unlock()
}

// key returns a new key for the test, unique even across runs of it on one
// server (-count), so call it once per key a test uses.
func key(t *testing.T, name string) string {
	return fmt.Sprintf("cachetest:%s:%x:%s", strings.ReplaceAll(t.Name(), "/", ":"), rand.Uint64(), name)
}

func mustSet(t *testing.T, s tiercache.Store, k, v string) {
	t.Helper()
	if err := s.Set(t.Context(), k, []byte(v), time.Minute); err != nil {
		t.Fatalf("Set(%s): %v", k, err)
	}
}

func mustGet(t *testing.T, s tiercache.Store, k string) string {
	t.Helper()
	b, err := s.Get(t.Context(), k)
	if err != nil {
		t.Fatalf("Get(%s): %v", k, err)
	}
	return string(b)
}
