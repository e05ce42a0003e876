// Package liveview is the live view of a cache for people who would rather
// look than read: a page that shows, updating every second, requests by
// outcome and tier, origin queries per second, the shared tier's health and
// breaker state, the keyspace in use (with its runtime generation) and the
// recent degradations; and the JSON document it draws, which is also what
// "tiercache serve" answers at /debug/stats.
//
//	view, err := liveview.New(&liveview.Options{Origin: db.Queries})
//	cache, err := tiercache.New(&tiercache.Options[User]{
//		Keyspace: tiercache.Keyspace{Name: "user"},
//		Observe:  stats.Observe{Recorder: view.Recorder(metrics.Recorder("user"))}, // degradations; prom's recorder goes on
//	})
//	view.Watch(cache, ping) // ping: the shared tier's health check, or nil
//	stop := view.Start(ctx) // a sample a second, for the history
//	defer stop()
//	view.Register(mux) // or serve view.Handler()
//
// Routes of Handler:
//
//	GET /debug/tiercache        the page (HTML; script, styles and charts inline)
//	GET /debug/tiercache/data   the Data document, JSON
//	GET /debug/stats            the same document
//
// The document (Data) is one shape: snake_case names, units in the names of
// durations (load_time_ms), counts since the cache started, and a history of
// rates computed at each sample. Recent degradations come from the cache's
// Recorder (stale_if_error, fallback and error answers; shared-tier errors,
// corrupt entries, abandoned loads, lock-wait timeouts) and from the samples
// (a breaker state or a keyspace version that changed since the last one);
// events of a kind less than 5 seconds apart are one entry with a count.
//
// Nothing is fetched from elsewhere: the assets are embedded (embed.FS) and
// inlined into the page, and the charts are small hand-written SVG
// (assets/charts.js). WriteReport draws a demo report with the same charts
// in one self-contained HTML file ("tiercache demo --html FILE").
package liveview
