package liveview

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cachetest"
	"github.com/tiercache/tiercache/stats"
)

// source is a Source whose counters and keyspace the test sets.
type source struct {
	mu      sync.Mutex
	counter *stats.Counter
	breaker string
	l1Size  int
	version string
}

func newSource() *source {
	return &source{counter: stats.NewCounter(), breaker: "closed", version: "v1"}
}

func (s *source) Stats() stats.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := s.counter.Snapshot()
	snap.Breaker, snap.L1Size = s.breaker, s.l1Size
	return snap
}

func (s *source) Keyspace() tiercache.Keyspace {
	s.mu.Lock()
	defer s.mu.Unlock()
	return tiercache.Keyspace{Name: "user", Version: s.version}
}

func (s *source) set(f func(s *source)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func newClock() *cachetest.Clock {
	return cachetest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
}

// origin counts queries for Options.Origin.
type origin struct {
	mu            sync.Mutex
	reads, writes uint64
}

func (o *origin) Queries() (uint64, uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.reads, o.writes
}

func (o *origin) add(r, w uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reads, o.writes = o.reads+r, o.writes+w
}

func newView(t *testing.T, o *Options) *View {
	t.Helper()
	v, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// record makes n requests of o answered from t through r.
func record(r stats.Recorder, n int, o stats.Outcome, t stats.Tier) {
	for range n {
		r.RecordRequest(o, t, 0)
	}
}

// tree decodes the JSON of v into maps and slices.
func tree(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// at returns the value at a dotted path of a decoded JSON tree.
func at(m map[string]any, path string) any {
	var v any = m
	for _, k := range strings.Split(path, ".") {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = obj[k]
	}
	return v
}

// TestDataShape checks the one shape of /debug/stats: every counter of
// stats.Snapshot is in it, under a snake_case name, durations carry their
// unit, and the keyspace shows the runtime generation.
func TestDataShape(t *testing.T) {
	src := newSource()
	c := src.counter
	// Distinct counts, so that a field mapped to the wrong counter shows.
	n := 1
	for _, o := range stats.Outcomes() {
		for _, tr := range stats.Tiers() {
			record(c, n, o, tr)
			n++
		}
	}
	for i, e := range stats.Events() {
		for range 100 + i {
			c.RecordEvent(e)
		}
	}
	c.RecordLoad(1500*time.Microsecond, false)
	c.RecordLoad(500*time.Microsecond, true)
	src.set(func(s *source) { s.breaker, s.l1Size, s.version = "half-open", 77, "v3+1764201234567890" })
	og := &origin{}
	og.add(40, 2)
	v := newView(t, &Options{Origin: og.Queries})
	v.Watch(src, nil)
	d, err := v.Data()
	if err != nil {
		t.Fatal(err)
	}
	m := tree(t, d)

	snap := src.Stats()
	ev := func(e stats.Event) float64 { return float64(snap.Event(e)) }
	// Every exported field of stats.Snapshot, and where it is.
	fields := map[string]struct {
		path string
		want any
	}{
		"L1Hits":           {"requests.by_outcome_tier.hit.l1", float64(snap.L1Hits)},
		"L2Hits":           {"requests.by_outcome_tier.hit.l2", float64(snap.L2Hits)},
		"NegativeHits":     {"requests.by_outcome.negative", float64(snap.NegativeHits)},
		"StaleHits":        {"requests.by_outcome.stale", float64(snap.StaleHits)},
		"Misses":           {"requests.by_outcome.miss", float64(snap.Misses)},
		"SharedLoads":      {"requests.shared_loads", ev(stats.SharedLoad)},
		"StaleIfError":     {"requests.by_outcome.stale_if_error", float64(snap.StaleIfError)},
		"Fallbacks":        {"requests.by_outcome.fallback", float64(snap.Fallbacks)},
		"Errors":           {"requests.by_outcome.error", float64(snap.Errors)},
		"Loads":            {"loads.count", 2.0},
		"LoadErrors":       {"loads.errors", 1.0},
		"LoadTime":         {"loads.time_ms", 2.0},
		"Refreshes":        {"refreshes.stale", ev(stats.Refresh)},
		"EarlyRefreshes":   {"refreshes.early", ev(stats.EarlyRefresh)},
		"RefreshesDropped": {"refreshes.dropped", ev(stats.RefreshDropped)},
		"LockAcquired":     {"locks.acquired", ev(stats.LockAcquired)},
		"LockContended":    {"locks.contended", ev(stats.LockContended)},
		"LockWaits":        {"locks.waits", ev(stats.LockWait)},
		"LockWaitTimeouts": {"locks.wait_timeouts", ev(stats.LockWaitTimeout)},
		"FillsLost":        {"locks.fills_lost", ev(stats.FillLost)},
		"L2Errors":         {"l2.errors", ev(stats.L2Error)},
		"L2Corrupt":        {"l2.corrupt", ev(stats.L2Corrupt)},
		"Breaker":          {"l2.breaker", "half-open"},
		"Invalidations":    {"l1.invalidations", ev(stats.Invalidation)},
		"L1Size":           {"l1.size", 77.0},
		"L1Evictions":      {"l1.evictions", ev(stats.Eviction)},
		"Oversize":         {"oversize", ev(stats.Oversize)},
		"LoadsAbandoned":   {"loads.abandoned", ev(stats.LoadAbandoned)},
		"LocksRepaired":    {"locks.repaired", ev(stats.LockRepaired)},
		"WritesRepaired":   {"l2.writes_repaired", ev(stats.WriteRepaired)},
		"VersionSwitches":  {"keyspace.switches", ev(stats.VersionSwitch)},
	}
	st := reflect.TypeFor[stats.Snapshot]()
	for i := range st.NumField() {
		if f := st.Field(i); f.IsExported() {
			if _, ok := fields[f.Name]; !ok {
				t.Errorf("stats.Snapshot.%s is not in the document: add it to Data and to this table", f.Name)
			}
		}
	}
	for name, f := range fields {
		if got := at(m, f.path); got != f.want {
			t.Errorf("%s: %s = %v, want %v", name, f.path, got, f.want)
		}
	}
	for path, want := range map[string]any{
		"keyspace.name":         "user",
		"keyspace.version":      "v3+1764201234567890",
		"keyspace.code_version": "v3",
		"keyspace.generation":   1764201234567890.0,
		"requests.total":        float64(snap.Total()),
		"requests.hit_ratio":    snap.HitRatio(),
		"requests.by_tier.l1":   float64(1 + 5 + 9 + 13 + 17 + 21 + 25),
		"loads.mean_ms":         1.0,
		"l2.enabled":            true,
		"l2.health":             "degraded",
		"origin.reads":          40.0,
		"origin.writes":         2.0,
		"origin.queries":        42.0,
	} {
		if got := at(m, path); got != want {
			t.Errorf("%s = %v (%T), want %v", path, got, got, want)
		}
	}

	// One style of names: snake_case keys; a number whose name speaks of
	// time carries its unit.
	snake := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if !snake.MatchString(k) {
					t.Errorf("%s.%s: not a snake_case name", path, k)
				}
				if _, num := x.(float64); num && slices.Contains(strings.Split(k, "_"), "time") && !strings.HasSuffix(k, "_ms") && !strings.HasSuffix(k, "_s") {
					t.Errorf("%s.%s: a duration without its unit", path, k)
				}
				walk(path+"."+k, x)
			}
		case []any:
			for _, x := range v {
				walk(path+"[]", x)
			}
		}
	}
	walk("", m)
}

