// Package redisstore is the Redis tier of tiercache: a driver.Store that
// stores entries, takes the fleet-wide rebuild locks, carries invalidation
// messages and keeps runtime generations.
//
// It works with every go-redis client: a single node (*redis.Client), a
// Sentinel failover client (also a *redis.Client) and Redis Cluster
// (*redis.ClusterClient). Every key a script touches shares the value key's
// Cluster hash slot: the rebuild lock of "v1:user:42" is "{v1:user:42}:lock".
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

	"github.com/tiercache/tiercache/driver"
	"github.com/tiercache/tiercache/internal/keys"
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
	// WaitReplicas, if set, makes Set and Delete wait (Redis WAIT, within
	// Timeout) until that many replicas have the write, and fail if fewer
	// do. Redis replicates asynchronously: without it, a write the master
	// acknowledged but had not replicated is lost if the master fails over,
	// and the value it replaced comes back until its TTL. With it, such a
	// write is an error, and tiercache retries it in the background.
	// Default 0: no wait.
	WaitReplicas int
}

// Defaults.
const (
	DefaultTimeout        = 200 * time.Millisecond
	DefaultHealthInterval = time.Second
)

// Store is a driver.Store on Redis. It is safe for concurrent use. It does
// not own the client: closing the client is the caller's job.
type Store struct {
	client  redis.UniversalClient // for pub/sub
	cmd     redis.UniversalClient // for everything else
	cluster bool
	opts    Options
}

var _ driver.Store = (*Store)(nil)

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

// Capabilities reports that the store does everything: locks, messages,
// generations, and tracking where the server allows it (see Track).
func (s *Store) Capabilities() driver.Capabilities {
	return driver.Capabilities{Locks: true, Messages: true, Generations: true, Tracking: true, NotifyBound: s.opts.HealthInterval + s.opts.Timeout}
}

func (s *Store) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opts.Timeout)
}

// LockKey returns the key of the rebuild lock of key: in key's Cluster hash
// slot, so that one script may touch both.
func LockKey(key string) string { return keys.Lock(key) }

// isWrongType reports a reply to a command on a key of another type.
func isWrongType(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "WRONGTYPE")
}

// foreign is what a key of another type reads as: not nil (something is
// there), not an entry.
var foreign = []byte{}

// Get returns the bytes under each key, nil where there are none: a GET for
// one key; for more, one MGET on a single node and on a cluster one GET per
// key pipelined, which go-redis sends as one batch per node.
func (s *Store) Get(ctx context.Context, keys []string) ([][]byte, error) {
	out := make([][]byte, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	if len(keys) == 1 {
		b, err := s.cmd.Get(ctx, keys[0]).Bytes()
		switch {
		case errors.Is(err, redis.Nil):
		case isWrongType(err):
			out[0] = foreign
		case err != nil:
			return nil, fmt.Errorf("redisstore: GET: %w", err)
		default:
			out[0] = b
		}
		return out, nil
	}
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
	if err != nil && !errors.Is(err, redis.Nil) && !isWrongType(err) {
		return nil, fmt.Errorf("redisstore: pipelined GET: %w", err)
	}
	for i, cmd := range cmds {
		b, err := cmd.Bytes()
		switch {
		case errors.Is(err, redis.Nil):
		case isWrongType(err):
			out[i] = foreign
		case err != nil:
			return nil, fmt.Errorf("redisstore: pipelined GET: %w", err)
		default:
			out[i] = b
		}
	}
	return out, nil
}

// setScript stores a value, deletes the key's rebuild lock (cancelling a
// rebuild in progress: its fill will find the lock gone) and publishes the
// note, in one step. Redis does not undo a script's writes when a later
// command in it fails, so the PUBLISH comes first: if it is refused (an ACL
// without it), nothing is written. Subscribers cannot act on the message
// before the script has ended, so they see the write done.
var setScript = redis.NewScript(`
if ARGV[3] ~= '' then
  redis.call('PUBLISH', ARGV[3], ARGV[4])
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[2])
return 1`)

// Set stores value under key for ttl, cancels any rebuild of key and
// publishes note, in one script.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration, note driver.Note) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	keys, args := []string{key, LockKey(key)}, []any{value, pxOf(ttl), note.Channel, note.Message}
	if s.opts.WaitReplicas == 0 {
		if err := setScript.Run(ctx, s.cmd, keys, args...).Err(); err != nil {
			return fmt.Errorf("redisstore: set: %w", err)
		}
		return nil
	}
	node, err := s.nodeOf(ctx, key)
	if err != nil {
		return fmt.Errorf("redisstore: set: %w", err)
	}
	return s.replicated(ctx, node, "set", func(p redis.Pipeliner) { setScript.Eval(ctx, p, keys, args...) })
}

