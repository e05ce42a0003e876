package demo

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/tiercache/tiercache/cmd/tiercache/internal/liveview"
)

// Report is the outcome of a demo run. Its JSON form (WriteJSON) is stable:
// fields are added, never renamed. Times are in seconds, latencies in
// milliseconds.
type Report struct {
	// Mode says whether the instances share a tier, in a sentence.
	Mode string `json:"mode"`
	// SharedTier is the Redis used, without credentials; "" in-process only.
	SharedTier      string  `json:"shared_tier"`
	KeyspaceVersion string  `json:"keyspace_version"`
	Users           int     `json:"users"`
	Instances       int     `json:"instances"`
	Workers         int     `json:"workers"`
	Rate            int     `json:"rate"`
	DurationSeconds float64 `json:"duration_s"`
	OriginLatencyMs float64 `json:"origin_latency_ms"`
	SeedSeconds     float64 `json:"seed_s"`

	// Cached is the run through the caches, Baseline the same requests
	// against the origin alone.
	Cached   RunStats `json:"cached"`
	Baseline RunStats `json:"baseline"`
	// Cache sums the counters of every cache of every instance.
	Cache CacheNumbers `json:"cache"`

	// OriginQueriesWithoutCache is what the cached run's requests would
	// have cost the origin without a cache, at the baseline's rate per
	// request; Reduction is how many times fewer the cache needed.
	OriginQueriesWithoutCache uint64  `json:"origin_queries_without_cache"`
	Reduction                 float64 `json:"reduction"`

	Stampede Stampede `json:"stampede"`

	// Errors counts requests that failed other than with "not found".
	Errors     uint64 `json:"errors"`
	FirstError string `json:"first_error,omitempty"`
}

// RunStats is what one phase of the workload measured.
type RunStats struct {
	Seconds           float64 `json:"seconds"`
	Requests          uint64  `json:"requests"`
	RequestsPerSecond float64 `json:"requests_per_s"`
	Reads             uint64  `json:"reads"`
	Updates           uint64  `json:"updates"`
	NotFound          uint64  `json:"not_found"`
	OriginQueries     uint64  `json:"origin_queries"` // reads + writes
	OriginReads       uint64  `json:"origin_reads"`
	OriginWrites      uint64  `json:"origin_writes"`
	// OriginPerRequest is OriginQueries / Requests.
	OriginPerRequest float64 `json:"origin_queries_per_request"`
	// P50Ms and P99Ms are read latencies as the client saw them.
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	// Timeline is the phase step by step, for the HTML report's charts.
	Timeline Timeline `json:"timeline"`
}

// Stampede is what happened when the hot key expired under load.
type Stampede struct {
	Key string `json:"key"`
	// AtSeconds is when it expired, into the cached run; Readers workers
	// read it at that instant.
	AtSeconds     float64 `json:"at_s"`
	Readers       int     `json:"readers"`
	WindowSeconds float64 `json:"window_s"`
	// Reads of it in the window, and the origin calls it cost: without a
	// cache, each read would be one.
	Reads       uint64 `json:"reads"`
	OriginCalls int    `json:"origin_calls"`
	// StaleServed counts reads answered with the old value during the
	// rebuild; SharedLoads those that waited for it.
	StaleServed uint64 `json:"stale_served"`
	SharedLoads uint64 `json:"shared_loads"`
	// Explanation says why OriginCalls is what it is, in a sentence.
	Explanation string `json:"explanation"`
}

func newReport(cfg *Config) *Report {
	r := &Report{
		Mode:            "in-process only (no --redis): each instance has its own L1 and no shared tier",
		KeyspaceVersion: keyspaceVersion(),
		Users:           cfg.Users,
		Instances:       cfg.Instances,
		Workers:         cfg.Workers,
		Rate:            cfg.Rate,
		DurationSeconds: cfg.Duration.Seconds(),
		OriginLatencyMs: ms(cfg.OriginLatency),
	}
	if cfg.Redis != nil {
		r.SharedTier = cfg.RedisName
		r.Mode = "shared L2 on " + cfg.RedisName + " (credentials hidden): each instance has its own L1 and client"
	}
	return r
}

// setCached sets what the cached run measured: the workers' results, and
// the caches' counters from warm (after the hot key was loaded, before the
// run) to end (after the caches were closed, so that no background refresh
// moves them): the cache reads are the workers' reads.
func (r *Report) setCached(res *result, warm, end snapshot) {
	r.Cached = newRun(res)
	r.Cache = end.numbers(warm, false)
}

// setStampede sets what happened when the hot key (key) expired, from the
// same snapshots as setCached.
func (r *Report) setStampede(res *result, key string, warm, end snapshot, at time.Duration, calls int) {
	hot := end.numbers(warm, true)
	s := Stampede{
		Key:           key,
		AtSeconds:     at.Seconds(),
		Readers:       r.Workers,
		WindowSeconds: stampedeWindow.Seconds(),
		Reads:         res.hotInWindow,
		OriginCalls:   calls,
		StaleServed:   hot.StaleHits,
		SharedLoads:   hot.SharedLoads,
	}
	if r.SharedTier != "" {
		s.Explanation = "the rebuild lock in Redis let one instance in the whole fleet reload it, and every other reader got the old value at once instead of waiting"
	} else {
		s.Explanation = fmt.Sprintf("one reload per instance (%d, with no shared tier to coordinate them), and every other reader got the old value at once instead of waiting", r.Instances)
	}
	r.Stampede = s
}

