package supervisor

import (
	"strings"
	"time"

	"github.com/galera-supervisor/galera-supervisor/sst"
	"github.com/galera-supervisor/galera-supervisor/sst/progress"
)

// Phase is what the node is doing, as STATUS= tells it.
type Phase string

// Phases, in the words systemctl status shows.
const (
	PhaseStarting   Phase = "starting"
	PhaseRecovering Phase = "recovering"
	PhaseWaiting    Phase = "waiting for primary"
	PhasePeers      Phase = "waiting for peers" // before mariadbd starts: how to start (package quorum)
	PhaseJoining    Phase = "joining"
	PhaseSST        Phase = "SST" // rendered from progress events
	PhaseIST        Phase = "IST"
	PhaseJoined     Phase = "joined, catching up"
	PhaseSynced     Phase = "synced"
	PhaseDonor      Phase = "donor"
	PhaseDesynced   Phase = "desynced"
	PhaseStopping   Phase = "stopping"
)

// view is everything the STATUS line is rendered from.
type view struct {
	stopping    bool
	maintenance bool // the maintenance mode is on
	recovering  bool
	waiting     bool // for the peers' positions, before mariadbd starts
	// waitingWhy is the last decision's reason while waiting: which node
	// is needed, and why.
	waitingWhy string
	wsrep      bool

	// From the SQL health check, when it last answered.
	sqlUp bool
	node  NodeState
	// healthErr is the last check's failure when it is worth showing
	// (access denied), else "".
	healthErr string

	// From SST progress events: the meter and when the last event came.
	meter    *progress.Meter
	lastProg time.Time
	progRole string
	// measured: the last event is the supervisor's own measure of an SST
	// whose method reports nothing (sstmeasure.go).
	measured bool

	// From mariadbd's own notifications.
	childStatus string
	sstMonitor  bool // mariadbd's SST monitor says a transfer is ongoing

	// An SST method's process runs below mariadbd.
	sstRunning         bool
	sstRole, sstMethod string
}

// MaintenanceStatus ends STATUS= while the node is in maintenance:
// "galera-supervisor maintenance" waits for it in a unit's StatusText.
const MaintenanceStatus = "maintenance: drained, auto-bootstrap and give-ups paused"

// progressFresh is how long a progress event stays the news.
const progressFresh = 15 * time.Second

// phase decides the node's phase.
func (v *view) phase(now time.Time) Phase {
	switch {
	case v.stopping:
		return PhaseStopping
	case v.recovering:
		return PhaseRecovering
	case v.waiting:
		return PhasePeers
	}
	fresh := v.meter != nil && !v.lastProg.IsZero() && now.Sub(v.lastProg) < progressFresh &&
		v.meter.Last().Phase != progress.PhaseDone && v.meter.Last().Phase != progress.PhaseFailed
	if fresh && v.progRole == "joiner" {
		// mysqldump loads a joiner that answers queries, and Galera
		// calls it non-Primary until the dump is in.
		return PhaseSST
	}
	if !v.sqlUp {
		if fresh || v.sstMonitor || v.sstRunning && v.sstRole == "joiner" {
			return PhaseSST
		}
		return PhaseStarting
	}
	if !v.wsrep {
		return PhaseSynced
	}
	n := v.node
	switch {
	case n.ClusterStatus != "" && n.ClusterStatus != "Primary":
		return PhaseWaiting
	case n.Comment == "Synced":
		return PhaseSynced
	case n.Comment == "Donor/Desynced":
		if n.Desync && !(fresh && v.progRole == "donor") {
			return PhaseDesynced
		}
		return PhaseDonor
	case n.Comment == "Joined":
		return PhaseJoined
	case strings.HasPrefix(n.Comment, "Joining"):
		if fresh {
			return PhaseSST
		}
		if strings.Contains(n.Comment, "receiving") {
			return PhaseIST
		}
		return PhaseJoining
	case n.Comment == "Initialized" || n.Comment == "":
		return PhaseWaiting
	}
	return Phase(strings.ToLower(n.Comment))
}

// line renders the STATUS= text: the phase, then what explains it, in one
// line.
func (v *view) line(now time.Time) string {
	p := v.phase(now)
	s := string(p)
	switch p {
	case PhaseSST:
		switch {
		case v.meter != nil && !v.lastProg.IsZero() && now.Sub(v.lastProg) < progressFresh && v.measured:
			s = "receiving SST by " + v.meter.Last().Method + v.meter.Detail()
		case v.meter != nil && !v.lastProg.IsZero() && now.Sub(v.lastProg) < progressFresh:
			s = v.meter.String()
		default:
			s = "receiving SST"
			if v.sstMethod != "" {
				s += " by " + v.sstMethod
			}
		}
	case PhaseDonor:
		fresh := v.meter != nil && v.progRole == "donor" && now.Sub(v.lastProg) < progressFresh
		switch {
		case fresh && v.meter.Last().Phase == progress.PhaseSending && v.meter.Last().Method != "":
			e := v.meter.Last()
			s = "donor: sending SST by " + e.Method + " to " + sst.PeerAddr(e.Peer) + v.meter.Detail()
		case fresh:
			s = "donor, " + v.meter.String()
		case v.sstRunning && v.sstRole == "donor":
			s = "donor: sending SST by " + v.sstMethod
		}
	case PhasePeers:
		if v.waitingWhy != "" {
			s += ": " + v.waitingWhy
		}
	case PhaseStarting:
		if v.childStatus != "" {
			s += ": " + v.childStatus
		}
	}
	if v.healthErr != "" && p != PhaseStopping {
		s += "; " + v.healthErr
	}
	if v.maintenance {
		s += "; " + MaintenanceStatus
	}
	return strings.ReplaceAll(s, "\n", " ")
}
