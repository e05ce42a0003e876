package cli

import (
	"bytes"
	"context"
	"database/sql"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

// TestServePortInUse: with its address taken, serve fails at once, before
// it creates or seeds a database: it seeded 100,000 rows first, then failed
// and left the new database file behind.
func TestServePortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	code, listened, stderr := serveOnce(t, "--db", filepath.Join(dir, "new.db"), "--addr", ln.Addr().String())
	if code != ExitFailure || listened {
		t.Fatalf("exit code %d (listened: %v), want %d; stderr:\n%s", code, listened, ExitFailure, stderr)
	}
	oneLineErr(t, stderr)
	if !strings.Contains(stderr, "listen on "+ln.Addr().String()) {
		t.Errorf("stderr = %q, want the address it could not listen on", stderr)
	}
	assertEmpty(t, dir)
}

// TestServeRemovesTheDatabaseItCreated: a start that fails after serve
// created the SQLite file (here interrupted as seeding begins) removes it.
func TestServeRemovesTheDatabaseItCreated(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// Interrupt as serve reports the database open, before it seeds: the
	// log record is written on serve's goroutine, before Seed runs.
	stderr := &onLine{match: `"msg":"database open"`, do: cancel}
	stdout := &onLine{match: "listening on", do: cancel} // should it get that far
	code := Main(ctx, []string{"serve", "--db", filepath.Join(dir, "new.db"), "--addr", "127.0.0.1:0", "--log-level", "debug"}, stdout, stderr)
	if code != ExitInterrupted || stdout.matched() {
		t.Fatalf("exit code %d (listened: %v), want %d (interrupted while seeding)", code, stdout.matched(), ExitInterrupted)
	}
	if !stderr.matched() {
		t.Fatal(`serve never logged "database open"`)
	}
	assertEmpty(t, dir)
	// A database serve did not create is kept.
	path := filepath.Join(dir, "kept.db")
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.ExecContext(t.Context(), `CREATE TABLE other (x)`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	ctx2, cancel2 := context.WithCancel(t.Context())
	defer cancel2()
	stderr = &onLine{match: `"msg":"database open"`, do: cancel2}
	stdout = &onLine{match: "listening on", do: cancel2}
	if code := Main(ctx2, []string{"serve", "--db", path, "--addr", "127.0.0.1:0", "--log-level", "debug"}, stdout, stderr); code != ExitInterrupted {
		t.Fatalf("exit code %d, want %d", code, ExitInterrupted)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("serve removed a database it did not create: %v", err)
	}
}

// assertEmpty fails the test if dir holds anything.
func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("left behind: %s", e.Name())
	}
}

// onLine is a writer that calls do, once, on the first line containing
// match, from the Write that completes it.
type onLine struct {
	match string
	do    func()
	mu    sync.Mutex
	buf   []byte
	hit   bool
}

func (w *onLine) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for !w.hit {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		if bytes.Contains(w.buf[:i], []byte(w.match)) {
			w.hit = true
			w.do()
		}
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *onLine) matched() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.hit
}

// TestDefaultDatabaseIgnored: the SQLite file serve creates by default in
// the working directory (a clone's root, for "go run ./cmd/tiercache
// serve"), with its -wal and -shm companions, is ignored by git.
func TestDefaultDatabaseIgnored(t *testing.T) {
	_, usage, _ := run(t, "serve", "--help")
	_, rest, ok := strings.Cut(usage, "SQLite file path, or a postgres:// URL (default ")
	name, _, _ := strings.Cut(rest, ")")
	if !ok || name == "" {
		t.Fatalf("no default --db in the usage:\n%s", usage)
	}
	b, err := os.ReadFile("../../../../.gitignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{name, name + "-wal", name + "-shm"} {
		ignored := false
		for line := range strings.Lines(string(b)) {
			pattern := strings.TrimPrefix(strings.TrimSpace(line), "/")
			if m, _ := filepath.Match(pattern, file); m && pattern != "" {
				ignored = true
			}
		}
		if !ignored {
			t.Errorf(".gitignore does not ignore %s", file)
		}
	}
}
