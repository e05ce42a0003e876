// Package redisstore is the Redis tier of tiercache: a tiercache.Store that
// also coordinates rebuilds across processes (tiercache.Locker), carries
// invalidation messages (tiercache.Broadcaster) and reads many keys in one
// round trip (tiercache.MultiGetter).
//
// It works with every go-redis client: a single node (*redis.Client), a
// Sentinel failover client (also a *redis.Client) and Redis Cluster
// (*redis.ClusterClient). Every key a script touches shares the value key's
// Cluster hash slot: the rebuild lock of "v1:user:42" is
// "{v1:user:42}:lock".
//
// # Deadlines
//
// Every call is bounded by Options.Timeout. go-redis honours a context's
// deadline on the socket only when the client has ContextTimeoutEnabled; for
// a *redis.Client without it, the store uses a shallow copy of the client
// (Client.WithTimeout, sharing its connection pool) whose read and write
// timeouts are Options.Timeout. A *redis.ClusterClient or *redis.Ring without
// ContextTimeoutEnabled is bounded by its own ReadTimeout and WriteTimeout
// instead: set ContextTimeoutEnabled on it.
//
// The store does not retry: go-redis already retries what is safe to
// (MaxRetries), and tiercache's circuit breaker handles a tier that keeps
// failing.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache"
)

// Options configure a Store. The zero value of each field means its default.
type Options struct {
	// Timeout bounds every call to Redis. Default 200 ms: well under a
	// request's budget, far above a healthy Redis's latency.
	Timeout time.Duration
	// HealthInterval is how often an idle invalidation subscription pings
	// Redis to notice that its connection is dead; a subscription that does
	// not answer within Timeout is reported down and re-established.
	// Default 1 second.
	HealthInterval time.Duration
}

// Defaults.
const (
	DefaultTimeout        = 200 * time.Millisecond
	DefaultHealthInterval = time.Second
)

// Store is a tiercache.Store on Redis. It is safe for concurrent use. It does
// not own the client: closing the client is the caller's job.
type Store struct {
	client  redis.UniversalClient // for pub/sub
	cmd     redis.UniversalClient // for everything else
	cluster bool
	opts    Options
}

var (
	_ tiercache.Store       = (*Store)(nil)
	_ tiercache.Locker      = (*Store)(nil)
	_ tiercache.Broadcaster = (*Store)(nil)
	_ tiercache.MultiGetter = (*Store)(nil)
	_ tiercache.Incrementer = (*Store)(nil)
	_ tiercache.BatchLocker = (*Store)(nil)
)

// New returns a Store that uses client. opts may be nil.
func New(client redis.UniversalClient, opts *Options) *Store {
	s := &Store{client: client, cmd: client}
	if opts != nil {
		s.opts = *opts
	}
	if s.opts.Timeout <= 0 {
		s.opts.Timeout = DefaultTimeout
	}
	if s.opts.HealthInterval <= 0 {
		s.opts.HealthInterval = DefaultHealthInterval
	}
	switch c := client.(type) {
	case *redis.Client:
		if !c.Options().ContextTimeoutEnabled {
			s.cmd = c.WithTimeout(s.opts.Timeout)
		}
	case *redis.ClusterClient:
		s.cluster = true
	}
	return s
}

func (s *Store) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opts.Timeout)
}

// LockKey returns the key of the rebuild lock of key: in key's Cluster hash
// slot, so that one script may touch both.
func LockKey(key string) string {
	if hasHashTag(key) {
		return key + ":lock"
	}
	return "{" + key + "}:lock"
}

// hasHashTag reports whether Redis Cluster hashes key by a "{tag}" in it
// rather than whole.
func hasHashTag(key string) bool {
	i := strings.IndexByte(key, '{')
	if i < 0 {
		return false
	}
	return strings.IndexByte(key[i+1:], '}') > 0
}

// Get returns the bytes under key, or nil if there are none.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	b, err := s.cmd.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore: GET: %w", err)
	}
	return b, nil
}

// GetMulti returns the bytes under each key, nil where there are none, in
// one round trip: one MGET on a single node; on a cluster, one GET per key
// pipelined, which go-redis sends as one batch per node.
func (s *Store) GetMulti(ctx context.Context, keys []string) ([][]byte, error) {
	out := make([][]byte, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	if !s.cluster {
		vals, err := s.cmd.MGet(ctx, keys...).Result()
		if err != nil {
			return nil, fmt.Errorf("redisstore: MGET: %w", err)
		}
		for i, v := range vals {
			if str, ok := v.(string); ok {
				out[i] = []byte(str)
			}
		}
		return out, nil
	}
	cmds := make([]*redis.StringCmd, len(keys))
	_, err := s.cmd.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, k)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redisstore: pipelined GET: %w", err)
	}
	for i, cmd := range cmds {
		b, err := cmd.Bytes()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return nil, fmt.Errorf("redisstore: pipelined GET: %w", err)
		default:
			out[i] = b
		}
	}
	return out, nil
}

// setScript stores a value and deletes the key's rebuild lock, cancelling a
// rebuild in progress (its Fill will find the lock gone).
var setScript = redis.NewScript(`
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[2])
return 1`)

// Set stores value under key for ttl and cancels any rebuild of key.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	if err := setScript.Run(ctx, s.cmd, []string{key, LockKey(key)}, value, pxOf(ttl)).Err(); err != nil {
		return fmt.Errorf("redisstore: set: %w", err)
	}
	return nil
}

