package tiercacheotel

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/stats"
)

// Hooks returns the stats.Hooks that trace a cache with tp (nil: the
// global TracerProvider, otel.GetTracerProvider): a span "tiercache.get" per
// Get, and a span "tiercache.load" per loader call, a child of the Get span
// that caused it. The loader runs with the load span's context, so that the
// spans of its own work (a database query) nest under it. See the package
// comment for the attributes.
func Hooks(tp trace.TracerProvider, opts ...Option) stats.Hooks {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	cfg := newConfig(opts)
	t := &tracer{
		tracer:  tp.Tracer(ScopeName),
		omitKey: cfg.omitKeys,
		start:   []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal)},
	}
	if len(cfg.attrs) > 0 {
		t.start = append(t.start, trace.WithAttributes(cfg.attrs...))
	}
	return stats.Hooks{Get: t.get, Load: t.load}
}

type tracer struct {
	tracer  trace.Tracer
	start   []trace.SpanStartOption // resolved once: a span costs no options
	omitKey bool
}

// startSpan starts a span named name with the configured attributes, and
// the key's when it is recording. (The key is set after the start, so that
// a span that is not recorded, with the no-op provider or not sampled, costs
// no attribute; samplers see the configured attributes only.)
func (t *tracer) startSpan(ctx context.Context, name, key string) (context.Context, trace.Span) {
	ctx, span := t.tracer.Start(ctx, name, t.start...)
	if !t.omitKey && span.IsRecording() {
		span.SetAttributes(keyKey.String(key))
	}
	return ctx, span
}

func (t *tracer) get(ctx context.Context, key string) (context.Context, func(stats.Outcome, stats.Tier, error)) {
	ctx, span := t.startSpan(ctx, "tiercache.get", key)
	return ctx, func(o stats.Outcome, tier stats.Tier, err error) {
		if !span.IsRecording() {
			span.End()
			return
		}
		span.SetAttributes(outcomeKey.String(o.String()), tierKey.String(tier.String()))
		switch {
		case err == nil, errors.Is(err, tiercache.ErrNotFound):
			// A "not found" is an answer, as redis.Nil is to redisotel.
		case tiercache.Degraded(err):
			// The request was answered, with a stale or fallback value: the
			// failure is an event of the span (and the load span's status),
			// not the request's.
			span.RecordError(err)
		default:
			fail(span, err)
		}
		span.End()
	}
}

func (t *tracer) load(ctx context.Context, key string, attempt int) (context.Context, func(error)) {
	ctx, span := t.startSpan(ctx, "tiercache.load", key)
	if span.IsRecording() {
		span.SetAttributes(attemptKey.Int(attempt))
	}
	return ctx, func(err error) {
		if err != nil && !errors.Is(err, tiercache.ErrNotFound) && span.IsRecording() {
			fail(span, err)
		}
		span.End()
	}
}

// fail marks span as failed by err: an exception event, status Error, and
// error.type.
func fail(span trace.Span, err error) {
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
	span.SetAttributes(errorType.String(errorClass(err)))
}

// errorClass is a low-cardinality name for err, for error.type: the
// tiercache sentinel or context error it wraps, or "_OTHER" (the semantic
// conventions' value for anything else).
func errorClass(err error) string {
	for _, c := range []struct {
		err  error
		name string
	}{
		{context.DeadlineExceeded, "context.DeadlineExceeded"},
		{context.Canceled, "context.Canceled"},
		{tiercache.ErrLockWait, "tiercache.ErrLockWait"},
		{tiercache.ErrClosed, "tiercache.ErrClosed"},
		{tiercache.ErrInvalidID, "tiercache.ErrInvalidID"},
		{tiercache.ErrNilLoader, "tiercache.ErrNilLoader"},
	} {
		if errors.Is(err, c.err) {
			return c.name
		}
	}
	return "_OTHER"
}
