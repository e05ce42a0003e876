// Package tiercacheotel reports what a tiercache.Cache does to
// OpenTelemetry: a span per Get and per loader call, and the cache's
// counters and request latencies as metrics, with the OpenTelemetry API
// only (the application chooses the SDK and the exporters), as redisotel
// and rueidisotel do for Redis clients.
//
//	metrics, err := tiercacheotel.NewMetrics(nil) // nil: the global MeterProvider
//	if err != nil {
//		return err
//	}
//	defer metrics.Close()
//	users, err := tiercache.New(&tiercache.Options[User]{
//		Keyspace: tiercache.Keyspace{Name: "user"},
//		Observe: stats.Observe{
//			Hooks:    tiercacheotel.Hooks(nil), // spans, with the global TracerProvider
//			Recorder: metrics.Recorder("user"), // request latency histogram
//		},
//	})
//	if err != nil {
//		return err
//	}
//	metrics.Watch("user", users) // counters and gauges from users.Stats()
//
// A cache that also reports to package prom takes both Recorders with
// Tee(promMetrics.Recorder("user"), metrics.Recorder("user")).
//
// The package lives apart from the root so that users who do not use
// OpenTelemetry do not compile it.
//
// # Spans
//
// Hooks returns the cache's stats.Hooks. Each Get is a span
// "tiercache.get" (kind internal) in the caller's trace; each loader call a
// span "tiercache.load" under the Get span that caused it (a retry is one
// more span), and the loader runs with the load span's context, so that its
// own spans (a database query) nest under it:
//
//	tiercache.get   tiercache.key="v1:user:42" tiercache.outcome="miss" tiercache.tier="origin"
//	└─ tiercache.load   tiercache.key="v1:user:42" tiercache.load.attempt=1
//
// A request that shares another caller's load has no load span of its own;
// a background refresh's load span is a child of the Get that started it,
// and may end after it. GetMany has no Get span (the root calls no Get hook
// for it); each of its batch loads has a load span whose tiercache.key is the
// first id's key.
//
// A "not found" (tiercache.ErrNotFound) is an answer, not an error. A
// failed loader call, and a Get that returned an error and no value, have
// status Error, the error as an exception event, and error.type (the
// semantic conventions' attribute: "context.DeadlineExceeded",
// "tiercache.ErrLockWait", ... or "_OTHER"). A degraded answer (a stale or
// fallback value with tiercache.ErrStale or ErrFallback) keeps status
// Unset: the request was answered; its span records the error as an event.
//
// # Attributes
//
//	tiercache.key           the full key, e.g. "v1:user:42" (spans; WithoutKeys leaves it off)
//	tiercache.outcome       hit, negative, stale, miss, stale_if_error, fallback, error (stats.Outcome)
//	tiercache.tier          l1, l2, origin, none (stats.Tier)
//	tiercache.load.attempt  the loader call's attempt number, from 1 (load spans)
//	tiercache.keyspace      the name given to Metrics.Watch and Metrics.Recorder (metrics)
//	tiercache.event         a stats.Event, e.g. lock_acquired, l2_error (tiercache.events)
//	error.type              on failed spans, as above
//
// OpenTelemetry has no semantic conventions for caches, so the attributes
// are namespaced "tiercache." as it asks of attributes it does not define.
// The spans carry no db.system: a Get answered from L1 calls no database.
// The shared tier's Redis commands are spans of their own when the
// application instruments its go-redis client with redisotel: they nest
// under the Get span, whose context reaches them.
//
// # Metrics
//
// NewMetrics exports the series of package prom, from the same sources:
// counters and gauges are read from each watched cache's Stats when the
// MeterProvider collects, so they equal what Stats reports; the latency
// histogram is fed by the Recorder, which the cache calls once per request.
// Every series carries tiercache.keyspace.
//
//	tiercache.requests{outcome,tier}      counter {request}
//	tiercache.request.duration{outcome}   histogram s (prom's buckets, 50 µs to 2.5 s)
//	tiercache.loads                       counter {call} (each attempt)
//	tiercache.load.errors                 counter {call}
//	tiercache.load.duration               counter s (total time in the loader)
//	tiercache.events{event}               counter {event}
//	tiercache.l1.entries                  gauge {entry}
//	tiercache.breaker.open                gauge (1 open or half-open, 0 closed)
//
// The names follow OpenTelemetry's (dots, units apart, no _total), and
// OpenTelemetry's Prometheus exporter turns them into package prom's names
// (tiercache_requests_total, tiercache_request_duration_seconds, ...); the
// labels differ by their prefix (tiercache_outcome for prom's outcome).
package tiercacheotel
