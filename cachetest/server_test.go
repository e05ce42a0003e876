package cachetest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestServerRoundTrip(t *testing.T) {
	t.Parallel()
	s := StartRedis(t)

	if got, want := s.Addr(), net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port())); got != want {
		t.Errorf("Addr() = %q, want %q", got, want)
	}
	if got, want := s.URL(), "redis://"+s.Addr()+"/0"; got != want {
		t.Errorf("URL() = %q, want %q", got, want)
	}

	value := "a\x00\xff\r\nb" // NUL, a byte that is not UTF-8, and a CRLF
	if got, err := s.Do("SET", "k", value); err != nil || got != "OK" {
		t.Fatalf("SET = %#v, %v; want \"OK\", nil", got, err)
	}
	if got, err := s.Do("GET", "k"); err != nil || got != value {
		t.Errorf("GET = %#v, %v; want %q, nil", got, err, value)
	}
	if got, err := s.Do("GET", "missing"); err != nil || got != nil {
		t.Errorf("GET missing = %#v, %v; want nil, nil", got, err)
	}

	if _, err := s.Do("SET", "ttl", "v", "PX", "60000"); err != nil {
		t.Fatalf("SET PX: %v", err)
	}
	got, err := s.Do("PTTL", "ttl")
	if ms, ok := got.(int64); err != nil || !ok || ms <= 0 || ms > 60000 {
		t.Errorf("PTTL = %#v, %v; want an int64 in (0, 60000]", got, err)
	}

	if got, err := s.Do("RPUSH", "list", "x", "y"); err != nil || got != int64(2) {
		t.Errorf("RPUSH = %#v, %v; want int64(2), nil", got, err)
	}
	if got, err := s.Do("LRANGE", "list", "0", "-1"); err != nil || !reflect.DeepEqual(got, []any{"x", "y"}) {
		t.Errorf("LRANGE = %#v, %v; want []any{\"x\", \"y\"}, nil", got, err)
	}

	if err := s.FlushAll(); err != nil {
		t.Fatalf("FlushAll: %v", err)
	}
	if got, err := s.Do("DBSIZE"); err != nil || got != int64(0) {
		t.Errorf("DBSIZE after FlushAll = %#v, %v; want int64(0), nil", got, err)
	}
}

func TestDoErrorReply(t *testing.T) {
	t.Parallel()
	s := StartRedis(t)

	_, err := s.Do("NOSUCHCOMMAND")
	var re ReplyError
	if !errors.As(err, &re) || !strings.HasPrefix(string(re), "ERR ") {
		t.Errorf("Do(NOSUCHCOMMAND) error = %v; want a ReplyError starting with \"ERR \"", err)
	}
	if _, err := s.Do(); err == nil {
		t.Error("Do() with no command: got nil error, want an error")
	}
}

func TestStartRedisDefaultsAndArgs(t *testing.T) {
	t.Parallel()
	s := StartRedis(t, Config{Args: []string{"--notify-keyspace-events", "KEA"}})

	for _, c := range []struct{ param, want string }{
		{"save", ""}, // `--save ""` reached redis-server as an empty argument
		{"appendonly", "no"},
		{"bind", "127.0.0.1"},
		{"notify-keyspace-events", "AKE"}, // Config.Args applied; redis reorders the flags
	} {
		got, err := s.Do("CONFIG", "GET", c.param)
		if want := []any{c.param, c.want}; err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("CONFIG GET %s = %#v, %v; want %#v, nil", c.param, got, err, want)
		}
	}
}

func TestRunRedisBadArgs(t *testing.T) {
	t.Parallel()
	needRedis(t)
	s, err := RunRedis(Config{Args: []string{"--no-such-option", "x"}})
	if err == nil {
		s.Close()
		t.Fatal("RunRedis with a bad option: got nil error, want one")
	}
	// The error must show why: redis-server's complaint from its log.
	if !strings.Contains(err.Error(), "Bad directive") {
		t.Errorf("RunRedis error = %q; want it to include redis-server's \"Bad directive\" message", err)
	}
}

