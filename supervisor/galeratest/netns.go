package galeratest

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// IP is iproute2's ip, which creates and removes the network namespaces.
const IP = "/usr/sbin/ip"

// Network puts each node of a cluster in a network namespace of its own,
// linked to a bridge in one more namespace by a veth pair, so that a test
// can cut a node off (Cut) and heal it (Heal): a real partition, in which
// Galera, IST, SST and the supervisors' peer channel all lose each other.
// Nothing is added to the machine's own network namespace: the nodes
// reach each other at 10.77.0.N, an address that exists only inside the
// test's namespaces. The harness still talks to every node over its unix
// socket.
type Network struct {
	c       *Cluster
	id      string
	switch_ string // the namespace holding the bridge
}

// Partitionable moves every node into its own network namespace, before
// any node starts (and before Supervise, which reads the addresses). The
// namespaces are removed by the cluster's Close.
func (c *Cluster) Partitionable(ctx context.Context) (*Network, error) {
	for _, n := range c.nodes {
		if n.PID() != 0 {
			return nil, fmt.Errorf("partitionable: node%d already runs", n.N)
		}
	}
	w := &Network{c: c, id: netnsID(c.dir)}
	w.switch_ = "gs-" + w.id + "-sw"
	c.onClose = append(c.onClose, w.remove)
	cmds := [][]string{
		{"netns", "add", w.switch_},
		{"-n", w.switch_, "link", "add", "br0", "type", "bridge"},
		{"-n", w.switch_, "link", "set", "br0", "up"},
	}
	for _, n := range c.nodes {
		ns := w.netns(n)
		cmds = append(cmds,
			[]string{"netns", "add", ns},
			[]string{"-n", ns, "link", "set", "lo", "up"},
			[]string{"-n", w.switch_, "link", "add", w.port(n), "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"-n", w.switch_, "link", "set", w.port(n), "master", "br0", "up"},
			[]string{"-n", ns, "addr", "add", fmt.Sprintf("10.77.0.%d/24", n.N), "dev", "eth0"},
			[]string{"-n", ns, "link", "set", "eth0", "up"},
		)
	}
	for _, args := range cmds {
		if err := ip(ctx, args...); err != nil {
			return nil, err
		}
	}
	for _, n := range c.nodes {
		n.addr = fmt.Sprintf("10.77.0.%d", n.N)
		n.netns = w.netns(n)
	}
	for _, n := range c.nodes {
		if err := n.writeConfig(); err != nil {
			return nil, err
		}
	}
	c.logf("galeratest: nodes in network namespaces %s-n1.. on bridge %s:br0", "gs-"+w.id, w.switch_)
	return w, nil
}

// netnsID names a cluster's namespaces after its dir, so that sweepStale
// finds those of a test process that died.
func netnsID(dir string) string {
	h := fnv.New32a()
	h.Write([]byte(dir))
	return fmt.Sprintf("%08x", h.Sum32())
}

// removeStaleNetns deletes the namespaces of the cluster in dir, if any.
func removeStaleNetns(dir string) {
	names, _ := filepath.Glob("/run/netns/gs-" + netnsID(dir) + "-*")
	for _, p := range names {
		exec.Command(IP, "netns", "delete", filepath.Base(p)).Run()
	}
}

func (w *Network) netns(n *Node) string { return fmt.Sprintf("gs-%s-n%d", w.id, n.N) }

// port is n's end of its veth pair on the bridge.
func (w *Network) port(n *Node) string { return fmt.Sprintf("n%d", n.N) }

// Cut takes n's link to the bridge down: n and the others no longer reach
// each other, in either direction.
func (w *Network) Cut(ctx context.Context, n *Node) error {
	if err := ip(ctx, "-n", w.switch_, "link", "set", w.port(n), "down"); err != nil {
		return err
	}
	w.c.logf("galeratest: node%d cut off", n.N)
	return nil
}

// Heal brings n's link back up.
func (w *Network) Heal(ctx context.Context, n *Node) error {
	if err := ip(ctx, "-n", w.switch_, "link", "set", w.port(n), "up"); err != nil {
		return err
	}
	w.c.logf("galeratest: node%d reconnected", n.N)
	return nil
}

// TC is iproute2's tc, which shapes the links.
const TC = "/usr/sbin/tc"

// Shape gives every node's end of the link the root qdisc qdisc (e.g.
// "netem rate 100mbit delay 20ms", "tbf rate 100mbit burst 256kb limit
// 1mb"): each direction of each node's traffic goes through one, so both
// directions are shaped alike. The qdiscs go with the namespaces.
func (w *Network) Shape(ctx context.Context, qdisc string) error {
	for _, n := range w.c.nodes {
		args := append([]string{"netns", "exec", w.netns(n), TC, "qdisc", "replace", "dev", "eth0", "root"}, strings.Fields(qdisc)...)
		if err := ip(ctx, args...); err != nil {
			return err
		}
	}
	w.c.logf("galeratest: every node's link shaped by %s", qdisc)
	return nil
}

// ChokePort starves what n sends from its TCP port (an htb class of
// 8 bit/s on its link): the connections on that port stall as over a cut
// link, in both directions (the peer gets no acknowledgement), while the
// rest of n's traffic, Galera's, flows. Unchoke ends it.
func (w *Network) ChokePort(ctx context.Context, n *Node, port int) error {
	ns := w.netns(n)
	for _, args := range [][]string{
		{"-n", ns, "qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb", "default", "10"},
		{"-n", ns, "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:10", "htb", "rate", "10gbit"},
		{"-n", ns, "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:20", "htb", "rate", "8bit", "ceil", "8bit"},
		{"-n", ns, "filter", "add", "dev", "eth0", "parent", "1:", "protocol", "ip", "prio", "1", "u32", "match", "ip", "sport", fmt.Sprint(port), "0xffff", "flowid", "1:20"},
	} {
		if out, err := exec.CommandContext(ctx, TC, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("tc %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	w.c.logf("galeratest: node%d's port %d choked", n.N, port)
	return nil
}

// Unchoke removes ChokePort's shaping.
func (w *Network) Unchoke(ctx context.Context, n *Node) error {
	args := []string{"-n", w.netns(n), "qdisc", "del", "dev", "eth0", "root"}
	if out, err := exec.CommandContext(ctx, TC, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("tc %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	w.c.logf("galeratest: node%d unchoked", n.N)
	return nil
}

// remove deletes the namespaces, which deletes their links; the nodes are
// stopped by then.
func (w *Network) remove() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var errs []error
	for _, ns := range append([]string{w.switch_}, w.names()...) {
		if err := ip(ctx, "netns", "delete", ns); err != nil && !strings.Contains(err.Error(), "No such file") {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (w *Network) names() []string {
	var out []string
	for _, n := range w.c.nodes {
		out = append(out, w.netns(n))
	}
	return out
}

func ip(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, IP, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// inNetns wraps argv to run in n's network namespace, as root (entering
// a namespace needs it); asRoot false drops to the mysql user by setpriv,
// which exec()s, so the PID stays the program's.
func (n *Node) inNetns(argv []string, asRoot bool) []string {
	w := []string{IP, "netns", "exec", n.netns}
	if !asRoot {
		w = append(w, "/usr/bin/setpriv", "--reuid="+RunUser, "--regid="+RunUser, "--init-groups", "--")
	}
	return append(w, argv...)
}
