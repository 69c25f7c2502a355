package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/galera-supervisor/galera-supervisor/supervisor"
	"github.com/galera-supervisor/galera-supervisor/supervisor/quorum"
)

// ClusterStatus is what "galera-supervisor status --cluster --json" prints.
type ClusterStatus struct {
	Nodes []PeerStatus `json:"nodes"`
}

// PeerStatus is one supervisor as it answered over the peer channel.
type PeerStatus struct {
	Address string        `json:"address"`
	State   *quorum.State `json:"state,omitempty"`
	Error   string        `json:"error,omitempty"`
}

// runStatusCluster asks this node's supervisor and every peer for its
// state over the peer channel.
func runStatusCluster(ctx context.Context, c *cli, o *statusOptions) error {
	opts, err := supervisor.LoadOptionFiles(o.defaults, nil)(ctx)
	if err != nil {
		return &statusError{1, "status --cluster: read the option files: " + err.Error()}
	}
	look := func(m map[string]string) quorum.Lookup {
		return func(name string) (string, bool) { v, ok := m[supervisor.Key(name)]; return v, ok }
	}
	cfg, err := quorum.ConfigFrom(look(opts.Supervisor), look(opts.Server), look(opts.SST))
	if err != nil {
		return &statusError{1, "status --cluster: " + err.Error()}
	}
	if !cfg.Enabled() {
		return &statusError{1, "status --cluster: the supervisors have no peer channel: " + cfg.Why}
	}
	self := cfg.Listen
	if host, port, err := net.SplitHostPort(self); err == nil && net.ParseIP(host).IsUnspecified() {
		self = net.JoinHostPort("127.0.0.1", port)
	}
	addrs := append([]string{self}, cfg.Peers...)
	cs := ClusterStatus{Nodes: make([]PeerStatus, len(addrs))}
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			qctx, cancel := context.WithTimeout(ctx, o.timeout)
			defer cancel()
			st, err := quorum.Query(qctx, a, cfg.Auth)
			cs.Nodes[i] = PeerStatus{Address: a, State: st}
			if err != nil {
				cs.Nodes[i].Error = err.Error()
			}
		}()
	}
	wg.Wait()
	// A peers list naming every node names this one twice.
	var nodes []PeerStatus
	seen := map[string]bool{}
	for _, n := range cs.Nodes {
		if n.State != nil && n.State.Instance != "" {
			if seen[n.State.Instance] {
				continue
			}
			seen[n.State.Instance] = true
		}
		nodes = append(nodes, n)
	}
	cs.Nodes = nodes
	if o.json {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(cs); err != nil {
			return fmt.Errorf("status: write JSON: %w", err)
		}
	} else {
		printCluster(c.stdout, cs, time.Now())
	}
	for _, n := range cs.Nodes {
		if n.Error != "" {
			return &statusError{4, "status --cluster: " + n.Address + " does not answer: " + n.Error}
		}
	}
	return nil
}

func printCluster(w io.Writer, cs ClusterStatus, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tPHASE\tPRIMARY\tPOSITION\tMAINTENANCE\tLAST DECISION\tSTATUS")
	for _, n := range cs.Nodes {
		s := n.State
		if s == nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\tnot answering: %s\n", n.Address, n.Error)
			continue
		}
		name := s.ID
		if name != n.Address {
			name += " (" + n.Address + ")"
		}
		pc := "no"
		if s.Primary {
			pc = "yes"
		}
		pos := orDash(s.UUID) + ":" + strconv.FormatInt(s.Seqno, 10)
		maint := "off"
		if s.Maintenance {
			maint = "on"
		}
		dec := "-"
		if d := s.Decision; d != nil {
			dec = fmt.Sprintf("%s (%s ago)", d.Action, now.Sub(d.Time).Round(time.Second))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, s.Phase, pc, pos, maint, dec, orDash(s.Status))
	}
	tw.Flush()
}
