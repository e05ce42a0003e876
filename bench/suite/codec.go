package suite

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/tiercache/tiercache/bench/codecs"
	"github.com/tiercache/tiercache/bench/workload"
)

// codecTime is how long each codec measurement runs.
const codecTime = 250 * time.Millisecond

// runCodec measures one codec on the Record: encode+decode and decode
// alone, time and allocations per operation, and the encoded size. It is
// the same measurement as BenchmarkCodec in package codecs, taken in the
// suite's process so that the report shows it.
func (e *env) runCodec(_ context.Context, row string, _ int) (map[string]float64, error) {
	var c *codecs.Codec
	for _, cc := range codecs.All() {
		if cc.Name == row {
			c = &cc
		}
	}
	if c == nil {
		return nil, fmt.Errorf("no codec %q", row)
	}
	rec := workload.NewRecord("4242")
	enc, err := c.Encode(&rec)
	if err != nil {
		return nil, err
	}
	both := func() error {
		b, err := c.Encode(&rec)
		if err != nil {
			return err
		}
		var r workload.Record
		return c.Decode(b, &r)
	}
	dec := func() error {
		var r workload.Record
		return c.Decode(enc, &r)
	}
	bothNS, bothAllocs, bothBytes, err := measureOp(both)
	if err != nil {
		return nil, err
	}
	decNS, _, _, err := measureOp(dec)
	if err != nil {
		return nil, err
	}
	return map[string]float64{
		"both": bothNS / 1e3, "allocs": bothAllocs, "bytes": bothBytes,
		"dec": decNS / 1e3, "size": float64(len(enc)),
	}, nil
}

// measureOp runs op for about codecTime, after a warm-up, and returns its
// time, allocations and allocated bytes per call.
func measureOp(op func() error) (ns, allocs, bytes float64, err error) {
	for range 500 {
		if err := op(); err != nil {
			return 0, 0, 0, err
		}
	}
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	n := 0
	start := time.Now()
	for time.Since(start) < codecTime {
		for range 200 {
			if err := op(); err != nil {
				return 0, 0, 0, err
			}
		}
		n += 200
	}
	took := time.Since(start)
	runtime.ReadMemStats(&m1)
	fn := float64(n)
	return float64(took.Nanoseconds()) / fn, float64(m1.Mallocs-m0.Mallocs) / fn, float64(m1.TotalAlloc-m0.TotalAlloc) / fn, nil
}
