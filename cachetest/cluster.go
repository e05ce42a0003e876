package cachetest

// A private Redis Cluster for tests: redis-server processes started like
// StartRedis's, joined by redis-cli, driven with the package's RESP client.

import (
	"context"
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

const (
	clusterSlots   = 16384
	clusterTimeout = 20 * time.Second // start-up, failover, slot move
	busOffset      = 10000            // a node's cluster bus listens on port+busOffset
	maxNodePort    = 55535            // exclusive: the bus port must stay below 65536
	migrateBatch   = "100"            // keys per GETKEYSINSLOT and MIGRATE
	migrateTimeout = 5 * time.Second
)

var errCLINotInstalled = fmt.Errorf("%w: redis-cli not found in PATH: run `make test`, which installs it, or apt-get install redis-tools", ErrNotInstalled)

// ClusterConfig adjusts StartCluster; the zero value is 3 masters, no replicas.
type ClusterConfig struct {
	// Masters is the number of masters, default 3. redis-cli creates no
	// cluster of fewer than 3.
	Masters int
	// Replicas is the number of replicas of each master, default 0.
	Replicas int
	// Args are extra redis-server arguments for every node, appended after
	// the defaults (so --cluster-node-timeout, 1000 by default, can be
	// overridden).
	Args []string
}

// Cluster is a private Redis Cluster of redis-server processes on loopback
// ports, started by StartCluster. Its methods are safe for concurrent use;
// Failover and MoveSlot run one at a time.
//
// Queries of the cluster's state (Masters, MasterOf) use the view of the
// first node of Addrs that is running and answers.
type Cluster struct {
	dir   string             // temp dir holding one dir per node
	addrs []string           // every node, masters first; fixed at start
	nodes map[string]*Server // by address; read-only once started

	opMu     sync.Mutex           // serializes Failover and MoveSlot
	promoted map[string]time.Time // guarded by opMu: when Failover promoted each node

	mu     sync.Mutex
	all    []*Server // every node started, for Close
	closed bool
}

// StartCluster starts a private Redis Cluster and stops it (SIGKILL every
// node, remove the temp dirs) in tb.Cleanup. At most one ClusterConfig may
// be given. Each node runs
//
//	redis-server --port P --bind 127.0.0.1 --save "" --appendonly no \
//	  --protected-mode no --cluster-enabled yes \
//	  --cluster-config-file <node dir>/nodes-P.conf --cluster-node-timeout 1000 \
//	  --repl-diskless-sync-delay 0 [ClusterConfig.Args]
//
// on a free port P below 55535 whose bus port P+10000 is free too; then
//
//	redis-cli --cluster create 127.0.0.1:P1 ... --cluster-replicas R --cluster-yes
//
// joins them. StartCluster returns once every node reports cluster_state:ok
// and all 16384 slots ok, every node has the same view of the cluster (its
// CLUSTER NODES: nodes, roles, slots), and every replica's link to its
// master is up. If the test has failed, the cleanup logs the tail of every
// node's log first.
//
// StartCluster fails the test, never skips it, when redis-server or
// redis-cli is missing.
func StartCluster(tb testing.TB, cfg ...ClusterConfig) *Cluster {
	tb.Helper()
	cc := oneConfig(tb, "StartCluster", "ClusterConfig", cfg)
	if cc.Masters == 0 {
		cc.Masters = 3
	}
	if cc.Masters < 3 || cc.Replicas < 0 {
		tb.Fatalf("cachetest.StartCluster: got Masters %d, Replicas %d; want Masters >= 3 (0 means 3: redis-cli creates no smaller cluster) and Replicas >= 0", cc.Masters, cc.Replicas)
	}
	c, err := runCluster(cc)
	if err != nil {
		failOrSkip(tb, err)
	}
	nodes := make([]*Server, len(c.addrs))
	for i, a := range c.addrs {
		nodes[i] = c.nodes[a]
	}
	closeWithLogs(tb, c, nodes...)
	return c
}

// runCluster starts and joins the nodes. On error it leaves nothing behind.
func runCluster(cfg ClusterConfig) (_ *Cluster, err error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errServerNotInstalled
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, errCLINotInstalled
	}
	dir, err := os.MkdirTemp("", "cachetest-cluster-")
	if err != nil {
		return nil, fmt.Errorf("cachetest: %w", err)
	}
	c := &Cluster{dir: dir, nodes: make(map[string]*Server), promoted: make(map[string]time.Time)}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Close())
		}
	}()

	n := cfg.Masters * (1 + cfg.Replicas)
	started := make([]string, 0, n)
	for range n {
		s, err := c.startNode(bin, cfg.Args)
		if err != nil {
			return nil, err
		}
		started = append(started, s.Addr())
	}

	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	args := append([]string{"--cluster", "create"}, started...)
	args = append(args, "--cluster-replicas", strconv.Itoa(cfg.Replicas), "--cluster-yes")
	cmd := exec.CommandContext(ctx, cli, args...)
	cmd.SysProcAttr = sysProcAttr()
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("cachetest: redis-cli --cluster create: %v; its output:\n%s", err, tail(string(out), 20))
	}

	var view []clusterNode
	err = c.await("cluster start-up", func(states []nodeState) error {
		if err := all(states, converged, healthy, synced); err != nil {
			return err
		}
		view = states[0].nodes
		if len(view) != n {
			return fmt.Errorf("%d nodes known, want %d", len(view), n)
		}
		var masters, replicas int
		for _, nd := range view {
			switch {
			case nd.isMaster() && len(nd.slots) > 0:
				masters++
			case !nd.isMaster():
				replicas++
			}
		}
		if masters != cfg.Masters || replicas != n-cfg.Masters {
			return fmt.Errorf("%d masters serving slots and %d replicas, want %d and %d", masters, replicas, cfg.Masters, n-cfg.Masters)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.addrs = orderNodes(view)
	return c, nil
}

// startNode starts one cluster node on a free port pair, retrying on fresh
// ports when one is taken before redis-server binds it, as RunRedis does.
func (c *Cluster) startNode(bin string, extra []string) (*Server, error) {
	dir, err := os.MkdirTemp(c.dir, "node-")
	if err != nil {
		return nil, fmt.Errorf("cachetest: %w", err)
	}
	s := &Server{bin: bin, dir: dir}
	c.mu.Lock()
	c.all = append(c.all, s) // Close removes dir even if no start succeeds
	c.mu.Unlock()
	for range startAttempts {
		if s.port, err = freeNodePort(); err != nil {
			return nil, err
		}
		conf := filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", s.port))
		s.args = append([]string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", conf,
			"--cluster-node-timeout", "1000",
			// Replicas sync at once, not after the default 5 s wait for
			// more replicas to share a diskless transfer.
			"--repl-diskless-sync-delay", "0",
		}, extra...)
		var p *process
		if p, err = s.start(); err == nil {
			c.mu.Lock()
			s.proc = p
			c.nodes[s.Addr()] = s
			c.mu.Unlock()
			return s, nil
		}
		_ = os.Remove(conf) // written before the bus port failed to bind
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	return nil, err
}

// freeNodePort returns a port below 55535 that, with its bus port
// (port+10000), was free on 127.0.0.1 a moment ago.
func freeNodePort() (int, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("cachetest: find a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		ok := port < maxNodePort
		if ok {
			bus, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+busOffset)))
			if ok = err == nil; ok {
				bus.Close()
			}
		}
		l.Close()
		if ok {
			return port, nil
		}
	}
	return 0, errors.New("cachetest: find a free port: no port P < 55535 with P+10000 free in 100 tries")
}

