package redisstore_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cachetest"
	"github.com/tiercache/tiercache/driver"
	"github.com/tiercache/tiercache/internal/wire"
	"github.com/tiercache/tiercache/redisstore"
)

func newPlain(t *testing.T) *redisstore.Plain {
	t.Helper()
	p, err := redisstore.NewPlain(newClient(t, srv(t).Addr()), nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// plainKey returns a key of the test's own, unique across runs.
func plainKey(t *testing.T, name string) string {
	return fmt.Sprintf("v1:%s:%x%s", t.Name(), rand.Uint64(), name)
}

// envelope is what tiercache hands a store: a JSON payload, or a negative
// entry.
func envelope(key string, soft time.Time, payload string, negative bool) []byte {
	h := wire.Header{Codec: 1, Soft: soft, KeyHash: wire.KeyHash(key)}
	if negative {
		h.Flags = wire.Negative
		payload = ""
	}
	return append(wire.AppendHeader(nil, h), payload...)
}

// decoded is an envelope read back, checked to be one of key's.
func decoded(t *testing.T, key string, b []byte) (wire.Header, string) {
	t.Helper()
	h, payload, err := wire.Decode(b)
	if err != nil {
		t.Fatalf("Get(%s) = %q: not an envelope: %v", key, b, err)
	}
	if h.Codec != 1 || h.KeyHash != wire.KeyHash(key) {
		t.Fatalf("Get(%s): codec %d, key hash %x; want 1, %x", key, h.Codec, h.KeyHash, wire.KeyHash(key))
	}
	return h, string(payload)
}

func TestNewPlainRefusesClusterAndRing(t *testing.T) {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{srv(t).Addr()}})
	defer cc.Close()
	if _, err := redisstore.NewPlain(cc, nil); !errors.Is(err, redisstore.ErrPlainCluster) {
		t.Errorf("NewPlain(cluster client) = %v, want ErrPlainCluster", err)
	}
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": srv(t).Addr()}})
	defer ring.Close()
	if _, err := redisstore.NewPlain(ring, nil); !errors.Is(err, redisstore.ErrPlainCluster) {
		t.Errorf("NewPlain(ring) = %v, want ErrPlainCluster", err)
	}
	fo := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "m", SentinelAddrs: []string{srv(t).Addr()}})
	defer fo.Close()
	if _, err := redisstore.NewPlain(fo, nil); err != nil {
		t.Errorf("NewPlain(Sentinel failover client) = %v, want a store", err)
	}
}

func TestPlainCapabilities(t *testing.T) {
	p := newPlain(t)
	c := p.Capabilities()
	if !c.PlainJSON || !c.Locks || !c.Messages || c.Generations {
		t.Fatalf("Capabilities = %+v; want PlainJSON, Locks, Messages, no Generations", c)
	}
	if _, _, err := p.Generation(t.Context(), "k", 0); !errors.Is(err, driver.ErrUnsupported) {
		t.Errorf("Generation = %v, want ErrUnsupported", err)
	}
	if _, err := p.Bump(t.Context(), "k", 0); !errors.Is(err, driver.ErrUnsupported) {
		t.Errorf("Bump = %v, want ErrUnsupported", err)
	}
}

