package userdb

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cmd/tiercache/internal/demo/userdb/userdbtest"
)

func TestParseID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1", 1, true},
		{"42", 42, true},
		{"9223372036854775807", 1<<63 - 1, true},
		{"9223372036854775808", 0, false}, // 19 digits, out of range
		{"12345678901234567890", 0, false},
		{"0", 0, false},
		{"007", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{"1e3", 0, false},
		{"abc", 0, false},
		{"", 0, false},
		{" 1", 0, false},
	} {
		got, err := ParseID(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseID(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestSQLite(t *testing.T) {
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "users.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	testDB(t, db)
}

func TestPostgres(t *testing.T) {
	dsn := userdbtest.Postgres(t)
	db, err := Open(t.Context(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	testDB(t, db)
}

func testDB(t *testing.T, db *DB) {
	ctx := t.Context()
	if n, err := db.Seed(ctx, 100); err != nil || n != 100 {
		t.Fatalf("Seed(100) = %d, %v; want 100, nil", n, err)
	}
	if n, err := db.Seed(ctx, 100); err != nil || n != 0 {
		t.Fatalf("Seed again = %d, %v; want 0 (not empty), nil", n, err)
	}
	if id, err := db.MaxID(ctx); err != nil || id != 100 {
		t.Fatalf("MaxID = %d, %v; want 100", id, err)
	}
	u, err := db.User(ctx, 7)
	want := User{ID: 7, Name: "User 7", Email: "user7@example.com", Version: 1}
	if err != nil || u != want {
		t.Fatalf("User(7) = %+v, %v; want %+v", u, err, want)
	}
	if _, err := db.User(ctx, 101); !errors.Is(err, ErrNotFound) {
		t.Fatalf("User(101) error = %v, want ErrNotFound", err)
	}
	u, err = db.Update(ctx, 7, "Ada", "ada@example.com")
	want = User{ID: 7, Name: "Ada", Email: "ada@example.com", Version: 2}
	if err != nil || u != want {
		t.Fatalf("Update(7) = %+v, %v; want %+v", u, err, want)
	}
	if _, err := db.Update(ctx, 101, "x", "x@y"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Update(101) error = %v, want ErrNotFound", err)
	}
	if u, err := db.Load(ctx, "7"); err != nil || u != want {
		t.Fatalf("Load(7) = %+v, %v; want %+v", u, err, want)
	}
	for _, id := range []string{"101", "abc", "0"} {
		if _, err := db.Load(ctx, id); !errors.Is(err, tiercache.ErrNotFound) {
			t.Errorf("Load(%q) error = %v, want tiercache.ErrNotFound", id, err)
		}
	}
	// Reads: User 7, 101, Load 7, 101 (abc and 0 never reach the database).
	if r, w := db.Queries(); r != 4 || w != 2 {
		t.Errorf("Queries() = %d reads, %d writes; want 4, 2", r, w)
	}
	if err := db.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func TestLatencyHonoursContext(t *testing.T) {
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "users.db"), &Options{Latency: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Seed(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := db.User(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("User with a cancelled context and an hour's latency: %v, want context.Canceled", err)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := t.Context()
	if _, err := Open(ctx, filepath.Join(t.TempDir(), "missing", "dir", "users.db"), nil); err == nil {
		t.Error("Open in a missing directory: no error")
	}
	// A closed port: nothing listens on port 1.
	_, err := Open(ctx, "postgres://app:s3cret@127.0.0.1:1/app?sslmode=disable&connect_timeout=2", nil)
	if err == nil {
		t.Fatal("Open of an unreachable PostgreSQL: no error")
	}
	if msg := err.Error(); !strings.Contains(msg, "127.0.0.1:1") || strings.Contains(msg, "s3cret") {
		t.Errorf("error %q: want the address and no password", msg)
	}
}

// TestSeedChecksSchema: a users table of another shape is refused with an
// error naming what is missing, rather than "seeded 0" and every query
// failing afterwards.
func TestSeedChecksSchema(t *testing.T) {
	for name, dsn := range map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return filepath.Join(t.TempDir(), "users.db") },
		"postgres": func(t *testing.T) string { return userdbtest.Postgres(t) },
	} {
		t.Run(name, func(t *testing.T) {
			db, err := Open(t.Context(), dsn(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			if err := db.exec(t.Context(), `CREATE TABLE users (id BIGINT PRIMARY KEY, fullname TEXT, version BIGINT)`); err != nil {
				t.Fatal(err)
			}
			if err := db.exec(t.Context(), `INSERT INTO users (id, fullname, version) VALUES (1, 'Ada', 1)`); err != nil {
				t.Fatal(err)
			}
			n, err := db.Seed(t.Context(), 10)
			if !errors.Is(err, ErrSchema) || n != 0 {
				t.Fatalf("Seed on a users table of another shape = %d, %v; want 0, ErrSchema", n, err)
			}
			for _, s := range []string{"users", "name, email, updated_at"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not name %q", err, s)
				}
			}
		})
	}
}

// exec runs a statement on db's backend, for tests that shape the table.
func (db *DB) exec(ctx context.Context, q string) error {
	switch b := db.b.(type) {
	case *sqliteDB:
		_, err := b.db.ExecContext(ctx, q)
		return err
	case *postgresDB:
		_, err := b.pool.Exec(ctx, q)
		return err
	}
	return errors.New("unknown backend")
}
