package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/tiercache/tiercache/cmd/tiercache/internal/demo"
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
report to stdout; --html FILE also writes it as a page with charts (latency
with and without the cache, hit ratio by tier, origin queries, the stampede
moment), one file that opens in a browser without a network. It needs no server; with --redis it uses that Redis, under a
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
	htmlFile := fs.String("html", "", "also write the report with charts to `FILE` (HTML)")
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
	var page *htmlReport
	if *htmlFile != "" {
		// Fail before the run, not after it, if the file cannot be written.
		if page, err = newHTMLReport(*htmlFile); err != nil {
			return err
		}
		defer page.discard()
	}
	rep, err := demo.Run(ctx, d)
	if err != nil {
		return err
	}
	if page != nil {
		if err := page.commit(rep); err != nil {
			return err
		}
	}
	if *asJSON {
		return rep.WriteJSON(e.stdout)
	}
	return rep.WriteText(e.stdout)
}

// htmlReport is the --html file: written to a temporary file beside it,
// renamed into place once complete.
type htmlReport struct {
	path string
	tmp  *os.File
}

func newHTMLReport(path string) (*htmlReport, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, usagef("--html: %s is a directory", path)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the temporary name means nothing to the user
		}
		return nil, fmt.Errorf("--html: cannot create a file in %s: %w", dir, err)
	}
	return &htmlReport{path: path, tmp: tmp}, nil
}

// commit writes r and moves the file into place.
func (h *htmlReport) commit(r *demo.Report) error {
	err := r.WriteHTML(h.tmp)
	if err == nil {
		err = h.tmp.Chmod(0o644)
	}
	if cerr := h.tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(h.tmp.Name(), h.path)
	}
	if err != nil {
		return fmt.Errorf("--html: write %s: %w", h.path, err)
	}
	h.tmp = nil
	return nil
}

// discard removes the temporary file unless commit moved it into place.
func (h *htmlReport) discard() {
	if h.tmp != nil {
		h.tmp.Close()
		os.Remove(h.tmp.Name())
	}
}
