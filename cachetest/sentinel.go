package cachetest

// A private Redis Sentinel setup for tests: data nodes started like
// StartRedis's, sentinels watching them, driven with the package's RESP
// client.

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const sentinelTimeout = 20 * time.Second // start-up, failover

// SentinelConfig adjusts StartSentinel; the zero value is one master, one
// replica and three sentinels (quorum 2).
type SentinelConfig struct {
	// Replicas is the number of replicas of the master, default 1.
	Replicas int
	// Sentinels is the number of sentinels, default 3. Their quorum is a
	// majority of them.
	Sentinels int
	// MasterName is the name the sentinels monitor the master under,
	// default "mymaster".
	MasterName string
}

// Sentinel is a private Redis Sentinel setup: a master, its replicas and
// the sentinels watching them, redis-server processes on loopback ports,
// started by StartSentinel. Its methods are safe for concurrent use;
// Failovers run one at a time.
type Sentinel struct {
	name string
	dir  string // temp dir holding one dir per process
	// data, nodes and sentinels are fixed once StartSentinel returns.
	data      []*Server          // the first master, then its replicas
	nodes     map[string]*Server // data by address
	sentinels []*Server

	opMu sync.Mutex // serializes Failover

	mu     sync.Mutex
	closed bool
}

// StartSentinel starts a private Sentinel setup and stops it (SIGKILL every
// process, remove the temp dirs) in tb.Cleanup. At most one SentinelConfig
// may be given. The data nodes run as StartRedis's servers do, with
// --repl-diskless-sync-delay 0 and, for the replicas, --replicaof 127.0.0.1
// <master port>. Once the replicas are in sync, each sentinel runs
// "redis-server <its dir>/sentinel.conf --sentinel", with a config file of
// its own (sentinels rewrite it) that sets port, bind 127.0.0.1, dir,
// logfile, "sentinel monitor <name> 127.0.0.1 <master port> <quorum>" and
// for <name> down-after-milliseconds 1000, failover-timeout 5000 and
// parallel-syncs 1. It returns once every sentinel reports the master, with no down or
// failover flag, knows the other sentinels, and lists every replica as a
// replica of the master with its link up; and every replica reports
// master_link_status:up. If the test has failed, the cleanup logs the tail
// of every process's log first.
//
// StartSentinel fails the test, never skips it, when redis-server is
// missing.
func StartSentinel(tb testing.TB, cfg ...SentinelConfig) *Sentinel {
	tb.Helper()
	sc := oneConfig(tb, "StartSentinel", "SentinelConfig", cfg)
	sc.Replicas, sc.Sentinels = cmp.Or(sc.Replicas, 1), cmp.Or(sc.Sentinels, 3)
	sc.MasterName = cmp.Or(sc.MasterName, "mymaster")
	if sc.Replicas < 0 || sc.Sentinels < 0 || strings.ContainsAny(sc.MasterName, " \t\r\n\"'\\") {
		tb.Fatalf("cachetest.StartSentinel: got Replicas %d, Sentinels %d, MasterName %q; want Replicas >= 0, Sentinels >= 0 (0 means the default) and a name without spaces or quotes", sc.Replicas, sc.Sentinels, sc.MasterName)
	}
	s, err := runSentinel(sc)
	if err != nil {
		failOrSkip(tb, err)
	}
	closeWithLogs(tb, s, slices.Concat(s.data, s.sentinels)...)
	return s
}

// runSentinel starts the data nodes, then the sentinels. On error it leaves
// nothing behind.
func runSentinel(cfg SentinelConfig) (_ *Sentinel, err error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errServerNotInstalled
	}
	dir, err := os.MkdirTemp("", "cachetest-sentinel-")
	if err != nil {
		return nil, fmt.Errorf("cachetest: %w", err)
	}
	s := &Sentinel{name: cfg.MasterName, dir: dir, nodes: make(map[string]*Server)}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Close())
		}
	}()

	for i := range 1 + cfg.Replicas {
		// Replicas sync at once, not after the default 5 s wait for more
		// replicas to share a diskless transfer.
		args := []string{"--repl-diskless-sync-delay", "0"}
		if i > 0 {
			args = append(args, "--replicaof", "127.0.0.1", strconv.Itoa(s.data[0].port))
		}
		n, err := s.launch(bin, "node-", func(n *Server) (*process, error) {
			n.args = args
			return n.start()
		})
		if err != nil {
			return nil, err
		}
		s.data = append(s.data, n)
		s.nodes[n.Addr()] = n
	}
	// A sentinel learns the replicas from the master's INFO, which it reads
	// on connecting and then every 10 s: start it once they are connected.
	// With no sentinels yet, settled checks the data nodes alone.
	master := s.data[0].Addr()
	if err := s.await("replication start-up", func() error { return s.settled(master, true) }); err != nil {
		return nil, err
	}
	for range cfg.Sentinels {
		sn, err := s.launch(bin, "sentinel-", func(sn *Server) (*process, error) {
			return s.startSentinel(sn, cfg.Sentinels/2+1)
		})
		if err != nil {
			return nil, err
		}
		s.sentinels = append(s.sentinels, sn)
	}
	return s, s.await("sentinel start-up", func() error { return s.settled(master, true) })
}