func TestKillRestart(t *testing.T) {
	t.Parallel()
	s := StartRedis(t)
	port := s.Port()

	if _, err := s.Do("SET", "k", "v"); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if err := s.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if got, err := s.Do("PING"); err == nil {
		t.Errorf("PING after Kill = %#v, nil; want an error", got)
	}
	if err := s.Kill(); err != nil {
		t.Errorf("second Kill = %v, want nil", err)
	}

	if err := s.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if got := s.Port(); got != port {
		t.Errorf("Port() after Restart = %d, want %d", got, port)
	}
	if got, err := s.Do("PING"); err != nil || got != "PONG" {
		t.Errorf("PING after Restart = %#v, %v; want \"PONG\", nil", got, err)
	}
	if got, err := s.Do("GET", "k"); err != nil || got != nil {
		t.Errorf("GET after Restart = %#v, %v; want nil, nil (no persistence)", got, err)
	}

	// Restart of a running server kills it first.
	if _, err := s.Do("SET", "k", "v"); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if err := s.Restart(); err != nil {
		t.Fatalf("Restart while running: %v", err)
	}
	if got, err := s.Do("GET", "k"); err != nil || got != nil {
		t.Errorf("GET after Restart while running = %#v, %v; want nil, nil", got, err)
	}
}

func TestPauseResume(t *testing.T) {
	t.Parallel()
	s := StartRedis(t)

	if err := s.Pause(); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	defer s.Resume() // harmless after the Resume below; needed if the test fails first

	// The kernel accepts the connection, but the stopped server never answers.
	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatalf("dial paused server: %v", err)
	}
	defer conn.Close()
	if _, err := conn.Write(appendCommand(nil, []string{"PING"})); err != nil {
		t.Fatalf("write PING: %v", err)
	}
	r := bufio.NewReader(conn)
	conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	got, err := readReply(r)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("PING while paused = %#v, %v; want a timeout", got, err)
	}

	if err := s.Resume(); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	// The PING that hung is answered now, on the same connection.
	conn.SetReadDeadline(time.Now().Add(doTimeout))
	if got, err := readReply(r); err != nil || got != "PONG" {
		t.Errorf("pending PING after Resume = %#v, %v; want \"PONG\", nil", got, err)
	}
	if got, err := s.Do("PING"); err != nil || got != "PONG" {
		t.Errorf("PING after Resume = %#v, %v; want \"PONG\", nil", got, err)
	}

	// Kill and Restart of a paused server work too.
	if err := s.Pause(); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	if err := s.Restart(); err != nil {
		t.Fatalf("Restart while paused: %v", err)
	}
	if got, err := s.Do("PING"); err != nil || got != "PONG" {
		t.Errorf("PING after Restart while paused = %#v, %v; want \"PONG\", nil", got, err)
	}
	if err := s.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if err := s.Pause(); err == nil {
		t.Error("Pause after Kill: got nil error, want one")
	}
	if err := s.Resume(); err != nil {
		t.Errorf("Resume after Kill = %v, want nil", err)
	}
}