// TestPlainGetTranslates: what other code wrote (plain JSON with a TTL, the
// "not found" marker however spaced, a value without TTL, another type)
// reads as the envelope it means, its soft expiry the TTL left, in one call
// for many keys.
func TestPlainGetTranslates(t *testing.T) {
	p := newPlain(t)
	k := func(n string) string { return plainKey(t, n) }
	val, nil1, nil2, nil3, notNil, persist, hash, missing, empty := k("val"), k("nil1"), k("nil2"), k("nil3"), k("notnil"), k("persist"), k("hash"), k("missing"), k("empty")
	for _, c := range [][]string{
		{"SET", val, `{"id":"1","name":"Ada"}`, "EX", "300"},
		{"SET", nil1, `{"__nil":true}`, "EX", "60"},
		{"SET", nil2, `{"__nil": true}`, "EX", "60"},
		{"SET", nil3, ` { "__nil" : true } `, "EX", "60"},
		{"SET", notNil, `{"__nil":false}`, "EX", "60"},
		{"SET", persist, `"plain string"`},
		{"HSET", hash, "f", "v"},
		{"SET", empty, ``, "EX", "60"},
	} {
		if _, err := srv(t).Do(c...); err != nil {
			t.Fatal(c, err)
		}
	}
	before := time.Now()
	got, err := p.Get(t.Context(), []string{val, nil1, nil2, nil3, notNil, persist, hash, missing, empty})
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	within := func(name string, h wire.Header, ttl time.Duration) {
		t.Helper()
		// The TTL left is read in the same step as the value: between
		// ttl-1s (a slow machine) and ttl from the time of the call.
		if h.Soft.Before(before.Add(ttl-time.Second)) || h.Soft.After(after.Add(ttl)) {
			t.Errorf("%s: soft expiry %v from now, want about %v", name, h.Soft.Sub(before), ttl)
		}
	}
	h, payload := decoded(t, val, got[0])
	if h.Negative() || payload != `{"id":"1","name":"Ada"}` {
		t.Errorf("value: negative %v, payload %q", h.Negative(), payload)
	}
	within("value", h, 300*time.Second)
	for i, key := range []string{nil1, nil2, nil3} {
		h, _ := decoded(t, key, got[1+i])
		if !h.Negative() {
			t.Errorf("%s: not negative", key)
		}
		within(key, h, 60*time.Second)
	}
	if h, payload := decoded(t, notNil, got[4]); h.Negative() || payload != `{"__nil":false}` {
		t.Errorf(`{"__nil":false}: negative %v, payload %q; want a value`, h.Negative(), payload)
	}
	if h, _ := decoded(t, persist, got[5]); h.Soft.Before(before.Add(365 * 24 * time.Hour)) {
		t.Errorf("a value without TTL: soft expiry %v, want far in the future", h.Soft)
	}
	if len(got[6]) != 0 {
		t.Errorf("a hash in a batch = %q, want nothing (MGET's nil: a miss)", got[6])
	}
	if one, err := p.Get(t.Context(), []string{hash}); err != nil || one[0] == nil || len(one[0]) != 0 {
		t.Errorf("a hash alone = %q, %v; want an empty, non-nil (foreign) entry", one, err)
	}
	if got[7] != nil {
		t.Errorf("missing = %q, want nil", got[7])
	}
	if h, payload := decoded(t, empty, got[8]); h.Negative() || payload != "" {
		t.Errorf("empty string: negative %v, payload %q; want an empty payload (not JSON: a miss for the codec)", h.Negative(), payload)
	}
	if got, err := p.Get(t.Context(), []string{val}); err != nil || got[0] == nil {
		t.Errorf("Get of one key = %q, %v", got, err)
	}
}

