package tiercacheotel

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/tiercache/tiercache/stats"
)

// Source is what Watch reads: a *tiercache.Cache of any value type.
type Source interface {
	Stats() stats.Snapshot
}

// Metrics exports tiercache metrics through an OpenTelemetry
// MeterProvider: counters and gauges read from the Stats of watched caches
// when the provider collects, and request latency histograms fed by the
// Recorders it hands out. It is safe for concurrent use. Create one with
// NewMetrics; Close unregisters its callback.
type Metrics struct {
	attrs   []attribute.KeyValue
	latency metric.Float64Histogram
	reg     metric.Registration

	mu      sync.Mutex
	sources map[string]Source

	requests, loads, loadErrors, events metric.Int64ObservableCounter
	loadTime                            metric.Float64ObservableCounter
	l1Entries, breakerOpen              metric.Int64ObservableGauge
}

// NewMetrics creates the instruments with a Meter of mp (nil: the global
// MeterProvider, otel.GetMeterProvider) and registers the callback that
// reads the watched caches. Its error is the provider's.
func NewMetrics(mp metric.MeterProvider, opts ...Option) (*Metrics, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	cfg := newConfig(opts)
	meter := mp.Meter(ScopeName)
	m := &Metrics{attrs: cfg.attrs, sources: make(map[string]Source)}
	var errs []error
	check := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	var err error
	m.latency, err = meter.Float64Histogram("tiercache.request.duration",
		metric.WithDescription("Latency of cache requests by outcome."),
		metric.WithUnit("s"),
		// package prom's buckets: 50 µs to 2.5 s, from L1 hits to slow loads.
		metric.WithExplicitBucketBoundaries(.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5))
	check(err)
	m.requests, err = meter.Int64ObservableCounter("tiercache.requests",
		metric.WithDescription("Cache requests by outcome and the tier that answered."), metric.WithUnit("{request}"))
	check(err)
	m.loads, err = meter.Int64ObservableCounter("tiercache.loads",
		metric.WithDescription("Loader calls, each retry attempt counted."), metric.WithUnit("{call}"))
	check(err)
	m.loadErrors, err = meter.Int64ObservableCounter("tiercache.load.errors",
		metric.WithDescription("Loader calls that failed (not found is not a failure)."), metric.WithUnit("{call}"))
	check(err)
	m.loadTime, err = meter.Float64ObservableCounter("tiercache.load.duration",
		metric.WithDescription("Total time spent in the loader."), metric.WithUnit("s"))
	check(err)
	m.events, err = meter.Int64ObservableCounter("tiercache.events",
		metric.WithDescription("Cache events: refreshes, rebuild locks, shared-tier errors, evictions, ..."), metric.WithUnit("{event}"))
	check(err)
	m.l1Entries, err = meter.Int64ObservableGauge("tiercache.l1.entries",
		metric.WithDescription("Entries in the in-process tier (an estimate)."), metric.WithUnit("{entry}"))
	check(err)
	m.breakerOpen, err = meter.Int64ObservableGauge("tiercache.breaker.open",
		metric.WithDescription("1 while the shared tier's circuit breaker is open or half-open."))
	check(err)
	if len(errs) > 0 {
		return nil, fmt.Errorf("tiercacheotel: create instruments: %w", errors.Join(errs...))
	}
	m.reg, err = meter.RegisterCallback(m.observe,
		m.requests, m.loads, m.loadErrors, m.loadTime, m.events, m.l1Entries, m.breakerOpen)
	if err != nil {
		return nil, fmt.Errorf("tiercacheotel: register callback: %w", err)
	}
	return m, nil
}

// Close unregisters the callback: watched caches are no longer read. The
// Recorders go on recording.
func (m *Metrics) Close() error {
	return m.reg.Unregister()
}

// Watch makes the metrics export src's counters under keyspace. Watching a
// keyspace again replaces its source.
func (m *Metrics) Watch(keyspace string, src Source) {
	m.mu.Lock()
	m.sources[keyspace] = src
	m.mu.Unlock()
}

// set is the attribute set of a series: the configured attributes, the
// keyspace's and kv.
func (m *Metrics) set(keyspace string, kv ...attribute.KeyValue) attribute.Set {
	attrs := make([]attribute.KeyValue, 0, len(m.attrs)+1+len(kv))
	attrs = append(attrs, m.attrs...)
	attrs = append(attrs, keyspaceKey.String(keyspace))
	return attribute.NewSet(append(attrs, kv...)...)
}

// observe reports each watched cache's Stats, with the same series as
// package prom: requests only for the outcome and tier pairs seen, every
// event, even at zero.
func (m *Metrics) observe(_ context.Context, o metric.Observer) error {
	m.mu.Lock()
	sources := maps.Clone(m.sources)
	m.mu.Unlock()
	for ks, src := range sources {
		s := src.Stats()
		for _, out := range stats.Outcomes() {
			for _, t := range stats.Tiers() {
				if n := s.Requests(out, t); n > 0 {
					o.ObserveInt64(m.requests, int64(n), metric.WithAttributeSet(m.set(ks, outcomeKey.String(out.String()), tierKey.String(t.String()))))
				}
			}
		}
		ksOnly := metric.WithAttributeSet(m.set(ks))
		o.ObserveInt64(m.loads, int64(s.Loads), ksOnly)
		o.ObserveInt64(m.loadErrors, int64(s.LoadErrors), ksOnly)
		o.ObserveFloat64(m.loadTime, s.LoadTime.Seconds(), ksOnly)
		for _, e := range stats.Events() {
			o.ObserveInt64(m.events, int64(s.Event(e)), metric.WithAttributeSet(m.set(ks, eventKey.String(e.String()))))
		}
		o.ObserveInt64(m.l1Entries, int64(s.L1Size), ksOnly)
		var open int64
		if s.Breaker == "open" || s.Breaker == "half-open" {
			open = 1
		}
		o.ObserveInt64(m.breakerOpen, open, ksOnly)
	}
	return nil
}

// Recorder returns the stats.Recorder to set in the options of the cache of
// keyspace (with Tee, beside another); it feeds the latency histogram.
func (m *Metrics) Recorder(keyspace string) stats.Recorder {
	r := &recorder{hist: m.latency}
	for _, o := range stats.Outcomes() {
		if int(o) < len(r.byOutcome) {
			r.byOutcome[o] = []metric.RecordOption{metric.WithAttributeSet(m.set(keyspace, outcomeKey.String(o.String())))}
		}
	}
	return r
}

// recorder records request latencies with attribute sets resolved in
// advance, so that a request costs one Record.
type recorder struct {
	hist      metric.Float64Histogram
	byOutcome [16][]metric.RecordOption
}

func (r *recorder) RecordRequest(o stats.Outcome, _ stats.Tier, latency time.Duration) {
	if int(o) < len(r.byOutcome) && r.byOutcome[o] != nil {
		// The Recorder gets no context: no exemplar links a latency to
		// its trace.
		r.hist.Record(context.Background(), latency.Seconds(), r.byOutcome[o]...)
	}
}

// RecordLoad and RecordEvent do nothing: those counters are read from Stats.
func (r *recorder) RecordLoad(time.Duration, bool) {}
func (r *recorder) RecordEvent(stats.Event)        {}
