package cachetest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	startAttempts = 5                // fresh ports tried when the chosen one is taken
	readyTimeout  = 10 * time.Second // from process start to the first PONG
	probeTimeout  = 500 * time.Millisecond
	doTimeout     = 2 * time.Second
	logName       = "redis.log"
)

var (
	// ErrNotInstalled is the error of the Run and Start functions where
	// redis-server (or redis-cli, for a cluster) is not in PATH; the Start
	// functions and Shared skip the test with it.
	ErrNotInstalled = errors.New("cachetest: Redis is not installed")

	errServerNotInstalled = fmt.Errorf("%w: redis-server not found in PATH; this test needs a real Redis: run `make test`, which installs it, or apt-get install redis-server redis-tools", ErrNotInstalled)
	errNotRunning         = errors.New("cachetest: redis-server is not running")
	errClosed             = errors.New("cachetest: server closed")
	errAddrInUse          = errors.New("address already in use")
)

// Server is a private redis-server process started for tests. Its methods
// are safe for concurrent use. Create one with StartRedis or RunRedis; the
// zero value is not usable.
//
// The server keeps nothing on disk (no RDB, no AOF): after Kill and Restart
// it is empty.
type Server struct {
	bin  string   // path of redis-server
	dir  string   // temp dir: working dir and redis.log
	port int      // fixed once StartRedis or RunRedis returns
	args []string // Config.Args

	mu     sync.Mutex
	proc   *process // nil while killed
	paused bool     // proc is stopped by SIGSTOP
	closed bool
}

// process is one run of redis-server.
type process struct {
	cmd     *exec.Cmd
	done    chan struct{} // closed once the process has exited
	err     error         // cmd.Wait's result, set before done is closed
	logFrom int64         // size of redis.log when this run started
}

// Config adjusts StartRedis; the zero value is a plain server.
type Config struct {
	// Args are extra redis-server arguments, appended after the defaults,
	// e.g. {"--notify-keyspace-events", "KEA"}.
	Args []string
}

// StartRedis starts a private redis-server on a free 127.0.0.1 port, waits
// until it answers PING, and stops it (SIGKILL, wait, remove its temp dir)
// in tb.Cleanup. At most one Config may be given. If the test has failed,
// the cleanup logs the tail of the server's log first.
//
// StartRedis fails the test, never skips it, when redis-server is missing:
// tests of Redis behaviour must not pass by not running.
func StartRedis(tb testing.TB, cfg ...Config) *Server {
	tb.Helper()
	s, err := RunRedis(oneConfig(tb, "StartRedis", "Config", cfg))
	if err != nil {
		failOrSkip(tb, err)
	}
	closeWithLogs(tb, s, s)
	return s
}

// oneConfig returns the optional config of a Start function (the zero
// value if none), failing the test if more than one was given.
func oneConfig[C any](tb testing.TB, start, noun string, cfg []C) C {
	tb.Helper()
	var c C
	switch len(cfg) {
	case 0:
	case 1:
		c = cfg[0]
	default:
		tb.Fatalf("cachetest.%s: got %d %ss, want at most 1", start, len(cfg), noun)
	}
	return c
}

// failOrSkip ends the test: skipped, saying so, if err is ErrNotInstalled
// (so a package's in-process tests still run where Redis is not installed),
// else failed.
func failOrSkip(tb testing.TB, err error) {
	tb.Helper()
	if errors.Is(err, ErrNotInstalled) {
		tb.Skipf("skipped: %v", err)
	}
	tb.Fatalf("%v", err)
}

// Shared is one redis-server for the tests of a package that share it,
// started by the first test that asks for it. The zero Shared is ready to
// use; TestMain calls Close after m.Run.
type Shared struct {
	once sync.Once
	srv  *Server
	err  error
}

// Server returns the shared server, starting it on first use. Where
// redis-server is not installed it skips the test, saying so.
func (s *Shared) Server(tb testing.TB) *Server {
	tb.Helper()
	s.once.Do(func() { s.srv, s.err = RunRedis(Config{}) })
	if s.err != nil {
		failOrSkip(tb, s.err)
	}
	return s.srv
}

// Close stops the server if it was started.
func (s *Shared) Close() error {
	s.once.Do(func() {}) // no server starts after Close
	if s.srv == nil {
		return nil
	}
	return s.srv.Close()
}