// orderNodes returns the addresses of view's nodes: masters by first slot,
// then replicas in the order of their masters.
func orderNodes(view []clusterNode) []string {
	nodes := slices.Clone(view)
	rank := func(n clusterNode) int { // a master's first slot
		if len(n.slots) == 0 {
			return clusterSlots
		}
		return n.slots[0][0]
	}
	byID := make(map[string]clusterNode)
	for _, n := range nodes {
		byID[n.id] = n
	}
	slices.SortFunc(nodes, func(a, b clusterNode) int {
		ka, kb := [3]int{0, rank(a), 0}, [3]int{0, rank(b), 0}
		if !a.isMaster() {
			ka = [3]int{1, rank(byID[a.master]), portOf(a.addr)}
		}
		if !b.isMaster() {
			kb = [3]int{1, rank(byID[b.master]), portOf(b.addr)}
		}
		return slices.Compare(ka[:], kb[:])
	})
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.addr
	}
	return addrs
}

func portOf(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// Addrs returns the address, "127.0.0.1:PORT", of every node: the masters
// first, ordered by their first slot, then the replicas, in the order of
// their masters. The order is that of start-up: it does not change after a
// failover.
func (c *Cluster) Addrs() []string { return slices.Clone(c.addrs) }

// Masters returns the addresses of the current masters, from CLUSTER NODES:
// the masters that serve slots (those CLUSTER INFO counts in cluster_size)
// and are not flagged as failed, ordered by their first slot. A master whose
// slots were all taken over or moved away is left out. Masters returns nil
// if no node answers.
func (c *Cluster) Masters() []string {
	view, err := c.view()
	if err != nil {
		return nil
	}
	var masters []clusterNode
	for _, n := range view {
		if n.isMaster() && !n.has("fail") && len(n.slots) > 0 {
			masters = append(masters, n)
		}
	}
	slices.SortFunc(masters, func(a, b clusterNode) int { return a.slots[0][0] - b.slots[0][0] })
	addrs := make([]string, len(masters))
	for i, n := range masters {
		addrs[i] = n.addr
	}
	return addrs
}

// Node returns the node at addr, or nil if addr is not one of Addrs. Its
// Kill, Pause, Resume, Restart and Do work as on a server of StartRedis. Do
// follows no MOVED or ASK redirection. A restarted node keeps its cluster
// identity (its nodes.conf survives Kill) but not its data: it rejoins the
// cluster, as a master of its slots, empty, unless a replica took them over
// while it was down.
func (c *Cluster) Node(addr string) *Server { return c.nodes[addr] }

// SlotOf returns the hash slot of key, as Redis Cluster computes it: the
// CRC16 (XMODEM) of the key's hash tag, or of the whole key if it has none,
// modulo 16384. The hash tag is what lies between the first "{" and the
// first "}" after it, if that is not empty. SlotOf does not depend on the
// cluster's state.
func (c *Cluster) SlotOf(key string) int { return keySlot(key) }

func keySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key) % clusterSlots)
}

