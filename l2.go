package tiercache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tiercache/tiercache/internal/breaker"
	"github.com/tiercache/tiercache/internal/wire"
	"github.com/tiercache/tiercache/stats"
)

// errBreakerOpen is what an L2 call returns, without calling the store,
// while the circuit breaker is open.
var errBreakerOpen = errors.New("tiercache: circuit breaker open")

// l2 runs one call to the shared tier through the circuit breaker, and
// counts and reports its failure. A failure caused by ctx ending is the
// caller's, not the tier's: it does not count against the breaker unless the
// call was the breaker's probe.
func (c *Cache[V]) l2(ctx context.Context, call func(context.Context) error) error {
	if err := c.l2Allow(); err != nil {
		return err
	}
	return c.l2Done(ctx, call(ctx))
}

// l2Allow and l2Done are l2 in two halves, for the hottest calls, which
// spare the closure l2 takes.
func (c *Cache[V]) l2Allow() error {
	if c.brk != nil && !c.brk.Allow(c.now()) {
		c.record(stats.L2Error)
		return errBreakerOpen
	}
	return nil
}

func (c *Cache[V]) l2Done(ctx context.Context, err error) error {
	if c.brk != nil {
		switch {
		case err == nil:
			c.brk.Success()
		case ctx.Err() == nil || c.brk.State() == breaker.HalfOpen:
			c.brk.Failure(c.now())
		}
	}
	if err != nil {
		c.record(stats.L2Error)
	}
	return err
}

// encode wraps e in the envelope the shared tier stores under key. A value
// whose encoding exceeds MaxValueSize is ErrValueTooLarge.
func (c *Cache[V]) encode(key string, e *entry[V]) ([]byte, error) {
	b := wire.AppendHeader(make([]byte, 0, 128), e.header(key, c.codec.ID()))
	if e.negative {
		return b, nil
	}
	b, err := c.codec.Append(b, e.value)
	if err != nil {
		return nil, err
	}
	if n := len(b) - wire.HeaderSize; n > c.cfg.MaxValueSize {
		return nil, fmt.Errorf("%w: %s encodes to %d bytes, MaxValueSize is %d", ErrValueTooLarge, key, n, c.cfg.MaxValueSize)
	}
	return b, nil
}

// oversize reports a value too large to cache: counted each time, logged
// once per cache.
func (c *Cache[V]) oversize(ctx context.Context, key string, err error) {
	c.record(stats.Oversize)
	if c.oversizeLogged.CompareAndSwap(false, true) {
		c.warn(ctx, "tiercache: value served but not cached: too large (logged once per cache)", key, err)
	}
}

// decode turns bytes from the shared tier into an entry as of now, or nil if
// they are not an envelope of this cache's codec: a miss, counted and logged
// when report is set (callers that just reported the same bytes do not).
func (c *Cache[V]) decode(ctx context.Context, key string, b []byte, now int64, report bool) *entry[V] {
	if n := len(b) - wire.HeaderSize; n > c.cfg.MaxValueSize {
		c.oversize(ctx, key, fmt.Errorf("%w: entry of %d bytes in the shared tier", ErrValueTooLarge, n))
		return nil
	}
	h, payload, err := wire.Decode(b)
	switch {
	case err != nil:
	case h.KeyHash != wire.KeyHash(key):
		err = errors.New("entry written under another key")
	case h.Codec != c.codec.ID():
		err = fmt.Errorf("entry written with codec %d, this cache uses %d", h.Codec, c.codec.ID())
	}
	e := &entry[V]{negative: h.Negative(), rebuild: int64(h.Rebuild)}
	if err == nil && !e.negative {
		err = c.codec.Decode(payload, &e.value)
	}
	if err != nil {
		if report {
			c.record(stats.L2Corrupt)
			c.warn(ctx, "tiercache: undecodable entry in the shared tier treated as a miss", key, err)
		}
		return nil
	}
	c.setTimes(e, h.Soft.UnixNano(), now)
	return e
}

// l2Get reads and decodes key; nil means a miss for any reason. ok is false
// when the tier failed. report is decode's.
func (c *Cache[V]) l2Get(ctx context.Context, key string, report bool) (e *entry[V], ok bool) {
	if c.l2Allow() != nil {
		return nil, false
	}
	b, err := c.store.Get(ctx, key)
	if c.l2Done(ctx, err) != nil {
		return nil, false
	}
	if b == nil {
		return nil, true
	}
	return c.decode(ctx, key, b, c.now(), report), true
}

// writeResult is what became of a write to the shared tier.
type writeResult uint8

const (
	stored   writeResult = iota + 1
	refused              // a conditional fill found the lock gone
	failed               // the tier failed or the entry could not be encoded
	tooLarge             // the value exceeds MaxValueSize: cache it nowhere
)

// write stores e under key: a conditional fill when token is set (which
// publishes the "changed" message itself if announce), else a plain set
// (whose message the caller sends).
func (c *Cache[V]) write(ctx context.Context, key, token string, e *entry[V], announce bool) writeResult {
	b, err := c.encode(key, e)
	if errors.Is(err, ErrValueTooLarge) {
		c.oversize(ctx, key, err)
		return tooLarge
	}
	if err != nil {
		c.warn(ctx, "tiercache: value not stored in the shared tier: encoding failed", key, err)
		return failed
	}
	ttl := time.Duration(e.hard - c.now())
	if ttl < time.Millisecond {
		return failed
	}
	ok := false
	err = c.l2(ctx, func(ctx context.Context) (err error) {
		if token != "" {
			op := FillOp{Key: key, Token: token, Value: b, TTL: ttl}
			if announce && c.bcast != nil {
				op.Channel, op.Message = c.channel, c.message(opChanged, key)
			}
			ok, err = c.locker.Fill(ctx, op)
			return err
		}
		err = c.store.Set(ctx, key, b, ttl)
		ok = err == nil
		return err
	})
	switch {
	case err != nil:
		return failed
	case !ok:
		c.record(stats.FillLost)
		return refused
	}
	return stored
}

// warn logs a degradation once, at Warn, with the key and cause.
func (c *Cache[V]) warn(ctx context.Context, msg, key string, err error) {
	if c.logger == nil || !c.logger.Enabled(ctx, slog.LevelWarn) {
		return
	}
	c.logger.LogAttrs(ctx, slog.LevelWarn, msg, slog.String("cache_key", key), slog.String("err", err.Error()))
}
