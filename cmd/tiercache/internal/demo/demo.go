// Package demo runs the workload of "tiercache demo": simulated service
// instances, each with its own tiercache.Cache (its own L1) and, with Redis,
// one shared L2, in front of a SQLite origin with a per-query cost; then the
// same request mix against the origin alone, as the baseline; and a report of
// what the cache saved.
//
// The workload: W workers, spread over the instances, send requests at a set
// rate: Zipf-distributed reads of users (s = 1.1), reads of ids that do not
// exist (cached negatively), updates that UPDATE the row and then Delete the
// id from the cache, and reads of one hot key.
//
// The stampede moment: the hot key lives in a keyspace of its own whose TTL
// ends two thirds into the run, without jitter or early refresh, with a stale
// window. At that instant every worker reads it at once, on top of its steady
// share of reads of it. The report counts the origin calls for that key in the
// second that follows: one in the whole fleet with Redis (the rebuild lock),
// one per instance without it (in-process single-flight), while every other
// reader is served the stale value at once instead of waiting.
//
// The baseline sends the same requests (the same seeded sequence per worker,
// at the same rate) straight to the origin for a third of the duration, at
// least 0.5 s and at most 5 s; the report gives per-request rates and the
// origin queries the cached run's requests would have needed.
//
// Layout: this package holds the workload (workload.go, fleet.go), the latency
// histogram, the progress display, the report and the step-by-step timelines
// its HTML form draws (timeline.go; the page is package liveview's). Its
// subpackages hold what the demo and "tiercache serve" share:
//
//	demo/userdb   the origin: the users table in SQLite or PostgreSQL
//	demo/server   the users HTTP service of "tiercache serve"
//	demo/redact   hiding credentials in the URLs messages quote
//
// The demo's origin is userdb on a SQLite file in a temporary directory,
// removed afterwards.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/cmd/tiercache/internal/demo/userdb"
)

// Config configures Run. Start from DefaultConfig.
type Config struct {
	Users     int           // rows in the origin
	Instances int           // simulated service instances
	Workers   int           // concurrent clients, spread over the instances
	Duration  time.Duration // of the cached run
	// Rate is the requests per second of all workers together; 0 sends
	// them as fast as the workers go.
	Rate int
	// OriginLatency is added to every origin query, to simulate a
	// database across a network.
	OriginLatency time.Duration
	// Seed makes the request sequence reproducible.
	Seed uint64

	// Redis, if set, is the shared tier: each instance gets its own client
	// with these options. Nil: in-process only.
	Redis *redis.Options
	// RedisName is how the report names Redis, without credentials.
	RedisName string

	// Dir is where the SQLite file is created; "" is os.TempDir.
	Dir string
	// Progress, if set, receives setup news and progress lines; Terminal
	// says that it is a terminal, for a redrawn progress bar.
	Progress io.Writer
	Terminal bool
	// Logger receives the caches' warnings. Nil means silent.
	Logger *slog.Logger
}

// DefaultConfig returns the configuration of "tiercache demo" without flags.
func DefaultConfig() Config {
	return Config{
		Users:         100_000,
		Instances:     4,
		Workers:       32,
		Duration:      10 * time.Second,
		Rate:          10_000,
		OriginLatency: 2 * time.Millisecond,
		Seed:          1,
	}
}

// Validate reports the first setting Run cannot use.
func (c *Config) Validate() error {
	switch {
	case c.Users < 1 || c.Users > 100_000_000:
		return fmt.Errorf("users must be between 1 and 100000000, not %d", c.Users)
	case c.Instances < 1 || c.Instances > 1024:
		return fmt.Errorf("instances must be between 1 and 1024, not %d", c.Instances)
	case c.Workers < c.Instances || c.Workers > 100_000:
		return fmt.Errorf("workers must be between instances (%d) and 100000, not %d", c.Instances, c.Workers)
	case c.Duration < 100*time.Millisecond || c.Duration > 24*time.Hour:
		return fmt.Errorf("duration must be between 100ms and 24h, not %v", c.Duration)
	case c.Rate < 0:
		return fmt.Errorf("rate must not be negative, not %d", c.Rate)
	case c.OriginLatency < 0 || c.OriginLatency > time.Minute:
		return fmt.Errorf("origin latency must be between 0 and 1m, not %v", c.OriginLatency)
	}
	return nil
}