// crc16 is CRC-16/XMODEM: polynomial 0x1021, initial value 0, no
// reflection. Bitwise: tests hash few keys.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// MasterOf returns the address of the master currently serving key's slot,
// or "" if no node answers or the slot is not served.
func (c *Cluster) MasterOf(key string) string {
	view, err := c.view()
	if err != nil {
		return ""
	}
	if n := owner(view, keySlot(key)); n != nil {
		return n.addr
	}
	return ""
}

// Failover promotes a replica of the master at replicaOf with CLUSTER
// FAILOVER, sent to the replica, and waits until every running node sees
// the replica as the master of the former master's slots, the cluster is
// ok, and every running replica (the former master among them) has its
// link to its master up. The replica is the first of Addrs that replicates
// replicaOf and runs. If replicaOf is killed or paused, Failover sends
// CLUSTER FAILOVER FORCE, since a plain manual failover needs the master's
// cooperation; call it right after Kill or Pause, before the cluster's own
// failover (after about 2 × cluster-node-timeout) promotes the replica. The
// cluster needs Replicas >= 1.
//
// If Failover promoted the same replica less than 4 × cluster-node-timeout
// (4 s) ago, it first waits for the rest of that time: Redis 7.0 would
// otherwise reuse the replica's old election and leave the cluster split.
func (c *Cluster) Failover(replicaOf string) error {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	view, err := c.view()
	if err != nil {
		return err
	}
	m := byAddr(view, replicaOf)
	if m == nil || !m.isMaster() || len(m.slots) == 0 {
		return fmt.Errorf("cachetest: Failover: %s is not a master serving slots", replicaOf)
	}
	var replica string
	for _, a := range c.addrs {
		if n := byAddr(view, a); n != nil && n.master == m.id && !n.has("fail") && c.nodes[a].running() {
			replica = a
			break
		}
	}
	if replica == "" {
		return fmt.Errorf("cachetest: Failover: master %s has no running replica; start the cluster with ClusterConfig{Replicas: 1} or more", replicaOf)
	}
	if err := c.waitElectionReset(replica); err != nil {
		return err
	}
	cmd := []string{"CLUSTER", "FAILOVER"}
	if !c.nodes[replicaOf].running() {
		cmd = append(cmd, "FORCE")
	}
	if _, err := call(replica, doTimeout, cmd...); err != nil {
		return err
	}
	defer func() { c.promoted[replica] = time.Now() }()
	return c.await(fmt.Sprintf("failover of %s to %s", replicaOf, replica), func(states []nodeState) error {
		if err := all(states, converged, healthy, synced); err != nil {
			return err
		}
		n := byAddr(states[0].nodes, replica)
		if n == nil || !n.isMaster() || !slices.Equal(n.slots, m.slots) {
			return fmt.Errorf("%s is not yet the master of slots %v", replica, m.slots)
		}
		return nil
	})
}