func TestDataWithoutSharedTier(t *testing.T) {
	src := newSource()
	src.set(func(s *source) { s.breaker = "" })
	v := newView(t, nil)
	v.Watch(src, func(context.Context) error { return errors.New("not called for a cache without L2") })
	v.Sample(t.Context())
	d, err := v.Data()
	if err != nil {
		t.Fatal(err)
	}
	if d.L2.Enabled || d.L2.Health != "off" || d.L2.Breaker != "off" || d.Origin != nil || d.Keyspace.Generation != 0 || d.Keyspace.CodeVersion != "v1" {
		t.Errorf("without L2 or origin: l2 %+v, origin %v, keyspace %+v", d.L2, d.Origin, d.Keyspace)
	}
}

func TestHealth(t *testing.T) {
	src := newSource()
	clk := newClock()
	v := newView(t, &Options{Now: clk.Now})
	var pingErr error
	v.Watch(src, func(context.Context) error { return pingErr })
	health := func() L2 {
		t.Helper()
		d, err := v.Data()
		if err != nil {
			t.Fatal(err)
		}
		return d.L2
	}
	if h := health(); h.Health != "unknown" || h.CheckedAt != nil {
		t.Errorf("before the first sample: %+v, want unknown", h)
	}
	v.Sample(t.Context())
	if h := health(); h.Health != "ok" || h.CheckedAt == nil || !h.CheckedAt.Equal(clk.Now()) || h.PingError != "" {
		t.Errorf("ping ok, breaker closed: %+v, want ok", h)
	}
	src.set(func(s *source) { s.breaker = "open" })
	v.Sample(t.Context())
	if h := health(); h.Health != "degraded" || h.Breaker != "open" {
		t.Errorf("breaker open: %+v, want degraded", h)
	}
	pingErr = errors.New("connection refused")
	v.Sample(t.Context())
	if h := health(); h.Health != "down" || h.PingError != "connection refused" {
		t.Errorf("ping failing: %+v, want down with the error", h)
	}
}

