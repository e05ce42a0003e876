package tiercache

import (
	"context"
	"log/slog"
	"time"

	"github.com/tiercache/tiercache/stats"
)

// observing reports whether this request's latency and outcome must be
// reported beyond the counters: to a Debug log record or a Recorder. When it
// is false, Get pays for neither the clock reads nor the record.
func (c *Cache[V]) observing(ctx context.Context) bool {
	return c.recorder != nil || c.cfg.Hooks.Get != nil || (c.logger != nil && c.logger.Enabled(ctx, slog.LevelDebug))
}

// getObserved is Get with the request measured, recorded, logged and hooked.
func (c *Cache[V]) getObserved(ctx context.Context, id string, load LoaderFunc[V]) (*entry[V], error) {
	var done func(stats.Outcome, stats.Tier, error)
	if hook := c.cfg.Hooks.Get; hook != nil {
		ctx, done = hook(ctx, c.Key(id))
	}
	start := time.Now()
	e, r, err := c.get(ctx, id, load)
	c.observe(ctx, id, r, time.Since(start), err)
	if done != nil {
		done(r.outcome, r.tier, err)
	}
	return e, err
}

// observe reports one request to the Recorder and, at Debug, to the logger,
// with the vocabulary of package stats: outcome (hit, negative, stale, miss,
// stale_if_error, fallback, error) and tier (l1, l2, origin, none).
func (c *Cache[V]) observe(ctx context.Context, id string, r result, latency time.Duration, err error) {
	if c.recorder != nil {
		c.recorder.RecordRequest(r.outcome, r.tier, latency)
	}
	if c.logger == nil || !c.logger.Enabled(ctx, slog.LevelDebug) {
		return
	}
	key := c.Key(id)
	attrs := []slog.Attr{
		slog.String("cache_key", key),
		slog.String("outcome", r.outcome.String()),
		slog.String("tier", r.tier.String()),
		slog.Float64("latency_ms", float64(latency.Nanoseconds())/1e6),
	}
	if err != nil {
		attrs = append(attrs, slog.String("err", err.Error()))
	}
	c.logger.LogAttrs(ctx, slog.LevelDebug, "tiercache get", attrs...)
}
