package suite

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRunSmall runs a tiny version of the suite end to end (one round,
// short phases, two contenders) and checks that the report holds numbers.
func TestRunSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server and runs for a few seconds")
	}
	opt := Defaults(true)
	opt.Keys, opt.Callers, opt.HotCallers = 1_000, 8, 100
	opt.Warm, opt.WarmUp, opt.Cold = 200*time.Millisecond, 100*time.Millisecond, 200*time.Millisecond
	opt.ManyWarmCalls, opt.ManyColdCalls = 5, 2
	opt.Scenarios = []string{IDWarm, IDHotCold, IDMany}
	opt.Contenders = []string{"tiercache", Baseline}
	res, err := Run(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range res.Tables {
		for _, row := range tb.Rows {
			if len(tb.Samples[row]) == 0 {
				t.Errorf("%s: no samples for %s", tb.ID, row)
			}
		}
	}
	hot := res.Tables[1]
	if got, _ := hot.Median("tiercache", "origin"); got != 1 {
		t.Errorf("hot key: tiercache origin calls = %v, want 1", got)
	}
	if got, _ := hot.Median(Baseline, "origin"); got != float64(opt.HotCallers) {
		t.Errorf("hot key: naive origin calls = %v, want %d (one per caller)", got, opt.HotCallers)
	}
	var b bytes.Buffer
	if err := WriteMarkdown(&b, res, Meta{Command: "test"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Warm cache-aside through Redis", "| tiercache |", "## Machine", "## Module versions"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	b.Reset()
	if err := WriteBenchfmt(&b, res); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "BenchmarkWarm/contender=tiercache 1 ") {
		t.Errorf("benchfmt output lacks the warm tiercache line:\n%s", b.String())
	}
}

func TestRotate(t *testing.T) {
	rows := []string{"a", "b", "c"}
	for round, want := range []string{"abc", "bca", "cab", "abc"} {
		if got := strings.Join(rotate(rows, round), ""); got != want {
			t.Errorf("rotate(round %d) = %s, want %s", round, got, want)
		}
	}
}

// TestInprocTable runs the in-process scenario briefly and checks that its
// table has a row per cache and size, tiercache-nostore and memo included,
// each with throughput, hit ratio and bytes per entry, in the samples and
// in the report.
func TestInprocTable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server and runs for a few seconds")
	}
	opt := Defaults(true)
	opt.Scenarios = []string{IDInproc}
	opt.InprocSizes = []int{500}
	opt.InprocTime = 50 * time.Millisecond
	res, err := Run(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Tables) != 1 || res.Tables[0].ID != IDInproc {
		t.Fatalf("got %d tables, want the in-process one alone", len(res.Tables))
	}
	tb := res.Tables[0]
	var b bytes.Buffer
	if err := WriteMarkdown(&b, res, Meta{Command: "test"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"tiercache-nostore", "memo", "otter/v2", "golang-lru/v2"} {
		row := inprocRow(name, 500)
		if !slices.Contains(tb.Rows, row) {
			t.Errorf("no row %q in %v", row, tb.Rows)
			continue
		}
		for _, key := range []string{"ops", "hit", "bpe"} {
			v, ok := tb.Median(row, key)
			if !ok || v <= 0 {
				t.Errorf("%s: %s = %v (measured: %v), want > 0", row, key, v, ok)
			}
		}
		if hit, _ := tb.Median(row, "hit"); hit > 100 {
			t.Errorf("%s: hit ratio %v%%, want at most 100", row, hit)
		}
		if !strings.Contains(b.String(), "| "+row+" | ") {
			t.Errorf("report lacks the row %q", row)
		}
	}
	if strings.Contains(b.String(), "n/a") {
		t.Errorf("report has a cell without a value:\n%s", b.String())
	}
}
