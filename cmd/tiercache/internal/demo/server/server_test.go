package server

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cmd/tiercache/internal/demo/userdb"
	"github.com/tiercache/tiercache/cmd/tiercache/internal/liveview"
)

// newService returns a handler on a fresh SQLite database of 100 users,
// in-process only.
func newService(t *testing.T, metrics http.Handler) (*Handler, *userdb.DB) {
	t.Helper()
	db, err := userdb.Open(t.Context(), filepath.Join(t.TempDir(), "users.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Seed(t.Context(), 100); err != nil {
		t.Fatal(err)
	}
	cache, err := tiercache.New(&tiercache.Options[userdb.User]{Keyspace: tiercache.Keyspace{Name: "user"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	live, err := liveview.New(&liveview.Options{Origin: db.Queries})
	if err != nil {
		t.Fatal(err)
	}
	live.Watch(cache, nil)
	h, err := New(Config{DB: db, Cache: cache, Metrics: metrics, Live: live})
	if err != nil {
		t.Fatal(err)
	}
	return h, db
}

func serve(h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, path, strings.NewReader(body)))
	return w
}

func TestRoutes(t *testing.T) {
	h, _ := newService(t, nil)
	for _, tc := range []struct {
		method, path, body string
		code               int
		want               string // in the body
	}{
		{"GET", "/users/7", "", 200, `"name":"User 7"`},
		{"GET", "/users/101", "", 404, "no user 101"},
		{"GET", "/users/101", "", 404, "no user 101"}, // negatively cached
		{"GET", "/users/x", "", 400, "positive integer"},
		{"GET", "/users/99999999999999999999", "", 400, "positive integer"},
		{"PUT", "/users/7", `{"name":"Ada","email":"ada@example.com"}`, 200, `"version":2`},
		{"GET", "/users/7", "", 200, `"name":"Ada"`},
		{"PUT", "/users/7", `{"name":"Ada"}`, 400, "email"},
		{"PUT", "/users/7", `{"name":"Ada","email":"a@b"} {}`, 400, "more than one value"},
		{"PUT", "/users/7", `[]`, 400, "must be a JSON object"},
		{"PUT", "/users/101", `{"name":"Ada","email":"a@b"}`, 404, "no user 101"},
		{"PUT", "/users/7", `{"name":"` + strings.Repeat("a", MaxBody) + `"}`, 413, "larger than"},
		{"POST", "/users/7", "", 405, ""},
		{"GET", "/healthz", "", 200, `"redis":"off"`},
		{"GET", "/debug/stats", "", 200, `"negative":1,`},
		{"GET", "/debug/tiercache/data", "", 200, `"negative":1,`},
		{"GET", "/debug/tiercache", "", 200, "tiercache live view"},
		{"GET", "/debug/pprof/", "", 200, "goroutine"},
		{"GET", "/metrics", "", 404, ""},
	} {
		w := serve(h, tc.method, tc.path, tc.body)
		if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.want) {
			t.Errorf("%s %s: %d %q; want %d with %q", tc.method, tc.path, w.Code, w.Body.String(), tc.code, tc.want)
		}
	}
}

func TestMetricsSeam(t *testing.T) {
	h, _ := newService(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "tiercache_requests_total 1\n")
	}))
	if w := serve(h, "GET", "/metrics", ""); w.Code != 200 || !strings.Contains(w.Body.String(), "tiercache_requests_total") {
		t.Errorf("GET /metrics = %d %q, want the metrics handler's answer", w.Code, w.Body.String())
	}
}

func TestNoLiveView(t *testing.T) {
	h, db := newService(t, nil)
	h, err := New(Config{DB: db, Cache: h.cfg.Cache})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/debug/stats", "/debug/tiercache"} {
		if w := serve(h, "GET", path, ""); w.Code != http.StatusNotFound {
			t.Errorf("GET %s without Config.Live = %d, want 404", path, w.Code)
		}
	}
}

func TestHealthDatabaseDown(t *testing.T) {
	h, db := newService(t, nil)
	db.Close()
	w := serve(h, "GET", "/healthz", "")
	var got Health
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if w.Code != http.StatusServiceUnavailable || got.Status != "unavailable" || got.DB == "ok" {
		t.Errorf("/healthz with the database closed: %d %+v, want 503 unavailable", w.Code, got)
	}
}

func TestRunShutsDown(t *testing.T) {
	h, _ := newService(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, ln, h, nil) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/users/1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /users/1: %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel: %v, want nil", err)
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/healthz"); err == nil {
		t.Error("the server still answers after shutdown")
	}
}