// closeWithLogs closes c when the test ends, after logging the end of every
// server's log if the test failed.
func closeWithLogs(tb testing.TB, c io.Closer, servers ...*Server) {
	tb.Cleanup(func() {
		if tb.Failed() {
			for _, s := range servers {
				tb.Logf("redis-server on %s, end of %s:\n%s", s.Addr(), logName, s.logTail(0))
			}
		}
		if err := c.Close(); err != nil {
			tb.Errorf("%v", err)
		}
	})
}

// RunRedis is StartRedis for TestMain, where there is no testing.TB: the
// caller must Close the Server.
func RunRedis(cfg Config) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errServerNotInstalled
	}
	dir, err := os.MkdirTemp("", "cachetest-redis-")
	if err != nil {
		return nil, fmt.Errorf("cachetest: %w", err)
	}
	s := &Server{bin: bin, dir: dir, args: slices.Clone(cfg.Args)}
	// The port is free when freePort returns but not reserved: another
	// process may bind it before redis-server does. Then redis-server exits
	// with "Address already in use" and we try another port.
	for range startAttempts {
		if s.port, err = freePort(); err != nil {
			break
		}
		var p *process
		if p, err = s.start(); err == nil {
			s.proc = p
			return s, nil
		}
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	return nil, errors.Join(err, os.RemoveAll(dir))
}

// FreePort returns a TCP port that was free on 127.0.0.1 a moment ago, for
// a server's extra listener (a TLS port, say).
func FreePort() (int, error) { return freePort() }

// freePort returns a port that was free on 127.0.0.1 a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("cachetest: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Addr returns the server's address, "127.0.0.1:PORT".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port returns the server's TCP port. It does not change on Restart.
func (s *Server) Port() int { return s.port }

// URL returns the server's address as a Redis URL for database 0,
// "redis://127.0.0.1:PORT/0".
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Kill stops the server with SIGKILL and waits for it to exit, as a crash
// would. The Server keeps its port for Restart, but does not hold it: until
// Restart, another process could bind it. Killing a killed server does
// nothing.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.killLocked()
}

// Pause stops the server with SIGSTOP: it keeps accepting connections (the
// kernel does), but no command gets a reply until Resume. Commands sent
// after Pause returns are not answered: the stop is pending before Pause
// returns, and the server takes it before it next runs.
func (s *Server) Pause() error {
	return s.signal(syscall.SIGSTOP, true)
}

// Resume continues a server stopped by Pause with SIGCONT. Resuming a server
// that is not paused, or is killed, does nothing, so tests may defer it.
func (s *Server) Resume() error {
	return s.signal(syscall.SIGCONT, false)
}

func (s *Server) signal(sig syscall.Signal, pause bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		if pause {
			return errNotRunning
		}
		return nil
	}
	if err := s.proc.cmd.Process.Signal(sig); err != nil {
		if errors.Is(err, os.ErrProcessDone) && pause {
			return errNotRunning // it exited by itself, e.g. on SHUTDOWN
		}
		if !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("cachetest: send %v to redis-server: %w", sig, err)
		}
	}
	s.paused = pause
	return nil
}

// Restart starts the server again on the same port, after Kill, and waits
// until it answers PING. A running or paused server is killed first. The
// restarted server is empty. Restart fails if another process took the port
// meanwhile.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	if err := s.killLocked(); err != nil {
		return err
	}
	p, err := s.start()
	if err != nil {
		return err
	}
	s.proc = p
	return nil
}

// Close kills the server, waits for it to exit and removes its temp dir.
// Closing a closed Server does nothing.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return errors.Join(s.killLocked(), os.RemoveAll(s.dir))
}

// Do sends one command over a fresh connection and returns the reply, with a
// deadline of 2 s for the whole exchange. Replies decode to string (simple
// and bulk strings, binary-safe), int64, nil (null bulk or array), or []any
// (arrays, whose elements decode the same way, an error reply as a
// ReplyError). A top-level error reply is returned as the error, wrapping a
// ReplyError.
func (s *Server) Do(args ...string) (any, error) {
	if len(args) == 0 {
		return nil, errors.New("cachetest: Do: no command")
	}
	replies, err := exchange(s.Addr(), doTimeout, args)
	if err != nil {
		return nil, fmt.Errorf("cachetest: %s: %w", args[0], err)
	}
	return replies[0], nil
}

