package endpoint

import (
	"strconv"
	"time"
)

// StaleAfter is how old the last answered health check may be before every
// check answers 503: a node that stopped answering is not routed to, even
// while the check that will say so has not returned yet.
const StaleAfter = 5 * time.Second

// Verdict is one check's answer.
type Verdict struct {
	OK   bool   `json:"ok"`
	Why  string `json:"why"`
	Body string `json:"-"` // clustercheck's text
}

// clustercheck's bodies, as Percona's script words them for its product.
const (
	bodySynced      = "MariaDB Galera Cluster Node is synced.\r\n"
	bodyNotSynced   = "MariaDB Galera Cluster Node is not synced or non-PRIM.\r\n"
	bodyReadOnly    = "MariaDB Galera Cluster Node is read-only.\r\n"
	bodyMaintenance = "MariaDB Galera Cluster Node is in maintenance.\r\n"
)

// unavailable says why s cannot take clients at all, "" when it may:
// stopping, not answering, or in no Primary Component.
func unavailable(s *Snapshot, now time.Time) string {
	switch {
	case s == nil:
		return "the supervisor has not checked the node yet"
	case s.Stopping:
		return "the node is stopping"
	case !s.fresh(now, StaleAfter):
		return "the node does not answer its health check"
	case s.Node.ClusterStatus != "Primary":
		return "not in a Primary Component (wsrep_cluster_status " + orNone(s.Node.ClusterStatus) + ")"
	}
	return ""
}

// Clustercheck is Percona clustercheck's rule: 200 only when the node is a
// member of the Primary Component and Synced (wsrep_local_state 4), or
// Donor/Desynced (2) with available-when-donor; a read_only node is 503
// with available-when-readonly off; and a node in maintenance is 503.
func (c *Config) Clustercheck(s *Snapshot, now time.Time) Verdict {
	if why := unavailable(s, now); why != "" {
		return Verdict{Why: why, Body: bodyNotSynced}
	}
	if s.Maintenance != nil {
		return Verdict{Why: "in maintenance", Body: bodyMaintenance}
	}
	switch st := s.Node.LocalState; {
	case st == StateSynced:
	case st == StateDonor && c.AvailableWhenDonor:
	default:
		return Verdict{Why: "wsrep_local_state " + stateName(s.Node), Body: bodyNotSynced}
	}
	if s.Node.ReadOnly && !c.AvailableWhenReadonly {
		return Verdict{Why: "read_only is ON (available-when-readonly = off)", Body: bodyReadOnly}
	}
	return Verdict{OK: true, Why: "wsrep_local_state " + stateName(s.Node), Body: bodySynced}
}

// Synced is /synced: a Synced member of the Primary Component, not in
// maintenance.
func Synced(s *Snapshot, now time.Time) Verdict {
	return role(s, now, true, func(n Node) bool { return n.LocalState == StateSynced })
}

// DonorOK is /donor-ok: Synced, or Donor/Desynced, in the Primary
// Component and not in maintenance (clustercheck with available_when_donor).
func DonorOK(s *Snapshot, now time.Time) Verdict {
	return role(s, now, true, func(n Node) bool { return n.LocalState == StateSynced || n.LocalState == StateDonor })
}

// PrimaryComponent is /primary-component: a member of the Primary
// Component in any local state, maintenance or not.
func PrimaryComponent(s *Snapshot, now time.Time) Verdict {
	return role(s, now, false, func(Node) bool { return true })
}

func role(s *Snapshot, now time.Time, drain bool, ok func(Node) bool) Verdict {
	if why := unavailable(s, now); why != "" {
		return Verdict{Why: why}
	}
	if drain && s.Maintenance != nil {
		return Verdict{Why: "in maintenance"}
	}
	why := "wsrep_local_state " + stateName(s.Node)
	return Verdict{OK: ok(s.Node), Why: why}
}

func stateName(n Node) string {
	s := "unknown"
	if n.LocalState > 0 {
		s = strconv.Itoa(n.LocalState)
	}
	if n.LocalStateComment != "" {
		s += " (" + n.LocalStateComment + ")"
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
