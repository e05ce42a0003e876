package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tiercache/tiercache/cachetest"
	"github.com/tiercache/tiercache/cmd/tiercache/internal/demo"
	"github.com/tiercache/tiercache/cmd/tiercache/internal/liveview/browsertest"
)

// smallDemo returns the flags of a short demo.
func smallDemo() []string {
	return []string{"--users", "2000", "--duration", "1s", "--instances", "2", "--workers", "8", "--rate", "4000"}
}

func runDemoJSON(t *testing.T, extra ...string) *demo.Report {
	t.Helper()
	code, stdout, stderr := run(t, append(append([]string{"demo", "--json"}, smallDemo()...), extra...)...)
	if code != ExitOK {
		t.Fatalf("demo: exit code %d; stderr:\n%s", code, stderr)
	}
	var r demo.Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("demo --json output: %v\n%s", err, stdout)
	}
	if r.Errors != 0 {
		t.Errorf("%d requests failed, first: %s", r.Errors, r.FirstError)
	}
	c, b := &r.Cached, &r.Baseline
	if c.Requests == 0 || b.Requests == 0 {
		t.Fatalf("requests: cached %d, baseline %d; want some in both", c.Requests, b.Requests)
	}
	if r.Cache.Requests != c.Reads {
		t.Errorf("cache reads %d, workers' reads %d; want the same", r.Cache.Requests, c.Reads)
	}
	if r.Cache.HitRatio <= 0.5 {
		t.Errorf("hit ratio %.3f, want > 0.5", r.Cache.HitRatio)
	}
	if c.OriginPerRequest >= b.OriginPerRequest || c.OriginQueries >= r.OriginQueriesWithoutCache {
		t.Errorf("origin queries per request: cached %.3f, baseline %.3f; want fewer with the cache", c.OriginPerRequest, b.OriginPerRequest)
	}
	if r.Cache.NegativeHits == 0 || c.NotFound == 0 {
		t.Errorf("negative hits %d, not found %d; want some", r.Cache.NegativeHits, c.NotFound)
	}
	if c.P50Ms <= 0 || c.P50Ms > c.P99Ms || c.P50Ms >= b.P50Ms {
		t.Errorf("read latency p50/p99: cached %v/%v ms, baseline %v/%v ms", c.P50Ms, c.P99Ms, b.P50Ms, b.P99Ms)
	}
	if s := r.Stampede; s.Reads < uint64(s.Readers) || s.OriginCalls < 1 || s.OriginCalls > r.Instances || s.StaleServed == 0 {
		t.Errorf("stampede = %+v, want every worker's read, 1 to %d origin calls and stale answers", s, r.Instances)
	}
	return &r
}

func TestDemo(t *testing.T) {
	r := runDemoJSON(t)
	if r.SharedTier != "" || r.Cache.L2Answers != 0 || !strings.HasPrefix(r.Mode, "in-process only") {
		t.Errorf("without --redis: shared tier %q, L2 answers %d, mode %q", r.SharedTier, r.Cache.L2Answers, r.Mode)
	}
}

func TestDemoRedis(t *testing.T) {
	rs := cachetest.StartRedis(t)
	r := runDemoJSON(t, "--redis", rs.URL())
	if r.Cache.L2Answers == 0 || r.SharedTier != rs.URL() {
		t.Errorf("with --redis: L2 answers %d, shared tier %q; want some, %q", r.Cache.L2Answers, r.SharedTier, rs.URL())
	}
	if r.Stampede.OriginCalls != 1 {
		t.Errorf("stampede origin calls with a shared tier = %d, want 1 (the rebuild lock)", r.Stampede.OriginCalls)
	}
}

func TestDemoText(t *testing.T) {
	code, stdout, stderr := run(t, append([]string{"demo"}, smallDemo()...)...)
	if code != ExitOK {
		t.Fatalf("demo: exit code %d; stderr:\n%s", code, stderr)
	}
	for _, s := range []string{"requests", "origin queries", "read latency p50", "read latency p99",
		"hit ratio", "L1 ", "L2 ", "negative hits", "stale served", "shared loads", "stampede",
		"in-process only (no --redis)"} {
		if !strings.Contains(stdout, s) {
			t.Errorf("report lacks %q:\n%s", s, stdout)
		}
	}
	// Not a terminal: plain progress lines on stderr, no redrawing.
	if !strings.Contains(stderr, "cached ") || !strings.Contains(stderr, "baseline ") || strings.Contains(stderr, "\r") {
		t.Errorf("progress on stderr = %q, want plain lines for both runs", stderr)
	}
}

// TestDemoHTML writes the report with --html and opens the file in
// Chromium: the charts are drawn, with the stampede marked, the numbers are
// the JSON report's, and the page's console has no error.
func TestDemoHTML(t *testing.T) {
	ctx, page := browsertest.Start(t, 1280, 1600)
	dir := t.TempDir()
	file := filepath.Join(dir, "report.html")
	r := runDemoJSON(t, "--html", file)
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 1 {
		t.Errorf("the report's directory holds %v (%v), want report.html alone", entries, err)
	}
	page.Open(ctx, "file://"+file)
	el := page.Elements(ctx)
	for id, want := range map[string]string{
		"keyspace-version": r.KeyspaceVersion,
		"requests":         strconv.FormatUint(r.Cached.Requests, 10),
		"origin-queries":   strconv.FormatUint(r.Cached.OriginQueries, 10),
		"stampede-calls":   strconv.Itoa(r.Stampede.OriginCalls),
		"stampede-reads":   strconv.FormatUint(r.Stampede.Reads, 10),
	} {
		if v := el[id].Value; v == nil || *v != want {
			t.Errorf("#%s has data-value %v, want %s", id, el[id], want)
		}
		if got := strings.ReplaceAll(el[id].Text, ",", ""); got != want {
			t.Errorf("#%s shows %q, want %s", id, el[id].Text, want)
		}
	}
	if got, want := el["hit-ratio"].Text, fmt.Sprintf("%.1f%%", 100*r.Cache.HitRatio); got != want {
		t.Errorf("#hit-ratio shows %q, want %q", got, want)
	}
	for sel, want := range map[string]int{
		"#chart-latency path.line":   4, // p50 and p99, with and without the cache
		"#chart-latency line.marker": 1, // the stampede
		"#chart-hit path.area":       1, // L1 (no L2 without --redis)
		"#chart-hit line.marker":     1,
		"#chart-origin path.line":    2,
		"#chart-stampede path.line":  2,
		"#summary tbody tr":          5,
	} {
		if got := page.Count(ctx, sel); got != want {
			t.Errorf("%d %s, want %d", got, sel, want)
		}
	}
	// The expiry, and a marker per step with origin calls for the hot key.
	if got := page.Count(ctx, "#chart-stampede line.marker"); got < 2 {
		t.Errorf("%d markers in the stampede chart, want the expiry and its origin calls", got)
	}
	if p := page.Problems(ctx); len(p) > 0 {
		t.Errorf("the report's console: %q", p)
	}
}

func TestDemoHTMLBadFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		file string
		code int
		want string
	}{
		{filepath.Join(dir, "no", "such", "dir.html"), ExitFailure, "--html: cannot create a file in " + filepath.Join(dir, "no", "such")},
		{dir, ExitUsage, "--html: " + dir + " is a directory"},
	} {
		code, _, stderr := run(t, append([]string{"demo", "--html", tc.file}, smallDemo()...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) || strings.Contains(stderr, "cached ") {
			t.Errorf("demo --html %s: exit code %d, stderr %q; want %d with %q, before the run", tc.file, code, stderr, tc.code, tc.want)
		}
	}
}