// waitElectionReset waits, if Failover promoted replica recently, until
// redis-server would run a fresh election on it. Redis 7.0 does not reset a
// node's election state when it wins: asked to fail over again within
// 4 × cluster-node-timeout (its retry time), it counts the old votes, "wins"
// with the old config epoch, which the other nodes reject, and the cluster
// stays split (valkey fixed this in valkey-io/valkey#782 and #1711).
func (c *Cluster) waitElectionReset(replica string) error {
	last, ok := c.promoted[replica]
	if !ok {
		return nil
	}
	r, err := call(replica, doTimeout, "CONFIG", "GET", "cluster-node-timeout")
	if err != nil {
		return err
	}
	kv, _ := r.([]any)
	var ms int
	if len(kv) == 2 {
		ms, _ = strconv.Atoi(fmt.Sprint(kv[1]))
	}
	retry := max(4*time.Duration(ms)*time.Millisecond, 4*time.Second) // auth_retry_time
	time.Sleep(time.Until(last.Add(retry + 100*time.Millisecond)))
	return nil
}

// MoveSlot migrates slot, and its keys, to the master at to: CLUSTER SETSLOT
// slot IMPORTING on to, MIGRATING on the current owner, GETKEYSINSLOT and
// MIGRATE ... KEYS until the slot is empty there, then SETSLOT slot NODE on
// to, on the former owner and on every other running master. It waits until
// every running node sees to as the slot's owner and no node shows it
// migrating or importing. Moving a slot to its owner does nothing. If a
// step fails, the slot is left as it is, possibly half migrated.
func (c *Cluster) MoveSlot(slot int, to string) error {
	if slot < 0 || slot >= clusterSlots {
		return fmt.Errorf("cachetest: MoveSlot: slot %d out of range [0, %d)", slot, clusterSlots)
	}
	c.opMu.Lock()
	defer c.opMu.Unlock()
	view, err := c.view()
	if err != nil {
		return err
	}
	src := owner(view, slot)
	if src == nil {
		return fmt.Errorf("cachetest: MoveSlot: slot %d is not served", slot)
	}
	if src.addr == to {
		return nil
	}
	if n := byAddr(view, to); n == nil || !n.isMaster() || n.has("fail") {
		return fmt.Errorf("cachetest: MoveSlot: %s is not a master of the cluster", to)
	}
	srcID, err := myID(src.addr)
	if err != nil {
		return err
	}
	dstID, err := myID(to)
	if err != nil {
		return err
	}
	s := strconv.Itoa(slot)
	if _, err := call(to, doTimeout, "CLUSTER", "SETSLOT", s, "IMPORTING", srcID); err != nil {
		return err
	}
	if _, err := call(src.addr, doTimeout, "CLUSTER", "SETSLOT", s, "MIGRATING", dstID); err != nil {
		return err
	}
	host, port, _ := net.SplitHostPort(to)
	for {
		r, err := call(src.addr, doTimeout, "CLUSTER", "GETKEYSINSLOT", s, migrateBatch)
		if err != nil {
			return err
		}
		keys, _ := r.([]any)
		if len(keys) == 0 {
			break
		}
		cmd := []string{"MIGRATE", host, port, "", "0", strconv.Itoa(int(migrateTimeout.Milliseconds())), "KEYS"}
		for _, k := range keys {
			cmd = append(cmd, fmt.Sprint(k))
		}
		if _, err := call(src.addr, 2*migrateTimeout, cmd...); err != nil {
			return err
		}
	}
	// The destination first: once the source stops answering ASK, the
	// destination must already own the slot.
	owners := []string{to, src.addr}
	for _, n := range view {
		if n.isMaster() && !n.has("fail") && n.addr != to && n.addr != src.addr && c.nodes[n.addr].running() {
			owners = append(owners, n.addr)
		}
	}
	for _, a := range owners {
		if _, err := call(a, doTimeout, "CLUSTER", "SETSLOT", s, "NODE", dstID); err != nil {
			return err
		}
	}
	return c.await(fmt.Sprintf("move of slot %d from %s to %s", slot, src.addr, to), func(states []nodeState) error {
		if err := converged(states); err != nil {
			return err
		}
		for _, st := range states {
			if n := owner(st.nodes, slot); n == nil || n.id != dstID {
				return nodeError{st.addr, fmt.Errorf("slot %d is not yet served by %s", slot, to)}
			}
			for _, n := range st.nodes {
				for _, m := range n.moving {
					if strings.HasPrefix(m, "["+s+"-") {
						return nodeError{st.addr, fmt.Errorf("slot %d still shows %s", slot, m)}
					}
				}
			}
		}
		return nil
	})
}

