package tiercache

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tiercache/tiercache/stats"
)

// Messages on a keyspace's channel are "<op> <instance> <keys>", keys being
// full keys separated by newlines (ids hold no control characters):
//
//	c  keys changed (Set, Delete or a rebuild's fill): drop them from L1
//	   and wake the processes waiting for their rebuild.
//	r  rebuild released without a fill (the loader failed): wake the
//	   waiters only.
//	v  the keyspace's runtime version was bumped; the last field is the new
//	   generation (see BumpVersion).
//
// A process ignores the L1 part of its own messages (its L1 is already
// right) but not the wake-up part.
const (
	opChanged  = 'c'
	opReleased = 'r'
	opVersion  = 'v'
)

// channelOf returns the channel of a keyspace: "{prefix}tiercache:{name}".
func channelOf(prefix, name string) string { return prefix + "tiercache:" + name }

// publish tells the other processes about keys, in one message. A failure
// is counted and logged: they learn of the change by L1TTL at the latest.
func (c *Cache[V]) publish(ctx context.Context, op byte, keys ...string) {
	if c.bcast == nil || len(keys) == 0 {
		return
	}
	msg := c.message(op, keys...)
	if err := c.l2(ctx, func(ctx context.Context) error { return c.bcast.Publish(ctx, c.channel, msg) }); err != nil {
		c.warn(ctx, "tiercache: invalidation message not sent", keys[0], err)
	}
}

// message returns the message of op about keys.
func (c *Cache[V]) message(op byte, keys ...string) string {
	return string(op) + " " + c.instance + " " + strings.Join(keys, "\n")
}

// subscribeWait bounds how long New waits for the subscription's first Up or
// Down, so that a new cache starts with L1 trusted when Redis is healthy.
const subscribeWait = time.Second

// subscribe starts the goroutine that receives the keyspace's messages, and
// waits for it to be up (or down) for at most subscribeWait.
func (c *Cache[V]) subscribe() {
	// Until the subscription is up, L1 may miss messages: do not trust it.
	c.setTrusted(false)
	s := &subscriber[V]{c: c, ready: make(chan struct{})}
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		err := c.bcast.Subscribe(c.bgCtx, c.channel, s)
		if err != nil && !errors.Is(err, context.Canceled) {
			c.warn(c.bgCtx, "tiercache: invalidation subscription ended", c.channel, err)
		}
	}()
	t := time.NewTimer(subscribeWait)
	defer t.Stop()
	select {
	case <-s.ready:
	case <-t.C:
	}
}

// subscriber adapts a Cache to SubscriptionHandler.
type subscriber[V any] struct {
	c     *Cache[V]
	once  sync.Once
	ready chan struct{} // closed at the first Up or Down
}

func (s *subscriber[V]) settled() { s.once.Do(func() { close(s.ready) }) }

func (s *subscriber[V]) Message(payload string) {
	c := s.c
	op, rest, ok := strings.Cut(payload, " ")
	if !ok || len(op) != 1 {
		return
	}
	instance, keys, ok := strings.Cut(rest, " ")
	if !ok {
		return
	}
	if op[0] == opVersion {
		if gen, err := strconv.ParseInt(keys, 10, 64); err == nil {
			c.useGeneration(gen)
		}
		return
	}
	prefix := c.ks.Load().prefix
	for key := range strings.SplitSeq(keys, "\n") {
		id, ok := strings.CutPrefix(key, prefix)
		if !ok {
			continue // another version or prefix
		}
		if op[0] == opChanged && instance != c.instance {
			if _, held := c.l1.GetIfPresent(id); held {
				c.record(stats.Invalidation)
			}
			c.invalidate(id)
		}
		c.waiters.wake(id)
	}
}

// Up trusts L1 again once it has been flushed of whatever it may have kept
// while messages could be missed.
func (s *subscriber[V]) Up() {
	// A version bump may have been missed too.
	s.c.loadGeneration(s.c.bgCtx)
	s.c.flushL1()
	s.c.setTrusted(true)
	s.c.waiters.wakeAll()
	s.settled()
}

// Down stops trusting L1 before L2: requests read the shared tier first
// until the subscription is back.
func (s *subscriber[V]) Down(err error) {
	s.c.setTrusted(false)
	s.c.warn(s.c.bgCtx, "tiercache: invalidation subscription lost; L1 answers only when the shared tier fails", s.c.channel, err)
	s.settled()
}

// waiters are the channels on which this process's waits for rebuilds are
// woken, by id. The zero value is ready to use.
type waiters struct {
	mu sync.Mutex
	m  map[string]*waitList
}

type waitList struct {
	ch chan struct{} // closed by wake
	n  int           // waiters registered on ch
}

// add registers a waiter of id and returns the channel the next wake of id
// closes. Every add must be paired with a remove of the channel returned.
func (w *waiters) add(id string) chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	l, ok := w.m[id]
	if !ok {
		if w.m == nil {
			w.m = make(map[string]*waitList)
		}
		l = &waitList{ch: make(chan struct{})}
		w.m[id] = l
	}
	l.n++
	return l.ch
}

// remove unregisters a waiter that add gave ch.
func (w *waiters) remove(id string, ch chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if l, ok := w.m[id]; ok && l.ch == ch {
		if l.n--; l.n == 0 {
			delete(w.m, id)
		}
	}
}

// wake wakes every waiter of id.
func (w *waiters) wake(id string) {
	w.mu.Lock()
	l, ok := w.m[id]
	delete(w.m, id)
	w.mu.Unlock()
	if ok {
		close(l.ch)
	}
}

// wakeAll wakes every waiter.
func (w *waiters) wakeAll() {
	w.mu.Lock()
	m := w.m
	w.m = nil
	w.mu.Unlock()
	for _, l := range m {
		close(l.ch)
	}
}