func TestParallelServersGetDifferentPorts(t *testing.T) {
	t.Parallel()
	needRedis(t)
	var (
		wg      sync.WaitGroup
		servers [2]*Server
		errs    [2]error
	)
	for i := range servers {
		wg.Go(func() { servers[i], errs[i] = RunRedis(Config{}) })
	}
	wg.Wait()
	for i, s := range servers {
		if errs[i] != nil {
			t.Fatalf("RunRedis #%d: %v", i, errs[i])
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	a, b := servers[0], servers[1]
	if a.Port() == b.Port() {
		t.Fatalf("both servers got port %d, want different ports", a.Port())
	}
	if _, err := a.Do("SET", "k", "a"); err != nil {
		t.Fatalf("SET on first server: %v", err)
	}
	if got, err := b.Do("GET", "k"); err != nil || got != nil {
		t.Errorf("GET on second server = %#v, %v; want nil, nil (servers are separate)", got, err)
	}
}

// TestStartOnTakenPort covers the race RunRedis retries on: another
// redis-server binds the port first. Ours must fail with errAddrInUse, and
// the other server's PONG must not pass for ours.
func TestStartOnTakenPort(t *testing.T) {
	t.Parallel()
	other := StartRedis(t)

	s := &Server{bin: other.bin, dir: t.TempDir(), port: other.Port()}
	p, err := s.start()
	if err == nil {
		p.kill(false)
		t.Fatalf("start on the port of a running redis-server: got nil error, want %v", errAddrInUse)
	}
	if !errors.Is(err, errAddrInUse) {
		t.Errorf("start on a taken port: got %v, want %v", err, errAddrInUse)
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	needRedis(t)
	s, err := RunRedis(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if _, err := os.Stat(s.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temp dir after Close: Stat error = %v, want ErrNotExist", err)
	}
	if got, err := s.Do("PING"); err == nil {
		t.Errorf("PING after Close = %#v, nil; want an error", got)
	}
	if err := s.Restart(); err == nil {
		t.Error("Restart after Close: got nil error, want one")
	}
}

// fatalTB records Fatalf or Skipf and ends the goroutine, like testing.T,
// without failing or skipping the real test.
type fatalTB struct {
	testing.TB
	msg     string
	skipped bool
}

func (tb *fatalTB) Helper() {}

func (tb *fatalTB) Fatalf(format string, args ...any) {
	tb.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (tb *fatalTB) Skipf(format string, args ...any) {
	tb.skipped = true
	tb.Fatalf(format, args...)
}

func TestStartRedisNotInstalled(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no redis-server there

	msg, skipped := endMessage(t, func(tb testing.TB) { StartRedis(tb) })
	want := "redis-server not found in PATH; this test needs a real Redis: run `make test`, which installs it, or apt-get install redis-server"
	if !skipped || !strings.Contains(msg, want) {
		t.Errorf("StartRedis ended the test with %q (skipped: %v), want it skipped with a message containing %q", msg, skipped, want)
	}
	var shared Shared
	msg, skipped = endMessage(t, func(tb testing.TB) { shared.Server(tb) })
	if !skipped || !strings.Contains(msg, want) {
		t.Errorf("Shared.Server ended the test with %q (skipped: %v), want it skipped with a message containing %q", msg, skipped, want)
	}
	if err := shared.Close(); err != nil {
		t.Errorf("Close of a Shared that never started: %v", err)
	}
}

// TestSharedStartsOnce: every test asking a Shared gets the same server,
// started by the first.
func TestSharedStartsOnce(t *testing.T) {
	var shared Shared
	a, b := shared.Server(t), shared.Server(t)
	if a != b {
		t.Fatalf("Shared.Server gave %s then %s, want one server", a.Addr(), b.Addr())
	}
	if got, err := a.Do("PING"); err != nil || got != "PONG" {
		t.Fatalf("PING = %v, %v", got, err)
	}
	if err := shared.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Do("PING"); err == nil {
		t.Fatal("the server answers after Shared.Close")
	}
}

func TestReadReply(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		in      string
		want    any
		wantErr error
	}{
		{"simple string", "+OK\r\n", "OK", nil},
		{"error reply", "-ERR unknown command\r\n", ReplyError("ERR unknown command"), nil},
		{"integer", ":42\r\n", int64(42), nil},
		{"negative integer", ":-7\r\n", int64(-7), nil},
		{"bulk", "$5\r\nhello\r\n", "hello", nil},
		{"empty bulk", "$0\r\n\r\n", "", nil},
		{"binary bulk", "$6\r\na\x00\xff\r\nb\r\n", "a\x00\xff\r\nb", nil},
		{"null bulk", "$-1\r\n", nil, nil},
		{"null array", "*-1\r\n", nil, nil},
		{"empty array", "*0\r\n", []any{}, nil},
		{"nested array", "*3\r\n:1\r\n*2\r\n+a\r\n$-1\r\n-ERR x\r\n",
			[]any{int64(1), []any{"a", nil}, ReplyError("ERR x")}, nil},
		{"trailing data left unread", "+OK\r\n+NEXT\r\n", "OK", nil},

		{"empty input", "", nil, io.EOF},
		{"hostile bulk length", "$999999999999\r\n", nil, errProtocol},
		{"bulk just over the limit", "$536870913\r\n", nil, errProtocol},
		{"bulk length below -1", "$-2\r\n", nil, errProtocol},
		{"bulk shorter than its length", "$5\r\nhi\r\n", nil, io.ErrUnexpectedEOF},
		{"bulk within limit but missing", "$536870912\r\n", nil, io.ErrUnexpectedEOF},
		{"bulk without CRLF", "$2\r\nhiXY", nil, errProtocol},
		{"hostile array length", "*999999999999\r\n:1\r\n", nil, io.ErrUnexpectedEOF},
		{"array length below -1", "*-2\r\n", nil, errProtocol},
		{"array cut short", "*2\r\n:1\r\n", nil, io.ErrUnexpectedEOF},
		{"deep nesting", strings.Repeat("*1\r\n", 100) + ":1\r\n", nil, errProtocol},
		{"bad integer", ":abc\r\n", nil, errProtocol},
		{"bad length", "$x\r\n", nil, errProtocol},
		{"LF without CR", "+OK\n", nil, errProtocol},
		{"line cut short", "+OK", nil, io.ErrUnexpectedEOF},
		{"empty line", "\r\n", nil, errProtocol},
		{"unknown type", "!x\r\n", nil, errProtocol},
		{"RESP3 map", "%1\r\n+a\r\n+b\r\n", nil, errProtocol},
		{"line longer than the buffer", "+" + strings.Repeat("x", 5000) + "\r\n", nil, errProtocol},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := readReply(bufio.NewReader(bytes.NewReader([]byte(c.in))))
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) {
					t.Errorf("readReply(%.40q) = %#v, %v; want error %v", c.in, got, err, c.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Errorf("readReply(%.40q) = %#v, %v; want %#v, nil", c.in, got, err, c.want)
			}
		})
	}
}

func TestAppendCommand(t *testing.T) {
	t.Parallel()
	got := string(appendCommand(nil, []string{"SET", "k", "a\x00\r\n", ""}))
	want := "*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\x00\r\n\r\n$0\r\n\r\n"
	if got != want {
		t.Errorf("appendCommand = %q, want %q", got, want)
	}
}

// FuzzReadReply checks that no input makes readReply panic, and that what it
// accepts encodes back to bytes that decode to the same value.
func FuzzReadReply(f *testing.F) {
	for _, seed := range []string{
		"+OK\r\n", "-ERR x\r\n", ":42\r\n", "$5\r\nhello\r\n", "$-1\r\n", "*-1\r\n",
		"*3\r\n:1\r\n*2\r\n+a\r\n$-1\r\n-ERR x\r\n", "$999999999999\r\n", "*999999999999\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := readReply(bufio.NewReader(bytes.NewReader(in)))
		if err != nil {
			return
		}
		enc := appendReply(nil, got)
		again, err := readReply(bufio.NewReader(bytes.NewReader(enc)))
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("readReply(%q) = %#v; re-encoded as %q it reads back as %#v, %v", in, got, enc, again, err)
		}
	})
}

// appendReply encodes v, a value readReply returns, as RESP2.
func appendReply(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "$-1\r\n"...)
	case string:
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(v)), 10)
		return append(append(append(b, "\r\n"...), v...), "\r\n"...)
	case ReplyError:
		return append(append(append(b, '-'), v...), "\r\n"...)
	case int64:
		return append(strconv.AppendInt(append(b, ':'), v, 10), "\r\n"...)
	case []any:
		b = append(strconv.AppendInt(append(b, '*'), int64(len(v)), 10), "\r\n"...)
		for _, e := range v {
			b = appendReply(b, e)
		}
		return b
	}
	panic("appendReply: unexpected type")
}

// needRedis skips a test that runs redis-server itself (not through a Start
// function, which skips by itself) where it is not installed.
func needRedis(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skipf("skipped: %v", errServerNotInstalled)
	}
}
