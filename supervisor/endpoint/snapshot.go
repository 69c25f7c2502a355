// Package endpoint is the supervisor's HTTP endpoint for load balancers
// and monitoring: a clustercheck-compatible answer at /, Patroni-style role
// paths (/synced, /donor-ok, /primary-component), the node's state as JSON
// at /health, and Prometheus metrics at /metrics.
//
// Every answer is read from a Snapshot that the supervisor's health loop
// publishes: a request costs no SQL and no wait on the node.
package endpoint

import (
	"time"

	"github.com/galera-supervisor/galera-supervisor/supervisor/maintenance"
	"github.com/galera-supervisor/galera-supervisor/supervisor/quorum"
)

// wsrep_local_state values (Galera's gcs state, as clustercheck reads them).
const (
	StateJoining = 1
	StateDonor   = 2 // Donor/Desynced
	StateJoined  = 3
	StateSynced  = 4
)

// Snapshot is the node as the supervisor last saw it.
type Snapshot struct {
	// Phase is the supervisor's phase (synced, SST, donor, stopping...) and
	// Status the STATUS= line systemd shows.
	Phase  string `json:"phase"`
	Status string `json:"status"`
	// Ready: READY=1 went to systemd (the node was Synced once).
	Ready    bool `json:"ready"`
	Stopping bool `json:"stopping,omitempty"`
	// Wsrep: wsrep_on in the option files.
	Wsrep bool `json:"wsrep"`
	// Answering: mariadbd answered the last health check, at CheckedAt.
	Answering bool      `json:"answering"`
	CheckedAt time.Time `json:"checked_at,omitzero"`
	Node      Node      `json:"node"`
	// SST is the SST under way or the last one, from its progress events.
	SST *SST `json:"sst,omitempty"`
	// Decision is how the supervisor last decided, with its peers, to
	// start the node.
	Decision *quorum.Record `json:"last_decision,omitempty"`
	// Maintenance is set while the node is in maintenance.
	Maintenance *maintenance.State `json:"maintenance,omitempty"`
}

// Node is what the health check read from the server.
type Node struct {
	LocalState        int    `json:"wsrep_local_state"`
	LocalStateComment string `json:"wsrep_local_state_comment"`
	ClusterStatus     string `json:"wsrep_cluster_status"`
	ClusterSize       int    `json:"wsrep_cluster_size"`
	Ready             bool   `json:"wsrep_ready"`
	ReadOnly          bool   `json:"read_only"`
	ClusterUUID       string `json:"wsrep_cluster_state_uuid,omitempty"`
	LastCommitted     int64  `json:"wsrep_last_committed"`
}

// SST is an SST's progress as its events told it.
type SST struct {
	Role   string    `json:"role"`
	Method string    `json:"method,omitempty"`
	Phase  string    `json:"phase"`
	Peer   string    `json:"peer,omitempty"`
	Done   int64     `json:"bytes_done"`
	Total  int64     `json:"bytes_total,omitempty"`
	Rate   float64   `json:"bytes_per_second,omitempty"`
	ETA    float64   `json:"eta_seconds,omitempty"`
	Start  time.Time `json:"start"`
	Last   time.Time `json:"last_event"`
	Error  string    `json:"error,omitempty"`
}

// fresh reports whether the health check answered within d of now.
func (s *Snapshot) fresh(now time.Time, d time.Duration) bool {
	return s.Answering && !s.CheckedAt.IsZero() && now.Sub(s.CheckedAt) <= d
}
