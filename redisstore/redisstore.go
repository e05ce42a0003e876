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
// Every call is bounded by Options.Timeout (default 200 ms), for the whole
// call: pool wait, dial, handshake, command and go-redis's retries. Reads on
// the request path (GET/MGET, the lock script, unlock, the generation) get
// a tighter deadline that follows the latency Redis shows: 3 times the p99
// of the last second's single-key calls of their kind (a batch keeps
// Timeout), no less than Options.MinTimeout (25 ms), so that a Redis that
// stops answering costs a request milliseconds. Writes
// (Set, Delete, Publish, Bump) and fills keep Timeout: a failed read is a
// miss, a failed write an error and a repair.
//
// go-redis honours a context's deadline on the socket only when the client
// has ContextTimeoutEnabled. Without it, socket reads and writes are bounded
// by the client's ReadTimeout and WriteTimeout whatever the context says
// (a call to a frozen Redis took 402 ms against a 200 ms Timeout: a new
// connection's handshake, then the command, each waited the full read
// timeout). So for such a client the store runs each call on a goroutine of
// its own and stops waiting at the deadline; the call finishes in the
// background, bounded by Timeout (a *redis.Client is used through a clone
// whose read and write timeouts are Timeout, sharing its pool). At most 128
// calls may run past their deadline at once; past that, calls fail at once.
// ContextTimeoutEnabled spares that goroutine per call.
//
// # Unreachable servers
//
// New adds a hook to the client (its Process hooks are the next hooks
// themselves: no cost per command) that sees the dials made for the
// store's calls. A dial that fails (connection refused, no route) ends the
// call at once with an error wrapping driver.ErrUnreachable, on which
// tiercache opens its circuit breaker; without it go-redis retries the dial
// (DialerRetries, 100 ms apart) and the command until the deadline, and
// reports only the deadline.
//
// The store does not retry: go-redis already retries what is safe to
// (MaxRetries), and tiercache's circuit breaker handles a tier that keeps
// failing.
//
// # Sharing Redis with other languages
//
// NewPlain returns a store that keeps plain JSON values, {"__nil":true} for
// "not found" and "lock:{key}" rebuild locks, the format of cache-aside
// code in other languages (the Python service tiercache grew from), so that
// both share one Redis: see Plain for what that format keeps and loses.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/driver"
	"github.com/tiercache/tiercache/internal/keys"
)

// Options configure a Store. The zero value of each field means its default.
type Options struct {
	// Timeout bounds every call to Redis: the ceiling of its deadline.
	// Default 200 ms: well under a request's budget, far above a healthy
	// Redis's latency.
	Timeout time.Duration
	// MinTimeout is the floor of a call's deadline. Below Timeout, the
	// deadline follows the latency Redis shows: 3 times the p99 of the calls
	// of the last second, within [MinTimeout, Timeout], so that a Redis that
	// stops answering costs a call milliseconds rather than Timeout (see
	// "Deadlines" in the package documentation). Default 25 ms; MinTimeout
	// equal to Timeout (or above it) makes every deadline Timeout.
	MinTimeout time.Duration
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
	DefaultMinTimeout     = 25 * time.Millisecond
	DefaultHealthInterval = time.Second
)

// Store is a driver.Store on Redis. It is safe for concurrent use. It does
// not own the client: closing the client is the caller's job.
type Store struct {
	client  redis.UniversalClient // for pub/sub
	cmd     redis.UniversalClient // for everything else
	cluster bool
	opts    Options
	// lockOf derives the rebuild lock's key from a value key: LockKey, or
	// for a Plain store PlainLockKey.
	lockOf func(string) string
	lat    [ops]*latency // of single-key reads, by kind: see deadline
	// bounded: the client does not honour contexts' deadlines, so calls run
	// on goroutines of their own (see do); late counts those running past
	// their deadline.
	bounded bool
	late    atomic.Int64
	// answered is when a call was last answered (unix nanos): see deadline.
	answered atomic.Int64
}

var _ driver.Store = (*Store)(nil)

