package notify

import (
	"strings"
	"time"
)

// ChildMessage is what a notification from mariadbd (or anything it runs
// with our NOTIFY_SOCKET) means to the supervisor.
//
// Policy, decided here once:
//   - READY=1 is never relayed: mariadbd says it when it accepts
//     connections, which may be long before the node is Synced.
//   - STOPPING=1 is not relayed: the supervisor says it when it stops.
//   - STATUS= is not relayed verbatim; the supervisor folds it into its own
//     one-line phase.
//   - EXTEND_TIMEOUT_USEC= from the SST monitor threads (sent every 30 s with
//     a STATUS "WSREP state transfer ... ongoing", whether or not a byte
//     moved) is not relayed, so a stalled transfer cannot keep the unit
//     alive forever; the supervisor extends from the SST's measured
//     progress instead, and falls back to this extension (MonitorExtend)
//     only when it can measure nothing. Other extensions (InnoDB crash
//     recovery, buffer pool load, shutdown) are work the server knows is
//     advancing, and are relayed.
type ChildMessage struct {
	Ready      bool
	Stopping   bool
	Status     string        // "" when the message had no STATUS
	Extend     time.Duration // 0 when the message had none or it is not to be relayed
	SSTMonitor bool          // the message came from an SST monitor thread
	// MonitorExtend is the SST monitor's own extension, kept apart from
	// Extend: the floor when nothing of the SST can be measured.
	MonitorExtend time.Duration
	PID           int
}

// sstMonitorStatus starts the STATUS of mariadbd's SST monitor threads
// (sql/wsrep_sst.cc), e.g. "WSREP state transfer (role joiner) ongoing...".
const sstMonitorStatus = "WSREP state transfer"

// Classify reads a message from mariadbd.
func Classify(m Message) ChildMessage {
	c := ChildMessage{PID: m.PID}
	if v, ok := m.Get("READY"); ok && v == "1" {
		c.Ready = true
	}
	if v, ok := m.Get("STOPPING"); ok && v == "1" {
		c.Stopping = true
	}
	if v, ok := m.Get("STATUS"); ok {
		c.Status = strings.TrimSpace(v)
		c.SSTMonitor = strings.HasPrefix(c.Status, sstMonitorStatus)
	}
	if v, ok := m.Get("EXTEND_TIMEOUT_USEC"); ok {
		if d, err := parseExtendTimeout(v); err == nil {
			if c.SSTMonitor {
				c.MonitorExtend = d
			} else {
				c.Extend = d
			}
		}
	}
	return c
}
