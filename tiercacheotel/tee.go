package tiercacheotel

import (
	"time"

	"github.com/tiercache/tiercache/stats"
)

// Tee returns a Recorder that passes every call to each of rs, in order,
// for a cache that reports to more than one sink (package prom and this
// one). Nil Recorders are skipped; Tee of none is nil, which a cache's
// Options take as no Recorder.
func Tee(rs ...stats.Recorder) stats.Recorder {
	var t tee
	for _, r := range rs {
		if r != nil {
			t = append(t, r)
		}
	}
	switch len(t) {
	case 0:
		return nil
	case 1:
		return t[0]
	}
	return t
}

type tee []stats.Recorder

func (t tee) RecordRequest(o stats.Outcome, tier stats.Tier, latency time.Duration) {
	for _, r := range t {
		r.RecordRequest(o, tier, latency)
	}
}

func (t tee) RecordLoad(d time.Duration, failed bool) {
	for _, r := range t {
		r.RecordLoad(d, failed)
	}
}

func (t tee) RecordEvent(e stats.Event) {
	for _, r := range t {
		r.RecordEvent(e)
	}
}