func (r *Report) setBaseline(res *result) {
	r.Baseline = newRun(res)
	r.OriginQueriesWithoutCache = uint64(r.Baseline.OriginPerRequest*float64(r.Cached.Requests) + 0.5)
	if r.Cached.OriginQueries > 0 {
		r.Reduction = float64(r.OriginQueriesWithoutCache) / float64(r.Cached.OriginQueries)
	}
}

func newRun(res *result) RunStats {
	q := res.originReads + res.originWrites
	return RunStats{
		Seconds:           res.elapsed.Seconds(),
		Requests:          res.requests,
		RequestsPerSecond: float64(res.requests) / max(res.elapsed.Seconds(), 1e-9),
		Reads:             res.reads,
		Updates:           res.updates,
		NotFound:          res.notFound,
		OriginQueries:     q,
		OriginReads:       res.originReads,
		OriginWrites:      res.originWrites,
		OriginPerRequest:  ratio(q, res.requests),
		P50Ms:             ms(res.latency.quantile(0.50)),
		P99Ms:             ms(res.latency.quantile(0.99)),
		Timeline:          res.timeline,
	}
}

// WriteJSON writes the report as one indented JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteHTML writes the report as one HTML page with its charts: read
// latency with and without the cache, hit ratio by tier and origin queries
// over time, and the stampede moment. Its scripts, styles and data are
// inline: the file opens without a network.
func (r *Report) WriteHTML(w io.Writer) error { return liveview.WriteReport(w, r) }

// WriteText writes the report for a person.
func (r *Report) WriteText(w io.Writer) error {
	var b0 strings.Builder
	b := &b0
	rate := "as fast as they go"
	if r.Rate > 0 {
		rate = "at " + count(uint64(r.Rate)) + " requests/s"
	}
	fmt.Fprintf(b, "tiercache demo: %d instances, %d workers, %gs %s\n", r.Instances, r.Workers, r.DurationSeconds, rate)
	fmt.Fprintf(b, "origin: SQLite, %s %s, +%gms per query (simulating a networked database)\n", count(uint64(r.Users)), plural(r.Users, "user", "users"), r.OriginLatencyMs)
	fmt.Fprintf(b, "mode:   %s\n\n", r.Mode)

	c, bl := &r.Cached, &r.Baseline
	row := func(label, a, b string) { fmt.Fprintf(&b0, "%-18s %16s   %s\n", label, a, b) }
	row("", "with tiercache", "no cache (baseline)")
	row("requests", fmt.Sprintf("%s in %.1fs", count(c.Requests), c.Seconds), fmt.Sprintf("%s in %.1fs", count(bl.Requests), bl.Seconds))
	row("origin queries", count(c.OriginQueries), count(bl.OriginQueries))
	row("  per request", fmt.Sprintf("%.3f", c.OriginPerRequest), fmt.Sprintf("%.3f", bl.OriginPerRequest))
	row("read latency p50", fmtMs(c.P50Ms), fmtMs(bl.P50Ms))
	row("read latency p99", fmtMs(c.P99Ms), fmtMs(bl.P99Ms))

	k := &r.Cache
	fmt.Fprintln(b)
	fmt.Fprintf(b, "hit ratio       %.1f%% of %s cache reads: L1 %.1f%%, L2 %.1f%%\n",
		100*k.HitRatio, count(k.Requests), 100*k.L1HitRatio, 100*k.L2HitRatio)
	fmt.Fprintf(b, "origin savings  %s queries instead of ~%s without a cache: %.1f× fewer\n",
		count(c.OriginQueries), count(r.OriginQueriesWithoutCache), r.Reduction)
	fmt.Fprintf(b, "negative hits   %s  (ids that do not exist, answered without a query)\n", count(k.NegativeHits))
	fmt.Fprintf(b, "stale served    %s  (old values served at once while one caller rebuilt them)\n", count(k.StaleHits))
	fmt.Fprintf(b, "shared loads    %s  (misses that waited for another caller's load of the same key)\n", count(k.SharedLoads))
	s := &r.Stampede
	para := fmt.Sprintf("At %.1fs the hot key %s expired as all %d workers read it. "+
		"In the next %gs: %s reads of it, %d origin %s (without a cache: %s), %s served stale: %s.",
		s.AtSeconds, s.Key, s.Readers, s.WindowSeconds, count(s.Reads), s.OriginCalls,
		plural(s.OriginCalls, "call", "calls"), count(s.Reads), count(s.StaleServed), s.Explanation)
	fmt.Fprintf(b, "stampede        %s\n", wrap(para, 80-16, strings.Repeat(" ", 16)))
	if r.Errors > 0 {
		fmt.Fprintf(b, "errors          %s (first: %s)\n", count(r.Errors), r.FirstError)
	}
	_, err := io.WriteString(w, b0.String())
	return err
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// fmtMs formats milliseconds with a unit that suits them.
func fmtMs(v float64) string { return fmtDuration(time.Duration(v * float64(time.Millisecond))) }

func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < time.Millisecond:
		return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// count formats n with thin groups of three digits: 100 000.
func count(n uint64) string {
	s := strconv.FormatUint(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// wrap breaks text into lines of at most width bytes (longer words stay
// whole), the lines after the first starting with indent.
func wrap(text string, width int, indent string) string {
	var b strings.Builder
	n := 0
	for i, w := range strings.Fields(text) {
		switch {
		case i == 0:
		case n+1+len(w) > width:
			b.WriteString("\n" + indent)
			n = 0
		default:
			b.WriteByte(' ')
			n++
		}
		b.WriteString(w)
		n += len(w)
	}
	return b.String()
}
