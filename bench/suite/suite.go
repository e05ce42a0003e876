// Package suite runs the comparative benchmark of tiercache against the
// libraries a Go team would otherwise pick: every scenario with every
// contender in one process, on one private redis-server, for several rounds
// with the contenders' order rotated each round, and reports the median of
// the rounds.
package suite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/tiercache/tiercache/bench/contender"
	"github.com/tiercache/tiercache/bench/inproc"
	"github.com/tiercache/tiercache/bench/workload"
	"github.com/tiercache/tiercache/cachetest"
)

// Options configure a run. Zero fields take the defaults of Defaults.
type Options struct {
	// Rounds is how many times every scenario runs with every contender.
	Rounds int
	// Keys is the key space of the Redis scenarios.
	Keys int
	// Callers is the number of concurrent callers of the Redis scenarios.
	Callers int
	// LocalSize is every local tier's size, in entries.
	LocalSize int
	// LoaderDelay is how long one origin call takes.
	LoaderDelay time.Duration
	// TTL is every contender's value TTL in the throughput scenarios.
	TTL time.Duration

	// Warm is the timed part of the warm scenario; WarmUp the untimed
	// Zipf load before it, which lets local tiers fill as they would.
	Warm, WarmUp time.Duration
	// Cold is the timed cold scenario.
	Cold time.Duration
	// Kill is the Redis-killed run; KillAt when in it Redis is killed.
	Kill, KillAt time.Duration
	// KillTimeout bounds each request of the Redis-killed run, as a
	// service's request budget would.
	KillTimeout time.Duration

	// HotInstances and HotCallers shape the hot-key scenario: HotCallers
	// spread over HotInstances instances, HotDelay the loader's time.
	HotInstances, HotCallers int
	HotDelay                 time.Duration

	// ManyIDs is the size of a GetMany call; ManyWarmCalls and ManyColdCalls
	// how many calls of each kind are timed.
	ManyIDs, ManyWarmCalls, ManyColdCalls int

	// InprocSizes are the cache sizes of the in-process mix, InprocTime
	// the timed part of each cell.
	InprocSizes []int
	InprocTime  time.Duration

	// Scenarios and Contenders, if not empty, restrict the run to these
	// ids and names.
	Scenarios, Contenders []string

	// Progress receives one line per step; nil means silent.
	Progress io.Writer `json:"-"`
}

// Defaults returns the options of a full run (about 10 minutes on 2 cores),
// or of a quick one (about a minute) if quick is set.
func Defaults(quick bool) Options {
	o := Options{
		Rounds:        5,
		Keys:          10_000,
		Callers:       32,
		LocalSize:     1_000,
		LoaderDelay:   time.Millisecond,
		TTL:           5 * time.Minute,
		Warm:          3 * time.Second,
		WarmUp:        time.Second,
		Cold:          2 * time.Second,
		Kill:          3 * time.Second,
		KillAt:        time.Second,
		KillTimeout:   500 * time.Millisecond,
		HotInstances:  4,
		HotCallers:    1_000,
		HotDelay:      100 * time.Millisecond,
		ManyIDs:       100,
		ManyWarmCalls: 200,
		ManyColdCalls: 10,
		InprocSizes:   []int{1_000, 10_000},
		InprocTime:    700 * time.Millisecond,
	}
	if quick {
		o.Rounds = 1
		o.Warm, o.WarmUp, o.Cold = time.Second, 300*time.Millisecond, 500*time.Millisecond
		o.Kill, o.KillAt = 1500*time.Millisecond, 500*time.Millisecond
		o.ManyWarmCalls, o.ManyColdCalls = 50, 5
		o.InprocTime = 300 * time.Millisecond
	}
	return o
}

// Column is one metric of a table.
type Column struct {
	Key  string // the metric's key in Samples
	Head string // the column heading
	Unit string // how values print: see format
	// Ratio, if set, adds a column with the median of this metric relative
	// to the baseline row's.
	Ratio bool
	// Lower marks metrics where less is better (latency, origin calls).
	Lower bool
}

// Table is the result of one scenario: one row per contender, one column
// per metric, the values of every round.
type Table struct {
	ID, Title, About string
	// RowHead is the heading of the row names' column; default "contender".
	RowHead string
	Columns []Column
	Rows    []string
	// Samples holds, per row and column key, one value per round.
	Samples map[string]map[string][]float64
	Notes   []string
}

func (t *Table) add(row string, m map[string]float64) {
	if t.Samples == nil {
		t.Samples = map[string]map[string][]float64{}
	}
	if t.Samples[row] == nil {
		t.Samples[row] = map[string][]float64{}
	}
	for k, v := range m {
		t.Samples[row][k] = append(t.Samples[row][k], v)
	}
}

func (t *Table) note(s string) {
	if !slices.Contains(t.Notes, s) {
		t.Notes = append(t.Notes, s)
	}
}

// Results is everything a run measured.
type Results struct {
	// Command is the command line that produced the results, for the report.
	Command   string
	Options   Options
	Started   time.Time
	Took      time.Duration
	RedisInfo map[string]string
	// Machine and Modules describe, as rows of two cells, where and with
	// what the results were measured.
	Machine, Modules [][2]string
	Tables           []*Table
	Contenders       []contender.Contender
	InprocImpls      []string
}

// errUnsupported marks a contender a scenario cannot run.
type errUnsupported struct{ why string }

