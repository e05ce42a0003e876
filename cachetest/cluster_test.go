package cachetest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestClusterRouting(t *testing.T) {
	t.Parallel()
	c := StartCluster(t)

	addrs := c.Addrs()
	if len(addrs) != 3 {
		t.Fatalf("Addrs() = %v, want 3 nodes", addrs)
	}
	if got := c.Masters(); !reflect.DeepEqual(got, addrs) {
		t.Errorf("Masters() = %v, want %v (every node of a cluster without replicas)", got, addrs)
	}
	for _, a := range addrs {
		if n := c.Node(a); n == nil || n.Addr() != a {
			t.Errorf("Node(%q) = %v, want the server at %s", a, n, a)
		}
	}
	if n := c.Node("127.0.0.1:1"); n != nil {
		t.Errorf("Node of an address outside the cluster = %v, want nil", n)
	}

	const key, value = "routing-key", "v"
	slot, master := c.SlotOf(key), c.MasterOf(key)
	if !slices.Contains(addrs, master) {
		t.Fatalf("MasterOf(%q) = %q, want one of %v", key, master, addrs)
	}
	if got, err := c.Node(master).Do("SET", key, value); err != nil || got != "OK" {
		t.Fatalf("SET on %s = %#v, %v; want \"OK\", nil", master, got, err)
	}
	if got, err := c.Node(master).Do("GET", key); err != nil || got != value {
		t.Errorf("GET on %s = %#v, %v; want %q, nil", master, got, err, value)
	}

	want := fmt.Sprintf("MOVED %d %s", slot, master)
	for _, other := range addrs {
		if other == master {
			continue
		}
		_, err := c.Node(other).Do("SET", key, value)
		var re ReplyError
		if !errors.As(err, &re) || string(re) != want {
			t.Errorf("SET on %s (not the key's master): got error %v, want ReplyError %q", other, err, want)
		}
	}

	if err := c.Failover(master); err == nil || !strings.Contains(err.Error(), "no running replica") {
		t.Errorf("Failover without replicas: got %v, want an error saying there is no replica", err)
	}
}

func TestClusterSlotOf(t *testing.T) {
	t.Parallel()
	c := StartCluster(t)
	node := c.Node(c.Addrs()[0])

	keySlot := func(key string) int {
		t.Helper()
		got, err := node.Do("CLUSTER", "KEYSLOT", key)
		n, ok := got.(int64)
		if err != nil || !ok {
			t.Fatalf("CLUSTER KEYSLOT %q = %#v, %v; want an integer", key, got, err)
		}
		return int(n)
	}
	for _, tc := range []struct {
		key, sameAs string // sameAs: a key that must share the slot, or ""
	}{
		{"foo", ""},
		{"{user1000}.following", "{user1000}.followers"},
		{"{user1000}.followers", "user1000"},
		{"foo{}{bar}", ""},        // empty tag: the whole key is hashed
		{"foo{{bar}}zap", "{bar"}, // the tag is "{bar"
		{"foo{bar}{zap}", "bar"},  // the first tag only
		{"v1:user:42", ""},        // no tag
		{"{v1:user:42}:lock", "v1:user:42"},
		{"", ""},
		{"{", ""},
		{"}{", ""},
	} {
		want := keySlot(tc.key)
		if got := c.SlotOf(tc.key); got != want {
			t.Errorf("SlotOf(%q) = %d, want %d (CLUSTER KEYSLOT)", tc.key, got, want)
		}
		if tc.sameAs != "" {
			if got, want := c.SlotOf(tc.sameAs), c.SlotOf(tc.key); got != want {
				t.Errorf("SlotOf(%q) = %d, want %d, the slot of %q", tc.sameAs, got, want, tc.key)
			}
		}
	}
	// The published check value of CRC-16/XMODEM.
	if got, want := crc16("123456789"), uint16(0x31C3); got != want {
		t.Errorf("crc16(\"123456789\") = %#x, want %#x", got, want)
	}

	// Random keys rich in braces, all in one pipelined exchange.
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "ab{}:"
	keys := make([]string, 500)
	cmds := make([][]string, len(keys))
	for i := range keys {
		b := make([]byte, rng.IntN(10))
		for j := range b {
			b[j] = alphabet[rng.IntN(len(alphabet))]
		}
		keys[i] = string(b)
		cmds[i] = []string{"CLUSTER", "KEYSLOT", keys[i]}
	}
	replies, err := exchange(node.Addr(), doTimeout, cmds...)
	if err != nil {
		t.Fatalf("CLUSTER KEYSLOT ×%d: %v", len(keys), err)
	}
	for i, key := range keys {
		if got, want := int64(c.SlotOf(key)), replies[i]; got != want {
			t.Errorf("SlotOf(%q) = %d, want %v (CLUSTER KEYSLOT)", key, got, want)
		}
	}
}

