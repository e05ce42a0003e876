// Command cachebench runs the comparative benchmark of tiercache against
// go-redis/cache, eko/gocache, sturdyc, rueidis and a naive go-redis loop
// (and, in process, otter, golang-lru, ristretto and sturdyc), on a private
// redis-server, and writes the results as markdown (RESULTS.md) and in the
// Go benchmark format for benchstat.
//
// Usage, from the bench directory:
//
//	go run ./cmd/cachebench            # full run, about 10 minutes on 2 cores
//	go run ./cmd/cachebench -quick     # about a minute, one round
//	go run ./cmd/cachebench -scenarios warm -contenders tiercache,naive-goredis -cpuprofile cpu.out
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/bench/contender"
	"github.com/tiercache/tiercache/bench/suite"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "cachebench:", err)
		os.Exit(1)
	}
}

func run() error {
	quick := flag.Bool("quick", false, "about one minute: one round, shorter phases")
	rounds := flag.Int("rounds", 0, "rounds of every scenario (default 5, 1 with -quick)")
	warm := flag.Duration("warm", 0, "timed part of the warm scenario (default 3s, 1s with -quick)")
	scenarios := flag.String("scenarios", "", "comma-separated scenario ids to run (default all): "+strings.Join(suite.ScenarioIDs(), ","))
	contenders := flag.String("contenders", "", "comma-separated contenders to run (default all): "+names())
	out := flag.String("out", "RESULTS.md", "markdown report to write; empty: none")
	benchOut := flag.String("benchout", "", "file for the rounds in Go benchmark format (for benchstat); empty: none")
	notes := flag.String("notes", "NOTES.md", "hand-written analysis to include in the report, if the file exists")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	jsonOut := flag.String("json", "results.json", "file for the raw results (every round), to -render again; empty: none")
	render := flag.String("render", "", "do not run: render the report of this -json file again (e.g. after editing -notes)")
	flag.Parse()

	if *render != "" {
		return rerender(*render, *out, *notes)
	}

	opt := suite.Defaults(*quick)
	if *rounds > 0 {
		opt.Rounds = *rounds
	}
	if *warm > 0 {
		opt.Warm = *warm
	}
	opt.Scenarios = split(*scenarios)
	opt.Contenders = split(*contenders)
	for _, s := range opt.Scenarios {
		if !contains(suite.ScenarioIDs(), s) {
			return fmt.Errorf("unknown scenario %q (have %s)", s, strings.Join(suite.ScenarioIDs(), ", "))
		}
	}
	for _, c := range opt.Contenders {
		if _, err := contender.ByName(c); err != nil {
			return err
		}
	}
	opt.Progress = os.Stderr
	// go-redis logs every failed dial of its pools; the Redis-killed
	// scenario would bury the progress lines under them.
	redis.SetLogger(quietLogger{})

	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := suite.Run(ctx, opt)
	if err != nil {
		return err
	}

	res.Command = "cd bench && go run ./cmd/cachebench" + argString()
	meta := suite.Meta{Command: res.Command}
	if *notes != "" {
		if b, err := os.ReadFile(*notes); err == nil {
			meta.Notes = string(b)
		}
	}
	if err := suite.WriteMarkdown(os.Stdout, res, meta); err != nil {
		return err
	}
	if *out != "" {
		if err := writeFile(*out, func(f *os.File) error { return suite.WriteMarkdown(f, res, meta) }); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote %s (run took %s)\n", *out, res.Took.Round(time.Second))
	}
	if *jsonOut != "" {
		if err := writeFile(*jsonOut, func(f *os.File) error { return suite.WriteJSON(f, res) }); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote %s\n", *jsonOut)
	}
	if *benchOut != "" {
		if err := writeFile(*benchOut, func(f *os.File) error { return suite.WriteBenchfmt(f, res) }); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote %s\n", *benchOut)
	}
	return nil
}

// rerender writes the report of saved results again, with the notes file
// as it is now, keeping the command that produced the results.
func rerender(from, out, notes string) error {
	f, err := os.Open(from)
	if err != nil {
		return err
	}
	defer f.Close()
	res, err := suite.ReadJSON(f)
	if err != nil {
		return fmt.Errorf("%s: %w", from, err)
	}
	meta := suite.Meta{Command: res.Command}
	if notes != "" {
		if b, err := os.ReadFile(notes); err == nil {
			meta.Notes = string(b)
		}
	}
	if out == "" {
		return suite.WriteMarkdown(os.Stdout, res, meta)
	}
	return writeFile(out, func(f *os.File) error { return suite.WriteMarkdown(f, res, meta) })
}

// quietLogger drops go-redis's internal log lines.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func writeFile(name string, write func(*os.File) error) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func argString() string {
	if len(os.Args) < 2 {
		return ""
	}
	return " " + strings.Join(os.Args[1:], " ")
}

func names() string {
	var n []string
	for _, c := range contender.All() {
		n = append(n, c.Name)
	}
	return strings.Join(n, ",")
}

func split(s string) []string {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
