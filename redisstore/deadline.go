package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/driver"
)

// Deadlines that follow Redis.
//
// A single-key read's deadline is a multiple (latencyMultiple) of the p99 of the calls
// of the last complete window (latencyWindow), no less than
// Options.MinTimeout and no more than Options.Timeout. On a healthy loopback
// Redis the p99 is well under a millisecond, so a Redis that stops answering
// (SIGSTOP, a hung host, a full network buffer) costs a caller the floor, a
// tens of milliseconds, where a fixed 200 ms deadline cost each of them 200 ms.
// A call that times out is counted at its deadline, so when more than 1% of
// the calls of a window time out the next window's deadline is
// latencyMultiple times longer: a Redis that is only slower than it was
// raises the deadline to the ceiling within a few windows rather than fail
// every call.
//
// The estimator takes no lock: a call adds one to an atomic bucket of a
// log-linear histogram (4 buckets per power of two) of the current window;
// the first call past the window's end swaps windows with a CAS and
// computes the p99 of the one just ended (from its buckets' upper bounds, so
// it errs high). Until a window with calls has ended, the deadline is the
// ceiling.

const (
	latencyWindow   = time.Second
	latencyMultiple = 3
	latencyBuckets  = 96
	// maxLate bounds the calls of a client without ContextTimeoutEnabled
	// still running after the store stopped waiting for them; past it calls
	// fail at once.
	maxLate = 128
)

// latency estimates the recent p99 of calls' durations. The zero value is
// ready to use once base is set; it is safe for concurrent use.
type latency struct {
	base time.Time // origin of the nanosecond times below (monotonic)
	win  [2][latencyBuckets]atomic.Uint32
	cur  atomic.Uint32 // index of the window being filled
	end  atomic.Int64  // when it ends, ns since base
	p99  atomic.Int64  // of the last window with calls, ns; 0: none yet
}

func newLatency() *latency {
	l := &latency{base: time.Now()}
	l.end.Store(int64(latencyWindow))
	return l
}

// bucketOf returns the bucket of a duration in ns: one per 1,024 ns below
// 4,096 ns, then 4 per power of two.
func bucketOf(ns int64) int {
	u := uint64(max(ns, 0)) >> 10
	if u < 4 {
		return int(u)
	}
	n := bits.Len64(u) // at least 3
	sub := int(u>>(n-3)) & 3
	return min((n-2)*4+sub, latencyBuckets-1)
}

// upperOf returns the upper bound, in ns, of bucket i.
func upperOf(i int) int64 {
	if i < 4 {
		return int64(i+1) << 10
	}
	n, sub := i/4+2, i%4
	return int64(5+sub) << (n - 3) << 10
}

// observe records a call of duration d that ended now.
func (l *latency) observe(now time.Time, d time.Duration) {
	t := int64(now.Sub(l.base))
	if t >= l.end.Load() {
		l.rotate(t)
	}
	l.win[l.cur.Load()&1][bucketOf(int64(d))].Add(1)
}

// rotate ends the current window if it is over (one caller does), and
// computes its p99.
func (l *latency) rotate(t int64) {
	e := l.end.Load()
	if t < e || !l.end.CompareAndSwap(e, t+int64(latencyWindow)) {
		return
	}
	old := l.cur.Load() & 1
	next := old ^ 1
	for i := range l.win[next] {
		l.win[next][i].Store(0)
	}
	l.cur.Store(next)
	// Calls in flight may still add to the old window: the p99 is an
	// estimate either way.
	var n uint64
	for i := range l.win[old] {
		n += uint64(l.win[old][i].Load())
	}
	if n == 0 {
		return // an idle window says nothing new
	}
	// The rank of the p99: with fewer than 100 calls, the slowest.
	rank := n - n/100
	var seen uint64
	for i := range l.win[old] {
		if seen += uint64(l.win[old][i].Load()); seen >= rank {
			l.p99.Store(upperOf(i))
			return
		}
	}
	l.p99.Store(upperOf(latencyBuckets - 1))
}

