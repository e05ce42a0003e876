package demo

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestTimelineStep(t *testing.T) {
	for d, want := range map[time.Duration]time.Duration{
		time.Second:      100 * time.Millisecond,
		10 * time.Second: 100 * time.Millisecond,
		time.Minute:      400 * time.Millisecond,
		24 * time.Hour:   576 * time.Second,
	} {
		if got := timelineStep(d); got != want {
			t.Errorf("timelineStep(%v) = %v, want %v", d, got, want)
		}
	}
}

func TestTimeline(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	step := 100 * time.Millisecond
	tl := newTimeline(start, 250*time.Millisecond, step) // 3 steps, the last one short
	if len(tl.slots) != 3 || len(tl.samples) != 4 {
		t.Fatalf("%d slots, %d samples; want 3 and 4", len(tl.slots), len(tl.samples))
	}
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	tl.record(at(-5), time.Millisecond, true) // before the start: the first step
	tl.record(at(10), 2*time.Millisecond, true)
	tl.record(at(99), 0, false) // an update: a request, not a read
	tl.record(at(150), 30*time.Millisecond, true)
	tl.record(at(260), 4*time.Millisecond, true) // past the end: the last step
	tl.samples = []counters{
		{origin: 10},
		{origin: 13, cache: CacheNumbers{Requests: 5, L1Answers: 3, L2Answers: 1}, hot: CacheNumbers{Requests: 2, StaleHits: 1}},
		{origin: 13, cache: CacheNumbers{Requests: 9, L1Answers: 6, L2Answers: 2}, hot: CacheNumbers{Requests: 3, StaleHits: 1}},
		{origin: 20, cache: CacheNumbers{Requests: 9, L1Answers: 6, L2Answers: 2}, hot: CacheNumbers{Requests: 3, StaleHits: 1}},
	}
	got := tl.result([]time.Time{at(120), at(180), at(-1), at(300)})
	if got.StepSeconds != 0.1 || len(got.Points) != 3 {
		t.Fatalf("timeline %+v", got)
	}
	want := []Point{
		{AtSeconds: 0, Requests: 3, Reads: 2, OriginQueries: 3, CacheReads: 5, L1Answers: 3, L2Answers: 1, HotReads: 2, HotStaleServed: 1},
		{AtSeconds: 0.1, Requests: 1, Reads: 1, OriginQueries: 0, CacheReads: 4, L1Answers: 3, L2Answers: 1, HotReads: 1, HotOriginCalls: 2},
		{AtSeconds: 0.2, Requests: 1, Reads: 1, OriginQueries: 7},
	}
	for i := range want {
		g := got.Points[i]
		// The latencies are the histogram's: within its 3% of the truth.
		lat := map[int][2]float64{0: {1, 1}, 1: {30, 30}, 2: {4, 4}}[i] // p99 of two is the lower
		if g.ReadP50Ms < lat[0]*0.97 || g.ReadP50Ms > lat[0]*1.03 || g.ReadP99Ms < lat[1]*0.97 || g.ReadP99Ms > lat[1]*1.03 {
			t.Errorf("step %d: p50 %v ms, p99 %v ms; want about %v and %v", i, g.ReadP50Ms, g.ReadP99Ms, lat[0], lat[1])
		}
		g.ReadP50Ms, g.ReadP99Ms = 0, 0
		if g != want[i] {
			t.Errorf("step %d:\n got %+v\nwant %+v", i, g, want[i])
		}
	}
}

// TestTimelineStopEarly ends a phase before its first step is over: stop
// takes every sample left, so that the steps add up to the phase.
func TestTimelineStopEarly(t *testing.T) {
	tl := newTimeline(time.Now().Add(time.Hour), time.Second, 100*time.Millisecond)
	n := uint64(0)
	stop := tl.sample(func() counters { n += 5; return counters{origin: n} })
	stop()
	var sum uint64
	for _, p := range tl.result(nil).Points {
		sum += p.OriginQueries
	}
	if sum != 5 || tl.samples[len(tl.samples)-1].origin != 10 {
		t.Errorf("origin queries over the steps = %d, last sample %d; want 5 and 10", sum, tl.samples[len(tl.samples)-1].origin)
	}
	if got := (*timeline)(nil).result(nil); !reflect.DeepEqual(got, Timeline{}) {
		t.Errorf("a nil timeline's result = %+v", got)
	}
}

// TestRunTimeline checks that the timelines of a run add up to its report:
// every request, origin query and cache read in exactly one step.
func TestRunTimeline(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Users, cfg.Instances, cfg.Workers, cfg.Duration, cfg.Rate = 500, 2, 4, 600*time.Millisecond, 2000
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, run := range []struct {
		name string
		r    *RunStats
	}{{"cached", &rep.Cached}, {"baseline", &rep.Baseline}} {
		var requests, reads, origin, cacheReads uint64
		for _, p := range run.r.Timeline.Points {
			requests += p.Requests
			reads += p.Reads
			origin += p.OriginQueries
			cacheReads += p.CacheReads
		}
		if n := len(run.r.Timeline.Points); run.r.Timeline.StepSeconds != 0.1 || n < 3 || n > 6 {
			t.Errorf("%s: %d steps of %vs", run.name, n, run.r.Timeline.StepSeconds)
		}
		if requests != run.r.Requests || reads != run.r.Reads || origin != run.r.OriginQueries {
			t.Errorf("%s: the steps add up to %d requests, %d reads, %d origin queries; the report says %d, %d, %d",
				run.name, requests, reads, origin, run.r.Requests, run.r.Reads, run.r.OriginQueries)
		}
		// The report's cache reads may include the hot key's warm-up, one
		// read per instance before the run.
		if run.name == "cached" && (cacheReads > rep.Cache.Requests || rep.Cache.Requests-cacheReads > uint64(cfg.Instances)) {
			t.Errorf("the steps add up to %d cache reads, the report says %d", cacheReads, rep.Cache.Requests)
		}
		if run.name == "baseline" && cacheReads != 0 {
			t.Errorf("the baseline's steps have %d cache reads", cacheReads)
		}
	}
	var calls int
	for _, p := range rep.Cached.Timeline.Points {
		calls += p.HotOriginCalls
	}
	if calls < rep.Stampede.OriginCalls || calls == 0 {
		t.Errorf("the steps have %d origin calls for the hot key, the stampede alone %d", calls, rep.Stampede.OriginCalls)
	}
}

func TestWriteHTML(t *testing.T) {
	r := &Report{Mode: "in-process only", KeyspaceVersion: "demo-1", Users: 10, Instances: 2, Workers: 4,
		Cached:   RunStats{Requests: 7, Reads: 6},
		Stampede: Stampede{Key: "demo-1:user-hot:1", Explanation: "because </script> is text"}}
	r.Cached.Timeline = Timeline{StepSeconds: 0.1, Points: []Point{{AtSeconds: 0, Requests: 7, Reads: 6, ReadP50Ms: 0.01}}}
	var b bytes.Buffer
	if err := r.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	const open = `<script id="page-data" type="application/json">`
	i := strings.Index(page, open)
	if i < 0 || !strings.HasPrefix(page, "<!doctype html>") {
		t.Fatalf("not the report page:\n%.300s", page)
	}
	raw := page[i+len(open):]
	raw = raw[:strings.Index(raw, "</script>")]
	var back Report
	if err := json.Unmarshal([]byte(raw), &back); err != nil || !reflect.DeepEqual(&back, r) {
		t.Errorf("the page's data reads back as %+v (%v), want the report", back, err)
	}
}
