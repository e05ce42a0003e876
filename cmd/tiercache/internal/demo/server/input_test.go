package server

import (
	"database/sql"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cachetest"
	"github.com/tiercache/tiercache/cmd/tiercache/internal/demo/userdb"
	"github.com/tiercache/tiercache/cmd/tiercache/internal/demo/userdb/userdbtest"
)

// logBuffer collects a JSON slog handler's records; safe for concurrent
// use.
type logBuffer struct{ cachetest.Buffer }

// records returns the records at level or above.
func (l *logBuffer) records(t *testing.T, level slog.Level) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, rec := range l.Records(t) {
		var lv slog.Level
		if err := lv.UnmarshalText([]byte(rec["level"].(string))); err != nil {
			t.Fatal(err)
		}
		if lv >= level {
			out = append(out, rec)
		}
	}
	return out
}

func (l *logBuffer) size() int { return l.Len() }

// errorOf returns the "error" of a JSON error body, or the body as it is.
func errorOf(w *httptest.ResponseRecorder) string {
	var e struct{ Error string }
	if json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Error == "" {
		return w.Body.String()
	}
	return e.Error
}

// newLoggedService is newService on the database at dsn (seeded with 100
// users unless seed is false), logging at Debug to the returned buffer.
func newLoggedService(t *testing.T, dsn string, seed bool) (*Handler, *logBuffer) {
	t.Helper()
	db, err := userdb.Open(t.Context(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if seed {
		if _, err := db.Seed(t.Context(), 100); err != nil {
			t.Fatal(err)
		}
	}
	logs := &logBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cache, err := tiercache.New(&tiercache.Options[userdb.User]{Keyspace: tiercache.Keyspace{Name: "user"}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	h, err := New(Config{DB: db, Cache: cache, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return h, logs
}

// backends runs test on a fresh SQLite database and, when the test
// PostgreSQL server is there, on a database of its own on it.
func backends(t *testing.T, test func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) { test(t, filepath.Join(t.TempDir(), "users.db")) })
	t.Run("postgres", func(t *testing.T) { test(t, userdbtest.Postgres(t)) })
}

// TestBadText: a name or email that no database should store (a NUL, which
// PostgreSQL refuses, other control characters, bytes that are not UTF-8)
// is the client's mistake: 400 with a clear message, no error logged, the row
// unchanged. It was answered "503 the database is unavailable" with an ERROR
// logged, on PostgreSQL.
func TestBadText(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		h, logs := newLoggedService(t, dsn, true)
		for _, tc := range []struct{ body, want string }{
			{`{"name":"Bob\u0000","email":"bob@example.com"}`, `"name" must not contain control characters`},
			{`{"name":"Bob","email":"bob\u0000@example.com"}`, `"email" must not contain control characters`},
			{`{"name":"Bob\nBob","email":"bob@example.com"}`, `"name" must not contain control characters`},
			{"{\"name\":\"B\xffb\",\"email\":\"bob@example.com\"}", "not valid UTF-8"},
		} {
			w := serve(h, "PUT", "/users/7", tc.body)
			if w.Code != http.StatusBadRequest || !strings.Contains(errorOf(w), tc.want) {
				t.Errorf("PUT %q: %d %q; want 400 with %q", tc.body, w.Code, errorOf(w), tc.want)
			}
		}
		if w := serve(h, "GET", "/users/7", ""); !strings.Contains(w.Body.String(), `"name":"User 7"`) {
			t.Errorf("GET /users/7 after the refused updates: %d %q, want the row unchanged", w.Code, w.Body.String())
		}
		if recs := logs.records(t, slog.LevelWarn); len(recs) > 0 {
			t.Errorf("bad input logged at Warn or above: %v", recs)
		}
	})
}

// TestLongInputClipped: what the service echoes of a request is clipped, so
// that a 500,000-byte id does not come back as a 500 KB error (nor go into
// the log whole).
func TestLongInputClipped(t *testing.T) {
	h, logs := newLoggedService(t, filepath.Join(t.TempDir(), "users.db"), true)
	long := strings.Repeat("1", 500_000)
	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/users/" + long, ""},
		{"PUT", "/users/" + long, `{"name":"Ada","email":"ada@example.com"}`},
		{"PUT", "/users/7", `{"` + strings.Repeat("x", 60_000) + `":1}`}, // an unknown field
	} {
		w := serve(h, tc.method, tc.path, tc.body)
		if w.Code != http.StatusBadRequest || w.Body.Len() > 300 || !strings.Contains(w.Body.String(), "bytes)") {
			t.Errorf("%s %.40s… %.40s…: %d, %d bytes %.300q; want 400, a short body that gives the length", tc.method, tc.path, tc.body, w.Code, w.Body.Len(), w.Body.String())
		}
	}
	if n := logs.size(); n > 3000 {
		t.Errorf("the three requests logged %d bytes, want the input clipped", n)
	}
}

// TestJSONErrors: a body of the wrong shape gets a message in the API's
// terms, not Go's ("Go struct field update.name of type string").
func TestJSONErrors(t *testing.T) {
	h, _ := newLoggedService(t, filepath.Join(t.TempDir(), "users.db"), true)
	for _, tc := range []struct{ body, want string }{
		{`{"name":42,"email":"ada@example.com"}`, `"name" must be a string`},
		{`{"name":"Ada","email":["ada@example.com"]}`, `"email" must be a string`},
		{`[]`, "must be a JSON object"},
		{`"Ada"`, "must be a JSON object"},
		{``, "empty body"},
		{`{"name":"Ada","email":"ada@example.com","admin":true}`, `unknown field "admin"`},
		{`{"name":"Ada",`, "invalid JSON body"},
	} {
		w := serve(h, "PUT", "/users/7", tc.body)
		body := errorOf(w)
		if w.Code != http.StatusBadRequest || !strings.Contains(body, tc.want) || strings.Contains(body, "Go ") || strings.Contains(body, "update") || strings.Contains(body, "json:") {
			t.Errorf("PUT %q: %d %q; want 400 with %q and no Go internals", tc.body, w.Code, body, tc.want)
		}
	}
}

// TestFailedRequestLoggedOnce: a request the database fails (here a users
// table without the columns the queries name) is logged once: it was twice
// for a GET, by the cache (the failed load, at Warn) and by the handler (at
// Error).
func TestFailedRequestLoggedOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.db")
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.ExecContext(t.Context(), `CREATE TABLE users (id INTEGER PRIMARY KEY, fullname TEXT, version INTEGER);
		INSERT INTO users VALUES (1, 'Ada', 1)`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	h, logs := newLoggedService(t, path, false)
	for i, req := range []struct{ method, body string }{
		{"GET", ""},
		{"PUT", `{"name":"Ada","email":"ada@example.com"}`},
	} {
		w := serve(h, req.method, "/users/1", req.body)
		if w.Code != http.StatusServiceUnavailable {
			t.Errorf("%s /users/1: %d %q, want 503", req.method, w.Code, w.Body.String())
		}
		if recs := logs.records(t, slog.LevelWarn); len(recs) != i+1 {
			t.Errorf("after %d failed requests, %d records at Warn or above, want %d: %v", i+1, len(recs), i+1, recs)
		}
	}
}
