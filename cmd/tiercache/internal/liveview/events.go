package liveview

import (
	"sync"
	"time"

	"github.com/tiercache/tiercache/stats"
)

// Degradation is a run of events of one kind: a new event joins the newest
// entry of its kind if that entry's last event is less than coalesceWindow
// old, so that an outage is one entry with a count, not a screenful.
type Degradation struct {
	// Kind is an outcome (stale_if_error, fallback, error), an event
	// (l2_error, l2_corrupt, load_abandoned, lock_wait_timeout), a breaker
	// state reached (breaker_open, breaker_half_open, breaker_closed),
	// version_switch, or sample_failed (a panic while Start sampled).
	Kind string `json:"kind"`
	// Detail says what it means, in a few words.
	Detail string    `json:"detail"`
	First  time.Time `json:"first"`
	Last   time.Time `json:"last"`
	Count  uint64    `json:"count"`
}

// coalesceWindow is how close to the newest entry of its kind an event must
// be to join it.
const coalesceWindow = 5 * time.Second

// detail says what an event of kind means.
func detail(kind string) string {
	switch kind {
	case stats.StaleIfError.String():
		return "a stale value served because the load failed"
	case stats.Fallback.String():
		return "the fallback value served because the load failed"
	case stats.Error.String():
		return "a request answered with an error"
	case stats.L2Error.String():
		return "a shared-tier call failed or was skipped"
	case stats.L2Corrupt.String():
		return "an undecodable shared-tier entry, read as a miss"
	case stats.LoadAbandoned.String():
		return "a loader ran past LoadTimeout and was abandoned"
	case stats.LockWaitTimeout.String():
		return "a wait for another process's rebuild timed out"
	}
	return kind
}

// ring holds the newest entries, at most cap(entries). It is safe for
// concurrent use.
type ring struct {
	mu      sync.Mutex
	entries []Degradation // oldest first
	size    int
}

func newRing(size int) *ring { return &ring{size: size, entries: make([]Degradation, 0, size)} }

// add records one event of kind at now.
func (r *ring) add(now time.Time, kind, detail string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.entries) - 1; i >= 0; i-- {
		e := &r.entries[i]
		if e.Kind != kind {
			continue
		}
		if now.Sub(e.Last) < coalesceWindow {
			e.Count++
			if now.After(e.Last) {
				e.Last = now
			}
			return
		}
		break
	}
	if len(r.entries) == r.size {
		copy(r.entries, r.entries[1:])
		r.entries = r.entries[:r.size-1]
	}
	r.entries = append(r.entries, Degradation{Kind: kind, Detail: detail, First: now, Last: now, Count: 1})
}

// list returns the entries, newest first.
func (r *ring) list() []Degradation {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Degradation, len(r.entries))
	for i, e := range r.entries {
		out[len(out)-1-i] = e
	}
	return out
}

// recorder records degradations in a View's ring and passes every call on
// to next.
type recorder struct {
	v    *View
	next stats.Recorder
}

func (r recorder) RecordRequest(o stats.Outcome, t stats.Tier, latency time.Duration) {
	switch o {
	case stats.StaleIfError, stats.Fallback, stats.Error:
		r.v.degraded(o.String())
	}
	if r.next != nil {
		r.next.RecordRequest(o, t, latency)
	}
}

func (r recorder) RecordLoad(d time.Duration, failed bool) {
	if r.next != nil {
		r.next.RecordLoad(d, failed)
	}
}

func (r recorder) RecordEvent(e stats.Event) {
	switch e {
	case stats.L2Error, stats.L2Corrupt, stats.LoadAbandoned, stats.LockWaitTimeout:
		r.v.degraded(e.String())
	}
	if r.next != nil {
		r.next.RecordEvent(e)
	}
}
