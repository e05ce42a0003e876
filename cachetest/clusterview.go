package cachetest

// What the nodes of a Cluster say about it: CLUSTER NODES parsed, and the
// conditions StartCluster, Failover and MoveSlot wait for.

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	id     string
	addr   string // "127.0.0.1:PORT", without the bus port
	flags  []string
	master string   // the master's id; "" for a master
	slots  [][2]int // ranges served, first and last slot
	moving []string // "[slot->-id]" (migrating) and "[slot-<-id]" (importing)
}

func (n *clusterNode) has(flag string) bool { return slices.Contains(n.flags, flag) }
func (n *clusterNode) isMaster() bool       { return n.has("master") }

func (n *clusterNode) serves(slot int) bool {
	for _, r := range n.slots {
		if r[0] <= slot && slot <= r[1] {
			return true
		}
	}
	return false
}

// parseClusterNodes parses the reply of CLUSTER NODES, lines of
//
//	<id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent> <pong-recv> <config-epoch> <link-state> <slot> ...
func parseClusterNodes(s string) ([]clusterNode, error) {
	var nodes []clusterNode
	for line := range strings.Lines(s) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 8 {
			return nil, fmt.Errorf("cachetest: CLUSTER NODES line %q: got %d fields, want at least 8", line, len(f))
		}
		n := clusterNode{id: f[0], addr: f[1], flags: strings.Split(f[2], ","), master: f[3]}
		if i := strings.IndexAny(n.addr, "@,"); i >= 0 {
			n.addr = n.addr[:i]
		}
		if n.master == "-" {
			n.master = ""
		}
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") {
				n.moving = append(n.moving, r)
				continue
			}
			lo, hi, isRange := strings.Cut(r, "-")
			if !isRange {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 != nil || err2 != nil || a < 0 || b < a || b >= clusterSlots {
				return nil, fmt.Errorf("cachetest: CLUSTER NODES line %q: bad slot range %q", line, r)
			}
			n.slots = append(n.slots, [2]int{a, b})
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

func byAddr(nodes []clusterNode, addr string) *clusterNode {
	for i := range nodes {
		if nodes[i].addr == addr {
			return &nodes[i]
		}
	}
	return nil
}

// myself returns the line of the node that answered.
func myself(nodes []clusterNode) *clusterNode {
	for i := range nodes {
		if nodes[i].has("myself") {
			return &nodes[i]
		}
	}
	return nil
}

// owner returns the master serving slot, or nil.
func owner(nodes []clusterNode, slot int) *clusterNode {
	for i := range nodes {
		if nodes[i].isMaster() && !nodes[i].has("fail") && nodes[i].serves(slot) {
			return &nodes[i]
		}
	}
	return nil
}

// nodeState is what one node says about the cluster.
type nodeState struct {
	addr  string
	info  string            // CLUSTER INFO, raw
	field map[string]string // CLUSTER INFO, parsed
	nodes []clusterNode     // CLUSTER NODES
	link  string            // master_link_status from INFO replication; "" on a master
}

// nodeError is a condition not met, or a failure, on one node.
type nodeError struct {
	addr string
	err  error
}

func (e nodeError) Error() string { return e.addr + ": " + e.err.Error() }
func (e nodeError) Unwrap() error { return e.err }

// states asks every running node for its state.
func (c *Cluster) states() ([]nodeState, error) {
	var states []nodeState
	for _, s := range c.nodeList() {
		if !s.running() {
			continue
		}
		r, err := exchange(s.Addr(), doTimeout, []string{"CLUSTER", "INFO"}, []string{"CLUSTER", "NODES"}, []string{"INFO", "replication"})
		if err != nil {
			return states, nodeError{s.Addr(), err}
		}
		st := nodeState{addr: s.Addr(), info: fmt.Sprint(r[0]), field: infoFields(fmt.Sprint(r[0]))}
		if st.nodes, err = parseClusterNodes(fmt.Sprint(r[1])); err != nil {
			return states, nodeError{s.Addr(), err}
		}
		st.link = infoFields(fmt.Sprint(r[2]))["master_link_status"]
		states = append(states, st)
	}
	if len(states) == 0 {
		return nil, errors.New("no node is running")
	}
	return states, nil
}

// nodeList returns the nodes in Addrs order once started, start order
// before.
func (c *Cluster) nodeList() []*Server {
	if c.addrs == nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		return slices.Clone(c.all)
	}
	list := make([]*Server, len(c.addrs))
	for i, a := range c.addrs {
		list[i] = c.nodes[a]
	}
	return list
}