// launch starts a process in a dir of its own on a free port, retrying on
// fresh ports when one is taken before the process binds it, as RunRedis
// does.
func (s *Sentinel) launch(bin, prefix string, start func(*Server) (*process, error)) (*Server, error) {
	dir, err := os.MkdirTemp(s.dir, prefix)
	if err != nil {
		return nil, fmt.Errorf("cachetest: %w", err)
	}
	p := &Server{bin: bin, dir: dir}
	for range startAttempts {
		if p.port, err = freePort(); err != nil {
			return nil, err
		}
		var proc *process
		if proc, err = start(p); err == nil {
			p.proc = proc
			return p, nil
		}
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	return nil, err
}

// startSentinel runs sn as a sentinel of the first data node. A sentinel's
// config file must be its first argument, and writable, since the sentinel
// rewrites it with what it learns.
func (s *Sentinel) startSentinel(sn *Server, quorum int) (*process, error) {
	logPath, conf := filepath.Join(sn.dir, logName), filepath.Join(sn.dir, "sentinel.conf")
	text := fmt.Sprintf("port %[1]d\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\ndir %[2]q\nlogfile %[3]q\n"+
		"sentinel monitor %[4]s 127.0.0.1 %[5]d %[6]d\nsentinel down-after-milliseconds %[4]s 1000\n"+
		"sentinel failover-timeout %[4]s 5000\nsentinel parallel-syncs %[4]s 1\n",
		sn.port, sn.dir, logPath, s.name, s.data[0].port, quorum)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return nil, fmt.Errorf("cachetest: %w", err)
	}
	return sn.launch([]string{conf, "--sentinel"})
}

// MasterName returns the name the sentinels monitor the master under.
func (s *Sentinel) MasterName() string { return s.name }

// SentinelAddrs returns the address, "127.0.0.1:PORT", of every sentinel.
func (s *Sentinel) SentinelAddrs() []string {
	addrs := make([]string, len(s.sentinels))
	for i, sn := range s.sentinels {
		addrs[i] = sn.Addr()
	}
	return addrs
}

// Master returns the address of the current master as the first sentinel
// that answers reports it (SENTINEL GET-MASTER-ADDR-BY-NAME), or "" if none
// answers.
func (s *Sentinel) Master() string {
	for _, sn := range s.sentinels {
		if addr, err := s.masterOf(sn.Addr()); err == nil {
			return addr
		}
	}
	return ""
}

func (s *Sentinel) masterOf(sentinel string) (string, error) {
	r, err := call(sentinel, doTimeout, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.name)
	if a, ok := r.([]any); err == nil && ok && len(a) == 2 {
		return net.JoinHostPort(fmt.Sprint(a[0]), fmt.Sprint(a[1])), nil
	}
	return "", fmt.Errorf("cachetest: SENTINEL GET-MASTER-ADDR-BY-NAME %s on %s = %#v, %v", s.name, sentinel, r, err)
}

// Node returns the data node (master or replica) at addr, or nil if addr
// is not one. Its Kill, Pause, Resume, Restart and Do work as on a server
// of StartRedis. A restarted node is empty and has its first arguments: the
// first master restarts as a master, a replica as a replica of the first
// master; the sentinels make it a replica of the current master some
// seconds later.
func (s *Sentinel) Node(addr string) *Server { return s.nodes[addr] }

// Failover sends SENTINEL FAILOVER <name> to the first sentinel and waits
// until every sentinel reports a new master and lists the other running
// data nodes as its replicas, that node says role:master, and the others
// (the former master among them) replicate it with their link up. It takes
// about 10 s: the sentinels turn the former master, which serves as a
// master meanwhile, into a replica on the first INFO they read from it 8 s
// or more after the switch, and they read a replica's INFO every 10 s. The
// sentinels' own view of its role lags by up to 10 s more: Failover does
// not wait for it.
func (s *Sentinel) Failover() error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	first := s.sentinels[0].Addr()
	old, err := s.masterOf(first)
	if err != nil {
		return err
	}
	if _, err := call(first, doTimeout, "SENTINEL", "FAILOVER", s.name); err != nil {
		return err
	}
	return s.await("failover from "+old, func() error {
		m, err := s.masterOf(first)
		if err == nil && m == old {
			err = nodeError{first, fmt.Errorf("still reports %s as the master", old)}
		}
		if err != nil {
			return err
		}
		return s.settled(m, false)
	})
}

