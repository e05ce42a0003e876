package cli

import (
	"context"
	"log/slog"

	"github.com/tiercache/tiercache/internal/demo"
)

func demoCommand() *command {
	return &command{
		name:     "demo",
		synopsis: "run service instances on a SQLite origin under load and report what the cache saved",
		usage: `Usage: tiercache demo [flags]

Creates a SQLite database of users (the origin, with a simulated network cost
per query), runs several service instances, each with its own in-process L1
and, with --redis, one shared L2, and drives a workload through them:
Zipf-distributed reads, ids that do not exist, updates that invalidate, and a
hot key that expires under load. Then it sends the same requests straight to
the origin (the baseline, for a third of the duration) and reports requests,
hit ratio per tier, origin queries with and without the cache, read latency,
negative hits, stale values served and the origin calls of the stampede.

Progress goes to stderr (a bar on a terminal, a line a second otherwise), the
report to stdout. It needs no server; with --redis it uses that Redis, under a
keyspace version unique to the run.
`,
		run: runDemo,
	}
}

func runDemo(ctx context.Context, e *env, args []string) error {
	cmd := demoCommand()
	d := demo.DefaultConfig()
	fs := newFlagSet(cmd.name)
	fs.IntVar(&d.Users, "users", d.Users, "number of users in the origin")
	fs.IntVar(&d.Instances, "instances", d.Instances, "simulated service instances, each with its own L1")
	fs.IntVar(&d.Workers, "workers", d.Workers, "concurrent clients, spread over the instances")
	fs.DurationVar(&d.Duration, "duration", d.Duration, "how long the cached run lasts")
	fs.IntVar(&d.Rate, "rate", d.Rate, "requests per second of all workers together (0: as fast as they go)")
	fs.DurationVar(&d.OriginLatency, "origin-latency", d.OriginLatency, "cost added to every origin query, simulating a networked database")
	fs.Uint64Var(&d.Seed, "seed", d.Seed, "seed of the request sequence")
	redisFlag := fs.String("redis", "", "`URL` of a Redis to share as L2 (redis:// or rediss://); none: in-process only")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	quiet := fs.Bool("quiet", false, "show no progress")
	pos, err := parse(fs, cmd, e, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("demo: unexpected argument %q", pos[0])
	}
	if err := d.Validate(); err != nil {
		return usagef("demo: %v", err)
	}
	if *redisFlag != "" {
		r, err := parseRedisURL(*redisFlag)
		if err != nil {
			return err
		}
		// Fail fast, with one line, before seeding anything.
		c, err := r.connect(ctx)
		if err != nil {
			return err
		}
		c.Close()
		d.Redis, d.RedisName = r.opts, r.name
	}
	if !*quiet {
		d.Progress, d.Terminal = e.stderr, isTerminal(e.stderr)
	}
	d.Logger = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rep, err := demo.Run(ctx, d)
	if err != nil {
		return err
	}
	if *asJSON {
		return rep.WriteJSON(e.stdout)
	}
	return rep.WriteText(e.stdout)
}