// BaselineDuration is how long the baseline runs for a cached run of d.
func BaselineDuration(d time.Duration) time.Duration {
	return min(d, max(500*time.Millisecond, min(5*time.Second, d/3)))
}

// stampedeWindow is how long after the hot key's expiry its origin calls
// and reads are counted.
const stampedeWindow = time.Second

// Run runs the demo and returns its report. It returns an error if the origin
// or Redis cannot be set up, or ctx ends first.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var pr *progress
	if cfg.Progress != nil {
		pr = &progress{w: cfg.Progress, terminal: cfg.Terminal}
	}
	dir, err := os.MkdirTemp(cfg.Dir, "tiercache-demo-*")
	if err != nil {
		return nil, fmt.Errorf("create a directory for the database: %w", err)
	}
	defer os.RemoveAll(dir)
	db, err := userdb.Open(ctx, filepath.Join(dir, "users.db"), &userdb.Options{Latency: cfg.OriginLatency})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	t0 := time.Now()
	if _, err := db.Seed(ctx, cfg.Users); err != nil {
		return nil, err
	}
	rep := newReport(&cfg)
	rep.SeedSeconds = time.Since(t0).Seconds()
	pr.logf("origin: SQLite, %s %s seeded in %s, +%v per query (simulated network database)",
		count(uint64(cfg.Users)), plural(cfg.Users, "user", "users"), fmtDuration(time.Since(t0)), cfg.OriginLatency)
	pr.logf("mode: %s", rep.Mode)
	if cfg.Redis != nil {
		pr.logf("keys: %s:user:<id> and %s:user-hot:%d, unique to this run; they expire by their TTL",
			rep.KeyspaceVersion, rep.KeyspaceVersion, hotID)
	}

	f, err := newFleet(ctx, db, fleetConfig{
		instances: cfg.Instances,
		redis:     cfg.Redis,
		version:   rep.KeyspaceVersion,
		hotTTL:    cfg.Duration * 2 / 3,
		logger:    cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	defer f.close()
	if err := f.warmHot(ctx); err != nil {
		return nil, err
	}
	warm := f.snapshot()
	start := time.Now()
	stampede := start.Add(cfg.Duration * 2 / 3)
	cached := (&phase{
		name: "cached", duration: cfg.Duration, workers: cfg.Workers, instances: cfg.Instances,
		rate: cfg.Rate, users: cfg.Users, seed: cfg.Seed, target: f, db: db,
		stampede: stampede, window: stampedeWindow, progress: pr,
		step: timelineStep(cfg.Duration), hotCalls: f.hotCallTimes,
	}).run(ctx, start)
	if err := ctx.Err(); err != nil {
		return nil, context.Cause(ctx)
	}
	// One snapshot of the counters, once the caches are closed (no
	// background refresh can move them), for every number of the report.
	hotKey := f.instances[0].hot.Key(strconv.Itoa(hotID))
	f.close()
	end := f.snapshot()
	rep.setCached(cached, warm, end)
	rep.setStampede(cached, hotKey, warm, end, stampede.Sub(start), f.hotCallsIn(stampede.Add(-50*time.Millisecond), stampede.Add(stampedeWindow)))

	base := (&phase{
		name: "baseline", duration: BaselineDuration(cfg.Duration), workers: cfg.Workers, instances: cfg.Instances,
		rate: cfg.Rate, users: cfg.Users, seed: cfg.Seed, target: direct{db}, db: db, progress: pr,
		step: timelineStep(cfg.Duration),
	}).run(ctx, time.Now())
	if err := ctx.Err(); err != nil {
		return nil, context.Cause(ctx)
	}
	rep.setBaseline(base)
	if n := cached.errors + base.errors; n > 0 {
		rep.Errors = n
		rep.FirstError = errors.Join(cached.firstErr, base.firstErr).Error()
	}
	return rep, nil
}

// keyspaceVersion is unique to a run, so that runs sharing a Redis do not
// see each other's entries.
func keyspaceVersion() string { return fmt.Sprintf("demo-%d", time.Now().UnixMilli()) }
