package userdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"strings"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// sqliteDB is the SQLite backend: one file, write-ahead logging so that
// readers never wait for the writer, and a busy timeout so that writers from
// several processes on the same file queue rather than fail.
type sqliteDB struct {
	db *sql.DB
}

const sqliteSchema = `CREATE TABLE IF NOT EXISTS users (
	id         INTEGER PRIMARY KEY,
	name       TEXT NOT NULL,
	email      TEXT NOT NULL,
	version    INTEGER NOT NULL,
	updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
)`

func openSQLite(ctx context.Context, path string) (*sqliteDB, error) {
	if path == "" {
		return nil, errors.New("userdb: empty SQLite path")
	}
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("userdb: SQLite path %q: must not contain '?'", path)
	}
	dsn := path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open SQLite %s: %w", path, err)
	}
	n := max(4, 2*runtime.GOMAXPROCS(0))
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open SQLite %s: %w", path, err)
	}
	return &sqliteDB{db: db}, nil
}

func (s *sqliteDB) user(ctx context.Context, id int64) (User, error) {
	u := User{ID: id}
	err := s.db.QueryRowContext(ctx, `SELECT name, email, version FROM users WHERE id = ?`, id).
		Scan(&u.Name, &u.Email, &u.Version)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("user %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("read user %d: %w", id, err)
	}
	return u, nil
}

func (s *sqliteDB) update(ctx context.Context, id int64, name, email string) (User, error) {
	u := User{ID: id}
	err := s.db.QueryRowContext(ctx, `UPDATE users
		SET name = ?, email = ?, version = version + 1, updated_at = CURRENT_TIMESTAMP
		WHERE id = ? RETURNING name, email, version`, name, email, id).
		Scan(&u.Name, &u.Email, &u.Version)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("user %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("update user %d: %w", id, err)
	}
	return u, nil
}

func (s *sqliteDB) seed(ctx context.Context, n int) (int, error) {
	tx, err := s.db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: one seeder at a time
	if err != nil {
		return 0, fmt.Errorf("seed users: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, sqliteSchema); err != nil {
		return 0, fmt.Errorf("create users table: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT name FROM pragma_table_info('users')`)
	if err != nil {
		return 0, fmt.Errorf("read the columns of users: %w", err)
	}
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			rows.Close()
			return 0, fmt.Errorf("read the columns of users: %w", err)
		}
		cols = append(cols, c)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return 0, fmt.Errorf("read the columns of users: %w", err)
	}
	if err := checkColumns(cols); err != nil {
		return 0, err
	}
	var any int
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM users)`).Scan(&any); err != nil {
		return 0, fmt.Errorf("seed users: %w", err)
	}
	if any == 1 || n == 0 {
		return 0, tx.Commit()
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO users (id, name, email, version)
		WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < ?)
		SELECT n, 'User ' || n, 'user' || n || '@example.com', 1 FROM seq`, n)
	if err != nil {
		return 0, fmt.Errorf("seed users: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("seed users: %w", err)
	}
	inserted, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("seed users: %w", err)
	}
	return int(inserted), nil
}

func (s *sqliteDB) maxID(ctx context.Context) (int64, error) {
	var id sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT MAX(id) FROM users`).Scan(&id); err != nil {
		return 0, fmt.Errorf("max user id: %w", err)
	}
	return id.Int64, nil
}

func (s *sqliteDB) ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping SQLite: %w", err)
	}
	return nil
}

func (s *sqliteDB) close() error { return s.db.Close() }