// New returns a Store that uses client. opts may be nil.
func New(client redis.UniversalClient, opts *Options) *Store {
	s := &Store{client: client, cmd: client, lockOf: LockKey}
	if opts != nil {
		s.opts = *opts
	}
	if s.opts.Timeout <= 0 {
		s.opts.Timeout = DefaultTimeout
	}
	if s.opts.HealthInterval <= 0 {
		s.opts.HealthInterval = DefaultHealthInterval
	}
	if s.opts.MinTimeout <= 0 {
		s.opts.MinTimeout = DefaultMinTimeout
	}
	s.opts.MinTimeout = min(s.opts.MinTimeout, s.opts.Timeout)
	for i := range s.lat {
		s.lat[i] = newLatency()
	}
	honours := false // the client bounds calls by their contexts' deadlines
	switch c := client.(type) {
	case *redis.Client:
		honours = c.Options().ContextTimeoutEnabled
		if !honours {
			s.cmd = c.WithTimeout(s.opts.Timeout)
		}
	case *redis.ClusterClient:
		s.cluster = true
		honours = c.Options().ContextTimeoutEnabled
	case *redis.Ring:
		honours = c.Options().ContextTimeoutEnabled
	}
	s.bounded = !honours
	// On the client itself, not on the clone: the clone shares the client's
	// connection pool, whose dials go through the client's hooks.
	client.AddHook(dialHook{})
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
	if len(keys) == 0 {
		return [][]byte{}, nil
	}
	return do(s, ctx, opGet, len(keys), func(ctx context.Context) ([][]byte, error) { return s.get(ctx, keys) })
}

