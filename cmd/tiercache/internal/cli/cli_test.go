package cli

import (
	"net"
	"strings"
	"testing"

	"github.com/tiercache/tiercache/cachetest"
)

// buffer is a bytes.Buffer safe for concurrent use: serve logs from its
// goroutines while a test reads.
type buffer = cachetest.Buffer

// run runs the command line args in-process.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut buffer
	code = Main(t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// oneLineErr checks that stderr is exactly one line starting "tiercache: ".
func oneLineErr(t *testing.T, stderr string) {
	t.Helper()
	if !strings.HasPrefix(stderr, "tiercache: ") || strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
		t.Errorf("stderr = %q, want one line starting \"tiercache: \"", stderr)
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"-h"}, {"help"},
		{"demo", "--help"}, {"demo", "-h"}, {"help", "demo"},
		{"serve", "--help"}, {"serve", "-help"},
		{"inspect", "--help"}, {"bump", "--help"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, stdout, stderr := run(t, args...)
			if code != ExitOK {
				t.Errorf("exit code %d, want 0", code)
			}
			if !strings.Contains(stdout, "Usage:") || stderr != "" {
				t.Errorf("stdout = %q, stderr = %q; want the usage on stdout only", stdout, stderr)
			}
			if len(args) == 2 && args[0] != "help" && !strings.Contains(stdout, "tiercache "+args[0]) {
				t.Errorf("usage of %s does not name it:\n%s", args[0], stdout)
			}
			if args[0] == "demo" && !strings.Contains(stdout, "--duration duration") {
				t.Errorf("demo usage lacks its flags:\n%s", stdout)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "Usage:"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"demo", "--nope"}, "flag provided but not defined: -nope"},
		{[]string{"demo", "--users", "many"}, `invalid value "many" for flag -users`},
		{[]string{"demo", "--instances", "0"}, "instances must be between 1"},
		{[]string{"demo", "extra"}, `unexpected argument "extra"`},
		{[]string{"serve", "--log-level", "loud"}, "--log-level"},
		{[]string{"serve", "--ttl", "0s"}, "--ttl must be positive"},
		{[]string{"inspect", "v1:user:1"}, "--redis is required"},
		{[]string{"inspect", "--redis", "redis://127.0.0.1:1"}, "want exactly one KEY"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, stdout, stderr := run(t, tc.args...)
			if code != ExitUsage {
				t.Errorf("exit code %d, want %d", code, ExitUsage)
			}
			if !strings.Contains(stderr, tc.want) || stdout != "" {
				t.Errorf("stdout %q, stderr %q; want %q on stderr", stdout, stderr, tc.want)
			}
			if len(tc.args) > 1 {
				oneLineErr(t, stderr)
			}
		})
	}
}

func TestBadRedisURL(t *testing.T) {
	for _, url := range []string{
		"redis://:s3cret@127.0.0.1:notaport",
		"redis://user:s3cret@127.0.0.1:6379/notadb",
		"http://user:s3cret@127.0.0.1:6379",
		"redis://:s3c ret@127.0.0.1:6379",
		"redis://user:s3cr%zzet@127.0.0.1",
	} {
		for _, cmd := range [][]string{
			{"demo", "--redis", url},
			{"serve", "--redis", url},
			{"inspect", "--redis", url, "v1:user:1"},
		} {
			t.Run(cmd[0]+" "+url, func(t *testing.T) {
				code, _, stderr := run(t, cmd...)
				if code != ExitUsage {
					t.Errorf("exit code %d, want %d", code, ExitUsage)
				}
				oneLineErr(t, stderr)
				if !strings.Contains(stderr, "--redis: invalid URL") || strings.Contains(stderr, "s3c") {
					t.Errorf("stderr = %q, want the invalid URL named without its password", stderr)
				}
			})
		}
	}
}

func TestUnreachableRedis(t *testing.T) {
	addr := closedPort(t)
	url := "redis://:s3cret@" + addr + "/0"
	for _, cmd := range [][]string{
		{"demo", "--redis", url, "--users", "10"},
		{"serve", "--redis", url, "--db", t.TempDir() + "/users.db", "--users", "10"},
		{"inspect", "--redis", url, "v1:user:1"},
	} {
		t.Run(cmd[0], func(t *testing.T) {
			code, stdout, stderr := run(t, cmd...)
			if code != ExitFailure {
				t.Errorf("exit code %d, want %d", code, ExitFailure)
			}
			oneLineErr(t, stderr)
			if !strings.Contains(stderr, "cannot reach Redis at "+addr) || strings.Contains(stderr, "s3cret") {
				t.Errorf("stderr = %q, want the address, and no password", stderr)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
		})
	}
}

func TestUnreachableDatabase(t *testing.T) {
	addr := closedPort(t)
	for name, db := range map[string]string{
		"postgres": "postgres://app:s3cret@" + addr + "/app?sslmode=disable&connect_timeout=3",
		"sqlite":   t.TempDir() + "/no/such/dir/users.db",
	} {
		t.Run(name, func(t *testing.T) {
			code, _, stderr := run(t, "serve", "--db", db, "--addr", "127.0.0.1:0")
			if code != ExitFailure {
				t.Errorf("exit code %d, want %d", code, ExitFailure)
			}
			oneLineErr(t, stderr)
			if strings.Contains(stderr, "s3cret") {
				t.Errorf("stderr = %q shows the password", stderr)
			}
			if name == "postgres" && !strings.Contains(stderr, addr) {
				t.Errorf("stderr = %q, want the address %s", stderr, addr)
			}
		})
	}
}

func TestParseRedisURLName(t *testing.T) {
	r, err := parseRedisURL("rediss://user:pw@cache.internal:6380/3")
	if err != nil {
		t.Fatal(err)
	}
	if want := "rediss://cache.internal:6380/3"; r.name != want {
		t.Errorf("name = %q, want %q", r.name, want)
	}
	if !r.opts.ContextTimeoutEnabled {
		t.Error("ContextTimeoutEnabled is off")
	}
}

func TestBadDatabaseURL(t *testing.T) {
	for _, db := range []string{"postgres://app:s3cret@[bad", "postgresql://app:s3cret@host:port/db", "postgres://app:s3cret@host/db?sslmode=bogus"} {
		t.Run(db, func(t *testing.T) {
			code, _, stderr := run(t, "serve", "--db", db)
			if code != ExitUsage {
				t.Errorf("exit code %d, want %d", code, ExitUsage)
			}
			oneLineErr(t, stderr)
			if !strings.Contains(stderr, "--db: invalid database URL") || strings.Contains(stderr, "s3cret") {
				t.Errorf("stderr = %q, want the invalid URL named without its password", stderr)
			}
		})
	}
}