// TestPlainWritesPlainJSON: Set and Fill store the payload alone, a negative
// entry as {"__nil":true}, with the TTL given; what the format cannot hold
// is refused before anything is written.
func TestPlainWritesPlainJSON(t *testing.T) {
	p := newPlain(t)
	ctx := t.Context()
	val, neg, filled := plainKey(t, "val"), plainKey(t, "neg"), plainKey(t, "fill")
	soft := time.Now().Add(time.Minute)
	if err := p.Set(ctx, val, envelope(val, soft, `{"id":"2"}`, false), 90*time.Second, driver.Note{}); err != nil {
		t.Fatal(err)
	}
	if err := p.Set(ctx, neg, envelope(neg, soft, "", true), 30*time.Second, driver.Note{}); err != nil {
		t.Fatal(err)
	}
	tok := driver.NewToken()
	if r, err := p.Lock(ctx, []driver.LockRequest{{Key: filled, Token: tok}}, time.Minute); err != nil || !r[0].Acquired {
		t.Fatalf("Lock = %+v, %v", r, err)
	}
	stored, err := p.Fill(ctx, []driver.FillOp{{Key: filled, Token: tok, Value: envelope(filled, soft, `[1,2]`, false), TTL: 45 * time.Second}})
	if err != nil || !stored[0] {
		t.Fatalf("Fill = %v, %v", stored, err)
	}
	for _, c := range []struct {
		key, want string
		ttl       int64
	}{{val, `{"id":"2"}`, 90_000}, {neg, `{"__nil":true}`, 30_000}, {filled, `[1,2]`, 45_000}} {
		if got, _ := srv(t).Do("GET", c.key); got != c.want {
			t.Errorf("GET %s = %q, want %q", c.key, got, c.want)
		}
		if ms, _ := srv(t).Do("PTTL", c.key); ms.(int64) <= c.ttl-1000 || ms.(int64) > c.ttl {
			t.Errorf("PTTL %s = %v, want about %d", c.key, ms, c.ttl)
		}
	}
	if ms, _ := srv(t).Do("EXISTS", redisstore.PlainLockKey(filled)); ms != int64(0) {
		t.Errorf("the fill left its lock %s", redisstore.PlainLockKey(filled))
	}

	gob := append(wire.AppendHeader(nil, wire.Header{Codec: 2, Soft: soft, KeyHash: wire.KeyHash(val)}), 1, 2, 3)
	for name, b := range map[string][]byte{
		"not an envelope": []byte(`{"id":"3"}`),
		"another codec":   gob,
		"the nil marker":  envelope(val, soft, `{"__nil":true}`, false),
	} {
		if err := p.Set(ctx, val, b, time.Minute, driver.Note{}); !errors.Is(err, redisstore.ErrNotPlain) {
			t.Errorf("Set(%s) = %v, want ErrNotPlain", name, err)
		}
		if _, err := p.Fill(ctx, []driver.FillOp{{Key: val, Token: tok, Value: b, TTL: time.Minute}}); !errors.Is(err, redisstore.ErrNotPlain) {
			t.Errorf("Fill(%s) = %v, want ErrNotPlain", name, err)
		}
	}
	if got, _ := srv(t).Do("GET", val); got != `{"id":"2"}` {
		t.Errorf("after refused writes GET = %q, want the value before them", got)
	}
}