func TestClusterMoveSlot(t *testing.T) {
	t.Parallel()
	c := StartCluster(t)

	keys := []string{"{move}a", "{move}b", "{move}c"}
	slot, src := c.SlotOf(keys[0]), c.MasterOf(keys[0])
	for _, k := range keys {
		if _, err := c.Node(src).Do("SET", k, "value of "+k); err != nil {
			t.Fatalf("SET %s on %s: %v", k, src, err)
		}
	}
	var dst string
	for _, m := range c.Masters() {
		if m != src {
			dst = m
			break
		}
	}

	if err := c.MoveSlot(slot, dst); err != nil {
		t.Fatalf("MoveSlot(%d, %s): %v", slot, dst, err)
	}

	if got := c.MasterOf(keys[0]); got != dst {
		t.Errorf("MasterOf(%q) after MoveSlot = %q, want %q", keys[0], got, dst)
	}
	for _, a := range c.Addrs() {
		if got := slotsOwner(t, c.Node(a), slot); got != dst {
			t.Errorf("CLUSTER SLOTS on %s: slot %d served by %q, want %q", a, slot, got, dst)
		}
	}
	for _, k := range keys {
		if got, err := c.Node(dst).Do("GET", k); err != nil || got != "value of "+k {
			t.Errorf("GET %s on %s = %#v, %v; want %q, nil", k, dst, got, err, "value of "+k)
		}
	}
	_, err := c.Node(src).Do("GET", keys[0])
	var re ReplyError
	if want := fmt.Sprintf("MOVED %d %s", slot, dst); !errors.As(err, &re) || string(re) != want {
		t.Errorf("GET on the former owner %s: got error %v, want ReplyError %q", src, err, want)
	}
	if got, err := c.Node(src).Do("CLUSTER", "COUNTKEYSINSLOT", strconv.Itoa(slot)); err != nil || got != int64(0) {
		t.Errorf("CLUSTER COUNTKEYSINSLOT on %s = %#v, %v; want int64(0), nil", src, got, err)
	}

	if err := c.MoveSlot(slot, dst); err != nil {
		t.Errorf("MoveSlot to the slot's owner = %v, want nil", err)
	}
	if err := c.MoveSlot(slot, "127.0.0.1:1"); err == nil {
		t.Error("MoveSlot to an address outside the cluster: got nil error, want one")
	}
	if err := c.MoveSlot(clusterSlots, dst); err == nil {
		t.Errorf("MoveSlot(%d, ...): got nil error, want one", clusterSlots)
	}
}