// nodeOf returns the client of the node holding key: the store's client, or
// on a cluster the master of key's slot (WAIT must follow the write on its
// connection to its node).
func (s *Store) nodeOf(ctx context.Context, key string) (redis.Cmdable, error) {
	if c, ok := s.cmd.(*redis.ClusterClient); ok {
		return c.MasterForKey(ctx, key)
	}
	return s.cmd, nil
}

// replicated runs the writes queue adds in one pipeline on node, followed by
// a WAIT for Options.WaitReplicas replicas, and fails if fewer have them.
func (s *Store) replicated(ctx context.Context, node redis.Cmdable, what string, queue func(redis.Pipeliner)) error {
	var wait *redis.Cmd
	_, err := node.Pipelined(ctx, func(p redis.Pipeliner) error {
		queue(p)
		wait = p.Do(ctx, "WAIT", s.opts.WaitReplicas, max(s.opts.Timeout/4, time.Millisecond).Milliseconds())
		return nil
	})
	if err != nil {
		if cc, ok := s.cmd.(*redis.ClusterClient); ok && isRedirect(err) {
			// The node no longer serves the slot (a failover, a reshard):
			// the next attempt goes to the one that does.
			cc.ReloadState(ctx)
		}
		return fmt.Errorf("redisstore: %s: %w", what, err)
	}
	if n, _ := wait.Int64(); n < int64(s.opts.WaitReplicas) {
		return fmt.Errorf("redisstore: %s: %w: %d of %d replicas have it", what, ErrNotReplicated, n, s.opts.WaitReplicas)
	}
	return nil
}

// isRedirect reports a cluster node's answer that another node serves the
// slot.
func isRedirect(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "MOVED ") || strings.HasPrefix(msg, "ASK ") || strings.Contains(msg, "CLUSTERDOWN")
}

// ErrNotReplicated is the error of a write that fewer replicas than
// Options.WaitReplicas acknowledged in time: a failover may lose it.
var ErrNotReplicated = errors.New("not replicated")

// deleteScript deletes its keys and publishes the note, in one step (the
// PUBLISH first: see setScript). It is for a single node: on a cluster the
// keys of one call span slots.
var deleteScript = redis.NewScript(`
if ARGV[1] ~= '' then
  redis.call('PUBLISH', ARGV[1], ARGV[2])
end
redis.call('DEL', unpack(KEYS))
return 1`)