// TestPlainLockHonoursForeignLocks: a lock:{key} taken by other code (any
// content, an expiry) is waited for, never taken over; tiercache's own lock
// is what other code's SET NX finds; a fill whose lock was lost stores
// nothing; Set and Delete remove the lock, cancelling a rebuild.
func TestPlainLockHonoursForeignLocks(t *testing.T) {
	p := newPlain(t)
	ctx := t.Context()
	k := plainKey(t, "k")
	lk := redisstore.PlainLockKey(k)
	if lk != "lock:"+k {
		t.Fatalf("PlainLockKey(%q) = %q", k, lk)
	}
	if _, err := srv(t).Do("SET", lk, "python-4711", "NX", "EX", "5"); err != nil {
		t.Fatal(err)
	}
	if _, err := srv(t).Do("SET", k, `{"id":"old"}`, "EX", "100"); err != nil {
		t.Fatal(err)
	}
	tok := driver.NewToken()
	r, err := p.Lock(ctx, []driver.LockRequest{{Key: k, Token: tok}}, time.Minute)
	if err != nil || r[0].Acquired || r[0].Repaired {
		t.Fatalf("Lock over a foreign lock = %+v, %v; want not acquired, not repaired", r, err)
	}
	if _, payload := decoded(t, k, r[0].Current); payload != `{"id":"old"}` {
		t.Errorf("Lock's Current = %q, want what the key holds", payload)
	}
	if got, _ := srv(t).Do("GET", lk); got != "python-4711" {
		t.Errorf("the foreign lock holds %q, want it untouched", got)
	}
	if stored, err := p.Fill(ctx, []driver.FillOp{{Key: k, Token: tok, Value: envelope(k, time.Now(), `{"id":"mine"}`, false), TTL: time.Minute}}); err != nil || stored[0] {
		t.Errorf("Fill without the lock = %v, %v; want not stored", stored, err)
	}

	// The holder releases; tiercache takes the lock, and other code's
	// SET NX then fails.
	if _, err := srv(t).Do("DEL", lk); err != nil {
		t.Fatal(err)
	}
	r, err = p.Lock(ctx, []driver.LockRequest{{Key: k, Token: tok}}, 5*time.Second)
	if err != nil || !r[0].Acquired {
		t.Fatalf("Lock of a free lock = %+v, %v", r, err)
	}
	if got, _ := srv(t).Do("SET", lk, "python-4712", "NX", "EX", "5"); got != nil {
		t.Errorf("other code's SET NX over tiercache's lock = %v, want nil (refused)", got)
	}
	if ms, _ := srv(t).Do("PTTL", lk); ms.(int64) <= 0 || ms.(int64) > 5000 {
		t.Errorf("PTTL of tiercache's lock = %v, want within 5 s", ms)
	}
	// Retried after a lost reply: the same token takes it again.
	if r, err := p.Lock(ctx, []driver.LockRequest{{Key: k, Token: tok}}, 5*time.Second); err != nil || !r[0].Acquired {
		t.Errorf("Lock again with the holding token = %+v, %v; want acquired", r, err)
	}
	// Set cancels the rebuild: the fill stores nothing.
	if err := p.Set(ctx, k, envelope(k, time.Now().Add(time.Minute), `{"id":"set"}`, false), time.Minute, driver.Note{}); err != nil {
		t.Fatal(err)
	}
	if stored, err := p.Fill(ctx, []driver.FillOp{{Key: k, Token: tok, Value: envelope(k, time.Now(), `{"id":"late"}`, false), TTL: time.Minute}}); err != nil || stored[0] {
		t.Errorf("Fill after Set = %v, %v; want not stored", stored, err)
	}
	if got, _ := srv(t).Do("GET", k); got != `{"id":"set"}` {
		t.Errorf("GET = %q, want Set's value", got)
	}
	// Delete removes the value and the lock.
	if r, err := p.Lock(ctx, []driver.LockRequest{{Key: k, Token: tok}}, 5*time.Second); err != nil || !r[0].Acquired {
		t.Fatalf("Lock = %+v, %v", r, err)
	}
	if err := p.Delete(ctx, []string{k}, driver.Note{}); err != nil {
		t.Fatal(err)
	}
	if n, _ := srv(t).Do("EXISTS", k, lk); n != int64(0) {
		t.Errorf("after Delete %d of the key and its lock exist, want none", n)
	}
	if err := p.Unlock(ctx, []driver.LockRequest{{Key: k, Token: tok}}); err != nil {
		t.Errorf("Unlock of a lock already gone: %v", err)
	}
}

// TestPlainLockRepairsLocksThatCannotExpire: a lock:{key} without an expiry
// or of another type would block rebuilds forever: it is taken over.
func TestPlainLockRepairsLocksThatCannotExpire(t *testing.T) {
	p := newPlain(t)
	a, b := plainKey(t, "a"), plainKey(t, "b")
	if _, err := srv(t).Do("SET", redisstore.PlainLockKey(a), "stuck"); err != nil {
		t.Fatal(err)
	}
	if _, err := srv(t).Do("HSET", redisstore.PlainLockKey(b), "f", "v"); err != nil {
		t.Fatal(err)
	}
	tokA, tokB := driver.NewToken(), driver.NewToken()
	r, err := p.Lock(t.Context(), []driver.LockRequest{{Key: a, Token: tokA}, {Key: b, Token: tokB}}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for i, tok := range []string{tokA, tokB} {
		if !r[i].Acquired || !r[i].Repaired {
			t.Errorf("lock %d: %+v, want acquired and repaired", i, r[i])
		}
		k := []string{a, b}[i]
		if got, _ := srv(t).Do("GET", redisstore.PlainLockKey(k)); got != tok {
			t.Errorf("lock of %s holds %q, want the token", k, got)
		}
	}
}

// gobCodec is a codec that is not JSON.
type gobCodec struct{}

func (gobCodec) ID() byte                                  { return 200 }
func (gobCodec) Append(dst []byte, v user) ([]byte, error) { return append(dst, v.ID...), nil }
func (gobCodec) Decode(data []byte, v *user) error         { v.ID = string(data); return nil }

// TestNewRefusesWhatPlainCannotHold: a codec other than JSON and a stale
// window are refused by tiercache.New with a Plain store, and accepted with
// the envelope store.
func TestNewRefusesWhatPlainCannotHold(t *testing.T) {
	rdb := newClient(t, srv(t).Addr())
	p, err := redisstore.NewPlain(rdb, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, o := range map[string]tiercache.Options[user]{
		"Codec":    {L2: tiercache.L2[user]{Codec: gobCodec{}}},
		"StaleTTL": {StaleTTL: time.Minute},
	} {
		o.Keyspace = tiercache.Keyspace{Name: "user"}
		o.Store = p
		if c, err := tiercache.New(&o); !errors.Is(err, tiercache.ErrInvalidOptions) || !strings.Contains(err.Error(), name) {
			t.Errorf("New with a Plain store and %s = %v; want ErrInvalidOptions naming %s", name, err, name)
			if c != nil {
				c.Close()
			}
		}
		o.Store = redisstore.New(rdb, nil)
		c, err := tiercache.New(&o)
		if err != nil {
			t.Errorf("New with the envelope store and %s = %v; want a cache", name, err)
			continue
		}
		c.Close()
	}
	// Runtime version bumps would move tiercache to keys the other code
	// does not read: BumpVersion refuses them.
	c, err := tiercache.New(&tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: "user"}, Store: p})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.BumpVersion(t.Context()); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("BumpVersion on a Plain store = %v, want errors.ErrUnsupported", err)
	}
}