func TestHistory(t *testing.T) {
	src := newSource()
	clk := newClock()
	og := &origin{}
	v := newView(t, &Options{Now: clk.Now, Origin: og.Queries, History: 3})
	v.Watch(src, nil)
	v.Sample(t.Context())
	if d, _ := v.Data(); len(d.History) != 0 {
		t.Fatalf("one sample gave %d points, want 0 (a point needs two)", len(d.History))
	}
	record(src.counter, 30, stats.Hit, stats.L1)
	record(src.counter, 6, stats.Hit, stats.L2)
	record(src.counter, 4, stats.Miss, stats.Origin)
	og.add(4, 2)
	clk.Advance(2 * time.Second)
	v.Sample(t.Context())
	d, err := v.Data()
	if err != nil {
		t.Fatal(err)
	}
	if len(d.History) != 1 {
		t.Fatalf("%d points, want 1", len(d.History))
	}
	p := d.History[0]
	if !p.Time.Equal(clk.Now()) || p.IntervalS != 2 || p.RequestsPerS != 20 || p.HitRatio != 0.9 || p.OriginQueriesPerS != 3 ||
		p.ByOutcomePerS["hit"] != 18 || p.ByOutcomePerS["miss"] != 2 || p.ByOutcomePerS["error"] != 0 ||
		p.ByTierPerS["l1"] != 15 || p.ByTierPerS["l2"] != 3 || p.ByTierPerS["origin"] != 2 || p.Breaker != "closed" {
		t.Errorf("point = %+v", p)
	}
	for range 4 {
		clk.Advance(time.Second)
		v.Sample(t.Context())
	}
	d, _ = v.Data()
	if len(d.History) != 3 || !d.History[2].Time.Equal(clk.Now()) || d.History[0].RequestsPerS != 0 {
		t.Errorf("after 6 samples with History 3: %d points, last at %v; want the 3 newest", len(d.History), d.History[len(d.History)-1].Time)
	}
}

// next records what a Recorder passes on.
type next struct {
	mu                      sync.Mutex
	requests, loads, events int
}

func (n *next) RecordRequest(stats.Outcome, stats.Tier, time.Duration) {
	n.mu.Lock()
	n.requests++
	n.mu.Unlock()
}

func (n *next) RecordLoad(time.Duration, bool) {
	n.mu.Lock()
	n.loads++
	n.mu.Unlock()
}

func (n *next) RecordEvent(stats.Event) {
	n.mu.Lock()
	n.events++
	n.mu.Unlock()
}

func kinds(ds []Degradation) []string {
	var k []string
	for _, d := range ds {
		k = append(k, d.Kind)
	}
	return k
}