// Delete removes keys and their rebuild locks, cancelling rebuilds in
// progress, then publishes note. On a single node it is one script (DEL of
// each key and its lock, then PUBLISH): all or nothing. On a cluster the
// DELs are pipelined (one DEL of a key and its lock, which share a slot, per
// key; one batch per node) and PUBLISH is sent once they have all been
// answered, so that no subscriber hears of the change before it is made.
func (s *Store) Delete(ctx context.Context, keys []string, note driver.Note) error {
	if len(keys) == 0 {
		return nil
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	if !s.cluster {
		all := make([]string, 0, 2*len(keys))
		for _, k := range keys {
			all = append(all, k, LockKey(k))
		}
		if s.opts.WaitReplicas > 0 {
			return s.replicated(ctx, s.cmd, "delete", func(p redis.Pipeliner) {
				deleteScript.Eval(ctx, p, all, note.Channel, note.Message)
			})
		}
		if err := deleteScript.Run(ctx, s.cmd, all, note.Channel, note.Message).Err(); err != nil {
			return fmt.Errorf("redisstore: delete: %w", err)
		}
		return nil
	}
	if err := s.deleteOnCluster(ctx, keys); err != nil {
		return err
	}
	if note.Channel != "" {
		if err := s.cmd.Publish(ctx, note.Channel, note.Message).Err(); err != nil {
			return fmt.Errorf("redisstore: deleted, but PUBLISH failed: %w", err)
		}
	}
	return nil
}

// deleteOnCluster deletes keys and their locks on a cluster: pipelined, one
// batch per node, and with WaitReplicas one pipeline per node followed by
// its WAIT.
func (s *Store) deleteOnCluster(ctx context.Context, keys []string) error {
	if s.opts.WaitReplicas == 0 {
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
	byNode := map[*redis.Client][]string{}
	cc := s.cmd.(*redis.ClusterClient)
	for _, k := range keys {
		node, err := cc.MasterForKey(ctx, k)
		if err != nil {
			return fmt.Errorf("redisstore: DEL: %w", err)
		}
		byNode[node] = append(byNode[node], k)
	}
	for node, ks := range byNode {
		err := s.replicated(ctx, node, "DEL", func(p redis.Pipeliner) {
			for _, k := range ks {
				p.Del(ctx, k, LockKey(k))
			}
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// lockScript takes the lock if it is free, or if what holds it cannot be a
// lock of tiercache's: another type, no expiry, or content that is not a
// token (32 hex digits). A lock already holding the token is taken too:
// go-redis retries a call whose reply was lost, and the retry must not see
// its own first run as another process. It returns whether the lock was
// taken, whether it was repaired, and what the value key holds (an empty
// string for another type: a foreign entry).
var lockScript = redis.NewScript(`
local got = redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2])
local repaired = 0
if not got then
  local ok = redis.call('TYPE', KEYS[2]).ok == 'string' and redis.call('PTTL', KEYS[2]) >= 0
  if ok then
    local v = redis.call('GET', KEYS[2])
    if v == ARGV[1] then
      got = true -- ours: go-redis retried a call whose reply was lost
    end
    ok = string.len(v) == 32 and string.find(v, '^[0-9a-f]+$') ~= nil
  end
  if not ok then
    redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
    got, repaired = true, 1
  end
end
local cur = redis.pcall('GET', KEYS[1])
if type(cur) == 'table' then cur = '' end
if got then return {1, repaired, cur} end
return {0, 0, cur}`)

// Lock takes the rebuild locks of the requests (see driver.Store.Lock): one
// script, or for many keys the scripts pipelined (one batch per node on a
// cluster). A script in a pipeline is sent whole (EVAL), since a pipeline
// cannot fall back from EVALSHA on NOSCRIPT.
func (s *Store) Lock(ctx context.Context, locks []driver.LockRequest, ttl time.Duration) ([]driver.LockResult, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	out := make([]driver.LockResult, len(locks))
	if len(locks) == 1 {
		l := locks[0]
		res, err := lockScript.Run(ctx, s.cmd, []string{l.Key, LockKey(l.Key)}, l.Token, pxOf(ttl)).Slice()
		if err != nil {
			return nil, fmt.Errorf("redisstore: lock: %w", err)
		}
		return out, lockResult(&out[0], res)
	}
	cmds := make([]*redis.Cmd, len(locks))
	_, err := s.cmd.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, l := range locks {
			cmds[i] = lockScript.Eval(ctx, p, []string{l.Key, LockKey(l.Key)}, l.Token, pxOf(ttl))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redisstore: lock: %w", err)
	}
	for i, cmd := range cmds {
		res, err := cmd.Slice()
		if err != nil {
			return nil, fmt.Errorf("redisstore: lock: %w", err)
		}
		if err := lockResult(&out[i], res); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func lockResult(r *driver.LockResult, res []any) error {
	if len(res) != 3 {
		return fmt.Errorf("redisstore: lock: unexpected reply %v", res)
	}
	r.Acquired = res[0] == int64(1)
	r.Repaired = res[1] == int64(1)
	if str, ok := res[2].(string); ok {
		r.Current = []byte(str)
	}
	return nil
}

// fillScript stores the value only if the token still holds the lock,
// releases the lock and publishes the note, atomically (the PUBLISH first:
// see setScript). A retry of a fill whose reply was lost finds its own
// bytes stored (an envelope carries its soft expiry and rebuild time, so
// another fill's bytes differ) and reports them stored. PUBLISH takes no key, so the script stays within the
// value key's slot on a cluster.
var fillScript = redis.NewScript(`
if redis.pcall('GET', KEYS[2]) == ARGV[1] then
  if ARGV[4] ~= '' then
    redis.call('PUBLISH', ARGV[4], ARGV[5])
  end
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  redis.call('DEL', KEYS[2])
  return 1
end
if redis.pcall('GET', KEYS[1]) == ARGV[2] then
  return 1 -- stored by this very fill: go-redis retried it after a lost reply
end
return 0`)

func fillArgs(op driver.FillOp) ([]string, []any) {
	return []string{op.Key, LockKey(op.Key)}, []any{op.Token, op.Value, pxOf(op.TTL), op.Note.Channel, op.Note.Message}
}

// Fill stores each op's value if its token still holds the key's lock (see
// driver.Store.Fill): one script, or the scripts pipelined.
func (s *Store) Fill(ctx context.Context, ops []driver.FillOp) ([]bool, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	stored := make([]bool, len(ops))
	if len(ops) == 1 {
		keys, args := fillArgs(ops[0])
		n, err := fillScript.Run(ctx, s.cmd, keys, args...).Int()
		if err != nil {
			return nil, fmt.Errorf("redisstore: fill: %w", err)
		}
		stored[0] = n == 1
		return stored, nil
	}
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
	for i, cmd := range cmds {
		n, err := cmd.Int()
		if err != nil {
			return nil, fmt.Errorf("redisstore: fill: %w", err)
		}
		stored[i] = n == 1
	}
	return stored, nil
}

// unlockScript is compare-and-delete.
var unlockScript = redis.NewScript(`
if redis.pcall('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

// Unlock releases each lock its token still holds (scripts pipelined).
func (s *Store) Unlock(ctx context.Context, locks []driver.LockRequest) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	if len(locks) == 1 {
		if err := unlockScript.Run(ctx, s.cmd, []string{LockKey(locks[0].Key)}, locks[0].Token).Err(); err != nil {
			return fmt.Errorf("redisstore: unlock: %w", err)
		}
		return nil
	}
	_, err := s.cmd.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, l := range locks {
			unlockScript.Eval(ctx, p, []string{LockKey(l.Key)}, l.Token)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisstore: unlock: %w", err)
	}
	return nil
}

// generationScript raises the generation stored under KEYS[1] to ARGV[1]
// if it is lower, missing or unreadable (not an integer below 2^53, which
// Lua's doubles hold exactly), and returns the result and whether it raised
// it.
var generationScript = redis.NewScript(`
local cur = redis.pcall('GET', KEYS[1])
cur = type(cur) == 'string' and tonumber(cur) or nil
if cur ~= nil and (cur >= 9007199254740992 or cur < 0 or cur ~= math.floor(cur)) then
  cur = nil -- not a generation tiercache can use exactly
end
local known = tonumber(ARGV[1])
if cur == nil or cur < known then
  redis.call('SET', KEYS[1], ARGV[1])
  return {ARGV[1], 1}
end
return {string.format('%d', cur), 0}`)

// Generation makes the generation stored under key at least known and
// returns it (see driver.Store.Generation).
func (s *Store) Generation(ctx context.Context, key string, known int64) (int64, bool, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	res, err := generationScript.Run(ctx, s.cmd, []string{key}, known).Slice()
	if err != nil {
		return 0, false, fmt.Errorf("redisstore: generation: %w", err)
	}
	if len(res) != 2 {
		return 0, false, fmt.Errorf("redisstore: generation: unexpected reply %v", res)
	}
	str, _ := res[0].(string)
	var gen int64
	if _, err := fmt.Sscan(str, &gen); err != nil {
		return 0, false, fmt.Errorf("redisstore: generation: unexpected reply %v", res)
	}
	return gen, res[1] == int64(1), nil
}

// bumpScript stores a generation above the stored one and ARGV[1], and no
// lower than the server's clock in microseconds, so that a bump after the
// key was lost (a restart without persistence, FLUSHALL, eviction) still
// yields a generation never used before (unless the server's clock went
// back). Lua's numbers are doubles, exact for integers up to 2^53:
// microseconds since 1970 fit until the year 2255.
var bumpScript = redis.NewScript(`
local cur = redis.pcall('GET', KEYS[1])
cur = type(cur) == 'string' and tonumber(cur) or 0
if cur >= 9007199254740992 or cur < 0 or cur ~= math.floor(cur) then
  cur = 0 -- unreadable (see generationScript): overwritten
end
local t = redis.call('TIME')
local us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local gen = math.max(cur + 1, tonumber(ARGV[1]) + 1, us)
local s = string.format('%d', gen)
redis.call('SET', KEYS[1], s)
return s`)

// Bump stores and returns a new generation under key (see
// driver.Store.Bump).
func (s *Store) Bump(ctx context.Context, key string, known int64) (int64, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	str, err := bumpScript.Run(ctx, s.cmd, []string{key}, known).Text()
	if err != nil {
		return 0, fmt.Errorf("redisstore: bump: %w", err)
	}
	var gen int64
	if _, err := fmt.Sscan(str, &gen); err != nil {
		return 0, fmt.Errorf("redisstore: bump: unexpected reply %q", str)
	}
	return gen, nil
}

// pxOf converts a TTL to whole milliseconds, at least 1.
func pxOf(ttl time.Duration) int64 {
	return max(ttl.Milliseconds(), 1)
}
