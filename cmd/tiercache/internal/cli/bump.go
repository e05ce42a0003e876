package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/cmd/tiercache/internal/demo/redact"
	"github.com/tiercache/tiercache/internal/fleet"
	"github.com/tiercache/tiercache/internal/keys"
	"github.com/tiercache/tiercache/redisstore"
)

func bumpCommand() *command {
	return &command{
		name:     "bump",
		synopsis: "abandon every cached value of a keyspace at once (runtime version bump)",
		usage: `Usage: tiercache bump --redis URL [--prefix P] [--force] KEYSPACE

Stores a new runtime generation of KEYSPACE (the Keyspace.Name of the
caches, e.g. user) in Redis, one never used before, and tells every running
process: they read it, switch to keys of the new version
("v1+1764201234567890:user:42") and flush their in-process tier, so the
values cached before, say by a bad deploy, are never served again. It says
how many processes heard it and how many said they switched (it waits up to
2 s for them). Old keys are not scanned for; they expire by their TTL.
Processes started later read the generation at start. --prefix is the
caches' Options.Prefix.

A keyspace nothing on this Redis uses, a mistyped name or a wrong --prefix,
is refused (exit 1) and nothing is written: bump goes ahead only if the
keyspace's version key exists (every process using the keyspace writes it
when it starts) or a process is subscribed to its channel. --force bumps it
anyway.
`,
		run: runBump,
	}
}

func runBump(ctx context.Context, e *env, args []string) error {
	cmd := bumpCommand()
	fs := newFlagSet(cmd.name)
	redisFlag := fs.String("redis", "", "`URL` of the Redis the caches share (redis:// or rediss://)")
	prefix := fs.String("prefix", "", "the caches' key `prefix` (Options.Prefix), if any")
	force := fs.Bool("force", false, "bump even a keyspace nothing on this Redis seems to use")
	pos, err := parse(fs, cmd, e, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("bump: want exactly one KEYSPACE, got %d arguments", len(pos))
	}
	name := pos[0]
	// The arguments are checked before Redis is dialled: a mistake in them
	// is a usage error whatever the state of the server.
	if err := keys.CheckName(name); err != nil {
		return usagef("bump: keyspace %s: %v", redact.Quote(name), err)
	}
	if err := keys.CheckPrefix(*prefix); err != nil {
		return usagef("bump: --prefix %s: %v", redact.Quote(*prefix), err)
	}
	rdb, err := dialRedis(ctx, cmd.name, *redisFlag)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if !*force {
		if err := checkInUse(ctx, rdb, *prefix, name); err != nil {
			return err
		}
	}
	b, err := fleet.Bump(ctx, redisstore.New(rdb, nil), *prefix, "v1", name)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "keyspace %s: runtime generation %d: keys now use version \"<Version>+%d\" (e.g. %s)\n",
		name, b.Generation, b.Generation, keys.NewSpace(*prefix, "v1", name, b.Generation).Key("42"))
	fmt.Fprintf(e.stdout, "%d running processes heard it, %d said they switched\n", b.Heard, b.Switched)
	if b.Heard == 0 {
		fmt.Fprintf(e.stdout, "no running process uses keyspace %q with prefix %q on this Redis: check the name and --prefix\n", name, *prefix)
	}
	return nil
}

// checkInUse returns an error unless the keyspace name under prefix looks
// in use on this Redis: its version key exists, or a process is subscribed
// to its channel. Both are single-key questions (no SCAN of the database);
// the version key is written by every process that uses the keyspace when
// it starts, and restored by running ones within a second if it is lost.
// The version key is read with GET, which the least-privilege ACL of
// docs/architecture.md allows; PUBSUB NUMSUB, which it does not, counts as
// no subscriber when refused.
func checkInUse(ctx context.Context, rdb *redis.Client, prefix, name string) error {
	verKey, channel := keys.Version(prefix, name), keys.Channel(prefix, name)
	err := rdb.Get(ctx, verKey).Err()
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, redis.Nil):
		return fmt.Errorf("bump: read %s: %w", verKey, err)
	}
	subs, err := rdb.PubSubNumSub(ctx, channel).Result()
	if err != nil && !strings.HasPrefix(err.Error(), "NOPERM") {
		return fmt.Errorf("bump: count the subscribers of %s: %w", channel, err)
	}
	if subs[channel] > 0 {
		return nil
	}
	return &exitError{code: ExitFailure, msg: fmt.Sprintf(
		"bump: keyspace %q with prefix %q looks unused on this Redis (no version key %s, no running process subscribed to %s): nothing done; check the name and --prefix, or pass --force to bump it anyway",
		name, prefix, verKey, channel)}
}
