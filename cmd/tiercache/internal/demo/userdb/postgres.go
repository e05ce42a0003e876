package userdb

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tiercache/tiercache/cmd/tiercache/internal/demo/redact"
)

// postgresDB is the PostgreSQL backend, on a pgx connection pool.
type postgresDB struct {
	pool *pgxpool.Pool
}

const postgresSchema = `CREATE TABLE IF NOT EXISTS users (
	id         BIGINT PRIMARY KEY,
	name       TEXT NOT NULL,
	email      TEXT NOT NULL,
	version    BIGINT NOT NULL,
	updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
)`

// seedLock is the advisory lock that makes concurrent seeders of one
// database take turns.
const seedLock = 0x7469657263616368 // "tiercach"

func openPostgres(ctx context.Context, dsn string) (*postgresDB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx quotes the URL with its password redacted; make sure.
		return nil, fmt.Errorf("%w: %s", ErrInvalidDSN, redact.Message(err.Error(), dsn))
	}
	where := fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err == nil {
		if err = pool.Ping(ctx); err != nil {
			pool.Close()
		}
	}
	if err != nil {
		// pgx reports every address and TLS mode it tried; a network
		// failure is said best once.
		var op *net.OpError
		if errors.As(err, &op) {
			return nil, fmt.Errorf("cannot reach PostgreSQL at %s: %w", where, op)
		}
		return nil, fmt.Errorf("cannot connect to PostgreSQL at %s: %w", where, err)
	}
	return &postgresDB{pool: pool}, nil
}

func (p *postgresDB) user(ctx context.Context, id int64) (User, error) {
	u := User{ID: id}
	err := p.pool.QueryRow(ctx, `SELECT name, email, version FROM users WHERE id = $1`, id).
		Scan(&u.Name, &u.Email, &u.Version)
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, fmt.Errorf("user %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("read user %d: %w", id, err)
	}
	return u, nil
}

func (p *postgresDB) update(ctx context.Context, id int64, name, email string) (User, error) {
	u := User{ID: id}
	err := p.pool.QueryRow(ctx, `UPDATE users
		SET name = $1, email = $2, version = version + 1, updated_at = now()
		WHERE id = $3 RETURNING name, email, version`, name, email, id).
		Scan(&u.Name, &u.Email, &u.Version)
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, fmt.Errorf("user %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("update user %d: %w", id, err)
	}
	return u, nil
}

func (p *postgresDB) seed(ctx context.Context, n int) (int, error) {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("seed users: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(seedLock)); err != nil {
		return 0, fmt.Errorf("seed users: %w", err)
	}
	if _, err := tx.Exec(ctx, postgresSchema); err != nil {
		return 0, fmt.Errorf("create users table: %w", err)
	}
	// The table the queries name: the first "users" on the search path.
	rows, err := tx.Query(ctx, `SELECT attname FROM pg_attribute
		WHERE attrelid = 'users'::regclass AND attnum > 0 AND NOT attisdropped`)
	if err != nil {
		return 0, fmt.Errorf("read the columns of users: %w", err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("read the columns of users: %w", err)
	}
	if err := checkColumns(cols); err != nil {
		return 0, err
	}
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users)`).Scan(&exists); err != nil {
		return 0, fmt.Errorf("seed users: %w", err)
	}
	if exists || n == 0 {
		return 0, tx.Commit(ctx)
	}
	tag, err := tx.Exec(ctx, `INSERT INTO users (id, name, email, version)
		SELECT n, 'User ' || n, 'user' || n || '@example.com', 1 FROM generate_series(1, $1::bigint) AS n`, n)
	if err != nil {
		return 0, fmt.Errorf("seed users: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("seed users: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

func (p *postgresDB) maxID(ctx context.Context) (int64, error) {
	var id *int64
	if err := p.pool.QueryRow(ctx, `SELECT MAX(id) FROM users`).Scan(&id); err != nil {
		return 0, fmt.Errorf("max user id: %w", err)
	}
	if id == nil {
		return 0, nil
	}
	return *id, nil
}

func (p *postgresDB) ping(ctx context.Context) error {
	if err := p.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping PostgreSQL: %w", err)
	}
	return nil
}

func (p *postgresDB) close() error {
	p.pool.Close()
	return nil
}