func TestDegradations(t *testing.T) {
	clk := newClock()
	v := newView(t, &Options{Now: clk.Now, Degradations: 4})
	src := newSource()
	v.Watch(src, nil)
	nx := &next{}
	r := v.Recorder(nx)
	t0 := clk.Now()

	record(r, 5, stats.Hit, stats.L1) // not degradations
	r.RecordEvent(stats.Refresh)
	r.RecordLoad(time.Millisecond, true)
	record(r, 3, stats.Error, stats.None)
	clk.Advance(4 * time.Second)
	record(r, 1, stats.Error, stats.None) // within 5 s of the last: same entry
	r.RecordEvent(stats.L2Error)
	clk.Advance(5 * time.Second)
	record(r, 1, stats.Error, stats.None) // 5 s after the last: a new entry
	record(r, 1, stats.StaleIfError, stats.L1)
	if nx.requests != 11 || nx.loads != 1 || nx.events != 2 {
		t.Errorf("passed on %d requests, %d loads, %d events; want 11, 1, 2", nx.requests, nx.loads, nx.events)
	}
	d, _ := v.Data()
	want := []Degradation{
		{Kind: "stale_if_error", Detail: "a stale value served because the load failed", First: clk.Now(), Last: clk.Now(), Count: 1},
		{Kind: "error", Detail: "a request answered with an error", First: clk.Now(), Last: clk.Now(), Count: 1},
		{Kind: "l2_error", Detail: "a shared-tier call failed or was skipped", First: t0.Add(4 * time.Second), Last: t0.Add(4 * time.Second), Count: 1},
		{Kind: "error", Detail: "a request answered with an error", First: t0, Last: t0.Add(4 * time.Second), Count: 4},
	}
	if !reflect.DeepEqual(d.Degradations, want) {
		t.Errorf("degradations:\n got %+v\nwant %+v", d.Degradations, want)
	}

	// Breaker changes and keyspace switches are noticed by the samples;
	// the oldest entries make room.
	v.Sample(t.Context())
	src.set(func(s *source) { s.breaker = "open" })
	v.Sample(t.Context())
	src.set(func(s *source) { s.breaker = "half-open"; s.version = "v1+99" })
	v.Sample(t.Context())
	src.set(func(s *source) { s.breaker = "closed" })
	v.Sample(t.Context())
	v.Sample(t.Context()) // no change: nothing new
	d, _ = v.Data()
	if got, want := kinds(d.Degradations), []string{"breaker_closed", "version_switch", "breaker_half_open", "breaker_open"}; !reflect.DeepEqual(got, want) {
		t.Errorf("kinds after the breaker's round trip = %v, want %v", got, want)
	}
	if got := d.Degradations[1].Detail; got != "keys moved from version v1 to v1+99" {
		t.Errorf("version switch detail = %q", got)
	}
}

func TestFirstSampleOfAnOpenBreaker(t *testing.T) {
	src := newSource()
	src.set(func(s *source) { s.breaker = "open" })
	v := newView(t, nil)
	v.Watch(src, nil)
	v.Sample(t.Context())
	if d, _ := v.Data(); !reflect.DeepEqual(kinds(d.Degradations), []string{"breaker_open"}) {
		t.Errorf("an open breaker at the first sample: degradations %v, want breaker_open", kinds(d.Degradations))
	}
}

func TestStartSamples(t *testing.T) {
	src := newSource()
	v := newView(t, &Options{Interval: time.Millisecond})
	pinged := make(chan struct{}, 1)
	v.Watch(src, func(context.Context) error {
		select {
		case pinged <- struct{}{}:
		default:
		}
		return nil
	})
	stop := v.Start(t.Context())
	// Samples run one after another and ping first: once a third ping has
	// begun, the second sample, the first to make a point, is done.
	for range 3 {
		<-pinged
	}
	stop()
	d, _ := v.Data()
	if d.L2.Health != "ok" || len(d.History) == 0 {
		t.Errorf("after Start's samples: health %q, %d points", d.L2.Health, len(d.History))
	}
	// A panicking ping is the caller's bug: it is reported as the tier's
	// health, not a crash of Start's goroutine.
	v.Watch(src, func(context.Context) error { panic("boom") })
	v.Sample(t.Context())
	if d, _ := v.Data(); d.L2.Health != "down" || !strings.Contains(d.L2.PingError, "boom") {
		t.Errorf("after a panicking ping: %+v", d.L2)
	}
}

func TestNewRejectsNegatives(t *testing.T) {
	for _, o := range []Options{{Interval: -1}, {History: -1}, {Degradations: -1}} {
		if _, err := New(&o); err == nil {
			t.Errorf("New(%+v) = nil error", o)
		}
	}
}

func get(t *testing.T, h http.Handler, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, path, nil))
	return w
}

