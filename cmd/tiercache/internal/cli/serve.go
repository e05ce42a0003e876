package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cmd/tiercache/internal/demo/server"
	"github.com/tiercache/tiercache/cmd/tiercache/internal/demo/userdb"
	"github.com/tiercache/tiercache/cmd/tiercache/internal/liveview"
	"github.com/tiercache/tiercache/prom"
	"github.com/tiercache/tiercache/redisstore"
	"github.com/tiercache/tiercache/stats"
)

func serveCommand() *command {
	return &command{
		name:     "serve",
		synopsis: "serve users over HTTP through the cache (SQLite or PostgreSQL, optional Redis)",
		usage: `Usage: tiercache serve [flags]

Serves the users table over HTTP through a tiercache.Cache:

  GET  /users/{id}     the user as JSON; 404 for an unknown id (cached negatively)
  PUT  /users/{id}     {"name": ..., "email": ...}: updates the row, then
                       invalidates the id in every instance's cache
  GET  /healthz        database and Redis status; 503 if the database is down
  GET  /metrics        Prometheus metrics of the cache and the Go runtime
  GET  /debug/stats    the cache's counters, keyspace in use, L2 health, origin
                       queries, recent degradations (JSON)
  GET  /debug/tiercache
                       the live view: a page of the same, updating every second
       /debug/pprof/   Go profiles

The database is created and seeded with --users rows if its users table is
missing or empty; a users table without the columns id, name, email, version
and updated_at is refused (exit 1). Logs are JSON on stderr, one record at
most per failed request; the listening address is printed on stdout once
the service answers. serve takes its port before it opens the database, so
that a port in use fails at once, and removes the SQLite file it created if
it fails to start. SIGINT or SIGTERM shuts down gracefully (up to 10s for
requests in flight).
`,
		run: runServe,
	}
}

// serveFlags are the settings of serve.
type serveFlags struct {
	addr, db, redis, logLevel string
	otel                      string
	ttl, staleTTL, negTTL     time.Duration
	latency                   time.Duration
	users                     int
}