// TestPlainForeignBytesAreAMiss: whatever another writer left under a key
// (tiercache's envelope, text, truncated or mistyped JSON, another Redis
// type) is a miss for a cache on a Plain store, counted as corrupt, never a
// panic, and the fill overwrites it with plain JSON (SET replaces a key of
// any type).
func TestPlainForeignBytesAreAMiss(t *testing.T) {
	rdb := newClient(t, srv(t).Addr())
	p, err := redisstore.NewPlain(rdb, nil)
	if err != nil {
		t.Fatal(err)
	}
	space := fmt.Sprintf("foreign%x", rand.Uint64())
	c, err := tiercache.New(&tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: space}, Store: p})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	env := envelope("v1:"+space+":env", time.Now().Add(time.Hour), `{"id":"env"}`, false)
	cases := map[string][]string{
		"env":       {"SET", "", string(env), "EX", "100"},
		"text":      {"SET", "", "hello", "EX", "100"},
		"truncated": {"SET", "", `{"id":"tr`, "EX", "100"},
		"mistyped":  {"SET", "", `{"id":42}`, "EX", "100"},
		"array":     {"SET", "", `[1,2,3]`, "EX", "100"},
		"binary":    {"SET", "", "\x00\xff\xc7\x01", "EX", "100"},
		"hash":      {"HSET", "", "f", "v"},
	}
	for id, cmd := range cases {
		key := c.Key(id)
		cmd[1] = key
		if _, err := srv(t).Do(cmd...); err != nil {
			t.Fatal(err)
		}
		loaded := false
		u, err := c.Get(t.Context(), id, func(_ context.Context, id string) (user, error) {
			loaded = true
			return user{ID: id, Name: "loaded"}, nil
		})
		if err != nil || !loaded || u.Name != "loaded" {
			t.Errorf("%s: Get = %+v, %v, loaded %v; want a miss, loaded", id, u, err, loaded)
			continue
		}
		// The fill follows the answer: wait for it (at most 5 s).
		want := `{"id":"` + id + `","name":"loaded"}`
		var got any
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if got, _ = srv(t).Do("GET", key); got == want || time.Now().After(deadline) {
				break
			}
		}
		if got != want {
			t.Errorf("%s: after the fill GET = %q; want the loaded value as plain JSON", id, got)
		}
	}
	if s := c.Stats(); s.L2Corrupt < uint64(len(cases)) {
		t.Errorf("L2Corrupt = %d, want at least %d", s.L2Corrupt, len(cases))
	}
}

// asBytes makes a Plain store hold arbitrary bytes, as the conformance suite
// writes: each value is stored as the JSON string of its base64, in an
// envelope, and read back through it.
type asBytes struct{ *redisstore.Plain }

