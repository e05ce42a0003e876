package tiercache

import (
	"context"

	"github.com/tiercache/tiercache/stats"
)

// Hooks are callbacks at points of a request, in the spirit of
// net/http/httptrace: with them a service puts cache spans in its traces
// (OpenTelemetry or any tracer) without tiercache importing one. Each hook
// may be nil; set ones must be fast and safe for concurrent use.
//
// With OpenTelemetry, for example:
//
//	Hooks: tiercache.Hooks{
//		Get: func(ctx context.Context, key string) (context.Context, func(stats.Outcome, stats.Tier, error)) {
//			ctx, span := tracer.Start(ctx, "cache.get", trace.WithAttributes(attribute.String("cache.key", key)))
//			return ctx, func(o stats.Outcome, t stats.Tier, err error) {
//				span.SetAttributes(attribute.String("cache.outcome", o.String()), attribute.String("cache.tier", t.String()))
//				if err != nil {
//					span.RecordError(err)
//				}
//				span.End()
//			}
//		},
//	}
type Hooks struct {
	// Get is called when a Get starts, with the full key. The context it
	// returns carries on the request (so a load it triggers is a child of
	// the span the hook started), and done is called once the request is
	// answered.
	Get func(ctx context.Context, key string) (_ context.Context, done func(o stats.Outcome, t stats.Tier, err error))
	// Load is called before each loader call (attempt counts from 1), with
	// the context the loader will get, and done after it returns.
	Load func(ctx context.Context, key string, attempt int) (_ context.Context, done func(err error))
}
