// Package userdbtest provides origins for tests of the tiercache command: a
// database of their own on the test PostgreSQL server, dropped when the test
// ends.
package userdbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// AdminURL is the PostgreSQL server tests use: the CI machine runs one on
// 127.0.0.1:5432 with trust authentication for the user postgres.
const AdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable&connect_timeout=3"

// Postgres creates a database of its own on the server at AdminURL, drops it
// (with its connections) when the test ends, and returns its URL. It skips
// the test, saying why, when the server cannot be reached: the other tests
// run without it.
func Postgres(t testing.TB) string {
	t.Helper()
	ctx := t.Context()
	admin, err := pgx.Connect(ctx, AdminURL)
	if err != nil {
		t.Skipf("skipping: no PostgreSQL at 127.0.0.1:5432: %v", err)
	}
	defer admin.Close(ctx)
	b := make([]byte, 6)
	rand.Read(b)
	name := "tiercache_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		// t.Context is done by now.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, AdminURL)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return "postgres://postgres@127.0.0.1:5432/" + name + "?sslmode=disable"
}
