// Package quorum lets the supervisors of a Galera cluster agree, without a
// person, on how their nodes start after an outage: which node bootstraps a
// new Primary Component, which join one, when Galera's own pc.recovery
// applies, and when to wait. Each supervisor serves its node's recovered
// position to its peers over an authenticated channel (Server, Query), and
// Decide turns the positions seen into a Decision.
package quorum

// Phase is what a supervisor is doing, as its peers see it.
type Phase string

// Phases, in order of a start.
const (
	PhaseRecovering Phase = "recovering" // reading grastate.dat, running --wsrep-recover
	PhaseWaiting    Phase = "waiting"    // recovered; deciding how to start
	PhaseStarting   Phase = "starting"   // mariadbd runs, not yet in a Primary Component
	PhaseJoined     Phase = "joined"     // in a Primary Component, catching up
	PhaseSynced     Phase = "synced"     // Synced member of a Primary Component
)

// Running reports whether mariadbd runs in this phase.
func (p Phase) Running() bool { return p == PhaseStarting || p == PhaseJoined || p == PhaseSynced }

func (p Phase) valid() bool {
	switch p {
	case PhaseRecovering, PhaseWaiting, PhaseStarting, PhaseJoined, PhaseSynced:
		return true
	}
	return false
}

// ZeroUUID is the cluster UUID of a node that holds no cluster's data.
const ZeroUUID = "00000000-0000-0000-0000-000000000000"

// State is what a supervisor tells its peers about its node.
type State struct {
	// ID names the node among its peers: its peer address as configured,
	// unique in the cluster. It breaks seqno ties.
	ID string `json:"id"`
	// Instance is random per supervisor run: a peer address that answers
	// with this node's own Instance is this node (peers listing every
	// node, or a wildcard peer-address).
	Instance string `json:"instance,omitempty"`
	Phase    Phase  `json:"phase"`
	// Primary: mariadbd runs and is in a Primary Component.
	Primary bool `json:"primary"`
	// Bootstrapping: this node decided to bootstrap and is starting so.
	Bootstrapping bool `json:"bootstrapping,omitempty"`
	// PCRecovery: this node started mariadbd to let pc.recovery restore
	// the Primary Component of View.
	PCRecovery bool `json:"pc_recovery,omitempty"`

	// The position recovered before mariadbd started: cluster UUID and
	// seqno (-1 while unknown), safe_to_bootstrap from grastate.dat.
	UUID            string `json:"uuid"`
	Seqno           int64  `json:"seqno"`
	SafeToBootstrap bool   `json:"safe_to_bootstrap"`
	// SSTIncomplete: the node's last SST did not complete (sst_in_progress,
	// staging left, the supervisor's marker): it may hold half a datadir.
	SSTIncomplete bool `json:"sst_incomplete,omitempty"`
	// View is gvwstate.dat, nil when absent.
	View *View `json:"view,omitempty"`
	// Donation is the SST this node sends, nil while it sends none: how
	// the joiner's supervisor learns the size of what is coming.
	Donation *Donation `json:"donation,omitempty"`
	// Weight is the node's pc.weight (0 to 255), nil when not set.
	Weight *int `json:"weight,omitempty"`

	// For "galera-supervisor status --cluster": the supervisor's STATUS=
	// line, its maintenance mode, and its last decision.
	Status      string  `json:"status,omitempty"`
	Maintenance bool    `json:"maintenance,omitempty"`
	Decision    *Record `json:"last_decision,omitempty"`
}

// Donation is a donor's SST as its supervisor measures it.
type Donation struct {
	Method string `json:"method"`
	// Joiner is the address the SST goes to, as mariadbd gave it to the
	// SST script (host:port[/module]).
	Joiner string `json:"joiner"`
	// Sent is the bytes the donor's SST processes have read so far
	// (/proc/PID/io), Total the donor's datadir: about what a physical
	// SST sends.
	Sent  int64 `json:"sent"`
	Total int64 `json:"total"`
}

// weight is the node's pc.weight as Galera counts it: 1 when not set.
func (s *State) weight() int {
	if s.Weight == nil {
		return 1
	}
	return *s.Weight
}

// Known reports whether the state carries a recovered position.
func (s *State) Known() bool { return s.Phase != PhaseRecovering }

// Eligible reports whether the node may bootstrap a cluster, and why not.
func (s *State) Eligible() (bool, string) {
	switch {
	case s.SSTIncomplete:
		return false, "its last SST did not complete"
	case s.UUID == "" || s.UUID == ZeroUUID:
		return false, "it holds no cluster's data (uuid 0)"
	case s.Seqno < 0:
		return false, "its seqno is unknown"
	}
	return true, ""
}