func TestClusterFailover(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, ClusterConfig{Replicas: 1})

	addrs := c.Addrs()
	if len(addrs) != 6 {
		t.Fatalf("Addrs() = %v, want 6 nodes", addrs)
	}
	if got, want := c.Masters(), addrs[:3]; !reflect.DeepEqual(got, want) {
		t.Fatalf("Masters() = %v, want %v (masters come first in Addrs)", got, want)
	}

	const key, value = "failover-key", "before"
	master := c.MasterOf(key)
	var replica string
	for _, a := range addrs[3:] {
		if role, of := roleOf(t, c.Node(a)); role == "slave" && of == master {
			replica = a
		}
	}
	if replica == "" {
		t.Fatalf("no node of %v reports ROLE slave of %s", addrs[3:], master)
	}
	// SET and WAIT on one connection: WAIT counts the acknowledgements of
	// its own connection's writes.
	setAndWait(t, c.Node(master), key, value)

	if err := c.Failover(master); err != nil {
		t.Fatalf("Failover(%s): %v", master, err)
	}

	if got := c.MasterOf(key); got != replica {
		t.Errorf("MasterOf(%q) after Failover = %q, want the former replica %q", key, got, replica)
	}
	if got, err := c.Node(replica).Do("GET", key); err != nil || got != value {
		t.Errorf("GET on the promoted %s = %#v, %v; want %q, nil", replica, got, err, value)
	}
	masters := c.Masters()
	if len(masters) != 3 || !slices.Contains(masters, replica) || slices.Contains(masters, master) {
		t.Errorf("Masters() after Failover = %v, want 3 masters including %s, not %s", masters, replica, master)
	}
	if role, of := roleOf(t, c.Node(master)); role != "slave" || of != replica {
		t.Errorf("ROLE of the former master = %s of %q, want slave of %s", role, of, replica)
	}
	slot := c.SlotOf(key)
	for _, a := range addrs {
		if got := slotsOwner(t, c.Node(a), slot); got != replica {
			t.Errorf("CLUSTER SLOTS on %s: slot %d served by %q, want %q", a, slot, got, replica)
		}
	}
	if err := c.Failover(master); err == nil {
		t.Errorf("Failover(%s), now a replica: got nil error, want one", master)
	}

	// Back again: the former master is a synced replica now.
	if err := c.Failover(replica); err != nil {
		t.Fatalf("Failover(%s) back: %v", replica, err)
	}
	if got := c.MasterOf(key); got != master {
		t.Errorf("MasterOf(%q) after failing back = %q, want %q", key, got, master)
	}
	if got, err := c.Node(master).Do("GET", key); err != nil || got != value {
		t.Errorf("GET on %s after failing back = %#v, %v; want %q, nil", master, got, err, value)
	}

	// A killed master: Failover forces the promotion of its replica.
	var dead, heir string
	for _, m := range addrs[:3] {
		if m != master {
			dead = m
		}
	}
	for _, a := range addrs[3:] {
		if _, of := roleOf(t, c.Node(a)); of == dead {
			heir = a
		}
	}
	if err := c.Node(dead).Kill(); err != nil {
		t.Fatalf("Kill %s: %v", dead, err)
	}
	if err := c.Failover(dead); err != nil {
		t.Fatalf("Failover(%s) of a killed master: %v", dead, err)
	}
	if role, _ := roleOf(t, c.Node(heir)); role != "master" {
		t.Errorf("ROLE of %s, the killed master's replica, after Failover = %s, want master", heir, role)
	}
	if got := c.Masters(); len(got) != 3 || !slices.Contains(got, heir) || slices.Contains(got, dead) {
		t.Errorf("Masters() after Failover of a killed master = %v, want 3 masters including %s, not %s", got, heir, dead)
	}
}

func TestClusterClose(t *testing.T) {
	t.Parallel()
	c := StartCluster(t)

	var pids []int
	for _, a := range c.Addrs() {
		s := c.Node(a)
		s.mu.Lock()
		pids = append(pids, s.proc.cmd.Process.Pid)
		s.mu.Unlock()
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	for _, pid := range pids {
		// cmd.Wait reaped the process: it no longer exists, not even as a zombie.
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("signal 0 to redis-server pid %d after Close: got %v, want ESRCH", pid, err)
		}
	}
	for _, a := range c.Addrs() {
		if conn, err := net.Dial("tcp", a); err == nil {
			conn.Close()
			t.Errorf("dial %s after Close: connected, want an error", a)
		}
	}
	if _, err := os.Stat(c.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temp dir after Close: Stat error = %v, want ErrNotExist", err)
	}
	if got := c.Masters(); got != nil {
		t.Errorf("Masters() after Close = %v, want nil", got)
	}
}

func TestStartClusterBadConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []ClusterConfig{{Masters: 2}, {Masters: -1}, {Replicas: -1}} {
		msg := fatalMessage(t, func(tb testing.TB) { StartCluster(tb, cfg) })
		if !strings.Contains(msg, "want Masters >= 3") {
			t.Errorf("StartCluster(%+v) failed with %q, want a message containing %q", cfg, msg, "want Masters >= 3")
		}
	}
}

func TestStartClusterNotInstalled(t *testing.T) {
	needRedis(t)
	server, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server: %v", err)
	}
	onlyServer := t.TempDir()
	if err := os.Symlink(server, onlyServer+"/redis-server"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{t.TempDir(), "redis-server not found in PATH; this test needs a real Redis: run `make test`"},
		{onlyServer, "redis-cli not found in PATH: run `make test`, which installs it, or apt-get install redis-tools"},
	} {
		t.Setenv("PATH", tc.path)
		msg := fatalMessage(t, func(tb testing.TB) { StartCluster(tb) })
		if !strings.Contains(msg, tc.want) {
			t.Errorf("StartCluster with PATH=%s failed with %q, want a message containing %q", tc.path, msg, tc.want)
		}
	}
}