// recent returns the p99 of the last window with calls (0: none yet).
func (l *latency) recent() time.Duration { return time.Duration(l.p99.Load()) }

// op is a kind of call, for its deadline: each kind of read has its own
// estimates (a pipeline of 512 lock scripts costs Redis far more per key
// than an MGET of 512 keys).
type op uint8

const (
	write op = iota // Set, Delete, Fill, Publish, Bump, Ping: the ceiling
	opGet
	opLock
	opUnlock
	opGeneration
	ops
)

// deadline returns the deadline of a call of kind o on n keys (see the top
// of this file). A write gets the ceiling: a failed read is a miss that
// costs a load, but a failed write is an error for the caller, a repair in
// the background, and loads in every process until it is done, so a write
// waits for a Redis that is only slow (a frozen one opens the breaker,
// after which writes fail at once). So does a fill, which stores a value
// already loaded (losing it costs a load in each process that misses it
// next), and so do Bump and Ping. Generation is a read: requests wait for
// it when the generation is not known (after the subscription was lost),
// and a failed one is read again soon. Until a single call's p99 is known
// the deadline is the ceiling.
//
// A store that has not been answered for a second gets the ceiling too: the
// recent p99 describes a Redis that was answering, not the first calls to one
// coming back (a reconnection, a Sentinel failover's lookup of the new
// master), which would otherwise time out before their connection is made,
// forever. While it is not answering the breaker is open, so these are the
// breaker's background probes and writes, not requests.
//
// A batch (n > 1: a GetMany's rounds) gets the ceiling as well: its time
// grows with the machine's load far more than a single call's (a pipeline
// of 512 lock attempts on a busy 2-core machine took tens of milliseconds
// where the recent p99 allowed a few), a batch that fails stores nothing and
// sends all its ids to the origin, and a GetMany is not the latency-critical
// path a Get is. A frozen Redis costs a GetMany one ceiling, after which the
// breaker is open.
func (s *Store) deadline(o op, n int) time.Duration {
	if o == write || n > 1 || time.Now().UnixNano()-s.answered.Load() > int64(time.Second) {
		return s.opts.Timeout
	}
	one := s.lat[o].recent()
	if one == 0 {
		return s.opts.Timeout
	}
	return min(max(latencyMultiple*one, s.opts.MinTimeout), s.opts.Timeout)
}

// observe records a call of kind o on n keys that took d.
func (s *Store) observe(o op, n int, d time.Duration) {
	now := time.Now()
	if o != write && n <= 1 { // the others' deadline is the ceiling
		s.lat[o].observe(now, d)
	}
}

// callCtx is the context of one call: the deadline, and what the dial hook
// saw. Its Value returns itself for hookKey, so that the hook, which gets
// contexts go-redis derives from it, can find it.
type callCtx struct {
	context.Context
	cancel  context.CancelFunc
	dialErr atomic.Pointer[error]
}

type hookKey struct{}

func (c *callCtx) Value(k any) any {
	if k == (hookKey{}) {
		return c
	}
	return c.Context.Value(k)
}

// unreachable is the error of a call whose connection could not be dialled,
// if the dial hook saw one.
func (c *callCtx) unreachable() error {
	if p := c.dialErr.Load(); p != nil {
		return fmt.Errorf("redisstore: %w: %w", driver.ErrUnreachable, *p)
	}
	return nil
}

// dialHook watches the client's dials: when one fails (connection refused,
// no route, a dial timeout) during a call of the store, it ends the call at
// once, marked driver.ErrUnreachable. Without it go-redis retries the dial
// (DialerRetries, 5 by default, 100 ms apart) and then the command
// (MaxRetries) until the deadline, and reports only the deadline. It passes
// commands through untouched: its Process hooks return the next hook itself,
// so they cost nothing per command. Dials go-redis makes outside a call of
// the store (the user's own commands, pool refills) are not touched.
type dialHook struct{}

func (dialHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err != nil {
			if c, ok := ctx.Value(hookKey{}).(*callCtx); ok && c.Err() == nil && ctx.Err() == nil {
				c.dialErr.CompareAndSwap(nil, &err)
				c.cancel()
			}
		}
		return conn, err
	}
}

