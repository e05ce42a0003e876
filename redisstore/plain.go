package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/driver"
)

// Plain is a driver.Store on Redis that keeps entries in the plain format
// of cache-aside code in other languages (the Python service tiercache grew
// from), so that both share one Redis, read each other's entries and never
// rebuild a key at once:
//
//	value      the value's JSON alone under the value key ("v1:user:42")
//	expiry     the key's Redis TTL (SET ... PX); none: fresh until deleted
//	not found  {"__nil":true} (read however spaced)
//	lock       "lock:v1:user:42", SET NX PX: any content with an expiry is
//	           honoured; tiercache's holds a token, released by
//	           compare-and-delete
//
// It translates at the store boundary: tiercache hands it envelopes of the
// JSON codec and it stores their payload; it reads a value with its TTL in
// one MULTI/EXEC and hands tiercache the envelope they describe (soft expiry:
// now + the TTL left). tiercache.New refuses, with this store, a codec other
// than JSON and a StaleTTL (driver.Capabilities.PlainJSON); BumpVersion
// returns an error wrapping errors.ErrUnsupported.
//
// What is kept: L1, fleet-wide single rebuild (tiercache waits for another
// language's lock by polling with backoff within LockWait, as that code
// publishes nothing; that code's SET NX finds tiercache's lock), conditional
// fills (a tiercache fill stores only while its token holds the lock, so a
// tiercache Set or Delete cancels it), negative caching both ways, TTL
// jitter, invalidation messages between tiercache processes, the circuit
// breaker, stale-if-error from L1 (MaxStale) and Fallback.
//
// What is lost: the stale window (one expiry, the Redis TTL: refused), early
// refresh (entries read from Redis carry no rebuild time, so they are never
// refreshed early), runtime version bumps (the other code would not follow
// the keys), the key hash (bytes copied from another key, or a reply
// mismatched after a broken connection, read as this key's value, as they
// would for the other code) and the codec id (any JSON that decodes into the
// value's type is served). Writes by the other code publish nothing: a
// tiercache L1 copy outlives them by up to Options.L1TTL. The other code's
// fills are unconditional (SETEX): a rebuild of its own racing a tiercache
// Set or Delete can write the older value back until its TTL, as it can
// between its own processes. Ids containing ':' or '%' are escaped in
// tiercache's keys ("%3A", "%25") and so are not shared with code that does
// not escape them. A Prefix of "lock:" would make value keys of one cache
// the locks of another: do not use it beside a Plain store.
//
// Redis Cluster is refused (ErrPlainCluster): "lock:v1:user:42" and
// "v1:user:42" hash to different slots, so no script can check the lock and
// write the value in one step, and conditional fills could not hold.
// Sentinel failover clients work.
//
// A Plain is safe for concurrent use and does not own the client.
type Plain struct {
	s *Store
}

var _ driver.Store = (*Plain)(nil)

// ErrPlainCluster is NewPlain's error for a Redis Cluster or Ring client.
var ErrPlainCluster = errors.New(`redisstore: the plain format cannot work on Redis Cluster or a Ring: "lock:{key}" and the value key hash to different slots (or shards), so no step can check the lock and write the value together`)

// PlainLockKey returns the key of the rebuild lock of key in the plain
// format: "lock:" + key, the key other languages' code takes with
// SET lock:{key} token NX EX.
func PlainLockKey(key string) string { return "lock:" + key }

// NewPlain returns a Plain store that uses client, a single node or a
// Sentinel failover client; opts may be nil. It refuses a Redis Cluster or
// Ring client with ErrPlainCluster.
func NewPlain(client redis.UniversalClient, opts *Options) (*Plain, error) {
	switch client.(type) {
	case *redis.ClusterClient, *redis.Ring:
		return nil, ErrPlainCluster
	}
	s := New(client, opts)
	s.lockOf = PlainLockKey
	return &Plain{s: s}, nil
}

