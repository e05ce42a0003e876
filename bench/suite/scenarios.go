package suite

import (
	"context"
	"fmt"
	"time"

	"github.com/tiercache/tiercache/bench/codecs"
	"github.com/tiercache/tiercache/bench/contender"
	"github.com/tiercache/tiercache/bench/inproc"
)

// Scenario ids, for Options.Scenarios.
const (
	IDInproc   = "inproc"
	IDWarm     = "warm"
	IDCold     = "cold"
	IDHotCold  = "hot-absent"
	IDHotStale = "hot-stale"
	IDKill     = "kill"
	IDMany     = "getmany"
	IDDecode   = "decode"
	IDCodec    = "codec"
)

// ScenarioIDs lists every scenario id, in run order.
func ScenarioIDs() []string {
	return []string{IDInproc, IDWarm, IDCold, IDHotCold, IDHotStale, IDKill, IDMany, IDDecode, IDCodec}
}

// baselineFor returns, for the table with id, the row each row's ratios
// are relative to, or nil for a table without ratios.
func baselineFor(id string) func(row string) string {
	switch id {
	case IDInproc:
		return func(row string) string {
			_, size := splitInprocRow(row)
			return inprocRow("golang-lru/v2", size)
		}
	case IDWarm, IDCold:
		return func(string) string { return contender.Baseline }
	case IDDecode:
		return func(string) string { return decodeGetRow }
	case IDCodec:
		return func(string) string { return "encoding/json" }
	}
	return nil
}

