package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cmd/tiercache/internal/demo/userdb"
	"github.com/tiercache/tiercache/tiercacheotel"
)

// otelExporters are the values of serve's --otel flag.
const otelExporters = "otlp or stdout"

// telemetry is serve's OpenTelemetry: SDK providers exporting to OTLP/HTTP
// or to a writer, and the cache's spans and metrics on them. A nil
// *telemetry (no --otel) does nothing.
type telemetry struct {
	tp      *sdktrace.TracerProvider
	mp      *sdkmetric.MeterProvider
	metrics *tiercacheotel.Metrics
	log     *slog.Logger
}

// checkOTelExporter validates --otel before anything starts.
func checkOTelExporter(name string) error {
	switch name {
	case "", "otlp", "stdout":
		return nil
	}
	return usagef("--otel: %q is not %s", name, otelExporters)
}

// startOTel sets up the exporter named by --otel: "otlp" sends OTLP over
// HTTP as configured by the standard OTEL_EXPORTER_OTLP_* variables
// (endpoint http://localhost:4318 by default), "stdout" writes JSON to
// stdout; "" returns nil. The resource is service.name "tiercache" unless
// OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES say otherwise. Nothing is
// set globally.
func startOTel(ctx context.Context, name string, stdout io.Writer, log *slog.Logger) (*telemetry, error) {
	if name == "" {
		return nil, nil
	}
	var (
		spans   sdktrace.SpanExporter
		metrics sdkmetric.Exporter
		err     error
	)
	switch name {
	case "otlp":
		if spans, err = otlptracehttp.New(ctx); err != nil {
			return nil, fmt.Errorf("otel: trace exporter: %w", err)
		}
		if metrics, err = otlpmetrichttp.New(ctx); err != nil {
			return nil, fmt.Errorf("otel: metric exporter: %w", err)
		}
	case "stdout":
		if spans, err = stdouttrace.New(stdouttrace.WithWriter(stdout)); err != nil {
			return nil, fmt.Errorf("otel: trace exporter: %w", err)
		}
		if metrics, err = stdoutmetric.New(stdoutmetric.WithWriter(stdout)); err != nil {
			return nil, fmt.Errorf("otel: metric exporter: %w", err)
		}
	default:
		return nil, checkOTelExporter(name)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "tiercache")),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES override
		resource.WithTelemetrySDK())
	if err != nil {
		return nil, fmt.Errorf("otel: resource: %w", err)
	}
	t := &telemetry{
		log: log,
		tp:  sdktrace.NewTracerProvider(sdktrace.WithBatcher(spans), sdktrace.WithResource(res)),
		// The interval is OTEL_METRIC_EXPORT_INTERVAL (default 60 s);
		// shutdown exports once more.
		mp: sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(metrics)), sdkmetric.WithResource(res)),
	}
	if t.metrics, err = tiercacheotel.NewMetrics(t.mp); err != nil {
		t.close(ctx)
		return nil, err
	}
	log.Info("opentelemetry", "exporter", name)
	return t, nil
}

// instrument adds the cache's spans and latency histogram to opts, beside
// the Recorder it has.
func (t *telemetry) instrument(keyspace string, opts *tiercache.Options[userdb.User]) {
	if t == nil {
		return
	}
	opts.Observe.Hooks = tiercacheotel.Hooks(t.tp)
	opts.Observe.Recorder = tiercacheotel.Tee(opts.Observe.Recorder, t.metrics.Recorder(keyspace))
}

// watch exports the counters of src.
func (t *telemetry) watch(keyspace string, src tiercacheotel.Source) {
	if t != nil {
		t.metrics.Watch(keyspace, src)
	}
}

// close exports what is pending (spans, a last collection of metrics), for
// up to 5 seconds even if ctx has ended, and logs a failure.
func (t *telemetry) close(ctx context.Context) {
	if t == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := errors.Join(t.mp.Shutdown(ctx), t.tp.Shutdown(ctx)); err != nil {
		t.log.Warn("opentelemetry: last export failed", "err", err)
	}
}
