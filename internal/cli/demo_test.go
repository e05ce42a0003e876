package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tiercache/tiercache/cachetest"
	"github.com/tiercache/tiercache/internal/demo"
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
