package cachetest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// replicasOf returns the addresses of the replicas the master s reports in
// ROLE.
func replicasOf(t *testing.T, s *Server) []string {
	t.Helper()
	got, err := s.Do("ROLE")
	r, ok := got.([]any)
	if err != nil || !ok || len(r) != 3 || r[0] != "master" {
		t.Fatalf("ROLE on %s = %#v, %v; want a master's reply", s.Addr(), got, err)
	}
	var addrs []string
	for _, e := range r[2].([]any) {
		f := e.([]any)
		addrs = append(addrs, net.JoinHostPort(fmt.Sprint(f[0]), fmt.Sprint(f[1])))
	}
	return addrs
}

// setAndWait sets key to value on s and waits until a replica has it: SET
// and WAIT 1 1000 on one connection, since WAIT counts the acknowledgements
// of its own connection's writes (a WAIT sent with Do, on a fresh
// connection, has nothing to wait for).
func setAndWait(t *testing.T, s *Server, key, value string) {
	t.Helper()
	r, err := exchange(s.Addr(), doTimeout, []string{"SET", key, value}, []string{"WAIT", "1", "1000"})
	if err != nil || r[1] != int64(1) {
		t.Fatalf("SET %s and WAIT 1 1000 on %s = %#v, %v; want one replica", key, s.Addr(), r, err)
	}
}

func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	s := StartSentinel(t)

	if got := s.MasterName(); got != "mymaster" {
		t.Errorf("MasterName() = %q, want mymaster", got)
	}
	if got := s.SentinelAddrs(); len(got) != 3 {
		t.Errorf("SentinelAddrs() = %v, want 3 sentinels", got)
	}
	master := s.Master()
	if n := s.Node(master); n == nil || n.Addr() != master || n != s.data[0] {
		t.Fatalf("Node(Master() = %q) = %v, want the master node %s", master, n, s.data[0].Addr())
	}
	if n := s.Node("127.0.0.1:1"); n != nil {
		t.Errorf("Node of an address outside the setup = %v, want nil", n)
	}
	replicas := replicasOf(t, s.Node(master))
	if len(replicas) != 1 || s.Node(replicas[0]) == nil {
		t.Fatalf("the master's ROLE lists replicas %v, want one data node", replicas)
	}
	replica := replicas[0]
	if role, of := roleOf(t, s.Node(replica)); role != "slave" || of != master {
		t.Fatalf("ROLE of %s = %s of %q, want slave of %s", replica, role, of, master)
	}

	const key = "sentinel-key"
	setAndWait(t, s.Node(master), key, "before")
	if got, err := s.Node(replica).Do("GET", key); err != nil || got != "before" {
		t.Fatalf("GET on the replica %s = %#v, %v; want \"before\", nil", replica, got, err)
	}

	if err := s.Failover(); err != nil {
		t.Fatalf("Failover: %v", err)
	}
	if got := s.Master(); got != replica {
		t.Fatalf("Master() after Failover = %q, want the former replica %s", got, replica)
	}
	if got, err := s.Node(replica).Do("GET", key); err != nil || got != "before" {
		t.Errorf("GET on the promoted %s = %#v, %v; want \"before\", nil", replica, got, err)
	}
	if role, of := roleOf(t, s.Node(master)); role != "slave" || of != replica {
		t.Errorf("ROLE of the former master = %s of %q, want slave of %s", role, of, replica)
	}
	_, err := s.Node(master).Do("SET", key, "on the old master")
	var re ReplyError
	if !errors.As(err, &re) || !strings.HasPrefix(string(re), "READONLY") {
		t.Errorf("SET on the former master: got error %v, want READONLY", err)
	}
	setAndWait(t, s.Node(replica), key, "after")
	if got, err := s.Node(master).Do("GET", key); err != nil || got != "after" {
		t.Errorf("GET on the former master, now a replica = %#v, %v; want \"after\", nil", got, err)
	}
}

func TestSentinelConfigAndClose(t *testing.T) {
	t.Parallel()
	s := StartSentinel(t, SentinelConfig{Replicas: 2, Sentinels: 1, MasterName: "other"})

	if got := s.MasterName(); got != "other" {
		t.Errorf("MasterName() = %q, want other", got)
	}
	if got := s.SentinelAddrs(); len(got) != 1 {
		t.Errorf("SentinelAddrs() = %v, want 1 sentinel", got)
	}
	master := s.Master()
	if got := replicasOf(t, s.Node(master)); len(got) != 2 {
		t.Errorf("the master's ROLE lists replicas %v, want 2", got)
	}
	if got, err := call(s.SentinelAddrs()[0], doTimeout, "SENTINEL", "MASTER", "other"); err != nil || pairs(got)["quorum"] != "1" {
		t.Errorf("SENTINEL MASTER other = %v, %v; want quorum 1", got, err)
	}

	var pids []int
	var addrs []string
	for _, p := range slices.Concat(s.data, s.sentinels) {
		p.mu.Lock()
		pids = append(pids, p.proc.cmd.Process.Pid)
		p.mu.Unlock()
		addrs = append(addrs, p.Addr())
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	for _, pid := range pids {
		// cmd.Wait reaped the process: it no longer exists, not even as a zombie.
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("signal 0 to redis-server pid %d after Close: got %v, want ESRCH", pid, err)
		}
	}
	for _, a := range addrs {
		if conn, err := net.Dial("tcp", a); err == nil {
			conn.Close()
			t.Errorf("dial %s after Close: connected, want an error", a)
		}
	}
	if _, err := os.Stat(s.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temp dir after Close: Stat error = %v, want ErrNotExist", err)
	}
	if got := s.Master(); got != "" {
		t.Errorf("Master() after Close = %q, want \"\"", got)
	}
}

func TestStartSentinelBadConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  []SentinelConfig
		want string
	}{
		{[]SentinelConfig{{Replicas: -1}}, "want Replicas >= 0"},
		{[]SentinelConfig{{Sentinels: -1}}, "want Replicas >= 0, Sentinels >= 0"},
		{[]SentinelConfig{{MasterName: "my master"}}, "a name without spaces"},
		{[]SentinelConfig{{}, {}}, "got 2 SentinelConfigs, want at most 1"},
	} {
		msg := fatalMessage(t, func(tb testing.TB) { StartSentinel(tb, tc.cfg...) })
		if !strings.Contains(msg, tc.want) {
			t.Errorf("StartSentinel(%+v) failed with %q, want a message containing %q", tc.cfg, msg, tc.want)
		}
	}
}

func TestStartSentinelNotInstalled(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no redis-server there
	msg := fatalMessage(t, func(tb testing.TB) { StartSentinel(tb) })
	if want := "redis-server not found in PATH"; !strings.Contains(msg, want) {
		t.Errorf("StartSentinel without redis-server failed with %q, want a message containing %q", msg, want)
	}
}
