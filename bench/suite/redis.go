package suite

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/bench/contender"
	"github.com/tiercache/tiercache/bench/workload"
	"github.com/tiercache/tiercache/cachetest"
)

// open creates one instance of the contender called name on the run's
// Redis, with the run's local size; cfg supplies the rest.
func (e *env) open(ctx context.Context, name string, cfg contender.Config) (contender.Cache, error) {
	c, err := contender.ByName(name)
	if err != nil {
		return nil, err
	}
	cfg.Addr = e.srv.Addr()
	if cfg.LocalSize == 0 {
		cfg.LocalSize = e.opt.LocalSize
	}
	if cfg.TTL == 0 {
		cfg.TTL = e.opt.TTL
	}
	return c.New(ctx, cfg)
}

// fresh empties Redis before a contender runs.
func (e *env) fresh() error { return e.srv.FlushAll() }

// commands returns the number of commands Redis has executed, INFO and
// CONFIG excluded (the harness's own).
func (e *env) commands() (int64, error) {
	v, err := e.srv.Do("INFO", "commandstats")
	if err != nil {
		return 0, err
	}
	var n int64
	for line := range strings.SplitSeq(v.(string), "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok || name == "cmdstat_info" || name == "cmdstat_config" || name == "cmdstat_flushall" {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		c, err := strconv.ParseInt(calls, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("INFO commandstats: %q: %w", line, err)
		}
		n += c
	}
	return n, nil
}

// cpuNow returns the CPU time used so far by this process (all threads)
// plus the private redis-server: what the harness, the contender and Redis
// spent, without the other processes of a shared machine.
func (e *env) cpuNow() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	self := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	v, err := e.srv.Do("INFO", "cpu")
	if err != nil {
		return 0, err
	}
	var redisCPU float64
	for line := range strings.SplitSeq(v.(string), "\n") {
		k, val, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, err := strconv.ParseFloat(val, 64)
			if err != nil {
				return 0, fmt.Errorf("INFO cpu: %q: %w", line, err)
			}
			redisCPU += f
		}
	}
	return self + time.Duration(redisCPU*float64(time.Second)), nil
}

// redisInfo returns the INFO server fields the report shows.
func redisInfo(srv *cachetest.Server) map[string]string {
	out := map[string]string{}
	v, err := srv.Do("INFO", "server")
	if err != nil {
		return out
	}
	for line := range strings.SplitSeq(v.(string), "\n") {
		k, val, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok {
			out[k] = val
		}
	}
	return out
}

// warmed opens contender name on a flushed Redis, fills Redis with every
// key through it, and drives the untimed warm-up (local tiers fill as they
// would). The caller closes the contender.
func (e *env) warmed(ctx context.Context, name string) (contender.Cache, *workload.Origin, error) {
	if err := e.fresh(); err != nil {
		return nil, nil, err
	}
	origin := workload.NewOrigin(e.opt.LoaderDelay)
	c, err := e.open(ctx, name, contender.Config{Origin: origin})
	if err != nil {
		return nil, nil, err
	}
	if err := prefill(ctx, c, e.keys); err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("prefill: %w", err)
	}
	drive(ctx, c, e.keys, e.traces, driveOpts{d: e.opt.WarmUp})
	return c, origin, nil
}

func (e *env) runWarm(ctx context.Context, name string) (map[string]float64, error) {
	c, origin, err := e.warmed(ctx, name)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	o0 := origin.Calls()
	c0, err := e.commands()
	if err != nil {
		return nil, err
	}
	cpu0, err := e.cpuNow()
	if err != nil {
		return nil, err
	}
	l := drive(ctx, c, e.keys, e.traces, driveOpts{d: e.opt.Warm, offset: traceLen / 2})
	cpu1, err := e.cpuNow()
	if err != nil {
		return nil, err
	}
	c1, err := e.commands()
	if err != nil {
		return nil, err
	}
	return map[string]float64{
		"ops":    float64(l.ops) / l.elapsed.Seconds(),
		"cpu":    us(cpu1-cpu0) / float64(max(l.ops, 1)),
		"p50":    us(l.hist.Quantile(0.5)),
		"p99":    us(l.hist.Quantile(0.99)),
		"cmds":   float64(c1-c0) / float64(max(l.ops, 1)),
		"origin": float64(origin.Calls() - o0),
		"errors": float64(l.errs),
	}, nil
}

func (e *env) runCold(ctx context.Context, name string) (map[string]float64, error) {
	if err := e.fresh(); err != nil {
		return nil, err
	}
	origin := workload.NewOrigin(e.opt.LoaderDelay)
	c, err := e.open(ctx, name, contender.Config{Origin: origin})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c0, err := e.commands()
	if err != nil {
		return nil, err
	}
	cpu0, err := e.cpuNow()
	if err != nil {
		return nil, err
	}
	l := drive(ctx, c, e.keys, e.traces, driveOpts{d: e.opt.Cold})
	cpu1, err := e.cpuNow()
	if err != nil {
		return nil, err
	}
	c1, err := e.commands()
	if err != nil {
		return nil, err
	}
	// Commands per origin call: what a miss costs in Redis, the GETs of
	// hits spread over the misses (hits are the same for everyone to
	// within their local tiers).
	return map[string]float64{
		"ops":       float64(l.ops) / l.elapsed.Seconds(),
		"cpu":       us(cpu1-cpu0) / float64(max(l.ops, 1)),
		"p50":       us(l.hist.Quantile(0.5)),
		"p99":       us(l.hist.Quantile(0.99)),
		"origin":    float64(origin.Calls()),
		"cmds_load": float64(c1-c0) / float64(max(origin.Calls(), 1)),
		"errors":    float64(l.errs),
	}, nil
}

func (e *env) runKill(ctx context.Context, name string) (_ map[string]float64, err error) {
	c, origin, err := e.warmed(ctx, name)
	if err != nil {
		return nil, err
	}
	// Close after the restart below: some clients flush queued writes on
	// Close, which would wait on a dead server.
	defer c.Close()
	var originAtKill atomic.Int64
	killed := make(chan error, 1)
	l := drive(ctx, c, e.keys, e.traces, driveOpts{
		d:          e.opt.Kill,
		offset:     traceLen / 2,
		reqTimeout: e.opt.KillTimeout,
		atDelay:    e.opt.KillAt,
		at: func() {
			originAtKill.Store(origin.Calls())
			killed <- e.srv.Kill()
		},
	})
	if err := <-killed; err != nil {
		return nil, fmt.Errorf("killing redis-server: %w", err)
	}
	originAfter := origin.Calls() - originAtKill.Load()
	if err := e.srv.Restart(); err != nil {
		return nil, fmt.Errorf("restarting redis-server: %w", err)
	}
	after := (e.opt.Kill - e.opt.KillAt).Seconds()
	return map[string]float64{
		"ok_after":     float64(l.opsAfter-l.errsAfter) / after,
		"errs_after":   float64(l.errsAfter),
		"errpct_after": 100 * float64(l.errsAfter) / float64(max(l.opsAfter, 1)),
		"p99_before":   us(l.before.Quantile(0.99)),
		"p99_after":    us(l.after.Quantile(0.99)),
		"origin_after": float64(originAfter),
	}, nil
}

// countHook counts go-redis round trips: one per command sent alone, one
// per pipeline.
type countHook struct{ n *atomic.Int64 }

func (h countHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// sleepCtx sleeps d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
