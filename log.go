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
	return c.observed || (c.logger != nil && c.logger.Enabled(ctx, slog.LevelDebug))
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

// observeMany reports a GetMany: each id to the Recorder, and one Debug
// record for the call, with the first key, the number of ids, the outcome
// and tier of the slowest answer (the deepest tier reached) and the count
// of each outcome.
func (c *Cache[V]) observeMany(ctx context.Context, ids []string, rs []result, latency time.Duration, err error) {
	if c.recorder != nil {
		for _, r := range rs {
			c.recorder.RecordRequest(r.outcome, r.tier, latency)
		}
	}
	if c.logger == nil || !c.logger.Enabled(ctx, slog.LevelDebug) || len(ids) == 0 {
		return
	}
	var deepest result
	var counts [8]int
	for _, r := range rs {
		if r.tier > deepest.tier || (r.tier == deepest.tier && r.outcome > deepest.outcome) {
			deepest = r
		}
		if int(r.outcome) < len(counts) {
			counts[r.outcome]++
		}
	}
	attrs := []slog.Attr{
		slog.String("cache_key", c.Key(ids[0])),
		slog.Int("ids", len(ids)),
		slog.String("outcome", deepest.outcome.String()),
		slog.String("tier", deepest.tier.String()),
		slog.Float64("latency_ms", float64(latency.Nanoseconds())/1e6),
	}
	var byOutcome []any
	for _, o := range stats.Outcomes() {
		if int(o) < len(counts) && counts[o] > 0 {
			byOutcome = append(byOutcome, slog.Int(o.String(), counts[o]))
		}
	}
	attrs = append(attrs, slog.Group("outcomes", byOutcome...))
	if err != nil {
		attrs = append(attrs, slog.String("err", err.Error()))
	}
	c.logger.LogAttrs(ctx, slog.LevelDebug, "tiercache get_many", attrs...)
}
