package stats

import "context"

// Hooks are callbacks at points of a request, in the spirit of
// net/http/httptrace: with them a service puts cache spans in its traces
// (OpenTelemetry or any tracer) without tiercache importing one. Each hook
// may be nil; set ones must be fast and safe for concurrent use.
//
// With OpenTelemetry, for example:
//
//	Observe: stats.Observe{Hooks: stats.Hooks{
//		Get: func(ctx context.Context, key string) (context.Context, func(Outcome, Tier, error)) {
//			ctx, span := tracer.Start(ctx, "cache.get", trace.WithAttributes(attribute.String("cache.key", key)))
//			return ctx, func(o Outcome, t Tier, err error) {
//				span.SetAttributes(attribute.String("cache.outcome", o.String()), attribute.String("cache.tier", t.String()))
//				if err != nil {
//					span.RecordError(err)
//				}
//				span.End()
//			}
//		},
//	}},
type Hooks struct {
	// Get is called when a Get starts, with the full key. The context it
	// returns carries on the request (so a load it triggers is a child of
	// the span the hook started), and done is called once the request is
	// answered.
	Get func(ctx context.Context, key string) (_ context.Context, done func(o Outcome, t Tier, err error))
	// Load is called before each loader call (attempt counts from 1), with
	// the context the loader will get, and done after it returns.
	Load func(ctx context.Context, key string, attempt int) (_ context.Context, done func(err error))
}

// Observe is what a cache reports to as it works (tiercache.Options.Observe).
// Every field is optional; besides them, Cache.Stats reads the cache's
// counters at any time.
type Observe struct {
	// Recorder receives every event as it happens. Evictions reach it after
	// L1's insertion that caused them, outside the cache's locks.
	Recorder Recorder
	// Hooks are called around requests and loads, for tracing.
	Hooks Hooks
}