func (e *errUnsupported) Error() string { return e.why }

// scenario is one kind of measurement.
type scenario struct {
	table *Table
	rows  []string
	run   func(ctx context.Context, e *env, row string, round int) (map[string]float64, error)
}

// env is what the scenarios of a run share.
type env struct {
	opt     Options
	srv     *cachetest.Server
	keys    []string
	traces  [][]int32 // one Zipf trace per caller, over keys
	inTrace *inproc.Traces
	only    map[string][]string // contender → the only scenarios it runs
}

// traceLen is the length of each caller's trace: long enough that a caller
// rarely wraps around within a timed run.
const traceLen = 1 << 17

// Run runs every scenario with every contender Options.Rounds times.
func Run(ctx context.Context, opt Options) (*Results, error) {
	def := Defaults(false)
	fill(&opt, &def)
	res := &Results{Options: opt, Started: time.Now()}
	srv, err := cachetest.RunRedis(cachetest.Config{})
	if err != nil {
		return nil, fmt.Errorf("starting a private redis-server: %w", err)
	}
	defer srv.Close()
	res.RedisInfo = redisInfo(srv)
	res.Machine, res.Modules = machine(res), modules()

	e := &env{opt: opt, srv: srv, keys: workload.Keys(opt.Keys)}
	perm := workload.Scramble(opt.Keys, 11)
	e.traces = make([][]int32, opt.Callers)
	for g := range e.traces {
		tr := workload.Trace(opt.Keys, traceLen, uint64(g)+100)
		for i, k := range tr {
			tr[i] = perm[k]
		}
		e.traces[g] = tr
	}

	for _, c := range contender.All() {
		if len(opt.Contenders) == 0 || slices.Contains(opt.Contenders, c.Name) {
			res.Contenders = append(res.Contenders, c)
		}
	}
	var names []string
	for _, c := range res.Contenders {
		names = append(names, c.Name)
	}
	e.only = map[string][]string{}
	for _, c := range res.Contenders {
		if len(c.Only) > 0 {
			e.only[c.Name] = c.Only
		}
	}
	scenarios := e.scenarios(names)
	for _, s := range scenarios {
		res.Tables = append(res.Tables, s.table)
	}
	for _, impl := range inproc.Impls() {
		res.InprocImpls = append(res.InprocImpls, impl.Name)
	}

	for round := range opt.Rounds {
		for _, s := range scenarios {
			order := rotate(s.rows, round)
			for _, row := range order {
				if only, ok := e.only[row]; ok && !slices.Contains(only, s.table.ID) {
					continue
				}
				if err := ctx.Err(); err != nil {
					return res, err
				}
				e.progress("round %d/%d %-10s %-28s", round+1, opt.Rounds, s.table.ID, row)
				t0 := time.Now()
				m, err := s.run(ctx, e, row, round)
				var unsup *errUnsupported
				switch {
				case errors.As(err, &unsup):
					s.table.note(fmt.Sprintf("%s: not measured: %s", row, unsup.why))
					e.progress("  skipped: %s\n", unsup.why)
					continue
				case err != nil:
					return res, fmt.Errorf("%s / %s: %w", s.table.ID, row, err)
				}
				s.table.add(row, m)
				e.progress("  %5.1fs %s\n", time.Since(t0).Seconds(), brief(m))
			}
		}
	}
	res.Took = time.Since(res.Started)
	return res, nil
}

func (e *env) wants(id string) bool {
	return len(e.opt.Scenarios) == 0 || slices.Contains(e.opt.Scenarios, id)
}

func (e *env) progress(format string, args ...any) {
	if e.opt.Progress != nil {
		fmt.Fprintf(e.opt.Progress, format, args...)
	}
}

// rotate returns rows starting at index round (mod len), so that each
// contender runs first, second, … in turn across rounds.
func rotate(rows []string, round int) []string {
	if len(rows) == 0 {
		return nil
	}
	k := round % len(rows)
	return append(slices.Clone(rows[k:]), rows[:k]...)
}

func brief(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	s := ""
	for _, k := range keys {
		s += fmt.Sprintf(" %s=%.4g", k, m[k])
	}
	return s
}

// fill sets the zero fields of o from d.
func fill(o, d *Options) {
	set := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	setD := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	set(&o.Rounds, d.Rounds)
	set(&o.Keys, d.Keys)
	set(&o.Callers, d.Callers)
	set(&o.LocalSize, d.LocalSize)
	setD(&o.LoaderDelay, d.LoaderDelay)
	setD(&o.TTL, d.TTL)
	setD(&o.Warm, d.Warm)
	setD(&o.WarmUp, d.WarmUp)
	setD(&o.Cold, d.Cold)
	setD(&o.Kill, d.Kill)
	setD(&o.KillAt, d.KillAt)
	setD(&o.KillTimeout, d.KillTimeout)
	set(&o.HotInstances, d.HotInstances)
	set(&o.HotCallers, d.HotCallers)
	setD(&o.HotDelay, d.HotDelay)
	set(&o.ManyIDs, d.ManyIDs)
	set(&o.ManyWarmCalls, d.ManyWarmCalls)
	set(&o.ManyColdCalls, d.ManyColdCalls)
	setD(&o.InprocTime, d.InprocTime)
	if len(o.InprocSizes) == 0 {
		o.InprocSizes = d.InprocSizes
	}
}
