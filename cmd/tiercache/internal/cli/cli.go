// Package cli is the tiercache command: it parses the command line, runs a
// subcommand and maps its outcome to an exit code. cmd/tiercache only calls
// Main.
//
// Subcommands (one flag.FlagSet each; flags are written --flag or -flag):
//
//	demo     simulated service instances on a SQLite origin, and a report
//	serve    the users HTTP service (package internal/demo/server)
//	inspect  decode an entry stored in Redis
//	bump     bump a keyspace's runtime version
//
// Exit codes: 0 success, 1 a failure at run time (an unreachable server, a
// missing entry), 2 a usage error (an unknown command or flag, a bad URL),
// 130 interrupted (SIGINT or SIGTERM) before a demo or inspect finished.
// Errors are one line on stderr, starting "tiercache: ", with credentials
// redacted from any URL they quote.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// Exit codes of Main.
const (
	ExitOK          = 0
	ExitFailure     = 1
	ExitUsage       = 2
	ExitInterrupted = 130
)

// command is a subcommand.
type command struct {
	name     string
	synopsis string // one line for the command list
	usage    string // the usage line(s) and a description, for --help
	run      func(ctx context.Context, env *env, args []string) error
}

// env is what a subcommand writes to.
type env struct {
	stdout, stderr io.Writer
}

func commands() []*command {
	return []*command{demoCommand(), serveCommand(), inspectCommand(), bumpCommand()}
}

// usageError is a mistake on the command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// exitError is a failure that has been reported already, with its exit code.
type exitError struct {
	code int
	msg  string // printed unless empty
}

func (e *exitError) Error() string { return e.msg }

const topUsage = `tiercache is the command of the tiercache library, a two-tier (in-process L1
+ Redis L2) cache-aside cache for Go.

Usage:
  tiercache <command> [flags] [arguments]

Commands:
%s
Run "tiercache <command> --help" for the flags of a command.
`

func printTopUsage(w io.Writer) {
	var b strings.Builder
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-8s  %s\n", c.name, c.synopsis)
	}
	fmt.Fprintf(w, topUsage, b.String())
}

// Main runs the command line args (without the program name) and returns
// the process's exit code. ctx should be cancelled on SIGINT and SIGTERM:
// serve then shuts down gracefully, other commands stop.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printTopUsage(stderr)
		return ExitUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "-h", "-help", "--help", "help":
		if name == "help" && len(rest) > 0 {
			return Main(ctx, []string{rest[0], "--help"}, stdout, stderr)
		}
		printTopUsage(stdout)
		return ExitOK
	}
	var cmd *command
	for _, c := range commands() {
		if c.name == name {
			cmd = c
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "tiercache: unknown command %q\n\n", name)
		printTopUsage(stderr)
		return ExitUsage
	}
	err := cmd.run(ctx, &env{stdout: stdout, stderr: stderr}, rest)
	return report(ctx, stderr, cmd.name, err)
}

// report prints err, if any, as one line, and returns its exit code.
func report(ctx context.Context, stderr io.Writer, name string, err error) int {
	var ue *usageError
	var ee *exitError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "tiercache: %s (see tiercache %s --help)\n", oneLine(ue.msg), name)
		return ExitUsage
	case errors.As(err, &ee):
		if ee.msg != "" {
			fmt.Fprintf(stderr, "tiercache: %s\n", oneLine(ee.msg))
		}
		return ee.code
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "tiercache: interrupted")
		return ExitInterrupted
	}
	fmt.Fprintf(stderr, "tiercache: %s\n", oneLine(err.Error()))
	return ExitFailure
}

// oneLine folds a multi-line message (errors.Join) into one line, without
// the "tiercache: " the library's errors start with: report prints it once.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
	for {
		rest, ok := strings.CutPrefix(s, "tiercache: ")
		if !ok {
			return s
		}
		s = rest
	}
}

// newFlagSet returns a flag set that reports errors to no one: parse turns
// them into usage errors, and --help into the command's usage on stdout.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parse parses args into fs, allowing flags after positional arguments
// ("inspect KEY --redis URL"), and returns the positional ones. On --help it
// prints the usage to stdout and returns flag.ErrHelp.
func parse(fs *flag.FlagSet, cmd *command, e *env, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				printUsage(e.stdout, fs, cmd)
				return nil, err
			}
			return nil, usagef("%s: %v", cmd.name, err)
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		if i := len(args) - fs.NArg() - 1; i >= 0 && args[i] == "--" {
			return append(pos, fs.Args()...), nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// printUsage prints a command's usage and its flags, GNU style.
func printUsage(w io.Writer, fs *flag.FlagSet, cmd *command) {
	var b strings.Builder
	b.WriteString(cmd.usage)
	b.WriteString("\nFlags:\n")
	fs.VisitAll(func(f *flag.Flag) {
		typ, help := flag.UnquoteUsage(f)
		fmt.Fprintf(&b, "  --%s", f.Name)
		if typ != "" {
			fmt.Fprintf(&b, " %s", typ)
		}
		fmt.Fprintf(&b, "\n      %s", strings.ReplaceAll(help, "\n", "\n      "))
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			fmt.Fprintf(&b, " (default %s)", f.DefValue)
		}
		b.WriteByte('\n')
	})
	io.WriteString(w, b.String())
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
