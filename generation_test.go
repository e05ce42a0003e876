package tiercache_test

// Adversarial tests of runtime generations: the carry-over of a process's
// own writes across a switch, and bumps.

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/codec"
	"github.com/tiercache/tiercache/driver"
	"github.com/tiercache/tiercache/redisstore"
)

// advLateHints is a Store whose subscription, while stalled, delivers
// nothing: it keeps the payloads, and deliverLate publishes them again, in
// order, so that they reach the process late. It is a subscription stalled
// for less than the invalidation bound B (a connection that stops
// delivering is noticed only after HealthInterval + Timeout): the contract
// covers a process that misses a bump in that window ("one that misses it
// reads the generation at least every max(NotifyBound, 1 s)"), and the
// carry-over of its own writes is the mechanism for writes it makes
// meanwhile.
type advLateHints struct {
	driver.Store
	drop    *atomic.Bool
	mu      *sync.Mutex
	dropped *[]string
}

func newAdvLateHints(s driver.Store) advLateHints {
	return advLateHints{Store: s, drop: new(atomic.Bool), mu: new(sync.Mutex), dropped: new([]string)}
}

func (s advLateHints) Subscribe(ctx context.Context, channel string, h driver.Handler) error {
	return s.Store.Subscribe(ctx, channel, advLateHandler{h, s})
}

func (s advLateHints) held() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), *s.dropped...)
}

type advLateHandler struct {
	driver.Handler
	s advLateHints
}

func (h advLateHandler) Message(p string) {
	if h.s.drop.Load() {
		h.s.mu.Lock()
		*h.s.dropped = append(*h.s.dropped, p)
		h.s.mu.Unlock()
		return
	}
	h.Handler.Message(p)
}

// advGenSetup is process A (subscription stalled, periodic generation read a minute away)
// at the keyspace's first generation, and the keyspace bumped by process B,
// which filled id's key in the new generation with the origin's value of
// the time, v0, and then exited. A has not switched yet.
type advGenSetup struct {
	a       *tiercache.Cache[user]
	late    advLateHints
	o       tiercache.Options[user]
	channel string
	bumped  string // B's version after its bump
}

func advGenerationSetup(t *testing.T, id string, ao tiercache.Options[user]) *advGenSetup {
	t.Helper()
	ctx := t.Context()
	name := keyspaceName(t)
	o := tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: name}, TTL: time.Hour, L1: tiercache.L1[user]{TTL: time.Hour}}

	ao.Keyspace, ao.TTL, ao.L1.TTL = o.Keyspace, o.TTL, o.L1.TTL
	// HealthInterval of a minute: A's periodic read of the generation is a
	// minute away (B is 60.2 s), so that only the late messages move it.
	late := newAdvLateHints(redisstore.New(newRedis(t, srv(t).Addr()), &redisstore.Options{HealthInterval: time.Minute}))
	ao.Store = late
	a := newCache(t, "", ao)
	waitSettled(t, a)
	b := newCache(t, srv(t).Addr(), o)

	late.drop.Store(true)
	bctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond) // A's stalled subscription will not ack
	defer cancel()
	if _, err := b.BumpVersion(bctx); err != nil {
		t.Fatal(err)
	}
	bumped := b.Keyspace().Version
	waitUntil(t, func() bool {
		for _, m := range late.held() {
			if strings.HasPrefix(m, "v ") {
				return true
			}
		}
		return false
	}, "B's hint to reach A's stalled subscription")
	if got := a.Keyspace().Version; got != "v1" {
		t.Fatalf("A switched to %q without the hint", got)
	}
	// B fills id under the new generation with the origin's current value.
	if _, err := b.Get(ctx, id, func(context.Context, string) (user, error) { return user{ID: id, Name: "v0"}, nil }); err != nil {
		t.Fatal(err)
	}
	if err := tiercache.WaitIdle(ctx, b); err != nil { // the fill follows the answer
		t.Fatal(err)
	}
	if v, err := srv(t).Do("EXISTS", b.Key(id)); err != nil || v != int64(1) {
		t.Fatalf("B's fill of %s: %v %v", b.Key(id), v, err)
	}
	b.Close() // B exits (a redeploy): nobody else carries A's writes over
	return &advGenSetup{a: a, late: late, o: o, channel: "tiercache:" + name, bumped: bumped}
}

