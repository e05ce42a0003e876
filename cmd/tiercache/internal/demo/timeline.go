package demo

import (
	"sync"
	"sync/atomic"
	"time"
)

// Timeline is what a phase measured step by step, for the charts of the
// HTML report (Report.WriteHTML).
type Timeline struct {
	StepSeconds float64 `json:"step_s"`
	Points      []Point `json:"points"`
}

// Point is one step of a Timeline. Counts are of the step alone.
type Point struct {
	// AtSeconds is when the step starts, into the phase.
	AtSeconds float64 `json:"at_s"`
	Requests  uint64  `json:"requests"`
	// Reads, and their latency as the clients saw it (0 without reads).
	Reads         uint64  `json:"reads"`
	ReadP50Ms     float64 `json:"read_p50_ms"`
	ReadP99Ms     float64 `json:"read_p99_ms"`
	OriginQueries uint64  `json:"origin_queries"`
	// Of the cached run only: the caches' reads, those answered from each
	// tier without a load, and the hot key's reads, stale answers and
	// origin calls.
	CacheReads     uint64 `json:"cache_reads"`
	L1Answers      uint64 `json:"l1_answers"`
	L2Answers      uint64 `json:"l2_answers"`
	HotReads       uint64 `json:"hot_reads"`
	HotStaleServed uint64 `json:"hot_stale_served"`
	HotOriginCalls int    `json:"hot_origin_calls"`
}

// timelineStep is the step of the timelines of a run of d: 100 ms, or
// longer to keep a long run at 150 steps.
func timelineStep(d time.Duration) time.Duration {
	return max(100*time.Millisecond, d/150)
}

// counters are the cumulative numbers a timeline samples at each step's
// boundary.
type counters struct {
	origin uint64
	cache  CacheNumbers // every cache of the fleet
	hot    CacheNumbers // the hot key's caches
}

// timeline records a phase step by step: the workers count their requests
// and read latencies in the step they started in; a goroutine samples the
// counters at each step's boundary. A nil *timeline records nothing.
type timeline struct {
	start time.Time
	step  time.Duration
	slots []slot
	// samples[k] is taken at start + k*step; the last ones when the phase
	// ended early.
	samples []counters
	done    chan struct{}
	wg      sync.WaitGroup
}

type slot struct {
	requests, reads atomic.Uint64
	latency         [len(histogram{}.counts)]atomic.Uint64
}

// newTimeline returns a timeline of a phase of length d from start in steps
// of step; it is nil for a step of 0.
func newTimeline(start time.Time, d, step time.Duration) *timeline {
	if step <= 0 {
		return nil
	}
	n := max(int((d+step-1)/step), 1)
	return &timeline{start: start, step: step, slots: make([]slot, n), samples: make([]counters, n+1)}
}

// record counts a request started at t0 that took d.
func (tl *timeline) record(t0 time.Time, d time.Duration, read bool) {
	if tl == nil {
		return
	}
	i := min(max(int(t0.Sub(tl.start)/tl.step), 0), len(tl.slots)-1)
	s := &tl.slots[i]
	s.requests.Add(1)
	if read {
		s.reads.Add(1)
		s.latency[bucketOf(uint64(max(d, 0)))].Add(1)
	}
}

// sample takes samples[0] now and the others at the steps' boundaries,
// but the last: stop, called once the phase's requests have all returned,
// takes it and any the phase did not reach, and waits.
func (tl *timeline) sample(read func() counters) (stop func()) {
	if tl == nil {
		return func() {}
	}
	tl.samples[0] = read()
	tl.done = make(chan struct{})
	tl.wg.Go(func() {
		timer := time.NewTimer(time.Hour)
		defer timer.Stop()
		k := 1
	steps:
		for ; k < len(tl.samples)-1; k++ {
			timer.Reset(time.Until(tl.start.Add(time.Duration(k) * tl.step)))
			select {
			case <-timer.C:
				tl.samples[k] = read()
			case <-tl.done:
				break steps
			}
		}
		<-tl.done
		last := read()
		for ; k < len(tl.samples); k++ {
			tl.samples[k] = last
		}
	})
	return func() {
		close(tl.done)
		tl.wg.Wait()
	}
}

// result returns the Timeline, with the hot key's origin calls at hotCalls.
// It must be called after stop.
func (tl *timeline) result(hotCalls []time.Time) Timeline {
	if tl == nil {
		return Timeline{}
	}
	t := Timeline{StepSeconds: tl.step.Seconds(), Points: make([]Point, len(tl.slots))}
	var h histogram
	for i := range tl.slots {
		s, a, b := &tl.slots[i], &tl.samples[i], &tl.samples[i+1]
		h = histogram{}
		for j := range s.latency {
			h.counts[j] = s.latency[j].Load()
		}
		h.n = s.reads.Load()
		t.Points[i] = Point{
			AtSeconds:      (time.Duration(i) * tl.step).Seconds(),
			Requests:       s.requests.Load(),
			Reads:          h.n,
			ReadP50Ms:      ms(h.quantile(0.50)),
			ReadP99Ms:      ms(h.quantile(0.99)),
			OriginQueries:  b.origin - a.origin,
			CacheReads:     b.cache.Requests - a.cache.Requests,
			L1Answers:      b.cache.L1Answers - a.cache.L1Answers,
			L2Answers:      b.cache.L2Answers - a.cache.L2Answers,
			HotReads:       b.hot.Requests - a.hot.Requests,
			HotStaleServed: b.hot.StaleHits - a.hot.StaleHits,
		}
	}
	for _, at := range hotCalls {
		if i := int(at.Sub(tl.start) / tl.step); !at.Before(tl.start) && i < len(t.Points) {
			t.Points[i].HotOriginCalls++
		}
	}
	return t
}

// counters reads what a phase's timeline samples.
func (p *phase) counters() counters {
	r, w := p.db.Queries()
	c := counters{origin: r + w}
	if f, ok := p.target.(*fleet); ok {
		s := f.snapshot()
		c.cache, c.hot = s.numbers(snapshot{}, false), s.numbers(snapshot{}, true)
	}
	return c
}

// hotCallTimes returns when the hot key's loader ran.
func (f *fleet) hotCallTimes() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.hotCalls...)
}