// scenarios returns the scenarios the options ask for, with the contenders
// named.
func (e *env) scenarios(names []string) []scenario {
	o := &e.opt
	var out []scenario
	add := func(s scenario) {
		s.table.Rows = s.rows
		if e.wants(s.table.ID) {
			out = append(out, s)
		}
	}

	var inRows []string
	for _, impl := range inproc.Impls() {
		for _, size := range o.InprocSizes {
			inRows = append(inRows, inprocRow(impl.Name, size))
		}
	}
	add(scenario{
		table: &Table{
			ID:      IDInproc,
			RowHead: "cache @size",
			Title:   "In-process get/set mix",
			About: fmt.Sprintf("90/10 read/write, Zipf s=1.01 over %d keys, %d goroutines (2 per core), uint64 values; "+
				"a read that misses inserts (cache-aside with a free loader). Timed for %v after a warm-up of 20× the size. "+
				"B/entry: live-heap growth after filling the cache to its size with small entries, fixed overhead included. "+
				"memo (a Memo of a free function) has no Set: a write is a Get of its key, which inserts or refreshes it as an LRU's Add does, "+
				"and memo's hit ratio counts those Gets with the reads. "+
				"Ratio: throughput relative to golang-lru/v2 at the same size.",
				inproc.KeySpace, 2*gomaxprocs(), o.InprocTime),
			Columns: []Column{
				{Key: "ops", Head: "ops/s", Unit: "ops", Ratio: true},
				{Key: "hit", Head: "hit ratio", Unit: "pct"},
				{Key: "bpe", Head: "B/entry", Unit: "int", Lower: true},
			},
		},
		rows: inRows,
		run: func(ctx context.Context, e *env, row string, r int) (map[string]float64, error) {
			return e.runInproc(ctx, row, r)
		},
	})
	add(scenario{
		table: &Table{
			ID:    IDWarm,
			Title: "Warm cache-aside through Redis",
			About: fmt.Sprintf("%d keys pre-warmed in Redis through each contender, then %d callers replay Zipf traces: %v untimed "+
				"(local tiers fill as they would), %v timed. Loader %v, local tier %d entries, TTL %v. "+
				"CPU/op: CPU time of this process (callers, contender, harness) plus the redis-server, per request, "+
				"from getrusage and INFO cpu: unlike ops/s it does not move when other processes share the machine. "+
				"Redis cmds/op from INFO commandstats. Ratios: relative to the naive go-redis loop.",
				o.Keys, o.Callers, o.WarmUp, o.Warm, o.LoaderDelay, o.LocalSize, o.TTL),
			Columns: []Column{
				{Key: "ops", Head: "ops/s", Unit: "ops", Ratio: true},
				{Key: "cpu", Head: "CPU/op", Unit: "us", Ratio: true, Lower: true},
				{Key: "p50", Head: "p50", Unit: "us", Lower: true},
				{Key: "p99", Head: "p99", Unit: "us", Lower: true},
				{Key: "cmds", Head: "Redis cmds/op", Unit: "frac", Lower: true},
				{Key: "origin", Head: "origin calls", Unit: "int", Lower: true},
				{Key: "errors", Head: "errors", Unit: "int", Lower: true},
			},
		},
		rows: names,
		run: func(ctx context.Context, e *env, row string, _ int) (map[string]float64, error) {
			return e.runWarm(ctx, row)
		},
	})
	add(scenario{
		table: &Table{
			ID:    IDCold,
			Title: "Cold cache-aside",
			About: fmt.Sprintf("FLUSHALL and a fresh instance, then the same %d callers for %v from empty. "+
				"CPU/op as in the warm table. Ratio: throughput relative to the naive go-redis loop.", o.Callers, o.Cold),
			Columns: []Column{
				{Key: "ops", Head: "ops/s", Unit: "ops", Ratio: true},
				{Key: "cpu", Head: "CPU/op", Unit: "us", Lower: true},
				{Key: "p50", Head: "p50", Unit: "us", Lower: true},
				{Key: "p99", Head: "p99", Unit: "us", Lower: true},
				{Key: "origin", Head: "origin calls", Unit: "int", Lower: true},
				{Key: "cmds_load", Head: "Redis cmds/origin call", Unit: "frac", Lower: true},
				{Key: "errors", Head: "errors", Unit: "int", Lower: true},
			},
		},
		rows: names,
		run: func(ctx context.Context, e *env, row string, _ int) (map[string]float64, error) {
			return e.runCold(ctx, row)
		},
	})
	hotCols := []Column{
		{Key: "origin", Head: "origin calls", Unit: "int", Lower: true},
		{Key: "p50", Head: "p50", Unit: "us", Lower: true},
		{Key: "p99", Head: "p99", Unit: "us", Lower: true},
		{Key: "max", Head: "max", Unit: "us", Lower: true},
		{Key: "errors", Head: "errors", Unit: "int", Lower: true},
	}
	add(scenario{
		table: &Table{
			ID:    IDHotCold,
			Title: "Hot key, absent, across instances",
			About: fmt.Sprintf("%d instances of the contender (own clients, own local tiers) on one Redis; %d callers (%d per instance) "+
				"released together by a barrier onto one absent key; the loader takes %v. Origin calls counted until every "+
				"background refresh is done.", o.HotInstances, o.HotCallers, o.HotCallers/o.HotInstances, o.HotDelay),
			Columns: hotCols,
		},
		rows: names,
		run: func(ctx context.Context, e *env, row string, _ int) (map[string]float64, error) {
			return e.runHot(ctx, row, false)
		},
	})
	add(scenario{
		table: &Table{
			ID:    IDHotStale,
			Title: "Hot key, past its soft expiry, across instances",
			About: "The same crowd onto one key every instance read once and that then aged past its TTL (1 s, the shortest " +
				"go-redis/cache accepts). tiercache (StaleTTL 1 min) and sturdyc (early refreshes after 1 s in memory and in " +
				"the distributed storage) may serve the old value while refreshing; the others have no such notion: their " +
				"copies have expired.",
			Columns: hotCols,
		},
		rows: names,
		run: func(ctx context.Context, e *env, row string, _ int) (map[string]float64, error) {
			return e.runHot(ctx, row, true)
		},
	})
	add(scenario{
		table: &Table{
			ID:    IDKill,
			Title: "Redis killed mid-run",
			About: fmt.Sprintf("Warm as above, then %d callers for %v with a %v deadline per request; at %v the private "+
				"redis-server gets SIGKILL. Served/s after the kill counts requests answered without error. "+
				"Origin calls after: loads the contender ran once Redis was gone.", o.Callers, o.Kill, o.KillTimeout, o.KillAt),
			Columns: []Column{
				{Key: "ok_after", Head: "served/s after", Unit: "ops"},
				{Key: "errs_after", Head: "errors after", Unit: "int", Lower: true},
				{Key: "errpct_after", Head: "error % after", Unit: "pct", Lower: true},
				{Key: "p99_before", Head: "p99 before", Unit: "us", Lower: true},
				{Key: "p99_after", Head: "p99 after", Unit: "us", Lower: true},
				{Key: "origin_after", Head: "origin calls after", Unit: "int"},
			},
		},
		rows: names,
		run: func(ctx context.Context, e *env, row string, _ int) (map[string]float64, error) {
			return e.runKill(ctx, row)
		},
	})
	add(scenario{
		table: &Table{
			ID:    IDMany,
			Title: fmt.Sprintf("GetMany of %d ids", o.ManyIDs),
			About: fmt.Sprintf("One caller. Warm: %d calls of %d distinct random ids, all in Redis (local tiers hold what they "+
				"kept). Cold: %d calls of %d ids never seen (one batch loader call where the contender has one). "+
				"Round trips counted with a go-redis hook (n/a for rueidis), Redis commands with INFO commandstats, both per call.",
				o.ManyWarmCalls, o.ManyIDs, o.ManyColdCalls, o.ManyIDs),
			Columns: []Column{
				{Key: "warm_p50", Head: "warm p50", Unit: "us", Lower: true},
				{Key: "warm_p99", Head: "warm p99", Unit: "us", Lower: true},
				{Key: "warm_rt", Head: "warm round trips", Unit: "frac", Lower: true},
				{Key: "warm_cmds", Head: "warm Redis cmds", Unit: "frac", Lower: true},
				{Key: "cold_p50", Head: "cold p50", Unit: "us", Lower: true},
				{Key: "cold_rt", Head: "cold round trips", Unit: "frac", Lower: true},
				{Key: "cold_cmds", Head: "cold Redis cmds", Unit: "frac", Lower: true},
				{Key: "cold_origin", Head: "cold loader calls", Unit: "frac", Lower: true},
			},
		},
		rows: names,
		run: func(ctx context.Context, e *env, row string, r int) (map[string]float64, error) {
			return e.runGetMany(ctx, row, r)
		},
	})
	add(scenario{
		table: &Table{
			ID:      IDDecode,
			RowHead: "operation",
			Title:   "Where an L2 hit's time goes (codec share)",
			About: "One caller, sequential. tiercache L2-hit Get: L1Size 1, every key in Redis, keys read in shuffled order " +
				"(so each Get is an L2 GET + envelope decode + JSON decode). Loopback GET: go-redis GET of the same entry. " +
				"Decode rows: decoding the record's JSON (or msgpack) payload alone. Share: time relative to the L2-hit Get.",
			Columns: []Column{
				{Key: "us", Head: "µs per op", Unit: "us", Ratio: true, Lower: true},
			},
		},
		rows: decodeRows(),
		run: func(ctx context.Context, e *env, row string, r int) (map[string]float64, error) {
			return e.runDecode(ctx, row, r)
		},
	})
	var codecRows []string
	for _, c := range codecs.All() {
		codecRows = append(codecRows, c.Name)
	}
	add(scenario{
		table: &Table{
			ID:      IDCodec,
			Title:   "Codecs: encoding plus decoding the 1 KB record",
			RowHead: "codec",
			About: "One goroutine, each measurement about 250 ms after a warm-up (the same as `go test -bench Codec ./codecs`). " +
				"Allocations and bytes are per encode+decode. goccy/go-json and sonic write the same JSON as encoding/json; " +
				"msgpack is binary (go-redis/cache's and eko/gocache's default). Ratios: relative to encoding/json, tiercache's default.",
			Columns: []Column{
				{Key: "both", Head: "encode+decode", Unit: "us", Ratio: true, Lower: true},
				{Key: "dec", Head: "decode", Unit: "us", Ratio: true, Lower: true},
				{Key: "allocs", Head: "allocs/op", Unit: "int", Lower: true},
				{Key: "bytes", Head: "B/op", Unit: "int", Lower: true},
				{Key: "size", Head: "encoded bytes", Unit: "int", Lower: true},
			},
		},
		rows: codecRows,
		run: func(ctx context.Context, e *env, row string, r int) (map[string]float64, error) {
			return e.runCodec(ctx, row, r)
		},
	})
	return out
}

func inprocRow(name string, size int) string { return fmt.Sprintf("%s @%d", name, size) }

func splitInprocRow(row string) (name string, size int) {
	for i := len(row) - 1; i >= 0; i-- {
		if row[i] == '@' {
			fmt.Sscanf(row[i+1:], "%d", &size)
			return row[:i-1], size
		}
	}
	return row, 0
}

// us converts a duration to microseconds.
func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