// Close kills every process, waits for them to exit and removes the temp
// dirs. Closing a closed Sentinel does nothing.
func (s *Sentinel) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for _, p := range slices.Concat(s.sentinels, s.data) { // the watchers first
		errs = append(errs, p.Close())
	}
	return errors.Join(append(errs, os.RemoveAll(s.dir))...)
}

// settled checks that the setup is at rest with master as its master: every
// sentinel reports master, with no other flag, knows the other sentinels
// and lists every other running data node with flags slave (with full, also
// as a replica of master with its link up, from the node's INFO, which
// Failover cannot wait for: see there); and the data nodes agree.
func (s *Sentinel) settled(master string, full bool) error {
	for _, sn := range s.sentinels {
		r, err := exchange(sn.Addr(), doTimeout, []string{"SENTINEL", "MASTER", s.name}, []string{"SENTINEL", "REPLICAS", s.name})
		if err != nil {
			return nodeError{sn.Addr(), err}
		}
		m, others := pairs(r[0]), strconv.Itoa(len(s.sentinels)-1)
		if net.JoinHostPort(m["ip"], m["port"]) != master || m["flags"] != "master" || m["num-other-sentinels"] != others {
			return nodeError{sn.Addr(), fmt.Errorf("want master %s, flags master, num-other-sentinels %s; SENTINEL MASTER %s: %v", master, others, s.name, m)}
		}
		replicas, _ := r[1].([]any)
		seen := make(map[string]map[string]string)
		for _, e := range replicas {
			f := pairs(e)
			seen[net.JoinHostPort(f["ip"], f["port"])] = f
		}
		for _, n := range s.data {
			if n.Addr() == master || !n.running() {
				continue
			}
			f := seen[n.Addr()]
			ok := f["flags"] == "slave"
			if full {
				ok = ok && f["role-reported"] == "slave" && net.JoinHostPort(f["master-host"], f["master-port"]) == master && f["master-link-status"] == "ok"
			}
			if !ok {
				return nodeError{sn.Addr(), fmt.Errorf("want %s listed as a replica of %s; SENTINEL REPLICAS %s: %v", n.Addr(), master, s.name, replicas)}
			}
		}
	}
	for _, n := range s.data {
		if !n.running() {
			continue
		}
		r, err := call(n.Addr(), doTimeout, "INFO", "replication")
		if err != nil {
			return nodeError{n.Addr(), err}
		}
		info := fmt.Sprint(r)
		f := infoFields(info)
		ok, want := f["role"] == "master", "role:master"
		if n.Addr() != master {
			ok = f["role"] == "slave" && net.JoinHostPort(f["master_host"], f["master_port"]) == master && f["master_link_status"] == "up"
			want = "a replica of " + master + " with master_link_status:up"
		}
		if !ok {
			return nodeError{n.Addr(), fmt.Errorf("want %s; INFO replication:\n%s", want, strings.TrimSpace(info))}
		}
	}
	return nil
}

// pairs turns a flat array of fields and values into a map.
func pairs(r any) map[string]string {
	a, _ := r.([]any)
	m := make(map[string]string, len(a)/2)
	for i := 0; i+1 < len(a); i += 2 {
		m[fmt.Sprint(a[i])] = fmt.Sprint(a[i+1])
	}
	return m
}

// await polls until cond holds or sentinelTimeout passes: sentinels act on
// timers and on each other's messages, which only polling observes. The
// error has the log tails of the process the last failure is about and of
// the first sentinel, which leads Failover.
func (s *Sentinel) await(what string, cond func() error) error {
	deadline := time.Now().Add(sentinelTimeout)
	delay := 5 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			var ne nodeError
			errors.As(err, &ne) // else ne.addr is "": only the first sentinel's log
			for i, p := range slices.Concat(s.data, s.sentinels) {
				if p.Addr() == ne.addr || i == len(s.data) { // i: the first sentinel
					fmt.Fprintf(&b, "\nend of the %s of %s:\n%s", logName, p.Addr(), p.logTail(0))
				}
			}
			return fmt.Errorf("cachetest: %s: not done within %v: %v%s", what, sentinelTimeout, err, b.String())
		}
		time.Sleep(delay)
		delay = min(2*delay, 100*time.Millisecond)
	}
}
