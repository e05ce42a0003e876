package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tiercache/tiercache/cachetest"
	"github.com/tiercache/tiercache/cmd/tiercache/internal/demo/server"
	"github.com/tiercache/tiercache/cmd/tiercache/internal/demo/userdb"
	"github.com/tiercache/tiercache/cmd/tiercache/internal/demo/userdb/userdbtest"
	"github.com/tiercache/tiercache/cmd/tiercache/internal/liveview"
)

// TestServe runs two serve instances on one database and one Redis, over
// HTTP, as a fleet would; then inspect on an entry they wrote.
func TestServe(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		testServe(t, filepath.Join(t.TempDir(), "users.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		testServe(t, userdbtest.Postgres(t))
	})
}

func testServe(t *testing.T, db string) {
	rs := cachetest.StartRedis(t)
	args := []string{"--addr", "127.0.0.1:0", "--db", db, "--redis", rs.URL(), "--users", "1000", "--log-level", "warn"}
	a := startServe(t, args...)
	b := startServe(t, args...)

	want := userdb.User{ID: 42, Name: "User 42", Email: "user42@example.com", Version: 1}
	if got := getUser(t, a, "42", http.StatusOK); got != want {
		t.Errorf("GET a/users/42 = %+v, want %+v", got, want)
	}
	if got := getUser(t, b, "42", http.StatusOK); got != want {
		t.Errorf("GET b/users/42 = %+v, want %+v", got, want)
	}

	// An unknown id: 404, then 404 again from the negative entry, without
	// a second database read.
	before := debugStats(t, a)
	getUser(t, a, "5000", http.StatusNotFound)
	getUser(t, a, "5000", http.StatusNotFound)
	after := debugStats(t, a)
	if got := after.Origin.Reads - before.Origin.Reads; got != 1 {
		t.Errorf("two GETs of an unknown id read the database %d times, want 1", got)
	}
	if got := after.Requests.ByOutcome["negative"] - before.Requests.ByOutcome["negative"]; got != 1 {
		t.Errorf("negative hits went up by %d, want 1", got)
	}

	for _, id := range []string{"abc", "0", "-1", "007", "12345678901234567890"} {
		do(t, http.MethodGet, a+"/users/"+id, "", http.StatusBadRequest)
	}

	// An update through a, then reads through a and b see it: a dropped its
	// copies, b dropped its L1 copy on a's invalidation message.
	put := `{"name": "Ada Lovelace", "email": "ada@example.com"}`
	var updated userdb.User
	decode(t, do(t, http.MethodPut, a+"/users/42", put, http.StatusOK), &updated)
	want = userdb.User{ID: 42, Name: "Ada Lovelace", Email: "ada@example.com", Version: 2}
	if updated != want {
		t.Errorf("PUT a/users/42 = %+v, want %+v", updated, want)
	}
	if got := getUser(t, a, "42", http.StatusOK); got != want {
		t.Errorf("GET a/users/42 after the update = %+v, want %+v", got, want)
	}
	// The invalidation message travels asynchronously: poll b for it.
	deadline := time.Now().Add(5 * time.Second)
	for got := getUser(t, b, "42", http.StatusOK); got != want; got = getUser(t, b, "42", http.StatusOK) {
		if time.Now().After(deadline) {
			t.Fatalf("GET b/users/42 = %+v 5s after the update, want %+v", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}

	do(t, http.MethodPut, a+"/users/42", `{"name": "x"`, http.StatusBadRequest)
	do(t, http.MethodPut, a+"/users/42", `{"name": "x", "email": "nope"}`, http.StatusBadRequest)
	do(t, http.MethodPut, a+"/users/42", `{"name": "x", "email": "x@y", "admin": true}`, http.StatusBadRequest)
	do(t, http.MethodPut, a+"/users/5000", `{"name": "x", "email": "x@y"}`, http.StatusNotFound)
	do(t, http.MethodPut, a+"/users/42", `{"name": "`+strings.Repeat("x", server.MaxBody)+`"}`, http.StatusRequestEntityTooLarge)
	do(t, http.MethodDelete, a+"/users/42", "", http.StatusMethodNotAllowed)

	var h server.Health
	decode(t, do(t, http.MethodGet, a+"/healthz", "", http.StatusOK), &h)
	if h != (server.Health{Status: "ok", DB: "ok", Redis: "ok"}) {
		t.Errorf("/healthz = %+v, want everything ok", h)
	}
	do(t, http.MethodGet, a+"/debug/pprof/", "", http.StatusOK)
	if m := string(do(t, http.MethodGet, a+"/metrics", "", http.StatusOK)); !strings.Contains(m, `tiercache_requests_total{keyspace="user"`) {
		t.Errorf("/metrics lacks the cache's requests:\n%.2000s", m)
	}

	// inspect shows the entry serve wrote.
	code, stdout, stderr := run(t, "inspect", "--redis", rs.URL(), "v1:user:42")
	if code != ExitOK {
		t.Fatalf("inspect: exit code %d, stderr %q", code, stderr)
	}
	for _, s := range []string{"state         fresh", "codec         1 (json)", `"name": "Ada Lovelace"`, `"version": 2`} {
		if !strings.Contains(stdout, s) {
			t.Errorf("inspect output lacks %q:\n%s", s, stdout)
		}
	}
	code, stdout, _ = run(t, "inspect", "--json", "--redis", rs.URL(), "v1:user:5000")
	var e entryInfo
	decode(t, []byte(stdout), &e)
	if code != ExitOK || e.State != "negative" || !e.Negative || e.Payload != nil || e.HardExpiry == nil {
		t.Errorf("inspect --json of the negative entry: exit code %d, %+v", code, e)
	}
	code, _, stderr = run(t, "inspect", "--redis", rs.URL(), "v1:user:999")
	if code != ExitFailure || stderr != "tiercache: no entry at v1:user:999\n" {
		t.Errorf("inspect of a missing key: exit code %d, stderr %q", code, stderr)
	}
	// Another key's bytes are a miss for tiercache, and inspect says so.
	v, err := rs.Do("GET", "v1:user:42")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rs.Do("SET", "v1:user:43", v.(string)); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = run(t, "inspect", "--redis", rs.URL(), "v1:user:43")
	if code != ExitFailure || !strings.Contains(stderr, "written under another key") || !strings.Contains(stdout, "state         wrong key") {
		t.Errorf("inspect of another key's bytes: exit code %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if _, err := rs.Do("SET", "foreign", "{}"); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = run(t, "inspect", "--redis", rs.URL(), "foreign")
	if code != ExitFailure || !strings.Contains(stderr, "not a tiercache entry") || !strings.Contains(stdout, "|{}|") {
		t.Errorf("inspect of foreign bytes: exit code %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	// bump abandons the keyspace's entries: both instances switch to new
	// keys and reload from the database.
	code, stdout, stderr = run(t, "bump", "--redis", rs.URL(), "user")
	var gen int64
	if _, err := fmt.Sscanf(stdout, "keyspace user: runtime generation %d", &gen); code != ExitOK || err != nil || gen <= 0 ||
		!strings.Contains(stdout, "2 running processes heard it, 2 said they switched") {
		t.Fatalf("bump: exit code %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	for i, base := range []string{a, b} {
		id := fmt.Sprint(43 + i) // an id only this instance reads
		deadline := time.Now().Add(5 * time.Second)
		for {
			getUser(t, base, id, http.StatusOK)
			if n, _ := rs.Do("EXISTS", fmt.Sprintf("v1+%d:user:%s", gen, id)); n == int64(1) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still reads v1 keys 5 s after bump", base)
			}
		}
		// /debug/stats shows the version in use, with its generation.
		s := debugStats(t, base)
		want := liveview.Keyspace{Name: "user", Version: fmt.Sprintf("v1+%d", gen), CodeVersion: "v1", Generation: gen, Switches: 1}
		if s.Keyspace != want || !s.L2.Enabled || s.L2.Breaker != "closed" {
			t.Errorf("%s/debug/stats after bump: keyspace %+v, l2 %+v; want %+v and a closed breaker", base, s.Keyspace, s.L2, want)
		}
	}
	if page := string(do(t, http.MethodGet, a+"/debug/tiercache", "", http.StatusOK)); !strings.Contains(page, "tiercache live view") {
		t.Errorf("/debug/tiercache is not the live page:\n%.500s", page)
	}
}

// startServe runs "serve args..." in-process until the test ends, and
// returns its base URL once it listens. The test fails if serve does not
// exit 0 after its context is cancelled.
func startServe(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	stdout := &lineWatcher{prefix: "listening on ", found: make(chan string, 1)}
	stderr := &buffer{}
	exited := make(chan int, 1)
	go func() { exited <- Main(ctx, append([]string{"serve"}, args...), stdout, stderr) }()
	select {
	case url := <-stdout.found:
		t.Cleanup(func() {
			cancel()
			if code := <-exited; code != ExitOK {
				t.Errorf("serve exited with %d after cancel; stderr:\n%s", code, stderr)
			}
		})
		return url
	case code := <-exited:
		cancel()
		t.Fatalf("serve exited with %d before listening; stderr:\n%s", code, stderr)
	case <-time.After(30 * time.Second):
		cancel()
		<-exited
		t.Fatalf("serve did not listen within 30s; stderr:\n%s", stderr)
	}
	return ""
}

// lineWatcher is a writer that sends the rest of the first line starting
// with prefix to found.
type lineWatcher struct {
	prefix string
	found  chan string
	mu     sync.Mutex
	buf    []byte
	done   bool
}

func (w *lineWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for !w.done {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		line := string(w.buf[:i])
		w.buf = w.buf[i+1:]
		if rest, ok := strings.CutPrefix(line, w.prefix); ok {
			w.found <- rest
			w.done = true
		}
	}
	return len(p), nil
}

func do(t *testing.T, method, url, body string, want int) []byte {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != want {
		t.Errorf("%s %s: status %d, want %d; body %s", method, url, resp.StatusCode, want, b)
	}
	return b
}

func decode(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
}

func getUser(t *testing.T, base, id string, want int) userdb.User {
	t.Helper()
	b := do(t, http.MethodGet, base+"/users/"+id, "", want)
	var u userdb.User
	if want == http.StatusOK {
		decode(t, b, &u)
	}
	return u
}

func debugStats(t *testing.T, base string) liveview.Data {
	t.Helper()
	var s liveview.Data
	decode(t, do(t, http.MethodGet, base+"/debug/stats", "", http.StatusOK), &s)
	if s.Origin == nil {
		t.Fatalf("/debug/stats has no origin counts")
	}
	return s
}