func infoFields(s string) map[string]string {
	m := make(map[string]string)
	for line := range strings.Lines(s) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			m[k] = v
		}
	}
	return m
}

// await polls the running nodes until cond holds for their states or
// clusterTimeout passes. The cluster changes by external events (gossip,
// elections, replication), which only polling observes.
func (c *Cluster) await(what string, cond func([]nodeState) error) error {
	deadline := time.Now().Add(clusterTimeout)
	delay := 5 * time.Millisecond
	for {
		states, err := c.states()
		if err == nil {
			if err = cond(states); err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cachetest: %s: not done within %v: %v%s", what, clusterTimeout, err, c.report(states, err))
		}
		time.Sleep(delay)
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// report returns the last CLUSTER INFO and the log tail of the node err is
// about, or of the first node.
func (c *Cluster) report(states []nodeState, err error) string {
	var ne nodeError
	addr := ""
	if errors.As(err, &ne) {
		addr = ne.addr
	} else if len(states) > 0 {
		addr = states[0].addr
	}
	s := c.nodes[addr]
	if s == nil {
		return ""
	}
	info := "(none)"
	for _, st := range states {
		if st.addr == addr {
			info = strings.TrimSpace(st.info)
		}
	}
	return fmt.Sprintf("\nlast CLUSTER INFO of %s:\n%s\nend of its %s:\n%s", addr, info, logName, s.logTail(0))
}

// all returns the first error of the checks.
func all(states []nodeState, checks ...func([]nodeState) error) error {
	for _, check := range checks {
		if err := check(states); err != nil {
			return err
		}
	}
	return nil
}

// converged checks that every node has the same view of the cluster: the
// same nodes at the same addresses, with the same roles, masters, failed
// flags and slots, and no handshake in progress.
func converged(states []nodeState) error {
	var want string
	for i, st := range states {
		var b strings.Builder
		lines := slices.Clone(st.nodes)
		slices.SortFunc(lines, func(a, b clusterNode) int { return strings.Compare(a.id, b.id) })
		for _, n := range lines {
			if n.has("handshake") {
				return nodeError{st.addr, fmt.Errorf("handshake with %s in progress", n.addr)}
			}
			fmt.Fprintf(&b, "%s %s master=%v fail=%v of=%s %v\n", n.id, n.addr, n.isMaster(), n.has("fail"), n.master, n.slots)
		}
		if i == 0 {
			want = b.String()
		} else if got := b.String(); got != want {
			return nodeError{st.addr, fmt.Errorf("its view of the cluster differs from %s's:\n%s\nversus\n%s", states[0].addr, got, want)}
		}
	}
	return nil
}

// healthy checks that every node reports cluster_state:ok and all slots ok.
func healthy(states []nodeState) error {
	for _, st := range states {
		if st.field["cluster_state"] != "ok" || st.field["cluster_slots_ok"] != strconv.Itoa(clusterSlots) {
			return nodeError{st.addr, fmt.Errorf("cluster_state:%s cluster_slots_ok:%s, want ok and %d", st.field["cluster_state"], st.field["cluster_slots_ok"], clusterSlots)}
		}
	}
	return nil
}

// synced checks that every replica's link to its master is up.
func synced(states []nodeState) error {
	for _, st := range states {
		if n := myself(st.nodes); n != nil && !n.isMaster() && st.link != "up" {
			return nodeError{st.addr, fmt.Errorf("replica's master_link_status:%s, want up", st.link)}
		}
	}
	return nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}