func runServe(ctx context.Context, e *env, args []string) error {
	cmd := serveCommand()
	f := serveFlags{}
	fs := newFlagSet(cmd.name)
	fs.StringVar(&f.addr, "addr", "127.0.0.1:8080", "`address` to listen on (port 0: any free port)")
	fs.StringVar(&f.db, "db", "tiercache-demo.db", "SQLite file `path`, or a postgres:// URL")
	fs.StringVar(&f.redis, "redis", "", "`URL` of the Redis shared tier (redis:// or rediss://, credentials allowed); none: in-process only")
	fs.DurationVar(&f.ttl, "ttl", 5*time.Minute, "how long a user stays fresh in the cache")
	fs.DurationVar(&f.staleTTL, "stale-ttl", time.Minute, "how long past --ttl a user may be served stale while it is rebuilt")
	fs.DurationVar(&f.negTTL, "negative-ttl", time.Minute, "how long an unknown id is cached as such")
	fs.IntVar(&f.users, "users", 100_000, "users to seed when the table is empty")
	fs.DurationVar(&f.latency, "origin-latency", 0, "cost added to every database query, to simulate a slow database")
	fs.StringVar(&f.logLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	fs.StringVar(&f.otel, "otel", "", "OpenTelemetry `exporter` for the cache's spans and metrics: otlp (OTLP/HTTP,\nset up by the OTEL_EXPORTER_OTLP_* variables) or stdout (JSON); none by default")
	pos, err := parse(fs, cmd, e, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("serve: unexpected argument %q", pos[0])
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return usagef("--log-level: %q is not debug, info, warn or error", f.logLevel)
	}
	switch {
	case f.ttl <= 0:
		return usagef("--ttl must be positive")
	case f.staleTTL < 0 || f.negTTL < 0 || f.latency < 0:
		return usagef("--stale-ttl, --negative-ttl and --origin-latency must not be negative")
	case f.users < 0:
		return usagef("--users must not be negative")
	case f.db == "":
		return usagef("--db must name a SQLite file or a postgres:// URL")
	}
	if err := checkOTelExporter(f.otel); err != nil {
		return err
	}
	var rurl *redisURL
	if f.redis != "" {
		if rurl, err = parseRedisURL(f.redis); err != nil {
			return err
		}
	}
	log := slog.New(slog.NewJSONHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	return serve(ctx, e, &f, rurl, log)
}

func serve(ctx context.Context, e *env, f *serveFlags, rurl *redisURL, log *slog.Logger) error {
	// Take the port first: a port in use fails at once, before a database
	// is created or seeded (100,000 rows by default).
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", f.addr, err)
	}
	svc, err := start(ctx, e, f, rurl, log)
	if err != nil {
		ln.Close()
		return err
	}
	defer svc.close()
	fmt.Fprintf(e.stdout, "listening on http://%s\n", displayAddr(ln.Addr()))
	log.Info("listening", "addr", ln.Addr().String())
	err = server.Run(ctx, ln, svc.handler, log)
	log.Info("stopped")
	return err
}

// service is what serve runs: the handler and what it holds.
type service struct {
	handler http.Handler
	closers []func()
	// queries returns the database's query counts so far.
	queries func() (reads, writes uint64)
}

// close releases what the service holds, last acquired first.
func (s *service) close() {
	for _, c := range slices.Backward(s.closers) {
		c()
	}
}

// start reaches Redis and the database, seeds it and builds the handler. On
// failure it releases what it acquired, and removes the SQLite file if it
// created it: a failed start leaves nothing behind.
func start(ctx context.Context, e *env, f *serveFlags, rurl *redisURL, log *slog.Logger) (_ *service, err error) {
	svc := &service{}
	created := false
	defer func() {
		if err != nil {
			svc.close()
			if created {
				removeSQLite(f.db)
			}
		}
	}()
	// Reach both servers before logging anything (at Info): if one cannot be
	// reached, the command's output is its one-line error.
	var rdb *redis.Client
	if rurl != nil {
		if rdb, err = rurl.connect(ctx); err != nil {
			return nil, err
		}
		svc.closers = append(svc.closers, func() { rdb.Close() })
	}
	if !userdb.IsPostgres(f.db) {
		_, serr := os.Stat(f.db)
		created = errors.Is(serr, fs.ErrNotExist)
	}
	octx, cancel := context.WithTimeout(ctx, 15*time.Second)
	db, err := userdb.Open(octx, f.db, &userdb.Options{Latency: f.latency})
	cancel()
	if errors.Is(err, userdb.ErrInvalidDSN) {
		return nil, usagef("--db: %v", err)
	}
	if err != nil {
		return nil, err
	}
	svc.closers = append(svc.closers, func() { db.Close() })
	svc.queries = db.Queries
	log.Debug("database open", "db", db.String(), "created", created)
	seeded, err := db.Seed(ctx, f.users)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", db, err)
	}
	log.Info("database ready", "db", db.String(), "seeded", seeded)

	metrics := prom.New()
	live, err := liveview.New(&liveview.Options{Origin: db.Queries})
	if err != nil {
		return nil, err
	}
	opts := &tiercache.Options[userdb.User]{
		Keyspace:    tiercache.Keyspace{Name: "user", Version: "v1"},
		TTL:         f.ttl,
		StaleTTL:    f.staleTTL,
		NegativeTTL: f.negTTL,
		Logger:      log,
		Observe:     stats.Observe{Recorder: live.Recorder(metrics.Recorder("user"))},
	}
	if rdb != nil {
		opts.Store = redisstore.New(rdb, nil)
		log.Info("shared tier ready", "redis", rurl.name)
	}
	tel, err := startOTel(ctx, f.otel, e.stdout, log) // nil without --otel
	if err != nil {
		return nil, err
	}
	svc.closers = append(svc.closers, func() { tel.close(ctx) })
	tel.instrument("user", opts)
	cache, err := tiercache.New(opts)
	if err != nil {
		return nil, err
	}
	svc.closers = append(svc.closers, func() { cache.Close() })
	metrics.Watch("user", cache)
	tel.watch("user", cache)
	cfg := server.Config{DB: db, Cache: cache, Logger: log, Metrics: metricsHandler(metrics)}
	if rdb != nil {
		cfg.RedisPing = func(ctx context.Context) error { return rdb.Ping(ctx).Err() }
	}
	live.Watch(cache, cfg.RedisPing)
	svc.closers = append(svc.closers, live.Start(ctx))
	cfg.Live = live
	if svc.handler, err = server.New(cfg); err != nil {
		return nil, err
	}
	return svc, nil
}

// removeSQLite removes a SQLite database file and its companions.
func removeSQLite(path string) {
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		os.Remove(path + suffix)
	}
}

// metricsHandler serves the cache's metrics and the Go runtime's, from a
// registry of its own (nothing is registered globally).
func metricsHandler(c *prom.Collector) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// displayAddr is addr as a client would dial it: an unspecified host
// (":8080", "0.0.0.0:8080") becomes localhost.
func displayAddr(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