// Close kills every node, waits for them to exit and removes the temp dirs.
// Closing a closed Cluster does nothing.
func (c *Cluster) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	var errs []error
	for _, s := range c.all {
		errs = append(errs, s.Close())
	}
	return errors.Join(append(errs, os.RemoveAll(c.dir))...)
}

// running reports whether the server's process is up and not paused, so
// that it can answer.
func (s *Server) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || s.paused {
		return false
	}
	select {
	case <-s.proc.done:
		return false
	default:
		return true
	}
}

// call sends one command to addr and returns its reply.
func call(addr string, timeout time.Duration, args ...string) (any, error) {
	r, err := exchange(addr, timeout, args)
	if err != nil {
		return nil, fmt.Errorf("cachetest: %s on %s: %w", strings.Join(args[:min(len(args), 3)], " "), addr, err)
	}
	return r[0], nil
}

func myID(addr string) (string, error) {
	r, err := call(addr, doTimeout, "CLUSTER", "MYID")
	if err != nil {
		return "", err
	}
	id, _ := r.(string)
	return id, nil
}

// view returns CLUSTER NODES as seen by the first running node of Addrs
// that answers.
func (c *Cluster) view() ([]clusterNode, error) {
	var errs []error
	for _, a := range c.addrs {
		if !c.nodes[a].running() {
			continue
		}
		r, err := call(a, doTimeout, "CLUSTER", "NODES")
		if err == nil {
			var nodes []clusterNode
			if nodes, err = parseClusterNodes(fmt.Sprint(r)); err == nil {
				return nodes, nil
			}
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("cachetest: no cluster node answered CLUSTER NODES: %w", errors.Join(errs...))
}
