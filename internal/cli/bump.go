package cli

import (
	"context"
	"fmt"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/redisstore"
)

func bumpCommand() *command {
	return &command{
		name:     "bump",
		synopsis: "abandon every cached value of a keyspace at once (runtime version bump)",
		usage: `Usage: tiercache bump --redis URL [--prefix P] KEYSPACE

Increments the runtime generation of KEYSPACE (the Keyspace.Name of the
caches, e.g. user) in Redis and tells every running process: they switch to
keys of the new version ("v1+1:user:42") and flush their in-process tier, so
the values cached before, say by a bad deploy, are never served again. Old
keys are not scanned for; they expire by their TTL. Processes started later
read the generation at start. --prefix is the caches' Options.Prefix.
`,
		run: runBump,
	}
}

func runBump(ctx context.Context, e *env, args []string) error {
	cmd := bumpCommand()
	fs := newFlagSet(cmd.name)
	redisFlag := fs.String("redis", "", "`URL` of the Redis the caches share (redis:// or rediss://)")
	prefix := fs.String("prefix", "", "the caches' key `prefix` (Options.Prefix), if any")
	pos, err := parse(fs, cmd, e, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("bump: want exactly one KEYSPACE, got %d arguments", len(pos))
	}
	rdb, err := dialRedis(ctx, cmd.name, *redisFlag)
	if err != nil {
		return err
	}
	defer rdb.Close()
	gen, err := tiercache.BumpVersion(ctx, redisstore.New(rdb, nil), *prefix, pos[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "keyspace %s: runtime generation %d: keys now use version \"<Version>+%d\" (e.g. %s)\n",
		pos[0], gen, gen, *prefix+"v1+"+fmt.Sprint(gen)+":"+pos[0]+":42")
	return nil
}