func TestParseClusterNodes(t *testing.T) {
	t.Parallel()
	const reply = "" +
		"07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@40004,host-a slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected\n" +
		"e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460 [93->-292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f]\n" +
		"292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@40003 master,fail - 0 1426238316232 3 connected 10923 10925-16383 [93-<-e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca]\n"
	got, err := parseClusterNodes(reply)
	if err != nil {
		t.Fatalf("parseClusterNodes: %v", err)
	}
	want := []clusterNode{
		{id: "07c37dfeb235213a872192d90877d0cd55635b91", addr: "127.0.0.1:30004", flags: []string{"slave"}, master: "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca"},
		{id: "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca", addr: "127.0.0.1:30001", flags: []string{"myself", "master"},
			slots: [][2]int{{0, 5460}}, moving: []string{"[93->-292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f]"}},
		{id: "292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f", addr: "127.0.0.1:30003", flags: []string{"master", "fail"},
			slots: [][2]int{{10923, 10923}, {10925, 16383}}, moving: []string{"[93-<-e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca]"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseClusterNodes =\n%#v\nwant\n%#v", got, want)
	}
	if o := owner(got, 5000); o == nil || o.addr != "127.0.0.1:30001" {
		t.Errorf("owner(5000) = %v, want the node at 127.0.0.1:30001", o)
	}
	if o := owner(got, 12000); o != nil {
		t.Errorf("owner(12000) = %v, want nil (its master is failed)", o)
	}

	for _, bad := range []string{"abc 127.0.0.1:1@2 master -\n", "a b master - 0 0 1 connected 5-3\n", "a b master - 0 0 1 connected 16384\n"} {
		if _, err := parseClusterNodes(bad); err == nil {
			t.Errorf("parseClusterNodes(%q): got nil error, want one", bad)
		}
	}
}

// fatalMessage runs f with a TB whose Fatalf ends f's goroutine, and returns
// the message, without failing t.
func fatalMessage(t *testing.T, f func(tb testing.TB)) string {
	t.Helper()
	msg, _ := endMessage(t, f)
	return msg
}

// endMessage runs f with a fatalTB and returns the message with which it
// ended the test, and whether it skipped it.
func endMessage(t *testing.T, f func(tb testing.TB)) (string, bool) {
	t.Helper()
	tb := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(tb)
		t.Error("f returned without calling Fatalf or Skipf, want it to end the test")
	}()
	<-done
	return tb.msg, tb.skipped
}

// roleOf returns the node's role from ROLE and, for a replica, its master's
// address.
func roleOf(t *testing.T, s *Server) (role, master string) {
	t.Helper()
	got, err := s.Do("ROLE")
	r, ok := got.([]any)
	if err != nil || !ok || len(r) == 0 {
		t.Fatalf("ROLE on %s = %#v, %v; want an array", s.Addr(), got, err)
	}
	role = fmt.Sprint(r[0])
	if role == "slave" && len(r) >= 3 {
		master = net.JoinHostPort(fmt.Sprint(r[1]), fmt.Sprint(r[2]))
	}
	return role, master
}

// slotsOwner returns the address of slot's master according to CLUSTER
// SLOTS on s, or "".
func slotsOwner(t *testing.T, s *Server, slot int) string {
	t.Helper()
	got, err := s.Do("CLUSTER", "SLOTS")
	ranges, ok := got.([]any)
	if err != nil || !ok {
		t.Fatalf("CLUSTER SLOTS on %s = %#v, %v; want an array", s.Addr(), got, err)
	}
	for _, r := range ranges {
		e, _ := r.([]any)
		if len(e) < 3 {
			t.Fatalf("CLUSTER SLOTS on %s: entry %#v, want [start end [ip port id] ...]", s.Addr(), r)
		}
		lo, _ := e[0].(int64)
		hi, _ := e[1].(int64)
		m, _ := e[2].([]any)
		if int64(slot) >= lo && int64(slot) <= hi && len(m) >= 2 {
			return net.JoinHostPort(fmt.Sprint(m[0]), fmt.Sprint(m[1]))
		}
	}
	return ""
}
