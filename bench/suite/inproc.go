package suite

import (
	"context"
	"fmt"
	"runtime"

	"github.com/tiercache/tiercache/bench/inproc"
)

func gomaxprocs() int { return runtime.GOMAXPROCS(0) }

// inprocTraceLen is the length of each goroutine's in-process trace.
const inprocTraceLen = 1 << 20

func (e *env) runInproc(_ context.Context, row string, _ int) (map[string]float64, error) {
	name, size := splitInprocRow(row)
	var impl *inproc.Impl
	for _, im := range inproc.Impls() {
		if im.Name == name {
			impl = &im
		}
	}
	if impl == nil {
		return nil, fmt.Errorf("no in-process cache %q", name)
	}
	if e.inTrace == nil {
		e.inTrace = inproc.NewTraces(2*gomaxprocs(), inprocTraceLen)
	}
	r, err := inproc.RunMix(*impl, size, e.inTrace, e.opt.InprocTime)
	if err != nil {
		return nil, err
	}
	bpe, err := inproc.BytesPerEntry(*impl, size)
	if err != nil {
		return nil, err
	}
	return map[string]float64{"ops": r.OpsPerSec, "hit": 100 * r.HitRatio, "bpe": bpe}, nil
}
