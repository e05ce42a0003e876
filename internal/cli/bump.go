package cli

import (
	"context"
	"fmt"

	"github.com/tiercache/tiercache/internal/fleet"
	"github.com/tiercache/tiercache/internal/keys"
	"github.com/tiercache/tiercache/redisstore"
)

func bumpCommand() *command {
	return &command{
		name:     "bump",
		synopsis: "abandon every cached value of a keyspace at once (runtime version bump)",
		usage: `Usage: tiercache bump --redis URL [--prefix P] KEYSPACE

Stores a new runtime generation of KEYSPACE (the Keyspace.Name of the
caches, e.g. user) in Redis, one never used before, and tells every running
process: they read it, switch to keys of the new version
("v1+1764201234567890:user:42") and flush their in-process tier, so the
values cached before, say by a bad deploy, are never served again. It says
how many processes heard it and how many said they switched (it waits up to
2 s for them). Old keys are not scanned for; they expire by their TTL.
Processes started later read the generation at start. --prefix is the
caches' Options.Prefix.
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
	if err := keys.CheckName(pos[0]); err != nil {
		return usagef("bump: keyspace %q: %v", pos[0], err)
	}
	if err := keys.CheckPrefix(*prefix); err != nil {
		return usagef("bump: --prefix %q: %v", *prefix, err)
	}
	b, err := fleet.Bump(ctx, redisstore.New(rdb, nil), *prefix, "v1", pos[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "keyspace %s: runtime generation %d: keys now use version \"<Version>+%d\" (e.g. %s)\n",
		pos[0], b.Generation, b.Generation, keys.NewSpace(*prefix, "v1", pos[0], b.Generation).Key("42"))
	fmt.Fprintf(e.stdout, "%d running processes heard it, %d said they switched\n", b.Heard, b.Switched)
	if b.Heard == 0 {
		fmt.Fprintf(e.stdout, "no running process uses keyspace %q with prefix %q on this Redis: check the name and --prefix\n", pos[0], *prefix)
	}
	return nil
}
