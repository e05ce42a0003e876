package cli

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeRefusesOtherSchema: serve on a database whose users table has
// other columns exits 1 at once, naming the table and what is missing. It
// started, said "seeded 0", and answered 503 to every GET and PUT while
// /healthz said ok.
func TestServeRefusesOtherSchema(t *testing.T) {
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
	code, listened, stderr := serveOnce(t, "--db", path, "--addr", "127.0.0.1:0")
	if code != ExitFailure || listened {
		t.Fatalf("exit code %d (listened: %v), want %d before serving; stderr:\n%s", code, listened, ExitFailure, stderr)
	}
	oneLineErr(t, stderr)
	for _, s := range []string{path, "users table", "no columns name, email, updated_at"} {
		if !strings.Contains(stderr, s) {
			t.Errorf("stderr = %q, want it to name %q", stderr, s)
		}
	}
}

// serveOnce runs "serve args..." in-process until it exits, or until it
// says it listens (then it is stopped and listened is true).
func serveOnce(t *testing.T, args ...string) (code int, listened bool, stderr string) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stdout := &lineWatcher{prefix: "listening on ", found: make(chan string, 1)}
	var errOut buffer
	exited := make(chan int, 1)
	go func() { exited <- Main(ctx, append([]string{"serve"}, args...), stdout, &errOut) }()
	select {
	case code = <-exited:
	case <-stdout.found:
		cancel()
		code, listened = <-exited, true
	}
	return code, listened, errOut.String()
}