// hintLate ends the stall: the messages held reach A, in order, and A
// reads the generation. It waits until A has switched.
func (s *advGenSetup) hintLate(t *testing.T) {
	t.Helper()
	s.late.drop.Store(false)
	for _, m := range s.late.held() {
		if _, err := srv(t).Do("PUBLISH", s.channel, m); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, func() bool { return s.a.Keyspace().Version == s.bumped }, "A to switch to "+s.bumped)
}

// TestBulkDeleteCarriedOver: contract 1 (read-your-writes) and the switch
// rule "A process that moves to a new generation carries over its own writes
// made since it last read the generation". A Delete of 16 385 ids (one bulk
// invalidation) made by A between B's bump and A's reading of the
// generation goes to the old keys; after the switch A must not serve, from
// B's fill of the new key, the value its Delete replaced. (The first
// version remembered at most 16 384 written ids between two reads of the
// generation and dropped a batch past that: found by the adversarial
// review.)
func TestBulkDeleteCarriedOver(t *testing.T) {
	const id = "x"
	s := advGenerationSetup(t, id, tiercache.Options[user]{})
	ctx := t.Context()

	// The origin changes: x is now v1, and A invalidates it along with
	// 16 384 other ids.
	ids := make([]string, 0, 1<<14+1)
	for i := range 1 << 14 {
		ids = append(ids, "other-"+strconv.Itoa(i))
	}
	ids = append(ids, id)
	if err := s.a.Delete(ctx, ids...); err != nil {
		t.Fatal(err)
	}
	s.hintLate(t)

	u, err := s.a.Get(ctx, id, func(context.Context, string) (user, error) { return user{ID: id, Name: "v1"}, nil })
	if err != nil || u.Name != "v1" {
		t.Errorf("after A's Delete(%d ids incl. %q) returned nil and A switched to %s, A serves %+v, %v: the value the Delete replaced", len(ids), id, s.bumped, u, err)
	}
}

// TestBulkDeleteCarriedOverSmall is TestBulkDeleteCarriedOver with 16 384
// ids.
func TestBulkDeleteCarriedOverSmall(t *testing.T) {
	const id = "x"
	s := advGenerationSetup(t, id, tiercache.Options[user]{})
	ctx := t.Context()
	ids := make([]string, 0, 1<<14)
	for i := range 1<<14 - 1 {
		ids = append(ids, "other-"+strconv.Itoa(i))
	}
	ids = append(ids, id)
	if err := s.a.Delete(ctx, ids...); err != nil {
		t.Fatal(err)
	}
	s.hintLate(t)
	waitUntil(t, func() bool { return s.a.Stats().WritesRepaired >= uint64(len(ids)) }, "A's carry-over to be repaired")
	u, err := s.a.Get(ctx, id, func(context.Context, string) (user, error) { return user{ID: id, Name: "v1"}, nil })
	if err != nil || u.Name != "v1" {
		t.Errorf("control: A serves %+v, %v", u, err)
	}
}

