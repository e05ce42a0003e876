package cli

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/cachetest"
)

// TestBumpRefusesUnknownKeyspace: a bump of a keyspace nothing on this
// Redis uses (a mistyped name, a wrong --prefix) is refused, changes
// nothing, and says how to go ahead; it used to report success and change
// nothing visible.
func TestBumpRefusesUnknownKeyspace(t *testing.T) {
	rs := cachetest.StartRedis(t)
	// The keyspace "user" without a prefix is in use: its version key is
	// there, as every process using it writes it when it starts.
	if _, err := rs.Do("SET", "tiercache:version:user", "0"); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"usr"},                      // mistyped
		{"--prefix", "app:", "user"}, // wrong prefix
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, stdout, stderr := run(t, append([]string{"bump", "--redis", rs.URL()}, args...)...)
			if code != ExitFailure || stdout != "" {
				t.Errorf("exit code %d, stdout %q; want %d and nothing", code, stdout, ExitFailure)
			}
			oneLineErr(t, stderr)
			for _, s := range []string{"no running process", "--force"} {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr = %q, want %q", stderr, s)
				}
			}
		})
	}
	if n, err := rs.Do("DBSIZE"); err != nil || n != int64(1) {
		t.Errorf("DBSIZE after refused bumps = %v, %v; want 1 (nothing written)", n, err)
	}

	// --force bumps it anyway, and says that no one heard.
	code, stdout, stderr := run(t, "bump", "--force", "--redis", rs.URL(), "usr")
	if code != ExitOK || !strings.Contains(stdout, "0 running processes heard it") {
		t.Errorf("bump --force usr: exit code %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	// A known keyspace with no process running is bumped, by a user with
	// only the least privilege docs/architecture.md gives a cache.
	acl := []string{"ACL", "SETUSER", "app", "on", ">pw", "~v1:user:*", "~v1+*:user:*", "~{v1:user:*}:lock", "~{v1+*:user:*}:lock",
		"~tiercache:version:user", "&tiercache:user", "+get", "+set", "+del", "+mget", "+pttl", "+type", "+time", "+eval", "+evalsha",
		"+publish", "+subscribe", "+ping", "+hello"}
	if _, err := rs.Do(acl...); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = run(t, "bump", "--redis", "redis://app:pw@"+rs.Addr(), "user")
	if code != ExitOK || !strings.Contains(stdout, "keyspace user: runtime generation") {
		t.Errorf("bump user: exit code %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	// That user may not count subscribers (PUBSUB): without the version
	// key, the keyspace looks unused, rather than the check failing.
	if _, err := rs.Do("DEL", "tiercache:version:user"); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = run(t, "bump", "--redis", "redis://app:pw@"+rs.Addr(), "user")
	if code != ExitFailure || !strings.Contains(stderr, "looks unused") {
		t.Errorf("bump user without its version key, PUBSUB refused: exit code %d, stderr %q", code, stderr)
	}
}

// TestBumpHeardBySubscriber: a process subscribed to the keyspace's channel
// makes it known even without its version key, and bump counts it.
func TestBumpHeardBySubscriber(t *testing.T) {
	rs := cachetest.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	t.Cleanup(func() { rdb.Close() })
	sub := rdb.Subscribe(t.Context(), "app:tiercache:orders")
	t.Cleanup(func() { sub.Close() })
	if _, err := sub.Receive(t.Context()); err != nil { // the confirmation
		t.Fatal(err)
	}
	code, stdout, stderr := run(t, "bump", "--redis", rs.URL(), "--prefix", "app:", "orders")
	if code != ExitOK || !strings.Contains(stdout, "1 running processes heard it, 0 said they switched") {
		t.Errorf("bump: exit code %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// TestBumpBadKeyspace: a keyspace name tiercache cannot use is a usage
// error (exit 2), reported before Redis is dialled, with one "tiercache: "
// prefix.
func TestBumpBadKeyspace(t *testing.T) {
	for _, name := range []string{"us r", "tiercache", "user:1", strings.Repeat("u", 65)} {
		code, stdout, stderr := run(t, "bump", "--redis", "redis://"+closedPort(t), name)
		if code != ExitUsage || stdout != "" {
			t.Errorf("bump %q: exit code %d, stdout %q; want %d", name, code, stdout, ExitUsage)
		}
		oneLineErr(t, stderr)
		if strings.Count(stderr, "tiercache: ") != 1 || !strings.Contains(stderr, "keyspace") {
			t.Errorf("bump %q: stderr = %q, want one prefix and the keyspace named", name, stderr)
		}
	}
}

// TestReportOnePrefix: an error that carries the library's "tiercache: "
// prefix is printed with one.
func TestReportOnePrefix(t *testing.T) {
	var b buffer
	code := report(context.Background(), &b, "bump", errors.New("tiercache: invalid options: Name empty"))
	if code != ExitFailure || b.String() != "tiercache: invalid options: Name empty\n" {
		t.Errorf("report = %d, %q; want one prefix", code, b.String())
	}
}
