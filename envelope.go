package tiercache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/tiercache/tiercache/internal/wire"
	"github.com/tiercache/tiercache/stats"
)

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
// they are not an envelope of this cache's codec written under key: a miss,
// counted and logged when report is set (callers that just reported the
// same bytes do not).
func (c *Cache[V]) decode(ctx context.Context, key string, b []byte, now int64, report bool) *entry[V] {
	if b == nil {
		return nil
	}
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
	e := &entry[V]{negative: h.Negative(), rebuild: micros(h.Rebuild)}
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
	if e.state(now) == expired {
		return nil
	}
	return e
}

// warn logs a degradation once, at Warn, with the key and cause.
func (c *Cache[V]) warn(ctx context.Context, msg, key string, err error) {
	if c.logger == nil || !c.logger.Enabled(ctx, slog.LevelWarn) {
		return
	}
	c.logger.LogAttrs(ctx, slog.LevelWarn, msg, slog.String("cache_key", key), slog.String("err", err.Error()))
}