// Delete removes keys and their rebuild locks, cancelling rebuilds in
// progress, in one round trip (one DEL per key and its lock, which share a
// hash slot, pipelined).
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	_, err := s.cmd.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Del(ctx, k, LockKey(k))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisstore: DEL: %w", err)
	}
	return nil
}

// tryLockScript takes the lock if free and returns the current value too.
var tryLockScript = redis.NewScript(`
local got = redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2])
local cur = redis.call('GET', KEYS[1])
if got then return {1, cur} end
return {0, cur}`)

// TryLock takes key's rebuild lock (SET NX PX on LockKey(key)) if nobody
// holds it, and returns what key holds, in one round trip.
func (s *Store) TryLock(ctx context.Context, key, token string, ttl time.Duration) (bool, []byte, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	res, err := tryLockScript.Run(ctx, s.cmd, []string{key, LockKey(key)}, token, pxOf(ttl)).Slice()
	if err != nil {
		return false, nil, fmt.Errorf("redisstore: lock: %w", err)
	}
	if len(res) != 2 {
		return false, nil, fmt.Errorf("redisstore: lock: unexpected reply %v", res)
	}
	acquired := res[0] == int64(1)
	var cur []byte
	if str, ok := res[1].(string); ok {
		cur = []byte(str)
	}
	return acquired, cur, nil
}

// fillScript stores the value only if the token still holds the lock,
// releases the lock and announces the fill (when a channel is given),
// atomically. PUBLISH takes no key, so the script stays within the value
// key's slot on a cluster.
var fillScript = redis.NewScript(`
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  redis.call('DEL', KEYS[2])
  if ARGV[4] ~= '' then
    redis.call('PUBLISH', ARGV[4], ARGV[5])
  end
  return 1
end
return 0`)

func fillArgs(op tiercache.FillOp) ([]string, []any) {
	return []string{op.Key, LockKey(op.Key)}, []any{op.Token, op.Value, pxOf(op.TTL), op.Channel, op.Message}
}

// Fill stores op.Value under op.Key only if op.Token still holds the key's
// lock, releases the lock and publishes op.Message on op.Channel if set.
func (s *Store) Fill(ctx context.Context, op tiercache.FillOp) (bool, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	keys, args := fillArgs(op)
	n, err := fillScript.Run(ctx, s.cmd, keys, args...).Int()
	if err != nil {
		return false, fmt.Errorf("redisstore: fill: %w", err)
	}
	return n == 1, nil
}

// unlockScript is compare-and-delete.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

// Unlock releases key's lock if token still holds it.
func (s *Store) Unlock(ctx context.Context, key, token string) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	if err := unlockScript.Run(ctx, s.cmd, []string{LockKey(key)}, token).Err(); err != nil {
		return fmt.Errorf("redisstore: unlock: %w", err)
	}
	return nil
}

// TryLockMulti is TryLock for many keys in one round trip: the scripts are
// pipelined (one batch per node on a cluster). A script in a pipeline is sent
// whole (EVAL), since a pipeline cannot fall back from EVALSHA on NOSCRIPT.
func (s *Store) TryLockMulti(ctx context.Context, keys, tokens []string, ttl time.Duration) ([]bool, [][]byte, error) {
	if len(keys) != len(tokens) {
		return nil, nil, fmt.Errorf("redisstore: lock: %d keys, %d tokens", len(keys), len(tokens))
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	cmds := make([]*redis.Cmd, len(keys))
	_, err := s.cmd.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = tryLockScript.Eval(ctx, p, []string{k, LockKey(k)}, tokens[i], pxOf(ttl))
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("redisstore: lock: %w", err)
	}
	acquired := make([]bool, len(keys))
	current := make([][]byte, len(keys))
	for i, cmd := range cmds {
		res, err := cmd.Slice()
		if err != nil || len(res) != 2 {
			return nil, nil, fmt.Errorf("redisstore: lock: reply %v: %w", res, err)
		}
		acquired[i] = res[0] == int64(1)
		if str, ok := res[1].(string); ok {
			current[i] = []byte(str)
		}
	}
	return acquired, current, nil
}

// FillMulti is Fill for many keys in one round trip (pipelined scripts).
func (s *Store) FillMulti(ctx context.Context, ops []tiercache.FillOp) ([]bool, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	cmds := make([]*redis.Cmd, len(ops))
	_, err := s.cmd.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, op := range ops {
			keys, args := fillArgs(op)
			cmds[i] = fillScript.Eval(ctx, p, keys, args...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redisstore: fill: %w", err)
	}
	stored := make([]bool, len(ops))
	for i, cmd := range cmds {
		n, err := cmd.Int()
		if err != nil {
			return nil, fmt.Errorf("redisstore: fill: %w", err)
		}
		stored[i] = n == 1
	}
	return stored, nil
}

// pxOf converts a TTL to whole milliseconds, at least 1.
func pxOf(ttl time.Duration) int64 {
	return max(ttl.Milliseconds(), 1)
}

// Incr adds one to the integer under key (INCR) and returns the result.
func (s *Store) Incr(ctx context.Context, key string) (int64, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	n, err := s.cmd.Incr(ctx, key).Result()
	if err != nil {
		return 0, fmt.Errorf("redisstore: INCR: %w", err)
	}
	return n, nil
}