func (a asBytes) wrap(key string, b []byte) []byte {
	return envelope(key, time.Now().Add(time.Hour), `"`+base64.StdEncoding.EncodeToString(b)+`"`, false)
}

func (a asBytes) unwrap(key string, b []byte) []byte {
	if len(b) == 0 {
		return b // nothing, or a foreign entry
	}
	_, payload, err := wire.Decode(b)
	if err != nil {
		panic(fmt.Sprintf("Plain returned %q for %s: %v", b, key, err))
	}
	var s string
	if err := json.Unmarshal(payload, &s); err != nil {
		return []byte("undecodable: " + string(payload)) // written by something else
	}
	out, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return []byte("undecodable: " + s)
	}
	return out
}

func (a asBytes) Get(ctx context.Context, keys []string) ([][]byte, error) {
	bs, err := a.Plain.Get(ctx, keys)
	for i := range bs {
		bs[i] = a.unwrap(keys[i], bs[i])
	}
	return bs, err
}

func (a asBytes) Set(ctx context.Context, key string, value []byte, ttl time.Duration, note driver.Note) error {
	return a.Plain.Set(ctx, key, a.wrap(key, value), ttl, note)
}

func (a asBytes) Lock(ctx context.Context, locks []driver.LockRequest, ttl time.Duration) ([]driver.LockResult, error) {
	rs, err := a.Plain.Lock(ctx, locks, ttl)
	for i := range rs {
		rs[i].Current = a.unwrap(locks[i].Key, rs[i].Current)
	}
	return rs, err
}

func (a asBytes) Fill(ctx context.Context, ops []driver.FillOp) ([]bool, error) {
	wrapped := make([]driver.FillOp, len(ops))
	for i, op := range ops {
		wrapped[i] = op
		wrapped[i].Value = a.wrap(op.Key, op.Value)
	}
	return a.Plain.Fill(ctx, wrapped)
}

// TestPlainConformance runs the driver.Store conformance suite (locks,
// fills, cancellation, contention, batches, messages) on a Plain store.
func TestPlainConformance(t *testing.T) {
	cachetest.TestStore(t, func(t *testing.T) driver.Store { return asBytes{newPlain(t)} })
}

// BenchmarkGet compares a read of one key by the envelope store (GET) and
// by the plain store (a script reading the value and its PTTL), and of 100
// keys (MGET against one script).
func BenchmarkGet(b *testing.B) {
	rdb := redis.NewClient(&redis.Options{Addr: srv(b).Addr()})
	defer rdb.Close()
	plain, err := redisstore.NewPlain(rdb, nil)
	if err != nil {
		b.Fatal(err)
	}
	stores := []struct {
		name string
		s    driver.Store
	}{{"envelope", redisstore.New(rdb, nil)}, {"plain", plain}}
	keys := make([]string, 100)
	for i := range keys {
		keys[i] = fmt.Sprintf("bench:v1:user:%d", i)
		if err := rdb.Set(b.Context(), keys[i], `{"id":"1","name":"Ada Lovelace"}`, time.Hour).Err(); err != nil {
			b.Fatal(err)
		}
	}
	for _, n := range []int{1, 100} {
		for _, st := range stores {
			b.Run(fmt.Sprintf("%s/keys=%d", st.name, n), func(b *testing.B) {
				cpu := redisCPU(b, rdb)
				for b.Loop() {
					if _, err := st.s.Get(b.Context(), keys[:n]); err != nil {
						b.Fatal(err)
					}
				}
				// Redis's own CPU per Get (user + system, from INFO), which
				// a loaded client machine distorts less than ns/op.
				b.ReportMetric((redisCPU(b, rdb)-cpu)*1e6/float64(b.N), "redis-µs/op")
			})
		}
	}
}

// redisCPU returns the CPU seconds the server has used.
func redisCPU(b *testing.B, rdb *redis.Client) float64 {
	var sum float64
	for _, line := range strings.Split(rdb.Info(context.Background(), "cpu").Val(), "\n") {
		name, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if name == "used_cpu_sys" || name == "used_cpu_user" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatal(err)
			}
			sum += f
		}
	}
	return sum
}