func (s *Store) get(ctx context.Context, keys []string) ([][]byte, error) {
	out := make([][]byte, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
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
	_, err := do(s, ctx, write, 0, func(ctx context.Context) (none, error) { return none{}, s.set(ctx, key, value, ttl, note) })
	return err
}

func (s *Store) set(ctx context.Context, key string, value []byte, ttl time.Duration, note driver.Note) error {
	keys, args := []string{key, s.lockOf(key)}, []any{value, pxOf(ttl), note.Channel, note.Message}
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
	_, err := do(s, ctx, write, 0, func(ctx context.Context) (none, error) { return none{}, s.delete(ctx, keys, note) })
	return err
}

func (s *Store) delete(ctx context.Context, keys []string, note driver.Note) error {
	if len(keys) == 0 {
		return nil
	}
	if !s.cluster {
		all := make([]string, 0, 2*len(keys))
		for _, k := range keys {
			all = append(all, k, s.lockOf(k))
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
				p.Del(ctx, k, s.lockOf(k))
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
				p.Del(ctx, k, s.lockOf(k))
			}
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// A lock attempt is plain commands, pipelined (one round trip): for each
// key "SET {key}:lock token NX PX ttl GET", then the value key's read (GET,
// or one MGET for many keys on a single node). Plain commands cost Redis
// about a microsecond each where a script costs several, and this needs no
// script: the read comes after the SET on the same connection, so a fill
// that released the lock before our SET took it is seen by our read, and a
// fill after it cannot happen (we hold the lock, or its holder's fill is
// seen by the read or announced later). The SET's GET returns what held the
// lock: nothing (taken), our own token (go-redis retried a call whose reply
// was lost: ours too), or another holder. A lock held by another, or that
// could not be read as a string, goes through lockScript in a second round
// trip, which checks it could be one of tiercache's and repairs it if not:
// contention is the rare path (in-process single-flight leaves one attempt
// per process), so it pays the script. A server older than Redis 7.0
// refuses NX with GET: every attempt then goes through the script.

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

// Lock takes the rebuild locks of the requests (see driver.Store.Lock and
// the comment above lockScript): one pipeline of plain commands, and
// lockScript for the locks another holds.
func (s *Store) Lock(ctx context.Context, locks []driver.LockRequest, ttl time.Duration) ([]driver.LockResult, error) {
	return do(s, ctx, opLock, len(locks), func(ctx context.Context) ([]driver.LockResult, error) { return s.lock(ctx, locks, ttl) })
}

func (s *Store) lock(ctx context.Context, locks []driver.LockRequest, ttl time.Duration) ([]driver.LockResult, error) {
	out := make([]driver.LockResult, len(locks))
	if len(locks) == 0 {
		return out, nil
	}
	px := pxOf(ttl)
	sets := make([]*redis.Cmd, len(locks))
	var gets []*redis.StringCmd
	var mget *redis.SliceCmd
	_, err := s.cmd.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, l := range locks {
			sets[i] = p.Do(ctx, "SET", s.lockOf(l.Key), l.Token, "NX", "PX", px, "GET")
		}
		if len(locks) > 1 && !s.cluster {
			ks := make([]string, len(locks))
			for i, l := range locks {
				ks[i] = l.Key
			}
			mget = p.MGet(ctx, ks...)
			return nil
		}
		gets = make([]*redis.StringCmd, len(locks))
		for i, l := range locks {
			gets[i] = p.Get(ctx, l.Key)
		}
		return nil
	})
	if err != nil && !isReply(err) {
		return nil, fmt.Errorf("redisstore: lock: %w", err)
	}
	var vals []any
	if mget != nil {
		if vals, err = mget.Result(); err != nil {
			return nil, fmt.Errorf("redisstore: lock: MGET: %w", err)
		}
	}
	var contended []int
	for i, l := range locks {
		held, err := sets[i].Text()
		switch {
		case errors.Is(err, redis.Nil) || (err == nil && held == l.Token):
			out[i].Acquired = true
		case err == nil || isReply(err):
			// Held by another, or not a string, or a server that refuses
			// NX with GET: the script decides.
			contended = append(contended, i)
			continue
		default:
			return nil, fmt.Errorf("redisstore: lock: %w", err)
		}
		if mget != nil {
			if str, ok := vals[i].(string); ok {
				out[i].Current = []byte(str)
			}
			continue
		}
		b, err := gets[i].Bytes()
		switch {
		case errors.Is(err, redis.Nil):
		case isWrongType(err):
			out[i].Current = foreign
		case err != nil:
			return nil, fmt.Errorf("redisstore: lock: GET: %w", err)
		default:
			out[i].Current = b
		}
	}
	if len(contended) > 0 {
		if err := s.lockScripted(ctx, locks, contended, px, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// lockScripted runs lockScript for locks[i] for each i in idx and stores
// the results in out[i]: one EVALSHA, or for many the scripts pipelined
// (sent whole: a pipeline cannot fall back from EVALSHA on NOSCRIPT).
func (s *Store) lockScripted(ctx context.Context, locks []driver.LockRequest, idx []int, px int64, out []driver.LockResult) error {
	res, err := s.evalEach(ctx, lockScript, len(idx), func(j int) ([]string, []any) {
		l := locks[idx[j]]
		return []string{l.Key, s.lockOf(l.Key)}, []any{l.Token, px}
	})
	if err != nil {
		return fmt.Errorf("redisstore: lock: %w", err)
	}
	for j, i := range idx {
		rs, _ := res[j].([]any)
		if err := lockResult(&out[i], rs); err != nil {
			return err
		}
	}
	return nil
}

// isReply reports an error that is Redis's reply to a command (the command
// was answered), as opposed to a failure to get an answer.
func isReply(err error) bool {
	if errors.Is(err, redis.Nil) {
		return true
	}
	var re redis.Error
	return errors.As(err, &re)
}

func lockResult(r *driver.LockResult, res []any) error {
	if len(res) != 3 {
		return fmt.Errorf("redisstore: lock: unexpected reply %v", res)
	}
	r.Acquired = res[0] == int64(1)
	r.Repaired = res[1] == int64(1)
	r.Current = nil
	if str, ok := res[2].(string); ok {
		r.Current = []byte(str)
	}
	return nil
}

// fillScript stores the value only if the token still holds the lock,
// releases the lock and publishes the note, atomically (the PUBLISH first:
// see setScript), for each op: KEYS are each op's value key and lock key,
// ARGV each op's token, value, TTL in milliseconds, channel and message. A
// retry of a fill whose reply was lost finds its own bytes stored (an
// envelope carries its soft expiry and rebuild time, so another fill's
// bytes differ) and reports them stored. PUBLISH takes no key, so on a
// cluster a script of one op stays within the value key's slot; a script
// of many ops is for a single node.
var fillScript = redis.NewScript(`
local out = {}
for i = 1, #KEYS / 2 do
  local k, l, a = KEYS[2*i-1], KEYS[2*i], 5*(i-1)
  out[i] = 0
  if redis.pcall('GET', l) == ARGV[a+1] then
    if ARGV[a+4] ~= '' then
      redis.call('PUBLISH', ARGV[a+4], ARGV[a+5])
    end
    redis.call('SET', k, ARGV[a+2], 'PX', ARGV[a+3])
    redis.call('DEL', l)
    out[i] = 1
  elseif redis.pcall('GET', k) == ARGV[a+2] then
    out[i] = 1 -- stored by this very fill: go-redis retried it after a lost reply
  end
end
return out`)

// fillArgs returns the keys and arguments of fillScript for ops.
func (s *Store) fillArgs(ops []driver.FillOp) ([]string, []any) {
	keys := make([]string, 0, 2*len(ops))
	args := make([]any, 0, 5*len(ops))
	for _, op := range ops {
		keys = append(keys, op.Key, s.lockOf(op.Key))
		args = append(args, op.Token, op.Value, pxOf(op.TTL), op.Note.Channel, op.Note.Message)
	}
	return keys, args
}

// Fill stores each op's value if its token still holds the key's lock (see
// driver.Store.Fill): one script for all ops (EVALSHA; on a cluster one per
// op, pipelined, one batch per node).
func (s *Store) Fill(ctx context.Context, ops []driver.FillOp) ([]bool, error) {
	return do(s, ctx, write, 0, func(ctx context.Context) ([]bool, error) { return s.fill(ctx, ops) })
}

func (s *Store) fill(ctx context.Context, ops []driver.FillOp) ([]bool, error) {
	stored := make([]bool, len(ops))
	if len(ops) == 0 {
		return stored, nil
	}
	if len(ops) == 1 || !s.cluster {
		keys, args := s.fillArgs(ops)
		res, err := fillScript.Run(ctx, s.cmd, keys, args...).Int64Slice()
		if err != nil {
			return nil, fmt.Errorf("redisstore: fill: %w", err)
		}
		if len(res) != len(ops) {
			return nil, fmt.Errorf("redisstore: fill: unexpected reply %v", res)
		}
		for i, n := range res {
			stored[i] = n == 1
		}
		return stored, nil
	}
	res, err := s.evalEach(ctx, fillScript, len(ops), func(i int) ([]string, []any) { return s.fillArgs(ops[i : i+1]) })
	if err != nil {
		return nil, fmt.Errorf("redisstore: fill: %w", err)
	}
	for i, r := range res {
		rs, ok := r.([]any)
		if !ok || len(rs) != 1 {
			return nil, fmt.Errorf("redisstore: fill: unexpected reply %v", r)
		}
		stored[i] = rs[0] == int64(1)
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
	_, err := do(s, ctx, opUnlock, len(locks), func(ctx context.Context) (none, error) { return none{}, s.unlock(ctx, locks) })
	return err
}

func (s *Store) unlock(ctx context.Context, locks []driver.LockRequest) error {
	if len(locks) == 1 {
		if err := unlockScript.Run(ctx, s.cmd, []string{s.lockOf(locks[0].Key)}, locks[0].Token).Err(); err != nil {
			return fmt.Errorf("redisstore: unlock: %w", err)
		}
		return nil
	}
	_, err := s.cmd.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, l := range locks {
			unlockScript.Eval(ctx, p, []string{s.lockOf(l.Key)}, l.Token)
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
	res, err := do(s, ctx, opGeneration, 1, func(ctx context.Context) ([]any, error) {
		return generationScript.Run(ctx, s.cmd, []string{key}, known).Slice()
	})
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
	return do(s, ctx, write, 0, func(ctx context.Context) (int64, error) { return s.bump(ctx, key, known) })
}

func (s *Store) bump(ctx context.Context, key string, known int64) (int64, error) {
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
