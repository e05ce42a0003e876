// Package prom exports tiercache statistics to Prometheus.
//
//	metrics := prom.New()
//	users, err := tiercache.New(&tiercache.Options[User]{
//		Keyspace: tiercache.Keyspace{Name: "user"},
//		Observe:  stats.Observe{Recorder: metrics.Recorder("user")}, // request latency histograms
//	})
//	metrics.Watch("user", users)             // counters and gauges from users.Stats()
//	prometheus.MustRegister(metrics)
//
// Counters are read from each watched cache's Stats at scrape time, so they
// equal what Stats reports. Request latencies come from the Recorder, which
// the cache calls once per request. Every series carries a keyspace label.
//
// Metrics:
//
//	tiercache_requests_total{keyspace,outcome,tier}          counter
//	tiercache_request_duration_seconds{keyspace,outcome}     histogram
//	tiercache_loads_total{keyspace}                          counter (each attempt)
//	tiercache_load_errors_total{keyspace}                    counter
//	tiercache_load_duration_seconds_total{keyspace}          counter
//	tiercache_events_total{keyspace,event}                   counter (refresh, lock_wait, l2_error, eviction, ...)
//	tiercache_l1_entries{keyspace}                           gauge
//	tiercache_breaker_open{keyspace}                         gauge (1 open or half-open, 0 closed)
//
// The package lives apart from the root so that users who do not use
// Prometheus do not compile its client.
package prom

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tiercache/tiercache/stats"
)

// Source is what Watch reads: a *tiercache.Cache of any value type.
type Source interface {
	Stats() stats.Snapshot
}

// Collector is a prometheus.Collector of tiercache metrics. It is safe for
// concurrent use. Create one with New.
type Collector struct {
	latency *prometheus.HistogramVec

	mu      sync.Mutex
	sources map[string]Source

	requests, loads, loadErrors, loadTime, events, l1Entries, breakerOpen *prometheus.Desc
}

// New returns a Collector with the default latency buckets: 50 µs to 2.5 s,
// from L1 hits to slow loads.
func New() *Collector {
	const ns = "tiercache"
	return &Collector{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "request_duration_seconds",
			Help:    "Latency of cache requests by outcome.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"keyspace", "outcome"}),
		sources:     make(map[string]Source),
		requests:    prometheus.NewDesc(ns+"_requests_total", "Cache requests by outcome and the tier that answered.", []string{"keyspace", "outcome", "tier"}, nil),
		loads:       prometheus.NewDesc(ns+"_loads_total", "Loader calls, each retry attempt counted.", []string{"keyspace"}, nil),
		loadErrors:  prometheus.NewDesc(ns+"_load_errors_total", "Loader calls that failed (not found is not a failure).", []string{"keyspace"}, nil),
		loadTime:    prometheus.NewDesc(ns+"_load_duration_seconds_total", "Total time spent in the loader.", []string{"keyspace"}, nil),
		events:      prometheus.NewDesc(ns+"_events_total", "Cache events: refreshes, rebuild locks, shared-tier errors, evictions, ...", []string{"keyspace", "event"}, nil),
		l1Entries:   prometheus.NewDesc(ns+"_l1_entries", "Entries in the in-process tier (an estimate).", []string{"keyspace"}, nil),
		breakerOpen: prometheus.NewDesc(ns+"_breaker_open", "1 while the shared tier's circuit breaker is open or half-open.", []string{"keyspace"}, nil),
	}
}

// Watch makes the collector export src's counters under keyspace. Watching a
// keyspace again replaces its source.
func (c *Collector) Watch(keyspace string, src Source) {
	c.mu.Lock()
	c.sources[keyspace] = src
	c.mu.Unlock()
}

// Recorder returns the stats.Recorder to set in the options of the cache of
// keyspace; it feeds the latency histograms.
func (c *Collector) Recorder(keyspace string) stats.Recorder {
	r := &recorder{}
	for _, o := range stats.Outcomes() {
		r.byOutcome[o] = c.latency.WithLabelValues(keyspace, o.String())
	}
	return r
}

// recorder observes request latencies into per-outcome histograms resolved
// in advance, so that a request costs one Observe.
type recorder struct {
	byOutcome [16]prometheus.Observer
}

func (r *recorder) RecordRequest(o stats.Outcome, _ stats.Tier, latency time.Duration) {
	if int(o) < len(r.byOutcome) && r.byOutcome[o] != nil {
		r.byOutcome[o].Observe(latency.Seconds())
	}
}

// RecordLoad and RecordEvent do nothing: those counters are read from Stats.
func (r *recorder) RecordLoad(time.Duration, bool) {}
func (r *recorder) RecordEvent(stats.Event)        {}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	c.latency.Describe(ch)
	for _, d := range []*prometheus.Desc{c.requests, c.loads, c.loadErrors, c.loadTime, c.events, c.l1Entries, c.breakerOpen} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.latency.Collect(ch)
	c.mu.Lock()
	sources := make(map[string]Source, len(c.sources))
	for k, v := range c.sources {
		sources[k] = v
	}
	c.mu.Unlock()
	for ks, src := range sources {
		s := src.Stats()
		for _, o := range stats.Outcomes() {
			for _, t := range stats.Tiers() {
				if n := s.Requests(o, t); n > 0 {
					ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(n), ks, o.String(), t.String())
				}
			}
		}
		ch <- prometheus.MustNewConstMetric(c.loads, prometheus.CounterValue, float64(s.Loads), ks)
		ch <- prometheus.MustNewConstMetric(c.loadErrors, prometheus.CounterValue, float64(s.LoadErrors), ks)
		ch <- prometheus.MustNewConstMetric(c.loadTime, prometheus.CounterValue, s.LoadTime.Seconds(), ks)
		for _, e := range stats.Events() {
			ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(s.Event(e)), ks, e.String())
		}
		ch <- prometheus.MustNewConstMetric(c.l1Entries, prometheus.GaugeValue, float64(s.L1Size), ks)
		open := 0.0
		if s.Breaker == "open" || s.Breaker == "half-open" {
			open = 1
		}
		ch <- prometheus.MustNewConstMetric(c.breakerOpen, prometheus.GaugeValue, open, ks)
	}
}

var _ prometheus.Collector = (*Collector)(nil)
