// Command tiercache runs the demo of the tiercache library, its example
// service and tools: "tiercache --help" lists the subcommands; package
// cmd/tiercache/internal/cli holds them.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/cmd/tiercache/internal/cli"
)

func main() {
	// go-redis prints connection failures with its process-wide logger;
	// the command reports them itself, once, in one line.
	redis.SetLogger(cli.QuietRedisLogger{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
