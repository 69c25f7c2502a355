package notify

import "time"

// Keepalive decides when to extend systemd's timeout while a state transfer
// runs. It extends only when the transfer advanced, by Window each time, so
// a transfer that stops moving lets the unit's timeout fire at most Window
// after its last progress. It is pure logic; the caller passes the clock.
//
// Extensions are spaced by at least Window/4 so that a fast stream of
// progress events does not become a stream of datagrams.
type Keepalive struct {
	Window time.Duration

	sent     bool
	lastSent time.Time
}

// Advanced records that progress moved at now, and reports whether to send
// EXTEND_TIMEOUT_USEC=Window now.
func (k *Keepalive) Advanced(now time.Time) bool {
	if k.Window <= 0 {
		return false
	}
	if k.sent && now.Sub(k.lastSent) < k.Window/4 {
		return false
	}
	k.sent, k.lastSent = true, now
	return true
}

// Deadline is when the last extension runs out, and false when none was
// sent. systemd counts each extension from when it receives it.
func (k *Keepalive) Deadline() (time.Time, bool) {
	if !k.sent {
		return time.Time{}, false
	}
	return k.lastSent.Add(k.Window), true
}

// Reset forgets earlier extensions, e.g. when a new transfer starts.
func (k *Keepalive) Reset() { k.sent, k.lastSent = false, time.Time{} }
