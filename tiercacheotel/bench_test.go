package tiercacheotel_test

import (
	"context"
	"testing"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/tiercacheotel"
)

// BenchmarkGetL1Hit measures what the instrumentation adds to the cheapest
// request: without it, with OpenTelemetry's no-op providers (the global ones
// until an SDK is installed), and with the SDK (every span sampled and
// processed by a span recorder; metrics on a manual reader).
func BenchmarkGetL1Hit(b *testing.B) {
	load := func(_ context.Context, id string) (user, error) { return user{ID: id}, nil }
	for _, bc := range []struct {
		name  string
		setup func(b *testing.B, opts *tiercache.Options[user]) func(*tiercache.Cache[user])
	}{
		{"none", func(*testing.B, *tiercache.Options[user]) func(*tiercache.Cache[user]) { return nil }},
		{"noop", func(b *testing.B, opts *tiercache.Options[user]) func(*tiercache.Cache[user]) {
			m, err := tiercacheotel.NewMetrics(metricnoop.NewMeterProvider())
			if err != nil {
				b.Fatal(err)
			}
			opts.Observe.Hooks = tiercacheotel.Hooks(tracenoop.NewTracerProvider())
			opts.Observe.Recorder = m.Recorder("user")
			return func(c *tiercache.Cache[user]) { m.Watch("user", c) }
		}},
		{"sdk", func(b *testing.B, opts *tiercache.Options[user]) func(*tiercache.Cache[user]) {
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(discard{}))
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
			b.Cleanup(func() { tp.Shutdown(context.Background()); mp.Shutdown(context.Background()) })
			m, err := tiercacheotel.NewMetrics(mp)
			if err != nil {
				b.Fatal(err)
			}
			opts.Observe.Hooks = tiercacheotel.Hooks(tp)
			opts.Observe.Recorder = m.Recorder("user")
			return func(c *tiercache.Cache[user]) { m.Watch("user", c) }
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			opts := &tiercache.Options[user]{Keyspace: tiercache.Keyspace{Name: "user"}}
			watch := bc.setup(b, opts)
			c, err := tiercache.New(opts)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			if watch != nil {
				watch(c)
			}
			ctx := context.Background()
			c.Get(ctx, "1", load)
			b.ReportAllocs()
			for b.Loop() {
				c.Get(ctx, "1", load)
			}
			s := c.Stats()
			b.ReportMetric(s.HitRatio(), "hit-ratio")
		})
	}
}

// discard is a span processor that drops ended spans: the SDK's cost
// without an exporter's.
type discard struct{}

func (discard) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (discard) OnEnd(sdktrace.ReadOnlySpan)                     {}
func (discard) Shutdown(context.Context) error                  { return nil }
func (discard) ForceFlush(context.Context) error                { return nil }