func (dialHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (dialHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// errTooLate is the error of a call the store stopped waiting for.
var errTooLate = errors.New("no reply within the deadline")

// do runs fn, one call to Redis, within the store's deadline (see above),
// and records how long it took.
//
// With a client that has ContextTimeoutEnabled, go-redis bounds every step
// of the call (pool wait, dial, socket reads and writes, retries) by the
// context's deadline, so fn runs on the caller's goroutine. Without it,
// go-redis bounds socket reads and writes by the client's ReadTimeout and
// WriteTimeout, whatever the context says: a call to a frozen Redis took up
// to 2× Options.Timeout (402 ms of 200 ms measured with 64 callers: a new
// connection's handshake and then the command each wait the full read
// timeout). So fn runs on a goroutine of its own, the caller stops waiting
// at the deadline, and the call finishes in the background, bounded by the
// client's timeouts (Options.Timeout for a *redis.Client, which the store
// clones with them) and by Options.Timeout on its context; while maxLate
// such calls still run, calls fail at once.
func do[T any](s *Store, ctx context.Context, o op, n int, fn func(context.Context) (T, error)) (T, error) {
	d := s.deadline(o, n)
	start := time.Now()
	if !s.bounded {
		c := &callCtx{}
		c.Context, c.cancel = context.WithTimeout(ctx, d)
		v, err := fn(c)
		c.cancel()
		return ended(s, ctx, o, n, c, start, v, err)
	}

	var zero T
	if s.late.Load() >= maxLate {
		return zero, fmt.Errorf("redisstore: %d calls still running past their deadline: %w", maxLate, context.DeadlineExceeded)
	}
	c := &callCtx{}
	c.Context, c.cancel = context.WithTimeout(ctx, s.opts.Timeout)
	done := make(chan outcome[T], 1)
	var state atomic.Int32 // 0 running, 1 returned, 2 abandoned (counted in s.late)
	go func() {
		var o outcome[T]
		o.v, o.err = fn(c)
		if !state.CompareAndSwap(0, 1) {
			s.late.Add(-1)
		}
		done <- o
		c.cancel() // after the state: the caller must not take this for the dial hook's
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	var err error
	select {
	case out := <-done:
		return ended(s, ctx, o, n, c, start, out.v, out.err)
	case <-c.Done():
		// The dial hook ended it, or the caller's context did.
		if err = c.unreachable(); err == nil {
			err = fmt.Errorf("redisstore: %w", context.Cause(c))
		}
	case <-t.C:
		err = fmt.Errorf("redisstore: %w (%v, from the latency observed): %w", errTooLate, d, context.DeadlineExceeded)
	}
	if !state.CompareAndSwap(0, 2) {
		out := <-done // it has just returned
		return ended(s, ctx, o, n, c, start, out.v, out.err)
	}
	s.late.Add(1)
	if ctx.Err() == nil && c.unreachable() == nil {
		s.observe(o, n, d)
	}
	return zero, err
}

// ended records a call that returned (v, err), and marks err unreachable if
// the dial hook saw a dial fail. A failure caused by the caller's context
// ending says nothing of Redis and is not recorded.
func ended[T any](s *Store, ctx context.Context, o op, n int, c *callCtx, start time.Time, v T, err error) (T, error) {
	if err != nil && ctx.Err() != nil {
		return v, err
	}
	if u := c.unreachable(); err != nil && u != nil {
		var zero T
		return zero, u
	}
	s.observe(o, n, time.Since(start))
	if err == nil || isReply(err) {
		s.answered.Store(time.Now().UnixNano())
	}
	return v, err
}

type outcome[T any] struct {
	v   T
	err error
}

// none is the result of calls that return only an error.
type none struct{}

// Deadline returns the deadline the store gives its next read of one key: 4
// times the p99 of such calls in the last second with calls, within
// [MinTimeout, Timeout].
func (s *Store) Deadline() time.Duration { return s.deadline(opGet, 1) }