// FlushAll removes every key of every database: Do("FLUSHALL").
func (s *Server) FlushAll() error {
	_, err := s.Do("FLUSHALL")
	return err
}

// start runs redis-server on s.port and waits until it answers. It is called
// with s.mu held, or before s is shared.
func (s *Server) start() (*process, error) {
	return s.launch(append([]string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--logfile", filepath.Join(s.dir, logName),
		"--daemonize", "no",
		"--protected-mode", "no",
	}, s.args...))
}

// launch runs s.bin with args, its output going to the log in s.dir, and
// waits until the process answers on s's port. Sentinels use it too, with
// their config file as first argument.
func (s *Server) launch(args []string) (*process, error) {
	logPath := filepath.Join(s.dir, logName)
	// redis-server writes its log to logPath, but reports bad arguments on
	// stderr before it opens the log: send stdout and stderr there too.
	out, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cachetest: %w", err)
	}
	defer out.Close()
	fi, err := out.Stat()
	if err != nil {
		return nil, fmt.Errorf("cachetest: %w", err)
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cachetest: start redis-server: %w", err)
	}
	p := &process{cmd: cmd, done: make(chan struct{}), logFrom: fi.Size()}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := s.waitReady(p); err != nil {
		p.kill(false)
		return nil, err
	}
	return p, nil
}

// waitReady polls the server until it answers, it exits, or readyTimeout
// passes. Polling is the only way to learn when a process is ready.
func (s *Server) waitReady(p *process) error {
	deadline := time.Now().Add(readyTimeout)
	delay := time.Millisecond
	for {
		err := probe(s.Addr(), p.cmd.Process.Pid)
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			tail := s.logTail(p.logFrom)
			if strings.Contains(tail, "Address already in use") {
				return fmt.Errorf("cachetest: redis-server could not listen on port %d: %w; end of %s:\n%s", s.port, errAddrInUse, logName, tail)
			}
			return fmt.Errorf("cachetest: redis-server exited before answering PING (%v); end of %s:\n%s", p.err, logName, tail)
		case <-time.After(delay):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cachetest: redis-server on port %d did not answer PING within %v (last: %v); end of %s:\n%s", s.port, readyTimeout, err, logName, s.logTail(p.logFrom))
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// probe reports whether the redis-server with process id pid answers PING
// on addr. It checks the process id because, when the port was taken by
// another redis-server, that one would answer PING while ours fails.
func probe(addr string, pid int) error {
	replies, err := exchange(addr, probeTimeout, []string{"PING"}, []string{"INFO", "server"})
	if err != nil {
		return err
	}
	if replies[0] != "PONG" {
		return fmt.Errorf("PING: got %q, want PONG", replies[0])
	}
	info, _ := replies[1].(string)
	if !strings.Contains(info, "\r\nprocess_id:"+strconv.Itoa(pid)+"\r\n") {
		return fmt.Errorf("%s is served by another process than pid %d", addr, pid)
	}
	return nil
}

// killLocked kills the current process, if any, and waits for it.
func (s *Server) killLocked() error {
	if s.proc == nil {
		return nil
	}
	if err := s.proc.kill(s.paused); err != nil {
		return err
	}
	s.proc, s.paused = nil, false
	return nil
}

func (p *process) kill(paused bool) error {
	if paused {
		// SIGKILL ends a stopped process too; continue it anyway so that
		// nothing depends on that.
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("cachetest: kill redis-server: %w", err)
	}
	<-p.done
	return nil
}

// logTail returns the last lines of redis.log written since offset from.
func (s *Server) logTail(from int64) string {
	const maxBytes, maxLines = 4 << 10, 20
	f, err := os.Open(filepath.Join(s.dir, logName))
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	start := max(from, fi.Size()-maxBytes, 0)
	b := make([]byte, max(fi.Size()-start, 0))
	n, _ := f.ReadAt(b, start)
	lines := strings.Split(strings.TrimRight(string(b[:n]), "\n"), "\n")
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	return strings.Join(lines, "\n")
}