// advGateCodec is JSON, except that encoding a value named "v1" waits,
// while gated, until released: a slow codec (large values, compression).
type advGateCodec struct {
	codec.Codec[user]
	gated   *atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (c advGateCodec) Append(dst []byte, v user) ([]byte, error) {
	if v.Name == "v1" && c.gated.CompareAndSwap(true, false) {
		close(c.entered)
		<-c.release
	}
	b, err := json.Marshal(v)
	return append(dst, b...), err
}

// TestSetRacingSwitchCarriedOver: contract 1 and the carry-over rule. Set
// reads the keyspace in effect (generation G), then encodes the value; if
// the process switches to G+1 meanwhile, the Set (whose SET goes to the G
// key) must still be carried over to the new keys. (The first version
// recorded the write after reading the keyspace, so a switch in between
// missed it, and the next read of the generation forgot it: found by the
// adversarial review.) The control runs the same Set without the switch.
func TestSetRacingSwitchCarriedOver(t *testing.T) {
	t.Run("SwitchDuringSet", func(t *testing.T) { advSetAcrossSwitch(t, true) })
	t.Run("Control", func(t *testing.T) { advSetAcrossSwitch(t, false) })
}

func advSetAcrossSwitch(t *testing.T, during bool) {
	const id = "x"
	codec := advGateCodec{Codec: codec.JSON[user](), gated: new(atomic.Bool), entered: make(chan struct{}), release: make(chan struct{})}
	s := advGenerationSetup(t, id, tiercache.Options[user]{L2: tiercache.L2[user]{Codec: codec}})
	ctx := t.Context()

	set := make(chan error, 1)
	if during {
		codec.gated.Store(true)
		go func() { set <- s.a.Set(ctx, id, user{ID: id, Name: "v1"}) }()
		<-codec.entered // Set has read the keyspace: A is on "v1" (its subscription is stalled)
		s.hintLate(t)   // A reads the generation and switches
		close(codec.release)
	} else {
		go func() { set <- s.a.Set(ctx, id, user{ID: id, Name: "v1"}) }()
		if err := <-set; err != nil {
			t.Fatal(err)
		}
		s.hintLate(t)
		waitUntil(t, func() bool { return s.a.Stats().WritesRepaired >= 1 }, "A's carry-over to be repaired")
		set <- nil
	}
	if err := <-set; err != nil {
		t.Fatal(err)
	}
	load := func(context.Context, string) (user, error) { return user{ID: id, Name: "v1"}, nil }
	u, err := s.a.Get(ctx, id, load)
	if err != nil || u.Name != "v1" {
		t.Errorf("after A's Set(%q, v1) returned nil (A switched to %s during it), A serves %+v, %v: the value the Set replaced", id, s.bumped, u, err)
		t.Logf("the Set went to %s (now %s); %s holds %s", "v1:"+s.o.Keyspace.Name+":"+id, advGet(t, "v1:"+s.o.Keyspace.Name+":"+id), s.a.Key(id), advGet(t, s.a.Key(id)))
	}
}

func advGet(t *testing.T, key string) string {
	v, err := srv(t).Do("GET", key)
	if err != nil {
		return err.Error()
	}
	if s, ok := v.(string); ok {
		if i := strings.IndexByte(s, '{'); i >= 0 {
			return s[i:]
		}
	}
	return fmt.Sprint(v)
}

// TestBumpPastDoublePrecision: contract 5, "Once BumpVersion returns, the
// calling process serves nothing cached before it". The scripts compute in
// Lua doubles; a stored generation at or above 2^53 (written by another
// tool) made stored+1 == stored, so every bump returned the generation in
// use and BumpVersion nil without moving anything (found by the
// adversarial review). Now such a value is unreadable (overwritten), and
// the Go side checks that a bump went up.
func TestBumpPastDoublePrecision(t *testing.T) {
	name := keyspaceName(t)
	if _, err := srv(t).Do("SET", "tiercache:version:"+name, "9007199254740993"); err != nil {
		t.Fatal(err)
	}
	a := newCache(t, srv(t).Addr(), tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: name}, TTL: time.Hour, L1: tiercache.L1[user]{TTL: time.Hour}})
	ctx := t.Context()
	if _, err := a.Get(ctx, "k", func(context.Context, string) (user, error) { return user{ID: "k", Name: "before"}, nil }); err != nil {
		t.Fatal(err)
	}
	before := a.Keyspace().Version
	b, err := a.BumpVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	u, err := a.Get(ctx, "k", func(context.Context, string) (user, error) { return user{ID: "k", Name: "after"}, nil })
	if a.Keyspace().Version == before || u.Name != "after" {
		t.Errorf("BumpVersion returned %+v, nil, but the keyspace stayed %q and Get serves %+v, %v, cached before the bump", b, before, u, err)
	}
}
