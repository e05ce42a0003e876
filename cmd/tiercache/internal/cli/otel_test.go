package cli

import (
	"context"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	collmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	colltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"
)

func TestOTelFlagUsage(t *testing.T) {
	code, stdout, stderr := run(t, "serve", "--otel", "jaeger")
	if code != ExitUsage || stdout != "" || !strings.Contains(stderr, `--otel: "jaeger" is not otlp or stdout`) {
		t.Errorf("serve --otel jaeger: exit code %d, stdout %q, stderr %q; want 2 and the usage error", code, stdout, stderr)
	}
	oneLineErr(t, stderr)
	_, stdout, _ = run(t, "serve", "--help")
	if !strings.Contains(stdout, "--otel exporter") {
		t.Errorf("serve --help lacks --otel:\n%s", stdout)
	}
}

// serveUntilStopped runs "serve args..." in-process and returns its base URL
// once it listens, its stdout, and stop, which cancels it and fails the test
// unless it exits 0.
func serveUntilStopped(t *testing.T, args ...string) (base string, stdout *buffer, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	stdout = &buffer{}
	lines := &lineWatcher{prefix: "listening on ", found: make(chan string, 1)}
	stderr := &buffer{}
	exited := make(chan int, 1)
	go func() { exited <- Main(ctx, append([]string{"serve"}, args...), io.MultiWriter(lines, stdout), stderr) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if code := <-exited; code != ExitOK {
				t.Errorf("serve exited with %d after cancel; stderr:\n%s", code, stderr)
			}
		})
	}
	select {
	case base = <-lines.found:
		t.Cleanup(stop)
		return base, stdout, stop
	case code := <-exited:
		cancel()
		t.Fatalf("serve exited with %d before listening; stderr:\n%s", code, stderr)
	case <-time.After(30 * time.Second):
		cancel()
		<-exited
		t.Fatalf("serve did not listen within 30s; stderr:\n%s", stderr)
	}
	return "", nil, nil
}

// collector is an OTLP/HTTP endpoint that keeps what it receives.
type collector struct {
	mu      sync.Mutex
	traces  []*colltrace.ExportTraceServiceRequest
	metrics []*collmetrics.ExportMetricsServiceRequest
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch r.URL.Path {
	case "/v1/traces":
		req := &colltrace.ExportTraceServiceRequest{}
		err = proto.Unmarshal(body, req)
		c.traces = append(c.traces, req)
	case "/v1/metrics":
		req := &collmetrics.ExportMetricsServiceRequest{}
		err = proto.Unmarshal(body, req)
		c.metrics = append(c.metrics, req)
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK) // an empty Export*ServiceResponse
}

func attrMap(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string)
	for _, kv := range kvs {
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = strconv.FormatInt(v.IntValue, 10)
		}
	}
	return m
}

// TestServeOTLP runs serve with --otel otlp against an OTLP/HTTP endpoint
// named by OTEL_EXPORTER_OTLP_ENDPOINT: two GETs of a user arrive there as
// a miss with its load and an L1 hit, and as request counters, with the
// service name from OTEL_SERVICE_NAME.
func TestServeOTLP(t *testing.T) {
	col := &collector{}
	srv := httptest.NewServer(col)
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_SERVICE_NAME", "users-test")
	base, _, stop := serveUntilStopped(t, "--addr", "127.0.0.1:0", "--db", filepath.Join(t.TempDir(), "users.db"),
		"--users", "10", "--log-level", "warn", "--otel", "otlp")
	getUser(t, base, "1", http.StatusOK)
	getUser(t, base, "1", http.StatusOK)
	stop() // shutting down exports the spans and a last collection of metrics

	col.mu.Lock()
	defer col.mu.Unlock()
	if len(col.traces) == 0 || len(col.metrics) == 0 {
		t.Fatalf("the collector got %d trace and %d metric exports, want some of each", len(col.traces), len(col.metrics))
	}
	type span struct {
		name, parent, id string
		attrs            map[string]string
	}
	var spans []span
	for _, req := range col.traces {
		for _, rs := range req.GetResourceSpans() {
			if got := attrMap(rs.GetResource().GetAttributes())["service.name"]; got != "users-test" {
				t.Errorf("spans of service %q, want users-test", got)
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					spans = append(spans, span{s.GetName(), string(s.GetParentSpanId()), string(s.GetSpanId()), attrMap(s.GetAttributes())})
				}
			}
		}
	}
	var miss, hit, load *span
	for i, s := range spans {
		switch {
		case s.name == "tiercache.get" && s.attrs["tiercache.outcome"] == "miss" && s.attrs["tiercache.tier"] == "origin" && s.attrs["tiercache.key"] == "v1:user:1":
			miss = &spans[i]
		case s.name == "tiercache.get" && s.attrs["tiercache.outcome"] == "hit" && s.attrs["tiercache.tier"] == "l1" && s.attrs["tiercache.key"] == "v1:user:1":
			hit = &spans[i]
		case s.name == "tiercache.load" && s.attrs["tiercache.load.attempt"] == "1":
			load = &spans[i]
		}
	}
	if miss == nil || hit == nil || load == nil || len(spans) != 3 {
		t.Fatalf("want a miss, a hit and a load span, got %+v", spans)
	}
	if load.parent != miss.id {
		t.Error("the load span is not the miss's child")
	}

	// The last export has the final counts.
	last := col.metrics[len(col.metrics)-1]
	requests := map[string]int64{}
	for _, rm := range last.GetResourceMetrics() {
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				if m.GetName() != "tiercache.requests" {
					continue
				}
				for _, p := range m.GetSum().GetDataPoints() {
					a := attrMap(p.GetAttributes())
					requests[a["tiercache.keyspace"]+" "+a["tiercache.outcome"]+" "+a["tiercache.tier"]] = p.GetAsInt()
				}
			}
		}
	}
	if want := map[string]int64{"user miss origin": 1, "user hit l1": 1}; !maps.Equal(requests, want) {
		t.Errorf("tiercache.requests = %v, want %v", requests, want)
	}
}

// TestServeOTelStdout: with --otel stdout, the spans and metrics are JSON
// on stdout after the listening line.
func TestServeOTelStdout(t *testing.T) {
	base, stdout, stop := serveUntilStopped(t, "--addr", "127.0.0.1:0", "--db", filepath.Join(t.TempDir(), "users.db"),
		"--users", "10", "--log-level", "warn", "--otel", "stdout")
	getUser(t, base, "2", http.StatusOK)
	stop()
	out := stdout.String()
	for _, want := range []string{`"Name":"tiercache.get"`, `"Name":"tiercache.load"`, `"Value":"v1:user:2"`, `"Name":"tiercache.requests"`} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %s:\n%.3000s", want, out)
		}
	}
}
