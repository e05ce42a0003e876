// Package userdb is the origin of the tiercache command: a users table in
// SQLite (a file, no server: modernc.org/sqlite, pure Go) or PostgreSQL
// (github.com/jackc/pgx/v5), behind one type, DB.
//
// DB counts the queries it runs, so that the demo can show how many the cache
// saved, and can add a fixed cost to each (Options.Latency): SQLite in the same
// process answers in microseconds, which would make any cache look pointless;
// the cost simulates the round trip to a networked database.
//
// The loader a tiercache.Cache calls is DB.Load: it turns the id into a row
// number and a missing row into tiercache.ErrNotFound.
package userdb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cmd/tiercache/internal/demo/redact"
)

// User is a row of the users table, and the value the caches hold.
type User struct {
	ID      int64  `json:"id"`
	Name    string `json:"name"`
	Email   string `json:"email"`
	Version int64  `json:"version"`
}

// Errors of the package.
var (
	// ErrNotFound is returned for an id with no row.
	ErrNotFound = errors.New("userdb: no such user")
	// ErrInvalidDSN is returned by Open for a database URL it cannot
	// parse, a mistake of the caller's rather than a failure.
	ErrInvalidDSN = errors.New("invalid database URL")
	// ErrSchema is returned by Seed for a users table without the columns
	// the package reads and writes.
	ErrSchema = errors.New("the users table has another shape")
)

// Options configure Open. The zero value means no added cost.
type Options struct {
	// Latency is added to every query, as a context-aware sleep before it
	// runs, to simulate a database across a network. Default 0.
	Latency time.Duration
}

// backend is what each database implements; DB adds the cost and the
// counting around it.
type backend interface {
	user(ctx context.Context, id int64) (User, error)
	update(ctx context.Context, id int64, name, email string) (User, error)
	// seed creates the table if it is missing, checks its columns
	// (checkColumns) and fills it with users 1..n if it is empty; it
	// returns how many rows it inserted.
	seed(ctx context.Context, n int) (int, error)
	maxID(ctx context.Context) (int64, error)
	ping(ctx context.Context) error
	close() error
}

// DB is the users table. It is safe for concurrent use. Create it with Open
// and release it with Close.
type DB struct {
	b       backend
	latency time.Duration
	desc    string
	reads   atomic.Uint64
	writes  atomic.Uint64
}

// Open opens the database named by dsn: a "postgres://" or "postgresql://"
// URL opens PostgreSQL, anything else is the path of a SQLite file, created
// if missing. It checks that the database answers. o may be nil.
func Open(ctx context.Context, dsn string, o *Options) (*DB, error) {
	if o == nil {
		o = &Options{}
	}
	if o.Latency < 0 {
		return nil, fmt.Errorf("userdb: negative latency %v", o.Latency)
	}
	db := &DB{latency: o.Latency}
	var err error
	if IsPostgres(dsn) {
		db.desc = "PostgreSQL " + redact.URL(dsn)
		db.b, err = openPostgres(ctx, dsn)
	} else {
		db.desc = "SQLite " + dsn
		db.b, err = openSQLite(ctx, dsn)
	}
	if err != nil {
		return nil, err
	}
	return db, nil
}

// IsPostgres reports whether dsn names a PostgreSQL database rather than a
// SQLite file.
func IsPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// String describes the database without credentials, e.g.
// "SQLite /tmp/users.db" or "PostgreSQL postgres://app:xxxxx@db:5432/app".
func (db *DB) String() string { return db.desc }

// checkColumns returns an error wrapping ErrSchema, naming what is missing,
// if have lacks one of the columns the package reads and writes.
func checkColumns(have []string) error {
	want := []string{"id", "name", "email", "version", "updated_at"}
	var missing []string
	for _, c := range want {
		if !slices.ContainsFunc(have, func(h string) bool { return strings.EqualFold(h, c) }) {
			missing = append(missing, c)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	what := "column " + missing[0]
	if len(missing) > 1 {
		what = "columns " + strings.Join(missing, ", ")
	}
	return fmt.Errorf("%w: it has no %s (want %s)", ErrSchema, what, strings.Join(want, ", "))
}

// Seed creates the users table if it is missing, checks that it has the
// columns the package uses (an error wrapping ErrSchema if not) and, if it
// is empty, fills it with users 1..n in one statement. It returns how many
// rows it inserted: 0 if the table held rows already.
func (db *DB) Seed(ctx context.Context, n int) (int, error) {
	if n < 0 {
		return 0, fmt.Errorf("userdb: negative number of users %d", n)
	}
	return db.b.seed(ctx, n)
}

// MaxID returns the largest id in the table, 0 when it is empty.
func (db *DB) MaxID(ctx context.Context) (int64, error) { return db.b.maxID(ctx) }

// User returns the row of id, or an error wrapping ErrNotFound. It counts
// as one read and costs Options.Latency.
func (db *DB) User(ctx context.Context, id int64) (User, error) {
	db.reads.Add(1)
	if err := db.wait(ctx); err != nil {
		return User{}, err
	}
	return db.b.user(ctx, id)
}

// Update sets the name and email of id, bumps its version and returns the
// new row, or an error wrapping ErrNotFound. It counts as one write and costs
// Options.Latency.
func (db *DB) Update(ctx context.Context, id int64, name, email string) (User, error) {
	db.writes.Add(1)
	if err := db.wait(ctx); err != nil {
		return User{}, err
	}
	return db.b.update(ctx, id, name, email)
}

// Load is the tiercache.LoaderFunc of users: id is the decimal row id; a
// missing row (or an id that cannot be one) is tiercache.ErrNotFound.
func (db *DB) Load(ctx context.Context, id string) (User, error) {
	n, err := ParseID(id)
	if err != nil {
		return User{}, tiercache.ErrNotFound
	}
	u, err := db.User(ctx, n)
	if errors.Is(err, ErrNotFound) {
		return User{}, tiercache.ErrNotFound
	}
	return u, err
}

// Queries returns the number of reads and writes run so far.
func (db *DB) Queries() (reads, writes uint64) { return db.reads.Load(), db.writes.Load() }

// Ping checks that the database answers. It is not counted.
func (db *DB) Ping(ctx context.Context) error { return db.b.ping(ctx) }

// Close releases the database.
func (db *DB) Close() error { return db.b.close() }

func (db *DB) wait(ctx context.Context) error {
	if db.latency <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(db.latency)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// ParseID parses a user id: a positive decimal integer of at most 19 digits,
// without sign or leading zeros, so that every id has one spelling and one
// cache key. Its error quotes at most redact.MaxQuoted bytes of s.
func ParseID(s string) (int64, error) {
	if s == "" || len(s) > 19 || s[0] == '0' {
		return 0, fmt.Errorf("invalid user id %s: want a positive integer", redact.Quote(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("invalid user id %s: want a positive integer", redact.Quote(s))
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid user id %s: out of range", redact.Quote(s))
	}
	return n, nil
}