func TestHandler(t *testing.T) {
	clk := newClock()
	v := newView(t, &Options{Now: clk.Now})
	h := v.Handler()
	if w := get(t, h, "GET", StatsPath); w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "no cache watched") {
		t.Errorf("before Watch: %d %s", w.Code, w.Body)
	}
	src := newSource()
	record(src.counter, 3, stats.Negative, stats.L1)
	v.Watch(src, nil)

	sw, dw := get(t, h, "GET", StatsPath), get(t, h, "GET", DataPath)
	if sw.Code != 200 || dw.Code != 200 || sw.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s = %d, GET %s = %d", StatsPath, sw.Code, DataPath, dw.Code)
	}
	if !bytes.Equal(sw.Body.Bytes(), dw.Body.Bytes()) {
		t.Errorf("%s and %s differ:\n%s\n%s", StatsPath, DataPath, sw.Body, dw.Body)
	}
	var d Data
	if err := json.Unmarshal(sw.Body.Bytes(), &d); err != nil || d.Requests.ByOutcome["negative"] != 3 {
		t.Errorf("document: %v, %+v", err, d.Requests)
	}

	page := get(t, h, "GET", PagePath)
	body := page.Body.String()
	if page.Code != 200 || !strings.HasPrefix(page.Header().Get("Content-Type"), "text/html") || !strings.Contains(body, `fetch("tiercache/data"`) {
		t.Errorf("GET %s = %d %q", PagePath, page.Code, page.Header())
	}
	// Nothing comes from elsewhere: no script, style or image by URL.
	if m := regexp.MustCompile(`(?i)<(script|link|img|iframe)[^>]*\b(src|href)=["'](https?:)?//`).FindString(body); m != "" {
		t.Errorf("the page loads %s", m)
	}
	if w := get(t, h, "GET", PagePath+"/"); w.Code != http.StatusMovedPermanently || w.Header().Get("Location") != PagePath {
		t.Errorf("GET %s/ = %d to %q, want a redirect to %s", PagePath, w.Code, w.Header().Get("Location"), PagePath)
	}
	if w := get(t, h, "POST", StatsPath); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST %s = %d, want 405", StatsPath, w.Code)
	}
}

// closesElement reports whether s holds text that would end the script or
// style element it is inserted in.
func closesElement(s string) bool {
	s = strings.ToLower(s)
	return strings.Contains(s, "</script") || strings.Contains(s, "</style") || strings.Contains(s, "<!--")
}

func TestAssetsStayInTheirElements(t *testing.T) {
	for _, f := range []string{"style.css", "charts.js", "live.js", "report.js"} {
		b, err := assets.ReadFile("assets/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if closesElement(string(b)) {
			t.Errorf("%s would close the element it is inlined in", f)
		}
	}
	// Data cannot close its script element either.
	var out bytes.Buffer
	hostile := map[string]string{"first_error": `</script><script>alert(1)</script><!--`}
	if err := WriteReport(&out, hostile); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(strings.ToLower(out.String()), "</script"); n != 2 {
		t.Errorf("the report has %d </script, want 2 (its two script elements)", n)
	}
	i := strings.Index(out.String(), `<script id="page-data" type="application/json">`)
	j := strings.Index(out.String()[i:], "</script>")
	var back map[string]string
	raw := out.String()[i+len(`<script id="page-data" type="application/json">`) : i+j]
	if err := json.Unmarshal([]byte(raw), &back); err != nil || !reflect.DeepEqual(back, hostile) {
		t.Errorf("the inline data reads back as %v (%v), want %v", back, err, hostile)
	}
}

func TestWriteReportError(t *testing.T) {
	if err := WriteReport(io.Discard, func() {}); err == nil {
		t.Error("WriteReport of a value JSON cannot encode: nil error")
	}
}

// panicky is a source whose Stats panics while panicking is set.
type panicky struct {
	*source
	mu        sync.Mutex
	panicking bool
	calls     chan struct{}
}

func (p *panicky) Stats() stats.Snapshot {
	p.mu.Lock()
	on := p.panicking
	p.mu.Unlock()
	if on {
		select {
		case p.calls <- struct{}{}:
		default:
		}
		panic("stats broke")
	}
	return p.source.Stats()
}

func TestStartSurvivesAPanic(t *testing.T) {
	src := &panicky{source: newSource(), panicking: true, calls: make(chan struct{}, 1)}
	v := newView(t, &Options{Interval: time.Millisecond})
	v.Watch(src, nil)
	stop := v.Start(t.Context())
	<-src.calls // a sample panicked; the goroutine goes on, or stop would hang
	<-src.calls
	stop()
	src.mu.Lock()
	src.panicking = false
	src.mu.Unlock()
	d, err := v.Data()
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Degradations) != 1 || d.Degradations[0].Kind != "sample_failed" || !strings.Contains(d.Degradations[0].Detail, "stats broke") {
		t.Errorf("degradations after panicking samples: %+v", d.Degradations)
	}
}