// Capabilities reports locks and messages, and PlainJSON, which makes
// tiercache.New refuse options this format cannot honour. Runtime versions
// are not supported: other languages' code would not follow the keys.
func (p *Plain) Capabilities() driver.Capabilities {
	c := p.s.Capabilities()
	c.Generations = false
	c.PlainJSON = true
	return c
}

// Get returns the envelope of what each key holds, nil where there is
// nothing: one MULTI/EXEC reads the values (GET, or MGET for many) and their
// PTTLs, in one round trip and one atomic step. (A Lua script doing the
// same cost Redis two to three times the CPU for 100 keys, GETs in place
// of the MGET about 1.5 times: BenchmarkGet.)
func (p *Plain) Get(ctx context.Context, keys []string) ([][]byte, error) {
	return do(p.s, ctx, opGet, len(keys), func(ctx context.Context) ([][]byte, error) { return p.get(ctx, keys) })
}

func (p *Plain) get(ctx context.Context, keys []string) ([][]byte, error) {
	out := make([][]byte, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	var get *redis.StringCmd
	var mget *redis.SliceCmd
	ttls := make([]*redis.DurationCmd, len(keys))
	_, err := p.s.cmd.TxPipelined(ctx, func(tx redis.Pipeliner) error {
		if len(keys) == 1 {
			get = tx.Get(ctx, keys[0])
		} else {
			mget = tx.MGet(ctx, keys...)
		}
		for i, k := range keys {
			ttls[i] = tx.PTTL(ctx, k)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) && !isWrongType(err) {
		return nil, fmt.Errorf("redisstore: get: %w", err)
	}
	now := time.Now()
	if get != nil {
		v, err := get.Bytes()
		switch {
		case errors.Is(err, redis.Nil):
		case isWrongType(err):
			out[0] = foreign
		case err != nil:
			return nil, fmt.Errorf("redisstore: get: %w", err)
		default:
			out[0] = fromPlain(keys[0], v, ttlMillis(ttls[0]), now)
		}
		return out, nil
	}
	vals, err := mget.Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: get: %w", err)
	}
	for i, v := range vals {
		// MGET gives nil for a key of another type: a miss, which the
		// next fill overwrites as it would a foreign entry.
		if str, ok := v.(string); ok {
			out[i] = fromPlain(keys[i], []byte(str), ttlMillis(ttls[i]), now)
		}
	}
	return out, nil
}

// ttlMillis returns a PTTL reply in milliseconds: -1 for no expiry.
func ttlMillis(c *redis.DurationCmd) int64 {
	d, err := c.Result()
	if err != nil || d < 0 {
		return -1
	}
	return d.Milliseconds()
}

// plainEntry is the envelope of a value and PTTL as a script returned them.
func plainEntry(key string, v, pttl any, now time.Time) []byte {
	str, ok := v.(string)
	if !ok {
		return nil
	}
	ms, _ := pttl.(int64)
	if ms == -3 {
		return foreign
	}
	return fromPlain(key, []byte(str), ms, now)
}

// Set stores the payload of the envelope value under key for ttl, deletes
// key's lock (cancelling a rebuild in progress, tiercache's or another
// language's) and publishes note, as Store.Set does.
func (p *Plain) Set(ctx context.Context, key string, value []byte, ttl time.Duration, note driver.Note) error {
	v, err := toPlain(value)
	if err != nil {
		return err
	}
	return p.s.Set(ctx, key, v, ttl, note)
}

// Delete removes keys and their locks, then publishes note, as Store.Delete
// does.
func (p *Plain) Delete(ctx context.Context, keys []string, note driver.Note) error {
	return p.s.Delete(ctx, keys, note)
}

// plainLockScript takes the lock "lock:{key}" if it is free and returns what
// the value key holds with its PTTL, in one step. A lock held by anything
// else with an expiry is honoured whatever it holds (other languages' code
// puts any token there); one without an expiry, or of another type, could
// never be released and is taken over (repaired). A lock holding the token
// is taken: go-redis retried a call whose reply was lost.
var plainLockScript = redis.NewScript(`
local got = redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2])
local repaired = 0
if not got then
  if redis.call('TYPE', KEYS[2]).ok == 'string' and redis.call('PTTL', KEYS[2]) >= 0 then
    if redis.call('GET', KEYS[2]) == ARGV[1] then
      got = true
    end
  else
    redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
    got, repaired = true, 1
  end
end
local cur = redis.pcall('GET', KEYS[1])
local ttl = -2
if type(cur) == 'table' then
  cur, ttl = '', -3
elseif cur then
  ttl = redis.call('PTTL', KEYS[1])
end
if got then return {1, repaired, cur, ttl} end
return {0, 0, cur, ttl}`)

// Lock takes the rebuild locks of the requests (see driver.Store.Lock):
// one script per request, pipelined for many.
func (p *Plain) Lock(ctx context.Context, locks []driver.LockRequest, ttl time.Duration) ([]driver.LockResult, error) {
	return do(p.s, ctx, opLock, len(locks), func(ctx context.Context) ([]driver.LockResult, error) { return p.lock(ctx, locks, ttl) })
}

func (p *Plain) lock(ctx context.Context, locks []driver.LockRequest, ttl time.Duration) ([]driver.LockResult, error) {
	res, err := p.s.evalEach(ctx, plainLockScript, len(locks), func(i int) ([]string, []any) {
		return []string{locks[i].Key, PlainLockKey(locks[i].Key)}, []any{locks[i].Token, pxOf(ttl)}
	})
	if err != nil {
		return nil, fmt.Errorf("redisstore: lock: %w", err)
	}
	now := time.Now()
	out := make([]driver.LockResult, len(locks))
	for i, r := range res {
		rs, ok := r.([]any)
		if !ok || len(rs) != 4 {
			return nil, fmt.Errorf("redisstore: lock: unexpected reply %v", r)
		}
		out[i] = driver.LockResult{
			Acquired: rs[0] == int64(1),
			Repaired: rs[1] == int64(1),
			Current:  plainEntry(locks[i].Key, rs[2], rs[3], now),
		}
	}
	return out, nil
}

// Fill stores the payload of each op's envelope if its token still holds
// the key's lock, releases the lock and publishes the op's note, in one
// step per op (see driver.Store.Fill). An op whose value the format cannot
// hold fails the call before anything is written. A fill retried after a
// lost reply counts as stored if the key holds its bytes; in this format
// another fill of the same JSON holds the same bytes, which is as good.
func (p *Plain) Fill(ctx context.Context, ops []driver.FillOp) ([]bool, error) {
	plain := make([]driver.FillOp, len(ops))
	for i, op := range ops {
		v, err := toPlain(op.Value)
		if err != nil {
			return nil, err
		}
		plain[i] = op
		plain[i].Value = v
	}
	return p.s.Fill(ctx, plain)
}

// Unlock releases each lock its token still holds.
func (p *Plain) Unlock(ctx context.Context, locks []driver.LockRequest) error {
	return p.s.Unlock(ctx, locks)
}

// Track reports changes of the keys under prefix by any client (see
// Store.Track): with it, the Python service's writes and deletes reach
// tiercache's L1 at once.
func (p *Plain) Track(ctx context.Context, prefix string, h driver.TrackHandler) error {
	return p.s.Track(ctx, prefix, h)
}

// Publish sends message to the subscribers of channel (see Store.Publish).
func (p *Plain) Publish(ctx context.Context, channel, message string) (int64, error) {
	return p.s.Publish(ctx, channel, message)
}

// Subscribe delivers the messages of channel to h until ctx is done (see
// Store.Subscribe).
func (p *Plain) Subscribe(ctx context.Context, channel string, h driver.Handler) error {
	return p.s.Subscribe(ctx, channel, h)
}

// Generation returns driver.ErrUnsupported: in the plain format keys never
// carry a runtime version.
func (p *Plain) Generation(context.Context, string, int64) (int64, bool, error) {
	return 0, false, driver.ErrUnsupported
}

// Bump returns driver.ErrUnsupported (see Generation).
func (p *Plain) Bump(context.Context, string, int64) (int64, error) {
	return 0, driver.ErrUnsupported
}
